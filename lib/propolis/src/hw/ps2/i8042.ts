// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The 8042 keyboard controller of the PC/AT (with the PS/2 auxiliary port),
// with its keyboard and mouse: registers and device protocol only, no bus,
// lock or IRQ line.
//
// The state lives in a caller-supplied byte array (a SharedArrayBuffer in
// the machine, a plain buffer in unit tests). The guest sees three
// registers: the data port (0x60: output buffer on read, input buffer on
// write), the status register (0x64 read) and the command register (0x64
// write). Writes are handled at once, so IBF never reads 1.
//
// Output: the controller has one output-buffer byte. Bytes the keyboard and
// the mouse send, and the controller's own replies, wait in one queue in the
// order they were sent; a byte moves into the output buffer when it is
// empty (after the guest read the previous one). Bytes of a device whose
// interface is disabled in the command byte wait without holding up the
// other device's; controller replies go ahead of device bytes (the
// controller writes its output buffer directly). A byte from the mouse (or
// written with D3) sets AUXB. Keyboard bytes pass through the set-2 → set-1
// translation when the command byte's XLAT bit is set. Each byte that lands
// in the output buffer is an interrupt edge on IRQ 1 (keyboard side) or
// IRQ 12 (aux side) if the command byte enables it; so is enabling the
// interrupt while a byte waits there. The attachment takes the edges
// (`takeIrqEdges`) and pulses the lines.
//
// Commands (port 0x64): 20–3F read controller RAM (20: command byte), 60–7F
// write it, A7/A8 disable/enable aux, A9 aux interface test (00), AA
// self-test (55, and sets SYS), AB keyboard interface test (00), AD/AE
// disable/enable keyboard, C0 read input port, D0/D1 read/write output port
// (bit 0 = 0 resets the system, bit 1 is the A20 gate), D2/D3 write the
// keyboard/aux output buffer, D4 write to the mouse, E0 read test inputs,
// F0–FF pulse output-port bits 0–3 low (bit 0: system reset). Writing a
// byte to a device enables that device's interface. Unknown commands are
// ignored.
//
// A20: the output port's bit is kept and reads back, but nothing is gated;
// KVM has no A20 masking and the guest always sees every address line.
//
// Threading: none here; callers serialise access (see lpc-ps2.ts).

import { MigrateError, schema, t, type Payload, type PayloadOffers } from '../../migrate.js';
import { Ps2Keyboard, KBD_STATE_BYTES, type KeyResult, type Ps2Link } from './keyboard.js';
import { MOUSE_STATE_BYTES, Ps2Mouse } from './mouse.js';
import { XLAT, SET2_BREAK_PREFIX, type Ps2Key } from './scancodes.js';

export const I8042_STATUS = {
  OBF: 0x01,
  IBF: 0x02,
  SYS: 0x04,
  /** The last write was to the command register. */
  A2: 0x08,
  /** Keyboard not inhibited (the keylock switch is open). */
  INH: 0x10,
  /** The output buffer holds a byte from the auxiliary device. */
  AUXB: 0x20,
  TIMEOUT: 0x40,
  PARITY_ERROR: 0x80,
} as const;

/** The controller command byte (controller RAM byte 0). */
export const I8042_CCB = {
  KBD_INT: 0x01,
  AUX_INT: 0x02,
  SYS: 0x04,
  KBD_DISABLE: 0x10,
  AUX_DISABLE: 0x20,
  XLAT: 0x40,
} as const;

export const I8042_OUTPORT = {
  /** System reset, active low. */
  SYSR: 0x01,
  GATE_A20: 0x02,
  AUX_DATA: 0x04,
  AUX_CLOCK: 0x08,
  /** Read-only: the keyboard-side output buffer is full (IRQ 1). */
  KBD_OBF: 0x10,
  /** Read-only: the aux-side output buffer is full (IRQ 12). */
  AUX_OBF: 0x20,
  KBD_CLOCK: 0x40,
  KBD_DATA: 0x80,
} as const;

