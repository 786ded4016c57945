// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Keys of a PC keyboard and the bytes a PS/2 keyboard sends for them, in
// scan-code set 1 (the XT codes) and set 2 (the AT codes, what a keyboard
// sends after power-on), plus the 8042's translation of set 2 into set 1.
//
// Keys are named by their W3C `KeyboardEvent.code` (the physical key on a
// US layout), the identifiers VNC and browser front ends already use.
//
// Set 1: make = code, break = code | 0x80; extended keys are prefixed E0.
// Set 2: make = code, break = F0 code; extended keys are prefixed E0
// (E0 F0 code to break). Print Screen and Pause have their own sequences.
//
// Threading: pure data and functions.

/** [set-1 code, set-2 code, extended (E0-prefixed)] */
type KeyCodes = readonly [number, number, boolean];

const KEYS = {
  Escape: [0x01, 0x76, false],
  Digit1: [0x02, 0x16, false],
  Digit2: [0x03, 0x1e, false],
  Digit3: [0x04, 0x26, false],
  Digit4: [0x05, 0x25, false],
  Digit5: [0x06, 0x2e, false],
  Digit6: [0x07, 0x36, false],
  Digit7: [0x08, 0x3d, false],
  Digit8: [0x09, 0x3e, false],
  Digit9: [0x0a, 0x46, false],
  Digit0: [0x0b, 0x45, false],
  Minus: [0x0c, 0x4e, false],
  Equal: [0x0d, 0x55, false],
  Backspace: [0x0e, 0x66, false],
  Tab: [0x0f, 0x0d, false],
  KeyQ: [0x10, 0x15, false],
  KeyW: [0x11, 0x1d, false],
  KeyE: [0x12, 0x24, false],
  KeyR: [0x13, 0x2d, false],
  KeyT: [0x14, 0x2c, false],
  KeyY: [0x15, 0x35, false],
  KeyU: [0x16, 0x3c, false],
  KeyI: [0x17, 0x43, false],
  KeyO: [0x18, 0x44, false],
  KeyP: [0x19, 0x4d, false],
  BracketLeft: [0x1a, 0x54, false],
  BracketRight: [0x1b, 0x5b, false],
  Enter: [0x1c, 0x5a, false],
  ControlLeft: [0x1d, 0x14, false],
  KeyA: [0x1e, 0x1c, false],
  KeyS: [0x1f, 0x1b, false],
  KeyD: [0x20, 0x23, false],
  KeyF: [0x21, 0x2b, false],
  KeyG: [0x22, 0x34, false],
  KeyH: [0x23, 0x33, false],
  KeyJ: [0x24, 0x3b, false],
  KeyK: [0x25, 0x42, false],
  KeyL: [0x26, 0x4b, false],
  Semicolon: [0x27, 0x4c, false],
  Quote: [0x28, 0x52, false],
  Backquote: [0x29, 0x0e, false],
  ShiftLeft: [0x2a, 0x12, false],
  Backslash: [0x2b, 0x5d, false],
  KeyZ: [0x2c, 0x1a, false],
  KeyX: [0x2d, 0x22, false],
  KeyC: [0x2e, 0x21, false],
  KeyV: [0x2f, 0x2a, false],
  KeyB: [0x30, 0x32, false],
  KeyN: [0x31, 0x31, false],
  KeyM: [0x32, 0x3a, false],
  Comma: [0x33, 0x41, false],
  Period: [0x34, 0x49, false],
  Slash: [0x35, 0x4a, false],
  ShiftRight: [0x36, 0x59, false],
  NumpadMultiply: [0x37, 0x7c, false],
  AltLeft: [0x38, 0x11, false],
  Space: [0x39, 0x29, false],
  CapsLock: [0x3a, 0x58, false],
  F1: [0x3b, 0x05, false],
  F2: [0x3c, 0x06, false],
  F3: [0x3d, 0x04, false],
  F4: [0x3e, 0x0c, false],
  F5: [0x3f, 0x03, false],
  F6: [0x40, 0x0b, false],
  F7: [0x41, 0x83, false],
  F8: [0x42, 0x0a, false],
  F9: [0x43, 0x01, false],
  F10: [0x44, 0x09, false],
  NumLock: [0x45, 0x77, false],
  ScrollLock: [0x46, 0x7e, false],
  Numpad7: [0x47, 0x6c, false],
  Numpad8: [0x48, 0x75, false],
  Numpad9: [0x49, 0x7d, false],
  NumpadSubtract: [0x4a, 0x7b, false],
  Numpad4: [0x4b, 0x6b, false],
  Numpad5: [0x4c, 0x73, false],
  Numpad6: [0x4d, 0x74, false],
  NumpadAdd: [0x4e, 0x79, false],
  Numpad1: [0x4f, 0x69, false],
  Numpad2: [0x50, 0x72, false],
  Numpad3: [0x51, 0x7a, false],
  Numpad0: [0x52, 0x70, false],
  NumpadDecimal: [0x53, 0x71, false],
  IntlBackslash: [0x56, 0x61, false],
  F11: [0x57, 0x78, false],
  F12: [0x58, 0x07, false],
  NumpadEnter: [0x1c, 0x5a, true],
  ControlRight: [0x1d, 0x14, true],
  NumpadDivide: [0x35, 0x4a, true],
  AltRight: [0x38, 0x11, true],
  Home: [0x47, 0x6c, true],
  ArrowUp: [0x48, 0x75, true],
  PageUp: [0x49, 0x7d, true],
  ArrowLeft: [0x4b, 0x6b, true],
  ArrowRight: [0x4d, 0x74, true],
  End: [0x4f, 0x69, true],
  ArrowDown: [0x50, 0x72, true],
  PageDown: [0x51, 0x7a, true],
  Insert: [0x52, 0x70, true],
  Delete: [0x53, 0x71, true],
  MetaLeft: [0x5b, 0x1f, true],
  MetaRight: [0x5c, 0x27, true],
  ContextMenu: [0x5d, 0x2f, true],
} as const satisfies Record<string, KeyCodes>;

