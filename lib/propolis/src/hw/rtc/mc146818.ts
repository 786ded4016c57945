// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The MC146818A / DS12887 real-time clock and its 128 bytes of CMOS RAM, as
// a PC sees them through the index port (0x70, bit 7 = NMI mask) and the
// data port (0x71). Registers only: no bus, lock, timer or IRQ line.
//
// The state lives in a caller-supplied byte array (a SharedArrayBuffer in the
// machine, a plain buffer in unit tests). Nothing here runs on its own: the
// clock is a pure function of a monotonic time source shared by every thread
// (`RtcClock.monoNs`, CLOCK_MONOTONIC in Node), so every instance of the
// device computes the same time and the same interrupt flags from the same
// state, whichever thread asks:
//
//   - the guest's "divider time" is `monoNs() + offset` (ns since the Unix
//     epoch, in the guest's idea of UTC); its whole seconds are the calendar,
//     its fraction the phase of the 32.768 kHz divider chain, so periodic
//     interrupts and update cycles line up on second boundaries as on the chip;
//   - the flags of register C (PF, AF, UF) are brought up to date lazily by
//     `advance()`, which looks at the periodic ticks and second boundaries
//     crossed since the last call; the attachment calls it on every access
//     and from a host timer;
//   - while the time registers are held (register B's SET, or the divider
//     chain not running) they are plain CMOS bytes the guest may write one by
//     one; when released they are parsed back into the offset.
//
// Datasheet behaviour kept: BCD or binary (B.DM), 12- or 24-hour (B.24/12,
// PM in bit 7 of the hour), alarm "don't care" values 0xC0–0xFF, UIP high
// from 244 µs before an update until the 1984 µs update cycle ends, SET
// inhibits updates, clears UIP and (going high) UIE, the first update comes
// 500 ms after the divider leaves reset, IRQF = PF·PIE + AF·AIE + UF·UIE,
// reading C clears it, D.VRT always 1. Left out: daylight saving (B.DSE is
// stored, never acted on), the square-wave pin (B.SQWE stored), divider
// time bases other than 32.768 kHz (any DV other than 010 stops the clock).
//
// Threading: none here; callers serialise access (see lpc-rtc.ts).

import { MigrateError, schema, t, type Payload, type PayloadOffers } from '../../migrate.js';

/** Register indexes of the clock; everything else up to 0x7F is RAM. */
export const RTC_REG = {
  SECONDS: 0x00,
  SECONDS_ALARM: 0x01,
  MINUTES: 0x02,
  MINUTES_ALARM: 0x03,
  HOURS: 0x04,
  HOURS_ALARM: 0x05,
  DAY_OF_WEEK: 0x06,
  DATE_OF_MONTH: 0x07,
  MONTH: 0x08,
  YEAR: 0x09,
  A: 0x0a,
  B: 0x0b,
  C: 0x0c,
  D: 0x0d,
  /** Not on the chip: the PC/AT convention (IBM AT BIOS, ACPI FADT.CENTURY). */
  CENTURY: 0x32,
} as const;

export const REG_A = { UIP: 0x80, DV_MASK: 0x70, DV_32768: 0x20, DV_RESET: 0x60, RS_MASK: 0x0f } as const;
export const REG_B = {
  SET: 0x80,
  PIE: 0x40,
  AIE: 0x20,
  UIE: 0x10,
  SQWE: 0x08,
  DM: 0x04, // 1 = binary, 0 = BCD
  H24: 0x02, // 1 = 24-hour, 0 = 12-hour
  DSE: 0x01,
} as const;
export const REG_C = { IRQF: 0x80, PF: 0x40, AF: 0x20, UF: 0x10 } as const;
export const REG_D = { VRT: 0x80 } as const;

/** Bit 7 of the index port masks NMI on a PC. */
export const INDEX_NMI_MASK = 0x80;
export const CMOS_BYTES = 128;

/** Power-on register values (32.768 kHz divider, 1024 Hz rate; 24-hour BCD). */
export const REG_A_DEFAULT = 0x26;
export const REG_B_DEFAULT = REG_B.H24;

