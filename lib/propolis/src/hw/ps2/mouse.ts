// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A standard PS/2 mouse (device ID 0, three buttons, no wheel) on the 8042's
// auxiliary port. Pure model over a slice of the controller's state bytes;
// its output goes to the controller through a `Ps2Link`.
//
// Commands: E6/E7 scaling 1:1 / 2:1, E8 resolution, E9 status request, EA
// stream mode, EB read data, F0 remote mode, F2 get ID (00), F3 sample rate,
// F4/F5 enable/disable data reporting, F6 defaults, FE resend, FF reset
// (FA AA 00). Others (wrap mode EC/EE included) are answered with FE.
//
// Movement: the host adds to the mouse's counters; in stream mode with
// reporting on, the mouse turns them into 3-byte packets (at most ±255 per
// packet, the rest in following packets) while its buffer (16 packets) has
// room, and keeps the remainder counted until it drains, so no movement is
// lost. Packet byte 0: buttons (bit 0 left, 1 right, 2 middle), bit 3
// always 1, X/Y sign bits 4/5, X/Y overflow bits 6/7; then X and Y low
// bytes, two's complement, Y positive = up. 2:1 scaling applies in stream
// mode only, as specified.
//
// Threading: none here; the controller's caller serialises access.

import type { Ps2Link } from './keyboard.js';

export const MOUSE_CMD = {
  SCALING_1_1: 0xe6,
  SCALING_2_1: 0xe7,
  SET_RESOLUTION: 0xe8,
  STATUS_REQUEST: 0xe9,
  SET_STREAM_MODE: 0xea,
  READ_DATA: 0xeb,
  SET_REMOTE_MODE: 0xf0,
  GET_DEVICE_ID: 0xf2,
  SET_SAMPLE_RATE: 0xf3,
  ENABLE_REPORTING: 0xf4,
  DISABLE_REPORTING: 0xf5,
  SET_DEFAULTS: 0xf6,
  RESEND: 0xfe,
  RESET: 0xff,
} as const;

export const MOUSE_REPLY = { ACK: 0xfa, BAT_OK: 0xaa, DEVICE_ID: 0x00, RESEND: 0xfe } as const;

export const MOUSE_BUTTON = { LEFT: 0x01, RIGHT: 0x02, MIDDLE: 0x04 } as const;
const PACKET_ALWAYS_1 = 0x08;
const PACKET_X_SIGN = 0x10;
const PACKET_Y_SIGN = 0x20;
const PACKET_X_OVERFLOW = 0x40;
const PACKET_Y_OVERFLOW = 0x80;

const STATUS_REMOTE = 0x40;
const STATUS_ENABLED = 0x20;
const STATUS_SCALING_2_1 = 0x10;
const STATUS_LEFT = 0x04;
const STATUS_MIDDLE = 0x02;
const STATUS_RIGHT = 0x01;

export const SAMPLE_RATES: readonly number[] = [10, 20, 40, 60, 80, 100, 200];
export const DEFAULT_SAMPLE_RATE = 100;
/** 4 counts/mm. */
export const DEFAULT_RESOLUTION = 2;
/** Bytes of packets the mouse holds before it keeps counting instead. */
export const MOUSE_BUFFER = 48;
/** Counters saturate here; a host cannot make the mouse owe more than this. */
const COUNTER_LIMIT = 1 << 20;

// Layout of the mouse's state bytes.
const M_FLAGS = 0;
const F_REMOTE = 0x01;
const F_REPORTING = 0x02;
const F_SCALING_2_1 = 0x04;
const F_PENDING_BUTTONS = 0x08; // a button change not yet in a packet
const M_RATE = 1;
const M_RESOLUTION = 2;
const M_BUTTONS = 3;
const M_ARG = 4;
const M_LAST = 5;
const M_DX = 8; // i32
const M_DY = 12; // i32
export const MOUSE_STATE_BYTES = 16;

export interface MouseStateV1 {
  mouseRemote: boolean;
  mouseReporting: boolean;
  mouseScaling21: boolean;
  mouseRate: number;
  mouseResolution: number;
  mouseButtons: number;
  mouseArgCmd: number;
  mouseLastSent: number;
  mouseDx: number;
  mouseDy: number;
  mousePendingButtons: boolean;
}