export const I8042_CMD = {
  READ_RAM: 0x20,
  WRITE_RAM: 0x60,
  DISABLE_AUX: 0xa7,
  ENABLE_AUX: 0xa8,
  TEST_AUX: 0xa9,
  SELF_TEST: 0xaa,
  TEST_KBD: 0xab,
  DISABLE_KBD: 0xad,
  ENABLE_KBD: 0xae,
  READ_INPUT_PORT: 0xc0,
  READ_OUTPUT_PORT: 0xd0,
  WRITE_OUTPUT_PORT: 0xd1,
  WRITE_KBD_OUTPUT: 0xd2,
  WRITE_AUX_OUTPUT: 0xd3,
  WRITE_AUX: 0xd4,
  READ_TEST_INPUTS: 0xe0,
  PULSE_OUTPUT: 0xf0,
} as const;

export const I8042_REPLY = { SELF_TEST_OK: 0x55, INTERFACE_OK: 0x00 } as const;

/**
 * The input port as C0 reads it: keylock open (bit 7), no manufacturing
 * jumper (bit 5); the display-type and RAM-size straps 0.
 */
export const INPUT_PORT_VALUE = 0xa0;
/** Output port at power-on: not in reset, A20 on, clock and data lines idle high. */
const OUTPORT_POWER_ON = 0xcf;
/** Command byte at power-on: interrupts and translation on, as firmware leaves it; SYS clear (cold boot). */
const CCB_POWER_ON = I8042_CCB.KBD_INT | I8042_CCB.AUX_INT | I8042_CCB.XLAT;

/** Bytes waiting for the output buffer, from all sources. */
export const I8042_QUEUE = 80;
export const I8042_RAM = 32;

/** Who sent a queued byte. */
const SRC_KBD = 0;
const SRC_AUX = 1;
const SRC_CTL = 2; // controller reply, keyboard side
const SRC_CTL_AUX = 3; // controller reply on the aux side (D3)

// Layout of the state bytes.
const C_RAM = 0;
const C_PENDING = 32; // command waiting for its data byte, 0 if none
const C_FLAGS = 33;
const F_A2 = 0x01;
const F_OBF = 0x02;
const F_OB_AUX = 0x04;
const F_XLAT_BREAK = 0x08; // translation saw F0: the next keyboard byte is a break
const C_OB = 34;
const C_OUTPORT = 35;
const C_QLEN = 36;
const C_QUEUE = 40; // I8042_QUEUE × u16: byte | source << 8
const C_KBD = C_QUEUE + 2 * I8042_QUEUE;
const C_MOUSE = C_KBD + KBD_STATE_BYTES;
export const I8042_STATE_BYTES = C_MOUSE + MOUSE_STATE_BYTES;

/** Commands whose data byte follows on port 0x60. */
const DATA_COMMANDS = new Set<number>([
  ...Array.from({ length: I8042_RAM }, (_, i) => I8042_CMD.WRITE_RAM + i),
  I8042_CMD.WRITE_OUTPUT_PORT,
  I8042_CMD.WRITE_KBD_OUTPUT,
  I8042_CMD.WRITE_AUX_OUTPUT,
  I8042_CMD.WRITE_AUX,
]);

/** A signed integer (mouse counters); the range is checked on import. */
const signedInt = {
  decode(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new MigrateError('DeserializationFailed', `${path}: expected an integer`);
    }
    return v;
  },
  encode: (v: number): unknown => v,
};

export const Ps2CtrlV1 = schema('ps2-ctrl', 1, {
  // controller
  ram: t.bytes(I8042_RAM),
  pendingCmd: t.u8,
  a2: t.bool,
  obFull: t.bool,
  obAux: t.bool,
  ob: t.u8,
  xlatBreak: t.bool,
  outPort: t.u8,
  /** Waiting bytes, oldest first: byte | source << 8 (0 keyboard, 1 mouse, 2/3 controller kbd/aux side). */
  queue: t.array(t.u16, I8042_QUEUE),
  // keyboard
  kbdSet: t.u8,
  kbdLeds: t.u8,
  kbdTypematic: t.u8,
  kbdScanning: t.bool,
  kbdArgCmd: t.u8,
  kbdLastSent: t.u8,
  // mouse
  mouseRemote: t.bool,
  mouseReporting: t.bool,
  mouseScaling21: t.bool,
  mouseRate: t.u8,
  mouseResolution: t.u8,
  mouseButtons: t.u8,
  mouseArgCmd: t.u8,
  mouseLastSent: t.u8,
  mouseDx: signedInt,
  mouseDy: signedInt,
  mousePendingButtons: t.bool,
});