/** The time registers, in the order a setter writes them. */
const TIME_REGS = [
  RTC_REG.SECONDS,
  RTC_REG.MINUTES,
  RTC_REG.HOURS,
  RTC_REG.DAY_OF_WEEK,
  RTC_REG.DATE_OF_MONTH,
  RTC_REG.MONTH,
  RTC_REG.YEAR,
  RTC_REG.CENTURY,
] as const;
const IS_TIME_REG = new Uint8Array(CMOS_BYTES);
for (const r of TIME_REGS) IS_TIME_REG[r] = 1;

const NS = 1_000_000_000n;
const DAY_S = 86_400;
/** UIP rises this long before an update cycle… */
const UIP_LEAD_NS = 244_000n;
/** …and stays up while it lasts. */
const UPDATE_CYCLE_NS = 1_984_000n;
/**
 * Guest times accepted on import, in seconds since the epoch: from year 0
 * to beyond anything the registers can be set to (century 255 in binary).
 */
const MIN_GUEST_S = -62_167_219_200n; // 0000-01-01T00:00:00Z
const MAX_GUEST_S = 1_000_000_000_000n; // about year 33 658

/** Time sources, in nanoseconds. `monoNs` must be the same clock on every thread. */
export interface RtcClock {
  monoNs(): bigint;
  utcNs(): bigint;
}

export const HOST_CLOCK: RtcClock = {
  monoNs: () => process.hrtime.bigint(),
  utcNs: () => BigInt(Date.now()) * 1_000_000n,
};

// Layout of the state bytes.
const S_CMOS = 0;
const S_INDEX = 128;
const S_DOW_ADJUST = 129; // added to the computed day of week (mod 7), so a guest's write sticks
const S_OFFSET_S = 136; // i64: whole seconds of the offset
const S_OFFSET_NS = 144; // i64: 0..1e9-1
const S_LAST_MONO = 152; // i64: monotonic time `advance` last looked at
export const RTC_STATE_BYTES = 160;

/** A signed 64-bit-or-wider integer as a decimal string (the schema's u64 is unsigned). */
const bigintCodec = {
  decode(v: unknown, path: string): bigint {
    if (typeof v !== 'string' || !/^-?[0-9]{1,24}$/.test(v)) {
      throw new MigrateError('DeserializationFailed', `${path}: expected a signed integer as a decimal string`);
    }
    return BigInt(v);
  },
  encode: (v: bigint): unknown => v.toString(),
};

export const RtcMc146818V1 = schema('rtc-mc146818', 1, {
  /**
   * All 128 CMOS bytes. While the clock runs, the time registers hold the
   * time as of export (informational); while held (SET or divider stopped)
   * they are the held values. A has no UIP, C only PF/AF/UF.
   */
  cmos: t.bytes(CMOS_BYTES),
  /** The index port, with the NMI mask bit. */
  index: t.u8,
  /** Guest divider time minus host UTC at export, in ns: the clock keeps following wall time. */
  guestMinusUtcNs: bigintCodec,
  dayOfWeekAdjust: t.u8,
});

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function mod(a: bigint, b: bigint): bigint {
  const r = a % b;
  return r < 0n ? r + b : r;
}

/** Periodic interrupt rate in Hz selected by A.RS with a 32.768 kHz time base (0 = none). */
export function periodicRateHz(rs: number): number {
  const sel = rs & 0x0f;
  if (sel === 0) return 0;
  // RS 1 and 2 repeat the taps of 8 and 9 (256 and 128 Hz); from 3 up each
  // step halves the rate from 8192 Hz.
  const tap = sel <= 2 ? sel + 7 : sel;
  return 65536 >> tap;
}

interface Calendar {
  sec: number;
  min: number;
  hour: number;
  /** 0 = Sunday. */
  weekday: number;
  date: number;
  month: number;
  year: number;
}

function calendarOf(epochSec: number): Calendar {
  const d = new Date(epochSec * 1000);
  return {
    sec: d.getUTCSeconds(),
    min: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    weekday: d.getUTCDay(),
    date: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: d.getUTCFullYear(),
  };
}

export class Mc146818 {
  readonly state: Uint8Array;
  private readonly view: DataView;
  /** Set when a write changed what the host timer must wait for; the attachment takes it. */
  private scheduleDirty = false;