type Command = (m: Ps2Mouse) => void;

/** What M_ARG may hold: nothing, or a command that takes an argument. */
const ARG_STATES = new Set<number>([0, MOUSE_CMD.SET_RESOLUTION, MOUSE_CMD.SET_SAMPLE_RATE]);

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

/** 2:1 scaling of one axis. */
function scale21(v: number): number {
  const a = Math.abs(v);
  const s = a <= 2 ? Math.min(a, 1) : a === 3 ? 3 : a === 4 ? 6 : a === 5 ? 9 : 2 * a;
  return v < 0 ? -s : s;
}

export class Ps2Mouse {
  private readonly counters: DataView;

  constructor(
    private readonly st: Uint8Array,
    private readonly link: Ps2Link,
  ) {
    if (st.byteLength < MOUSE_STATE_BYTES) throw new RangeError('mouse state too small');
    this.counters = new DataView(st.buffer, st.byteOffset, MOUSE_STATE_BYTES);
  }

  private static readonly COMMANDS = new Map<number, Command>([
    [MOUSE_CMD.SCALING_1_1, (m) => m.setFlag(F_SCALING_2_1, false)],
    [MOUSE_CMD.SCALING_2_1, (m) => m.setFlag(F_SCALING_2_1, true)],
    [MOUSE_CMD.SET_RESOLUTION, (m) => m.ackThenArg(MOUSE_CMD.SET_RESOLUTION)],
    [MOUSE_CMD.STATUS_REQUEST, (m) => m.reply(MOUSE_REPLY.ACK, ...m.status())],
    [MOUSE_CMD.SET_STREAM_MODE, (m) => m.setMode(false)],
    [MOUSE_CMD.READ_DATA, (m) => m.reply(MOUSE_REPLY.ACK, ...m.readData())],
    [MOUSE_CMD.SET_REMOTE_MODE, (m) => m.setMode(true)],
    [MOUSE_CMD.GET_DEVICE_ID, (m) => m.reply(MOUSE_REPLY.ACK, MOUSE_REPLY.DEVICE_ID)],
    [MOUSE_CMD.SET_SAMPLE_RATE, (m) => m.ackThenArg(MOUSE_CMD.SET_SAMPLE_RATE)],
    [MOUSE_CMD.ENABLE_REPORTING, (m) => m.setReporting(true)],
    [MOUSE_CMD.DISABLE_REPORTING, (m) => m.setReporting(false)],
    [
      MOUSE_CMD.SET_DEFAULTS,
      (m) => {
        m.link.flush();
        m.defaults();
        m.reply(MOUSE_REPLY.ACK);
      },
    ],
    [MOUSE_CMD.RESEND, (m) => m.reply(m.st[M_LAST] as number)],
    [
      MOUSE_CMD.RESET,
      (m) => {
        m.link.flush();
        m.powerOn();
        m.reply(MOUSE_REPLY.ACK, MOUSE_REPLY.BAT_OK, MOUSE_REPLY.DEVICE_ID);
      },
    ],
  ]);

  powerOn(): void {
    this.st.fill(0, 0, MOUSE_STATE_BYTES);
    this.defaults();
  }

  /** Stream mode, reporting off, 100 samples/s, 4 counts/mm, 1:1; counters cleared. */
  private defaults(): void {
    this.st[M_FLAGS] = 0;
    this.st[M_RATE] = DEFAULT_SAMPLE_RATE;
    this.st[M_RESOLUTION] = DEFAULT_RESOLUTION;
    this.st[M_ARG] = 0;
    this.clearCounters();
  }

  get remote(): boolean {
    return ((this.st[M_FLAGS] as number) & F_REMOTE) !== 0;
  }

  get reporting(): boolean {
    return ((this.st[M_FLAGS] as number) & F_REPORTING) !== 0;
  }

  get sampleRate(): number {
    return this.st[M_RATE] as number;
  }

  get resolution(): number {
    return this.st[M_RESOLUTION] as number;
  }

  get buttons(): number {
    return this.st[M_BUTTONS] as number;
  }

  private get dx(): number {
    return this.counters.getInt32(M_DX, true);
  }

  private get dy(): number {
    return this.counters.getInt32(M_DY, true);
  }