type Command = (c: I8042, cmd: number) => void;

export class I8042 {
  readonly state: Uint8Array;
  readonly keyboard: Ps2Keyboard;
  readonly mouse: Ps2Mouse;
  /** Interrupt edges since the last `takeIrqEdges` (bit 0 IRQ 1, bit 1 IRQ 12); per instance. */
  private edges = 0;
  /** A reset the guest asked for, until the attachment takes it; per instance. */
  private resetRequest: string | undefined;

  constructor(state?: Uint8Array) {
    if (state && state.byteLength < I8042_STATE_BYTES) {
      throw new RangeError(`8042 state needs ${I8042_STATE_BYTES} bytes, got ${state.byteLength}`);
    }
    this.state = state ?? new Uint8Array(I8042_STATE_BYTES);
    this.keyboard = new Ps2Keyboard(this.state.subarray(C_KBD, C_KBD + KBD_STATE_BYTES), this.link(SRC_KBD));
    this.mouse = new Ps2Mouse(this.state.subarray(C_MOUSE, C_MOUSE + MOUSE_STATE_BYTES), this.link(SRC_AUX));
    if (!state) this.powerOn();
  }

  private static readonly COMMANDS: ReadonlyMap<number, Command> = (() => {
    const m = new Map<number, Command>();
    for (let i = 0; i < I8042_RAM; i++) {
      m.set(I8042_CMD.READ_RAM + i, (c) => c.reply(c.s(C_RAM + i)));
      m.set(I8042_CMD.WRITE_RAM + i, (c, cmd) => (c.state[C_PENDING] = cmd));
    }
    m.set(I8042_CMD.DISABLE_AUX, (c) => c.setCcb(c.ccb | I8042_CCB.AUX_DISABLE));
    m.set(I8042_CMD.ENABLE_AUX, (c) => c.setCcb(c.ccb & ~I8042_CCB.AUX_DISABLE));
    m.set(I8042_CMD.TEST_AUX, (c) => c.reply(I8042_REPLY.INTERFACE_OK));
    m.set(I8042_CMD.SELF_TEST, (c) => {
      c.setCcb(c.ccb | I8042_CCB.SYS);
      c.reply(I8042_REPLY.SELF_TEST_OK);
    });
    m.set(I8042_CMD.TEST_KBD, (c) => c.reply(I8042_REPLY.INTERFACE_OK));
    m.set(I8042_CMD.DISABLE_KBD, (c) => c.setCcb(c.ccb | I8042_CCB.KBD_DISABLE));
    m.set(I8042_CMD.ENABLE_KBD, (c) => c.setCcb(c.ccb & ~I8042_CCB.KBD_DISABLE));
    m.set(I8042_CMD.READ_INPUT_PORT, (c) => c.reply(INPUT_PORT_VALUE));
    m.set(I8042_CMD.READ_OUTPUT_PORT, (c) => c.reply(c.outputPort));
    for (const cmd of [
      I8042_CMD.WRITE_OUTPUT_PORT,
      I8042_CMD.WRITE_KBD_OUTPUT,
      I8042_CMD.WRITE_AUX_OUTPUT,
      I8042_CMD.WRITE_AUX,
    ]) {
      m.set(cmd, (c) => (c.state[C_PENDING] = cmd));
    }
    // Test inputs: keyboard clock (bit 0) and data (bit 1) lines, both low while idle-inhibited.
    m.set(I8042_CMD.READ_TEST_INPUTS, (c) => c.reply(0x00));
    for (let cmd = I8042_CMD.PULSE_OUTPUT; cmd <= 0xff; cmd++) {
      // Bits 0-3 = 0 pulse output-port bits 0-3 low for ~6 µs; only bit 0 (reset) is wired to anything.
      m.set(cmd, (c) => {
        if (!(cmd & I8042_OUTPORT.SYSR)) c.requestReset(`8042 command 0x${cmd.toString(16)} pulsed the reset line`);
      });
    }
    return m;
  })();