  constructor(
    state?: Uint8Array,
    private readonly clock: RtcClock = HOST_CLOCK,
  ) {
    if (state && state.byteLength < RTC_STATE_BYTES) {
      throw new RangeError(`rtc state needs ${RTC_STATE_BYTES} bytes, got ${state.byteLength}`);
    }
    this.state = state ?? new Uint8Array(RTC_STATE_BYTES);
    this.view = new DataView(this.state.buffer, this.state.byteOffset, RTC_STATE_BYTES);
    if (!state) this.powerOn();
  }

  /**
   * Battery insertion: RAM cleared, default control registers, time = host
   * UTC + `guestMinusUtcNs`. The machine then fills in the RAM layout.
   */
  powerOn(guestMinusUtcNs = 0n): void {
    this.state.fill(0);
    const st = this.state;
    st[S_CMOS + RTC_REG.A] = REG_A_DEFAULT;
    st[S_CMOS + RTC_REG.B] = REG_B_DEFAULT;
    st[S_CMOS + RTC_REG.D] = REG_D.VRT;
    const now = this.clock.monoNs();
    this.setOffset(this.clock.utcNs() + guestMinusUtcNs - now);
    this.view.setBigInt64(S_LAST_MONO, now, true);
    this.capture(now);
  }

  /**
   * The chip's RESET pin (a machine reset): interrupt enables and flags
   * clear; time, format, divider and RAM are kept (they are battery-backed).
   */
  resetPin(): void {
    this.advance();
    const b = this.cmos(RTC_REG.B) & ~(REG_B.PIE | REG_B.AIE | REG_B.UIE | REG_B.SQWE);
    this.state[S_CMOS + RTC_REG.B] = b;
    this.state[S_CMOS + RTC_REG.C] = 0;
    this.scheduleDirty = true;
  }

  // ---- the PC's port interface ----

  writeIndex(v: number): void {
    this.state[S_INDEX] = v & 0xff;
  }

  get index(): number {
    return this.s(S_INDEX) & 0x7f;
  }

  get nmiMasked(): boolean {
    return (this.s(S_INDEX) & INDEX_NMI_MASK) !== 0;
  }

  readData(): number {
    return this.regRead(this.index);
  }

  writeData(v: number): void {
    this.regWrite(this.index, v);
  }

  // ---- registers ----

  regRead(reg: number): number {
    const r = reg & 0x7f;
    const now = this.clock.monoNs();
    this.advanceTo(now);
    if (IS_TIME_REG[r] && !this.held) this.capture(now);
    switch (r) {
      case RTC_REG.A:
        return this.cmos(RTC_REG.A) | (this.uip(now) ? REG_A.UIP : 0);
      case RTC_REG.C: {
        const v = this.cmos(RTC_REG.C) | (this.irqf ? REG_C.IRQF : 0);
        this.state[S_CMOS + RTC_REG.C] = 0;
        if (v & REG_C.IRQF) this.scheduleDirty = true;
        return v;
      }
      case RTC_REG.D:
        return REG_D.VRT;
      default:
        return this.cmos(r);
    }
  }

  regWrite(reg: number, value: number): void {
    const r = reg & 0x7f;
    const v = value & 0xff;
    const now = this.clock.monoNs();
    // Flags up to this instant belong to the old settings.
    this.advanceTo(now);
    switch (r) {
      case RTC_REG.A:
        this.writeA(v, now);
        break;
      case RTC_REG.B:
        this.writeB(v, now);
        break;
      case RTC_REG.C:
      case RTC_REG.D:
        return; // read-only
      default:
        if (!IS_TIME_REG[r]) {
          this.state[S_CMOS + r] = v;
          return;
        }
        if (this.held) {
          this.state[S_CMOS + r] = v;
          return;
        }
        // A running clock takes the new value and keeps counting from it;
        // the divider chain (the fraction of the second) is undisturbed.
        this.capture(now);
        this.state[S_CMOS + r] = v;
        this.release(now, this.fraction(now));
    }
    this.scheduleDirty = true;
  }