  private setCounters(dx: number, dy: number): void {
    this.counters.setInt32(M_DX, clamp(dx, -COUNTER_LIMIT, COUNTER_LIMIT), true);
    this.counters.setInt32(M_DY, clamp(dy, -COUNTER_LIMIT, COUNTER_LIMIT), true);
  }

  private clearCounters(): void {
    this.setCounters(0, 0);
    this.pendingButtons = false;
  }

  /** A byte from the host (command 0xD4 of the controller). */
  receive(b: number): void {
    const arg = this.st[M_ARG] as number;
    if (arg !== 0) {
      // Sample rates reach 200, so any byte is the argument.
      this.st[M_ARG] = 0;
      this.argument(arg, b);
      return;
    }
    const cmd = Ps2Mouse.COMMANDS.get(b);
    if (cmd) cmd(this);
    else this.reply(MOUSE_REPLY.RESEND);
  }

  private argument(cmd: number, v: number): void {
    if (cmd === MOUSE_CMD.SET_SAMPLE_RATE && SAMPLE_RATES.includes(v)) {
      this.st[M_RATE] = v;
      this.reply(MOUSE_REPLY.ACK);
    } else if (cmd === MOUSE_CMD.SET_RESOLUTION && v <= 3) {
      this.st[M_RESOLUTION] = v;
      this.clearCounters();
      this.reply(MOUSE_REPLY.ACK);
    } else {
      this.reply(MOUSE_REPLY.RESEND);
    }
  }

  private ackThenArg(cmd: number): void {
    this.reply(MOUSE_REPLY.ACK);
    this.st[M_ARG] = cmd;
  }

  private setFlag(flag: number, on: boolean): void {
    const f = this.st[M_FLAGS] as number;
    this.st[M_FLAGS] = on ? f | flag : f & ~flag;
    this.reply(MOUSE_REPLY.ACK);
  }

  private setMode(remote: boolean): void {
    this.clearCounters();
    this.setFlag(F_REMOTE, remote);
  }

  private setReporting(on: boolean): void {
    if (!on) this.link.flush();
    this.clearCounters();
    this.setFlag(F_REPORTING, on);
  }

  private reply(...bytes: number[]): void {
    if (this.link.send(bytes)) this.st[M_LAST] = bytes[bytes.length - 1] as number;
  }

  private status(): number[] {
    const f = this.st[M_FLAGS] as number;
    const b = this.buttons;
    let s = 0;
    if (f & F_REMOTE) s |= STATUS_REMOTE;
    if (f & F_REPORTING) s |= STATUS_ENABLED;
    if (f & F_SCALING_2_1) s |= STATUS_SCALING_2_1;
    if (b & MOUSE_BUTTON.LEFT) s |= STATUS_LEFT;
    if (b & MOUSE_BUTTON.MIDDLE) s |= STATUS_MIDDLE;
    if (b & MOUSE_BUTTON.RIGHT) s |= STATUS_RIGHT;
    return [s, this.resolution, this.sampleRate];
  }

  private static packet(buttons: number, x: number, y: number, ovx: boolean, ovy: boolean): number[] {
    let b0 = (buttons & 0x07) | PACKET_ALWAYS_1;
    if (x < 0) b0 |= PACKET_X_SIGN;
    if (y < 0) b0 |= PACKET_Y_SIGN;
    if (ovx) b0 |= PACKET_X_OVERFLOW;
    if (ovy) b0 |= PACKET_Y_OVERFLOW;
    return [b0, x & 0xff, y & 0xff];
  }

  /** Remote-mode read: the whole count (overflow flagged if it does not fit), then zero. */
  private readData(): number[] {
    const x = clamp(this.dx, -256, 255);
    const y = clamp(this.dy, -256, 255);
    const p = Ps2Mouse.packet(this.buttons, x, y, x !== this.dx, y !== this.dy);
    this.clearCounters();
    return p;
  }

  /**
   * The host moved the mouse (`dy` positive = up, PS/2's sense) and/or
   * changed buttons. In stream mode with reporting off only the buttons
   * are tracked; in remote mode the counters wait for a read.
   */
  move(dx: number, dy: number, buttons: number): void {
    const ix = Number.isFinite(dx) ? Math.trunc(dx) : 0;
    const iy = Number.isFinite(dy) ? Math.trunc(dy) : 0;
    const btn = buttons & 0x07;
    if (!this.remote && !this.reporting) {
      this.st[M_BUTTONS] = btn;
      return;
    }
    if (!this.remote && btn !== this.buttons) {
      // Report the movement counted so far with the old buttons (while
      // there is room), so that quick clicks stay apart; the change itself
      // is reported even without movement.
      this.pump();
      this.pendingButtons = true;
    }
    this.st[M_BUTTONS] = btn;
    this.setCounters(this.dx + ix, this.dy + iy);
    this.pump();
  }