  /** Power-on: controller, keyboard and mouse. */
  powerOn(): void {
    this.state.fill(0);
    this.state[C_RAM] = CCB_POWER_ON;
    this.state[C_OUTPORT] = OUTPORT_POWER_ON;
    this.keyboard.powerOn();
    this.mouse.powerOn();
    this.edges = 0;
    this.resetRequest = undefined;
  }

  private s(i: number): number {
    return this.state[i] as number;
  }

  private flag(f: number): boolean {
    return (this.s(C_FLAGS) & f) !== 0;
  }

  private setFlag(f: number, on: boolean): void {
    this.state[C_FLAGS] = on ? this.s(C_FLAGS) | f : this.s(C_FLAGS) & ~f;
  }

  /** The controller command byte. */
  get ccb(): number {
    return this.s(C_RAM);
  }

  get outputPort(): number {
    let v = this.s(C_OUTPORT);
    if (this.flag(F_OBF)) v |= this.flag(F_OB_AUX) ? I8042_OUTPORT.AUX_OBF : I8042_OUTPORT.KBD_OBF;
    return v;
  }

  get a20(): boolean {
    return (this.s(C_OUTPORT) & I8042_OUTPORT.GATE_A20) !== 0;
  }

  // ---- registers ----

  readStatus(): number {
    let v = I8042_STATUS.INH;
    if (this.flag(F_OBF)) {
      v |= I8042_STATUS.OBF;
      if (this.flag(F_OB_AUX)) v |= I8042_STATUS.AUXB;
    }
    if (this.ccb & I8042_CCB.SYS) v |= I8042_STATUS.SYS;
    if (this.flag(F_A2)) v |= I8042_STATUS.A2;
    return v;
  }

  /** Port 0x60 read: the output buffer (the previous byte again if it is empty). */
  readData(): number {
    const v = this.s(C_OB);
    if (this.flag(F_OBF)) {
      this.setFlag(F_OBF | F_OB_AUX, false);
      this.refill();
    }
    return v;
  }

  writeCommand(value: number): void {
    const cmd = value & 0xff;
    this.setFlag(F_A2, true);
    this.state[C_PENDING] = 0; // a new command abandons a data phase
    I8042.COMMANDS.get(cmd)?.(this, cmd);
    this.refill();
  }

  writeData(value: number): void {
    const v = value & 0xff;
    this.setFlag(F_A2, false);
    const pending = this.s(C_PENDING);
    this.state[C_PENDING] = 0;
    if (pending >= I8042_CMD.WRITE_RAM && pending < I8042_CMD.WRITE_RAM + I8042_RAM) {
      if (pending === I8042_CMD.WRITE_RAM) this.setCcb(v);
      else this.state[C_RAM + pending - I8042_CMD.WRITE_RAM] = v;
    } else if (pending === I8042_CMD.WRITE_OUTPUT_PORT) {
      this.state[C_OUTPORT] = v & ~(I8042_OUTPORT.KBD_OBF | I8042_OUTPORT.AUX_OBF);
      if (!(v & I8042_OUTPORT.SYSR)) this.requestReset('8042 output port written with the reset bit clear');
    } else if (pending === I8042_CMD.WRITE_KBD_OUTPUT) {
      this.replyAfter(v, SRC_CTL);
    } else if (pending === I8042_CMD.WRITE_AUX_OUTPUT) {
      this.replyAfter(v, SRC_CTL_AUX);
    } else if (pending === I8042_CMD.WRITE_AUX) {
      this.setCcb(this.ccb & ~I8042_CCB.AUX_DISABLE);
      this.mouse.receive(v);
    } else {
      // No command waiting: the byte goes to the keyboard, whose interface
      // the controller enables to send it.
      this.setCcb(this.ccb & ~I8042_CCB.KBD_DISABLE);
      this.keyboard.receive(v);
    }
    this.refill();
  }

  // ---- host side ----

  /** Would this key event fit in the keyboard's buffer now? */
  keyFits(key: Ps2Key, down: boolean): boolean {
    return this.keyboard.fits(key, down);
  }