  private writeA(v: number, now: bigint): void {
    const wasRunning = this.dividerRunning;
    const wasHeld = this.held;
    this.state[S_CMOS + RTC_REG.A] = v & ~REG_A.UIP;
    if (!wasHeld && this.held) {
      this.capture(now);
    } else if (!wasRunning && this.dividerRunning) {
      // Out of divider reset: the first update cycle is half a second away.
      // If SET still holds the registers, this only fixes the phase.
      this.release(now, NS / 2n);
    }
  }

  private writeB(v: number, now: bigint): void {
    const old = this.cmos(RTC_REG.B);
    let nb = v;
    // SET going high inhibits updates, ends UIP and clears UIE.
    if (nb & REG_B.SET && !(old & REG_B.SET)) nb &= ~REG_B.UIE;
    const wasHeld = this.held;
    // Hold with the new format: a setter writes B (SET plus its format)
    // first and then the time in that format.
    this.state[S_CMOS + RTC_REG.B] = nb;
    if (!wasHeld && this.held) this.capture(now);
    else if (wasHeld && !this.held) this.release(now, this.fraction(now));
  }

  // ---- time ----

  get dividerRunning(): boolean {
    return (this.cmos(RTC_REG.A) & REG_A.DV_MASK) === REG_A.DV_32768;
  }

  /** The time registers are plain bytes (no updates): SET, or the divider stopped. */
  get held(): boolean {
    return (this.cmos(RTC_REG.B) & REG_B.SET) !== 0 || !this.dividerRunning;
  }

  /** IRQF: the state of the IRQ output. */
  get irqf(): boolean {
    const b = this.cmos(RTC_REG.B);
    const c = this.cmos(RTC_REG.C);
    return (
      ((c & REG_C.PF && b & REG_B.PIE) || (c & REG_C.AF && b & REG_B.AIE) || (c & REG_C.UF && b & REG_B.UIE)) !== 0
    );
  }

  /** The guest's divider time now, in ns since the epoch (its seconds are the clock when not held). */
  guestNowNs(): bigint {
    return this.clock.monoNs() + this.offset();
  }

  /** The calendar time the registers show (held values while held), in seconds since the epoch. */
  guestSeconds(): number {
    if (this.held) return this.parse();
    return Number(floorDiv(this.clock.monoNs() + this.offset(), NS));
  }

  /** True once since the last call if a write changed what the host timer waits for. */
  takeScheduleChange(): boolean {
    const d = this.scheduleDirty;
    this.scheduleDirty = false;
    return d;
  }

  private offset(): bigint {
    return this.view.getBigInt64(S_OFFSET_S, true) * NS + this.view.getBigInt64(S_OFFSET_NS, true);
  }

  private setOffset(o: bigint): void {
    const s = floorDiv(o, NS);
    this.view.setBigInt64(S_OFFSET_S, s, true);
    this.view.setBigInt64(S_OFFSET_NS, o - s * NS, true);
  }

  private fraction(now: bigint): bigint {
    return mod(now + this.offset(), NS);
  }

  private uip(now: bigint): boolean {
    if (this.held) return false;
    const f = this.fraction(now);
    return f >= NS - UIP_LEAD_NS || f < UPDATE_CYCLE_NS;
  }

  private get binary(): boolean {
    return (this.cmos(RTC_REG.B) & REG_B.DM) !== 0;
  }

  private get h24(): boolean {
    return (this.cmos(RTC_REG.B) & REG_B.H24) !== 0;
  }

  private enc(v: number): number {
    return this.binary ? v & 0xff : ((Math.floor(v / 10) % 10) << 4) | (v % 10);
  }

  private dec(b: number): number {
    return this.binary ? b : (b >> 4) * 10 + (b & 0x0f);
  }

  private encHour(h: number): number {
    if (this.h24) return this.enc(h);
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.enc(h12) | (h >= 12 ? 0x80 : 0);
  }

  private decHour(b: number): number {
    if (this.h24) return this.dec(b);
    const h = this.dec(b & 0x7f) % 12;
    return b & 0x80 ? h + 12 : h;
  }

