// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A PS/2 (AT) keyboard as the 8042 sees it: it takes command bytes from the
// host, answers them, and sends scan codes for key events into a 16-byte
// buffer. Pure model over a slice of the controller's state bytes; its
// output goes to the controller through a `Ps2Link`.
//
// Commands: ED set LEDs, EE echo, F0 get/set scan-code set (3 is accepted
// and runs as set 2), F2 identify (AB 83), F3 typematic rate/delay, F4
// enable, F5 disable (and defaults), F6 defaults, FE resend, FF reset
// (ACK, then BAT 0xAA). Anything else (including the set-3 key-type
// commands F7–FD) is answered with FE. When a byte arrives while a command
// waits for its argument and the byte is itself a command (bit 7 set), the
// keyboard drops the old command and runs the new one, as keyboards do.
// Typematic repeat is not generated: a host that wants repeats sends them.
//
// Threading: none here; the controller's caller serialises access.

import { OVERRUN, scanSequence, type Ps2Key, type ScanSet } from './scancodes.js';

/** Where a device's bytes go: the controller's queue. */
export interface Ps2Link {
  /**
   * Queue bytes from the device. With `limit`, only if the device's queued
   * bytes plus these stay within it (the device's own buffer); always only
   * if the controller has room. Returns whether they were queued.
   */
  send(bytes: readonly number[], limit?: number): boolean;
  /** Bytes of this device still queued (not yet in the output buffer). */
  queued(): number;
  /** The last byte of this device still queued. */
  lastQueued(): number | undefined;
  /** Drop this device's queued bytes. */
  flush(): void;
}

export const KBD_CMD = {
  SET_LEDS: 0xed,
  ECHO: 0xee,
  SCAN_CODE_SET: 0xf0,
  IDENTIFY: 0xf2,
  TYPEMATIC: 0xf3,
  ENABLE: 0xf4,
  DISABLE: 0xf5,
  SET_DEFAULTS: 0xf6,
  RESEND: 0xfe,
  RESET: 0xff,
} as const;

export const KBD_REPLY = { ACK: 0xfa, BAT_OK: 0xaa, ECHO: 0xee, RESEND: 0xfe, ID_1: 0xab, ID_2: 0x83 } as const;

/** The keyboard's own output buffer. */
export const KBD_BUFFER = 16;
/** 10.9 characters/s after 500 ms. */
export const TYPEMATIC_DEFAULT = 0x2b;

// Layout of the keyboard's state bytes.
const K_SET = 0;
const K_LEDS = 1;
const K_TYPEMATIC = 2;
const K_SCANNING = 3;
const K_ARG = 4; // command waiting for its argument, 0 if none
const K_LAST = 5; // last byte sent, for FE (resend)
export const KBD_STATE_BYTES = 8;

export interface KeyboardStateV1 {
  kbdSet: number;
  kbdLeds: number;
  kbdTypematic: number;
  kbdScanning: boolean;
  kbdArgCmd: number;
  kbdLastSent: number;
}

export type KeyResult = 'queued' | 'overrun' | 'ignored';

type Command = (k: Ps2Keyboard) => void;

/** What K_ARG may hold: nothing, or a command that takes an argument. */
const ARG_STATES = new Set<number>([0, KBD_CMD.SET_LEDS, KBD_CMD.TYPEMATIC, KBD_CMD.SCAN_CODE_SET]);

export class Ps2Keyboard {
  constructor(
    private readonly st: Uint8Array,
    private readonly link: Ps2Link,
  ) {
    if (st.byteLength < KBD_STATE_BYTES) throw new RangeError('keyboard state too small');
  }

  private static readonly COMMANDS = new Map<number, Command>([
    [KBD_CMD.SET_LEDS, (k) => k.ackThenArg(KBD_CMD.SET_LEDS)],
    [KBD_CMD.ECHO, (k) => k.reply(KBD_REPLY.ECHO)],
    [KBD_CMD.SCAN_CODE_SET, (k) => k.ackThenArg(KBD_CMD.SCAN_CODE_SET)],
    [KBD_CMD.IDENTIFY, (k) => k.reply(KBD_REPLY.ACK, KBD_REPLY.ID_1, KBD_REPLY.ID_2)],
    [KBD_CMD.TYPEMATIC, (k) => k.ackThenArg(KBD_CMD.TYPEMATIC)],
    [
      KBD_CMD.ENABLE,
      (k) => {
        k.link.flush();
        k.st[K_SCANNING] = 1;
        k.reply(KBD_REPLY.ACK);
      },
    ],
    [
      KBD_CMD.DISABLE,
      (k) => {
        k.link.flush();
        k.defaults();
        k.st[K_SCANNING] = 0;
        k.reply(KBD_REPLY.ACK);
      },
    ],
    [
      KBD_CMD.SET_DEFAULTS,
      (k) => {
        k.link.flush();
        k.defaults();
        k.st[K_SCANNING] = 1;
        k.reply(KBD_REPLY.ACK);
      },
    ],
    [KBD_CMD.RESEND, (k) => k.reply(k.st[K_LAST] as number)],
    [
      KBD_CMD.RESET,
      (k) => {
        k.link.flush();
        k.powerOn();
        k.reply(KBD_REPLY.ACK, KBD_REPLY.BAT_OK);
      },
    ],
  ]);