  keyEvent(key: Ps2Key, down: boolean): KeyResult {
    const r = this.keyboard.keyEvent(key, down);
    this.refill();
    return r;
  }

  /** Mouse movement (`dy` positive = up) and buttons (bit 0 left, 1 right, 2 middle). */
  mouseMove(dx: number, dy: number, buttons: number): void {
    this.mouse.move(dx, dy, buttons);
    this.refill();
  }

  /** Interrupt edges since the last call: bit 0 IRQ 1, bit 1 IRQ 12. */
  takeIrqEdges(): number {
    const e = this.edges;
    this.edges = 0;
    return e;
  }

  /** The reset the guest asked for since the last call, if any. */
  takeResetRequest(): string | undefined {
    const r = this.resetRequest;
    this.resetRequest = undefined;
    return r;
  }

  private requestReset(reason: string): void {
    this.resetRequest ??= reason;
  }

  // ---- output buffer and queue ----

  /** Is an interrupt enabled for what the output buffer holds now? (bit 0 IRQ 1, bit 1 IRQ 12) */
  private obInterrupt(): number {
    if (!this.flag(F_OBF)) return 0;
    if (this.flag(F_OB_AUX)) return this.ccb & I8042_CCB.AUX_INT ? 2 : 0;
    return this.ccb & I8042_CCB.KBD_INT ? 1 : 0;
  }

  private setCcb(v: number): void {
    const before = this.obInterrupt();
    this.state[C_RAM] = v & 0xff;
    this.edges |= this.obInterrupt() & ~before;
  }

  private get qlen(): number {
    return this.s(C_QLEN);
  }

  private entry(i: number): number {
    return this.s(C_QUEUE + 2 * i) | (this.s(C_QUEUE + 2 * i + 1) << 8);
  }

  private setEntry(i: number, e: number): void {
    this.state[C_QUEUE + 2 * i] = e & 0xff;
    this.state[C_QUEUE + 2 * i + 1] = e >> 8;
  }

  private removeAt(i: number): number {
    const e = this.entry(i);
    const n = this.qlen;
    this.state.copyWithin(C_QUEUE + 2 * i, C_QUEUE + 2 * (i + 1), C_QUEUE + 2 * n);
    this.state[C_QLEN] = n - 1;
    return e;
  }

  private insertAt(i: number, e: number): void {
    const n = this.qlen;
    this.state.copyWithin(C_QUEUE + 2 * (i + 1), C_QUEUE + 2 * i, C_QUEUE + 2 * n);
    this.setEntry(i, e);
    this.state[C_QLEN] = n + 1;
  }

  /** A controller reply: ahead of device bytes, after earlier replies. Lost only if the queue is full. */
  private reply(b: number): void {
    this.replyAfter(b, SRC_CTL);
  }

  private replyAfter(b: number, src: number): void {
    if (this.qlen >= I8042_QUEUE) return;
    let i = 0;
    while (i < this.qlen && this.entry(i) >> 8 >= SRC_CTL) i++;
    this.insertAt(i, (b & 0xff) | (src << 8));
  }

  private count(src: number): number {
    let n = 0;
    for (let i = 0; i < this.qlen; i++) if (this.entry(i) >> 8 === src) n++;
    return n;
  }

  private link(src: number): Ps2Link {
    return {
      send: (bytes, limit) => {
        if (this.qlen + bytes.length > I8042_QUEUE) return false;
        if (limit !== undefined && this.count(src) + bytes.length > limit) return false;
        for (const b of bytes) {
          const n = this.qlen;
          this.setEntry(n, (b & 0xff) | (src << 8));
          this.state[C_QLEN] = n + 1;
        }
        return true;
      },
      queued: () => this.count(src),
      lastQueued: () => {
        for (let i = this.qlen - 1; i >= 0; i--) if (this.entry(i) >> 8 === src) return this.entry(i) & 0xff;
        return undefined;
      },
      flush: () => {
        for (let i = this.qlen - 1; i >= 0; i--) if (this.entry(i) >> 8 === src) this.removeAt(i);
        if (src === SRC_KBD) this.setFlag(F_XLAT_BREAK, false);
      },
    };
  }