  /** Write the current time into the time registers, in the current format. */
  private capture(now: bigint): void {
    const c = calendarOf(Number(floorDiv(now + this.offset(), NS)));
    const st = this.state;
    st[S_CMOS + RTC_REG.SECONDS] = this.enc(c.sec);
    st[S_CMOS + RTC_REG.MINUTES] = this.enc(c.min);
    st[S_CMOS + RTC_REG.HOURS] = this.encHour(c.hour);
    st[S_CMOS + RTC_REG.DAY_OF_WEEK] = this.enc(((c.weekday + this.s(S_DOW_ADJUST)) % 7) + 1);
    st[S_CMOS + RTC_REG.DATE_OF_MONTH] = this.enc(c.date);
    st[S_CMOS + RTC_REG.MONTH] = this.enc(c.month);
    st[S_CMOS + RTC_REG.YEAR] = this.enc(c.year % 100);
    st[S_CMOS + RTC_REG.CENTURY] = this.enc(Math.floor(c.year / 100));
  }

  /**
   * The time registers as seconds since the epoch. Out-of-range fields
   * (month 13, hour 0x25, bad BCD) carry into the next unit rather than
   * fail: a guest gets an odd date, never an exception.
   */
  private parse(): number {
    const year = this.dec(this.cmos(RTC_REG.CENTURY)) * 100 + this.dec(this.cmos(RTC_REG.YEAR));
    const d = new Date(0);
    d.setUTCFullYear(year, this.dec(this.cmos(RTC_REG.MONTH)) - 1, this.dec(this.cmos(RTC_REG.DATE_OF_MONTH)));
    d.setUTCHours(
      this.decHour(this.cmos(RTC_REG.HOURS)),
      this.dec(this.cmos(RTC_REG.MINUTES)),
      this.dec(this.cmos(RTC_REG.SECONDS)),
      0,
    );
    return Math.floor(d.getTime() / 1000);
  }

  /** Time registers → offset, with `frac` ns into the second. */
  private release(now: bigint, frac: bigint): void {
    const sec = this.parse();
    if (!Number.isFinite(sec)) return; // unreachable with byte-sized fields; keep the old time
    const weekday = calendarOf(sec).weekday;
    const want = (this.dec(this.cmos(RTC_REG.DAY_OF_WEEK)) + 6) % 7; // 1 = Sunday
    this.state[S_DOW_ADJUST] = (((want - weekday) % 7) + 7) % 7;
    this.setOffset(BigInt(sec) * NS + frac - now);
  }

  // ---- interrupts ----

  /** Bring PF, AF and UF up to date with the time now. */
  advance(): void {
    this.advanceTo(this.clock.monoNs());
  }

  private advanceTo(now: bigint): void {
    const last = this.view.getBigInt64(S_LAST_MONO, true);
    if (now <= last) return;
    this.view.setBigInt64(S_LAST_MONO, now, true);
    if (!this.dividerRunning) return;
    const off = this.offset();
    const g0 = last + off;
    const g1 = now + off;
    let c = this.cmos(RTC_REG.C);
    const rate = BigInt(periodicRateHz(this.cmos(RTC_REG.A)));
    if (rate !== 0n && floorDiv(g1 * rate, NS) > floorDiv(g0 * rate, NS)) c |= REG_C.PF;
    if (!(this.cmos(RTC_REG.B) & REG_B.SET)) {
      const s0 = floorDiv(g0, NS);
      const s1 = floorDiv(g1, NS);
      if (s1 > s0) {
        c |= REG_C.UF;
        if (this.alarmIn(Number(s0), Number(s1))) c |= REG_C.AF;
      }
    }
    this.state[S_CMOS + RTC_REG.C] = c;
  }

  /** Does an update in seconds (s0, s1] match the alarm? Only time of day counts, so one day is enough. */
  private alarmIn(s0: number, s1: number): boolean {
    const want = [this.cmos(RTC_REG.SECONDS_ALARM), this.cmos(RTC_REG.MINUTES_ALARM), this.cmos(RTC_REG.HOURS_ALARM)];
    const any = want.map((b) => (b & 0xc0) === 0xc0);
    if (any[0] && any[1] && any[2]) return true;
    const n = Math.min(s1 - s0, DAY_S);
    for (let k = 0; k < n; k++) {
      const daySec = ((((s1 - k) % DAY_S) + DAY_S) % DAY_S) | 0;
      if (!any[0] && this.enc(daySec % 60) !== want[0]) continue;
      if (!any[1] && this.enc(Math.floor(daySec / 60) % 60) !== want[1]) continue;
      if (!any[2] && this.encHour(Math.floor(daySec / 3600)) !== want[2]) continue;
      return true;
    }
    return false;
  }