  /** Power-on state (no BAT code is queued: nobody listens yet). */
  powerOn(): void {
    this.st.fill(0, 0, KBD_STATE_BYTES);
    this.st[K_SET] = 2;
    this.st[K_LEDS] = 0;
    this.st[K_SCANNING] = 1;
    this.defaults();
  }

  /** Defaults that F5/F6 restore; the scan-code set stays (only reset changes it). */
  private defaults(): void {
    this.st[K_TYPEMATIC] = TYPEMATIC_DEFAULT;
    this.st[K_ARG] = 0;
  }

  get scanSet(): ScanSet {
    return this.st[K_SET] === 1 ? 1 : 2;
  }

  get scanning(): boolean {
    return this.st[K_SCANNING] !== 0;
  }

  get leds(): number {
    return this.st[K_LEDS] as number;
  }

  get typematic(): number {
    return this.st[K_TYPEMATIC] as number;
  }

  /** A byte from the host (through the controller). */
  receive(b: number): void {
    const arg = this.st[K_ARG] as number;
    if (arg !== 0) {
      this.st[K_ARG] = 0;
      if (!(b & 0x80)) {
        this.argument(arg, b);
        return;
      }
      // A command instead of the argument: the old command is abandoned.
    }
    const cmd = Ps2Keyboard.COMMANDS.get(b);
    if (cmd) cmd(this);
    else this.reply(KBD_REPLY.RESEND);
  }

  private argument(cmd: number, v: number): void {
    switch (cmd) {
      case KBD_CMD.SET_LEDS:
        this.st[K_LEDS] = v & 0x07;
        this.reply(KBD_REPLY.ACK);
        return;
      case KBD_CMD.TYPEMATIC:
        this.st[K_TYPEMATIC] = v & 0x7f;
        this.reply(KBD_REPLY.ACK);
        return;
      case KBD_CMD.SCAN_CODE_SET:
        if (v === 0) {
          this.reply(KBD_REPLY.ACK, this.scanSet);
        } else if (v <= 3) {
          // Set 3 is accepted, as firmware expects, and runs as set 2 (reads back 2).
          this.st[K_SET] = v === 1 ? 1 : 2;
          this.reply(KBD_REPLY.ACK);
        } else {
          this.reply(KBD_REPLY.RESEND);
        }
        return;
      default:
        this.reply(KBD_REPLY.RESEND); // unreachable: only the commands above wait for arguments
    }
  }

  private ackThenArg(cmd: number): void {
    this.reply(KBD_REPLY.ACK);
    this.st[K_ARG] = cmd;
  }

  private reply(...bytes: number[]): void {
    if (this.link.send(bytes)) this.st[K_LAST] = bytes[bytes.length - 1] as number;
  }

  /** Would this key event fit in the keyboard's buffer now? (Always true when not scanning: it is dropped.) */
  fits(key: Ps2Key, down: boolean): boolean {
    return !this.scanning || this.link.queued() + scanSequence(key, down, this.scanSet).length <= KBD_BUFFER;
  }

  /**
   * A key goes down or up; its bytes are queued whole or not at all. When
   * they do not fit the keyboard puts its overrun code after the last byte
   * in the buffer (once) and drops keys until the buffer drains.
   */
  keyEvent(key: Ps2Key, down: boolean): KeyResult {
    if (!this.scanning) return 'ignored';
    const seq = scanSequence(key, down, this.scanSet);
    if (seq.length === 0) return 'queued';
    if (this.link.send(seq, KBD_BUFFER)) {
      this.st[K_LAST] = seq[seq.length - 1] as number;
      return 'queued';
    }
    // The overrun code takes the position after the last one, once.
    const overrun = OVERRUN[this.scanSet];
    if (this.link.lastQueued() !== overrun && this.link.send([overrun], KBD_BUFFER + 1)) this.st[K_LAST] = overrun;
    return 'overrun';
  }

  exportState(): KeyboardStateV1 {
    return {
      kbdSet: this.st[K_SET] as number,
      kbdLeds: this.leds,
      kbdTypematic: this.typematic,
      kbdScanning: this.scanning,
      kbdArgCmd: this.st[K_ARG] as number,
      kbdLastSent: this.st[K_LAST] as number,
    };
  }

  /** Check an exported state; returns a complaint or undefined. */
  static validate(v: KeyboardStateV1): string | undefined {
    if (v.kbdSet !== 1 && v.kbdSet !== 2) return `keyboard scan-code set ${v.kbdSet} is not 1 or 2`;
    if (v.kbdLeds > 7) return 'keyboard LEDs beyond bits 0-2';
    if (v.kbdTypematic > 0x7f) return 'keyboard typematic byte has bit 7 set';
    if (!ARG_STATES.has(v.kbdArgCmd)) {
      return `keyboard cannot be waiting for an argument of 0x${v.kbdArgCmd.toString(16)}`;
    }
    return undefined;
  }

  importState(v: KeyboardStateV1): void {
    this.st.fill(0, 0, KBD_STATE_BYTES);
    this.st[K_SET] = v.kbdSet;
    this.st[K_LEDS] = v.kbdLeds;
    this.st[K_TYPEMATIC] = v.kbdTypematic;
    this.st[K_SCANNING] = v.kbdScanning ? 1 : 0;
    this.st[K_ARG] = v.kbdArgCmd;
    this.st[K_LAST] = v.kbdLastSent;
  }
}