/** Keys with sequences of their own (not one code with an optional E0). */
const SPECIAL = {
  PrintScreen: {
    1: { make: [0xe0, 0x2a, 0xe0, 0x37], break: [0xe0, 0xb7, 0xe0, 0xaa] },
    2: { make: [0xe0, 0x12, 0xe0, 0x7c], break: [0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12] },
  },
  // Pause sends its whole sequence on press and nothing on release.
  Pause: {
    1: { make: [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5], break: [] },
    2: { make: [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77], break: [] },
  },
} as const;

export type Ps2Key = keyof typeof KEYS | keyof typeof SPECIAL;
export type ScanSet = 1 | 2;

export const PS2_KEYS: readonly Ps2Key[] = [...Object.keys(KEYS), ...Object.keys(SPECIAL)] as Ps2Key[];

export function isPs2Key(k: string): k is Ps2Key {
  return Object.hasOwn(KEYS, k) || Object.hasOwn(SPECIAL, k);
}

export const SET2_BREAK_PREFIX = 0xf0;
export const EXTENDED_PREFIX = 0xe0;
/** What a keyboard sends instead of a key when its buffer overflows. */
export const OVERRUN = { 1: 0xff, 2: 0x00 } as const;

/** The bytes a keyboard sends in `set` when `key` goes down or up. */
export function scanSequence(key: Ps2Key, down: boolean, set: ScanSet): readonly number[] {
  if (key === 'PrintScreen' || key === 'Pause') {
    const s = SPECIAL[key][set];
    return down ? s.make : s.break;
  }
  const [c1, c2, ext] = KEYS[key];
  const pre = ext ? [EXTENDED_PREFIX] : [];
  if (set === 1) return [...pre, down ? c1 : c1 | 0x80];
  return down ? [...pre, c2] : [...pre, SET2_BREAK_PREFIX, c2];
}

/**
 * The 8042's translation of a set-2 byte into set 1 (command byte XLAT).
 * Bytes from 0x80 up pass unchanged (prefixes, ACK, BAT, ID) except 0x83
 * (set-2 F7), which has no other place. Below 0x80, the table follows the
 * keys above; of the codes no key here sends, the ones a keyboard can still
 * send are entered too: 0x00 (overrun) and 0x02 (the "set 2" answer to
 * F0 00, which reads 0x41 through translation). The rest pass unchanged.
 * A break (F0 xx) becomes the translated code with bit 7 set; the
 * controller keeps the F0 state (i8042.ts).
 */
export const XLAT: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) t[i] = i;
  for (const [c1, c2] of Object.values(KEYS) as KeyCodes[]) t[c2] = c1;
  t[0x00] = OVERRUN[1];
  t[0x02] = 0x41;
  return t;
})();

/** The keys (with Shift) that type each printable ASCII character on a US layout. */
const TEXT: Record<string, [Ps2Key, boolean]> = (() => {
  const m: Record<string, [Ps2Key, boolean]> = {};
  for (let c = 0; c < 26; c++) {
    const key = `Key${String.fromCharCode(65 + c)}` as Ps2Key;
    m[String.fromCharCode(97 + c)] = [key, false];
    m[String.fromCharCode(65 + c)] = [key, true];
  }
  const pairs: [Ps2Key, string, string][] = [
    ['Digit1', '1', '!'],
    ['Digit2', '2', '@'],
    ['Digit3', '3', '#'],
    ['Digit4', '4', '$'],
    ['Digit5', '5', '%'],
    ['Digit6', '6', '^'],
    ['Digit7', '7', '&'],
    ['Digit8', '8', '*'],
    ['Digit9', '9', '('],
    ['Digit0', '0', ')'],
    ['Minus', '-', '_'],
    ['Equal', '=', '+'],
    ['BracketLeft', '[', '{'],
    ['BracketRight', ']', '}'],
    ['Backslash', '\\', '|'],
    ['Semicolon', ';', ':'],
    ['Quote', "'", '"'],
    ['Backquote', '`', '~'],
    ['Comma', ',', '<'],
    ['Period', '.', '>'],
    ['Slash', '/', '?'],
  ];
  for (const [key, plain, shifted] of pairs) {
    m[plain] = [key, false];
    m[shifted] = [key, true];
  }
  m[' '] = ['Space', false];
  m['\n'] = ['Enter', false];
  m['\r'] = ['Enter', false];
  m['\t'] = ['Tab', false];
  m['\b'] = ['Backspace', false];
  m['\x1b'] = ['Escape', false];
  return m;
})();

export interface KeyEvent {
  key: Ps2Key;
  down: boolean;
}

/**
 * The key presses and releases that type `text` on a US keyboard, with Left
 * Shift around shifted characters. Characters without a key are skipped and
 * counted in `skipped`.
 */
export function textToKeyEvents(text: string): { events: KeyEvent[]; skipped: number } {
  const events: KeyEvent[] = [];
  let skipped = 0;
  for (const ch of text) {
    const k = TEXT[ch];
    if (!k) {
      skipped++;
      continue;
    }
    const [key, shift] = k;
    if (shift) events.push({ key: 'ShiftLeft', down: true });
    events.push({ key, down: true }, { key, down: false });
    if (shift) events.push({ key: 'ShiftLeft', down: false });
  }
  return { events, skipped };
}