  /**
   * How long from now until an enabled interrupt could next assert IRQ, in
   * ns; undefined if none can (nothing enabled, divider stopped, or IRQ is
   * already asserted and stays so until the guest reads C).
   */
  nextInterruptNs(): bigint | undefined {
    if (!this.dividerRunning || this.irqf) return undefined;
    const b = this.cmos(RTC_REG.B);
    const g = this.clock.monoNs() + this.offset();
    let best: bigint | undefined;
    const rate = BigInt(periodicRateHz(this.cmos(RTC_REG.A)));
    if (b & REG_B.PIE && rate !== 0n) {
      const next = floorDiv(g * rate, NS) + 1n;
      best = floorDiv(next * NS + rate - 1n, rate) - g;
    }
    if (b & (REG_B.UIE | REG_B.AIE) && !(b & REG_B.SET)) {
      const toSecond = NS - mod(g, NS);
      if (best === undefined || toSecond < best) best = toSecond;
    }
    return best;
  }

  // ---- state ----

  private s(i: number): number {
    return this.state[i] as number;
  }

  private cmos(r: number): number {
    return this.state[S_CMOS + r] as number;
  }

  /** Host setup: a RAM byte outside the clock registers. */
  setRam(index: number, value: number): void {
    if (!Number.isInteger(index) || index < 0x0e || index >= CMOS_BYTES || IS_TIME_REG[index]) {
      throw new RangeError(`CMOS index ${index} is not a RAM byte`);
    }
    this.state[S_CMOS + index] = value & 0xff;
  }

  getRam(index: number): number {
    return this.cmos(index & 0x7f);
  }

  export(): Payload[] {
    const now = this.clock.monoNs();
    this.advanceTo(now);
    if (!this.held) this.capture(now);
    const cmos = this.state.slice(S_CMOS, S_CMOS + CMOS_BYTES);
    return [
      RtcMc146818V1.encode({
        cmos,
        index: this.s(S_INDEX),
        guestMinusUtcNs: now + this.offset() - this.clock.utcNs(),
        dayOfWeekAdjust: this.s(S_DOW_ADJUST),
      }),
    ];
  }

  /** Replace the state with an exported one; validated before anything changes. */
  import(offers: PayloadOffers): void {
    const v = offers.take(RtcMc146818V1);
    offers.finish();
    const bad = (what: string): never => {
      throw new MigrateError('ImportFailed', `rtc-mc146818: ${what}`);
    };
    if (v.cmos.length !== CMOS_BYTES) bad(`expected ${CMOS_BYTES} CMOS bytes, got ${v.cmos.length}`);
    const a = v.cmos[RTC_REG.A] as number;
    const c = v.cmos[RTC_REG.C] as number;
    if (a & REG_A.UIP) bad('register A carries UIP, which is computed');
    if (c & ~(REG_C.PF | REG_C.AF | REG_C.UF)) bad('register C has bits other than PF, AF, UF');
    if (v.cmos[RTC_REG.D] !== REG_D.VRT) bad('register D must be VRT (0x80)');
    if (v.dayOfWeekAdjust > 6) bad('day-of-week adjustment must be 0..6');
    const guestS = floorDiv(this.clock.utcNs() + v.guestMinusUtcNs, NS);
    if (guestS < MIN_GUEST_S || guestS > MAX_GUEST_S) bad('guest time out of range');
    const now = this.clock.monoNs();
    this.state.fill(0);
    this.state.set(v.cmos, S_CMOS);
    this.state[S_INDEX] = v.index;
    this.state[S_DOW_ADJUST] = v.dayOfWeekAdjust;
    this.setOffset(this.clock.utcNs() + v.guestMinusUtcNs - now);
    this.view.setBigInt64(S_LAST_MONO, now, true);
    this.scheduleDirty = true;
  }
}