  /** A button change that has not made it into a packet yet (cleared by the next packet). */
  private get pendingButtons(): boolean {
    return ((this.st[M_FLAGS] as number) & F_PENDING_BUTTONS) !== 0;
  }

  private set pendingButtons(on: boolean) {
    const f = this.st[M_FLAGS] as number;
    this.st[M_FLAGS] = on ? f | F_PENDING_BUTTONS : f & ~F_PENDING_BUTTONS;
  }

  /** A stream packet carrying (x, y) of the counters, 2:1 scaled if set. */
  private streamPacket(x: number, y: number): number[] {
    let ox = x;
    let oy = y;
    if ((this.st[M_FLAGS] as number) & F_SCALING_2_1) {
      ox = scale21(x);
      oy = scale21(y);
    }
    const ovx = ox > 255 || ox < -256;
    const ovy = oy > 255 || oy < -256;
    return Ps2Mouse.packet(this.buttons, clamp(ox, -256, 255), clamp(oy, -256, 255), ovx, ovy);
  }

  /** Stream mode: turn counted movement into packets while the buffer has room. */
  pump(): void {
    if (this.remote || !this.reporting) return;
    while (this.dx !== 0 || this.dy !== 0 || this.pendingButtons) {
      const x = clamp(this.dx, -255, 255);
      const y = clamp(this.dy, -255, 255);
      if (!this.link.send(this.streamPacket(x, y), MOUSE_BUFFER)) return;
      this.setCounters(this.dx - x, this.dy - y);
      this.pendingButtons = false;
    }
  }

  exportState(): MouseStateV1 {
    const f = this.st[M_FLAGS] as number;
    return {
      mouseRemote: (f & F_REMOTE) !== 0,
      mouseReporting: (f & F_REPORTING) !== 0,
      mouseScaling21: (f & F_SCALING_2_1) !== 0,
      mouseRate: this.sampleRate,
      mouseResolution: this.resolution,
      mouseButtons: this.buttons,
      mouseArgCmd: this.st[M_ARG] as number,
      mouseLastSent: this.st[M_LAST] as number,
      mouseDx: this.dx,
      mouseDy: this.dy,
      mousePendingButtons: this.pendingButtons,
    };
  }

  static validate(v: MouseStateV1): string | undefined {
    if (!SAMPLE_RATES.includes(v.mouseRate)) return `mouse sample rate ${v.mouseRate} is not one a mouse accepts`;
    if (v.mouseResolution > 3) return 'mouse resolution beyond 3';
    if (v.mouseButtons > 7) return 'mouse buttons beyond bits 0-2';
    if (!ARG_STATES.has(v.mouseArgCmd)) {
      return `mouse cannot be waiting for an argument of 0x${v.mouseArgCmd.toString(16)}`;
    }
    for (const c of [v.mouseDx, v.mouseDy]) {
      if (!Number.isInteger(c) || Math.abs(c) > COUNTER_LIMIT) return 'mouse movement counter out of range';
    }
    return undefined;
  }

  importState(v: MouseStateV1): void {
    this.st.fill(0, 0, MOUSE_STATE_BYTES);
    this.st[M_FLAGS] =
      (v.mouseRemote ? F_REMOTE : 0) |
      (v.mouseReporting ? F_REPORTING : 0) |
      (v.mouseScaling21 ? F_SCALING_2_1 : 0) |
      (v.mousePendingButtons ? F_PENDING_BUTTONS : 0);
    this.st[M_RATE] = v.mouseRate;
    this.st[M_RESOLUTION] = v.mouseResolution;
    this.st[M_BUTTONS] = v.mouseButtons;
    this.st[M_ARG] = v.mouseArgCmd;
    this.st[M_LAST] = v.mouseLastSent;
    this.setCounters(v.mouseDx, v.mouseDy);
  }
}