  /** The first queued byte allowed to move now (its interface enabled), or -1. */
  private nextEligible(): number {
    const ccb = this.ccb;
    for (let i = 0; i < this.qlen; i++) {
      const src = this.entry(i) >> 8;
      if (src === SRC_KBD && ccb & I8042_CCB.KBD_DISABLE) continue;
      if (src === SRC_AUX && ccb & I8042_CCB.AUX_DISABLE) continue;
      return i;
    }
    return -1;
  }

  /** Move the next byte into an empty output buffer; let the mouse refill its share. */
  private refill(): void {
    for (;;) {
      this.mouse.pump();
      if (this.flag(F_OBF)) return;
      const i = this.nextEligible();
      if (i < 0) return;
      const e = this.removeAt(i);
      const src = e >> 8;
      let b = e & 0xff;
      if (src === SRC_KBD && this.ccb & I8042_CCB.XLAT) {
        if (b === SET2_BREAK_PREFIX) {
          this.setFlag(F_XLAT_BREAK, true);
          continue;
        }
        b = (XLAT[b] as number) | (this.flag(F_XLAT_BREAK) ? 0x80 : 0);
        this.setFlag(F_XLAT_BREAK, false);
      }
      this.state[C_OB] = b;
      this.setFlag(F_OBF, true);
      this.setFlag(F_OB_AUX, src === SRC_AUX || src === SRC_CTL_AUX);
      this.edges |= this.obInterrupt();
    }
  }

  // ---- state ----

  export(): Payload[] {
    const queue: number[] = [];
    for (let i = 0; i < this.qlen; i++) queue.push(this.entry(i));
    return [
      Ps2CtrlV1.encode({
        ram: this.state.slice(C_RAM, C_RAM + I8042_RAM),
        pendingCmd: this.s(C_PENDING),
        a2: this.flag(F_A2),
        obFull: this.flag(F_OBF),
        obAux: this.flag(F_OB_AUX),
        ob: this.s(C_OB),
        xlatBreak: this.flag(F_XLAT_BREAK),
        outPort: this.s(C_OUTPORT),
        queue,
        ...this.keyboard.exportState(),
        ...this.mouse.exportState(),
      }),
    ];
  }

  /** Replace the state with an exported one; validated before anything changes. */
  import(offers: PayloadOffers): void {
    const v = offers.take(Ps2CtrlV1);
    offers.finish();
    const bad = (what: string): never => {
      throw new MigrateError('ImportFailed', `ps2-ctrl: ${what}`);
    };
    if (v.ram.length !== I8042_RAM) bad(`expected ${I8042_RAM} RAM bytes, got ${v.ram.length}`);
    if (v.pendingCmd !== 0 && !DATA_COMMANDS.has(v.pendingCmd)) {
      bad(`0x${v.pendingCmd.toString(16)} is not a command that waits for data`);
    }
    if (v.obAux && !v.obFull) bad('AUXB without a full output buffer');
    if (v.outPort & (I8042_OUTPORT.KBD_OBF | I8042_OUTPORT.AUX_OBF)) bad('output port carries the computed OBF bits');
    if (v.queue.some((e) => e >> 8 > SRC_CTL_AUX)) bad('queue entry with an unknown source');
    const kbdWhy = Ps2Keyboard.validate(v);
    if (kbdWhy) bad(kbdWhy);
    const mouseWhy = Ps2Mouse.validate(v);
    if (mouseWhy) bad(mouseWhy);
    const st = this.state;
    st.fill(0, 0, C_KBD);
    st.set(v.ram, C_RAM);
    st[C_PENDING] = v.pendingCmd;
    st[C_FLAGS] =
      (v.a2 ? F_A2 : 0) | (v.obFull ? F_OBF : 0) | (v.obAux ? F_OB_AUX : 0) | (v.xlatBreak ? F_XLAT_BREAK : 0);
    st[C_OB] = v.ob;
    st[C_OUTPORT] = v.outPort;
    v.queue.forEach((e, i) => this.setEntry(i, e));
    st[C_QLEN] = v.queue.length;
    this.keyboard.importState(v);
    this.mouse.importState(v);
    this.edges = 0;
    this.resetRequest = undefined;
  }
}
