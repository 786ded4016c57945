// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PC's RTC/CMOS on the LPC bus: ports 0x70 (index, NMI mask) and 0x71
// (data), IRQ 8, and a host-side timer. KVM has no in-kernel RTC, so this is
// the whole device.
//
// Threading: one instance per vCPU thread plus one on the main thread, all
// over the same shared state (see device.ts); every access takes the device
// mutex. Time and interrupt flags are computed from a monotonic clock that
// every thread shares (mc146818.ts), so a vCPU reading the clock needs no
// other thread. A vCPU cannot run timers, though: the main thread's instance
// runs one (between `start`/`resume` and `pause`/`halt`) that wakes when an
// enabled interrupt is due and raises IRQ 8. Guest writes that change what
// it waits for (registers A, B, the time, or a read of C that lowered IRQ 8)
// bump a generation word and `Atomics.notify` it; the timer sleeps in
// `Atomics.waitAsync` on that word with the due time as its timeout. Any
// thread that finds IRQF set on an access drives the line itself.
//
// Periodic interrupts: the timer waits at least 1 ms, so IRQ 8 is delivered
// at most ~1 kHz; faster rates (2048–8192 Hz) and timer lateness coalesce
// into one interrupt, as PF itself does when the guest is slow to read C.
// A guest that counts periodic interrupts to keep time (SeaBIOS's INT 15h
// AH=86h wait uses 1024 Hz) sees time pass somewhat slower than it is.

import type { DeviceDescriptor, DeviceHost, IrqLine, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { lockedMigrate, type Migrate } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { HOST_CLOCK, Mc146818, RTC_STATE_BYTES, type RtcClock } from './mc146818.js';
import { CMOS, CmosConfigError, cmosChecksum, pcCmosBytes, type PcCmosConfig } from './pc-cmos.js';

export const RTC_PORT = 0x70;
export const RTC_PORTS = 2;
export const RTC_IRQ = 8;

/** The timer never sleeps less than this: periodic interrupts are delivered at ≤ 1 kHz. */
export const RTC_MIN_TIMER_MS = 1;

export interface RtcOptions extends PcCmosConfig {
  /** Guest time minus host UTC at power-on, in seconds (e.g. a local-time offset); default 0. */
  utcOffsetSeconds?: number;
}

interface RtcShared {
  state: SharedArrayBuffer;
  /** [0] mutex, [1] IRQ 8 level as last driven, [2] timer generation. */
  ctl: SharedArrayBuffer;
}

const CTL_LOCK = 0;
const CTL_LEVEL = 1;
const CTL_GEN = 2;

export class LpcRtc implements MachineDevice, PioHandler, Lifecycle {
  readonly typeName = 'lpc-rtc';
  private readonly model: Mc146818;
  private readonly lock: SharedMutex;
  private readonly ctl: Int32Array;
  private readonly irq: IrqLine;
  private readonly isMain: boolean;
  /** Identifies the running timer loop; a stale loop sees a different id and ends. */
  private timerId = 0;
  private timerRunning = false;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
    clock: RtcClock,
  ) {
    const sh = descriptor.shared as RtcShared;
    this.model = new Mc146818(new Uint8Array(sh.state), clock);
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.irq = host.irqLine(RTC_IRQ, descriptor.name);
    this.isMain = host.thread === 'main';
    host.pio.register(RTC_PORT, RTC_PORTS, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /**
   * Describe the RTC of a machine with this memory and vCPU count (allocates
   * its shared state, sets the clock from host UTC and fills the CMOS RAM).
   */
  static describe(opts: RtcOptions, name = 'rtc'): DeviceDescriptor {
    const bytes = pcCmosBytes(opts);
    const offsetS = opts.utcOffsetSeconds ?? 0;
    if (!Number.isSafeInteger(offsetS) || Math.abs(offsetS) > 100 * 366 * 86400) {
      throw new CmosConfigError(`${name}: utcOffsetSeconds ${offsetS} must be whole seconds within ±100 years`);
    }
    const state = new SharedArrayBuffer(RTC_STATE_BYTES);
    const model = new Mc146818(new Uint8Array(state));
    model.powerOn(BigInt(offsetS) * 1_000_000_000n);
    for (const [i, v] of bytes) model.setRam(i, v);
    const sum = cmosChecksum((i) => model.getRam(i));
    model.setRam(CMOS.CHECKSUM_HI, sum >> 8);
    model.setRam(CMOS.CHECKSUM_LO, sum & 0xff);
    const shared: RtcShared = { state, ctl: new SharedArrayBuffer(12) };
    return { module: import.meta.url, export: 'LpcRtc', name, shared };
  }

  /** `clock` is for tests; every instance of one device must use the same one. */
  static attach(desc: DeviceDescriptor, host: DeviceHost, clock: RtcClock = HOST_CLOCK): LpcRtc {
    return new LpcRtc(desc, host, clock);
  }

  // ---- guest side ----

  pioRead(port: number, size: AccessSize): number {
    // Wider accesses are split into byte cycles, as the LPC bus does: a word
    // read at 0x70 reads the index port, then the data port.
    this.lock.lock();
    try {
      let v = 0;
      for (let i = 0; i < size; i++) {
        const p = port + i;
        const b = p === RTC_PORT + 1 ? this.model.readData() : 0xff; // the index port is write-only
        v |= b << (8 * i);
      }
      this.sync();
      return v >>> 0;
    } finally {
      this.lock.unlock();
    }
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    this.lock.lock();
    try {
      for (let i = 0; i < size; i++) {
        const p = port + i;
        const b = (value >>> (8 * i)) & 0xff;
        if (p === RTC_PORT) this.model.writeIndex(b);
        else if (p === RTC_PORT + 1) this.model.writeData(b);
      }
      this.sync();
    } finally {
      this.lock.unlock();
    }
  }

  /** With the lock held: drive IRQ 8 from IRQF; wake the timer if its wait changed. */
  private sync(): void {
    const level = this.model.irqf ? 1 : 0;
    let wake = this.model.takeScheduleChange();
    if (Atomics.load(this.ctl, CTL_LEVEL) !== level) {
      Atomics.store(this.ctl, CTL_LEVEL, level);
      this.irq.set(level === 1);
      wake = true;
    }
    if (wake) {
      Atomics.add(this.ctl, CTL_GEN, 1);
      Atomics.notify(this.ctl, CTL_GEN);
    }
  }

  // ---- host side (main thread) ----

  /** The time the guest's clock shows, as a Date (whole seconds). */
  guestTime(): Date {
    return new Date(this.lock.with(() => this.model.guestSeconds()) * 1000);
  }

  /** A CMOS byte, for diagnostics and tests. */
  cmosByte(index: number): number {
    return this.lock.with(() => this.model.getRam(index));
  }

  get irqLevel(): boolean {
    return Atomics.load(this.ctl, CTL_LEVEL) !== 0;
  }

  start(): void {
    this.startTimer();
  }

  resume(): void {
    this.startTimer();
  }

  pause(): void {
    this.stopTimer();
  }

  halt(): void {
    this.stopTimer();
  }

  /** Machine reset: the chip's RESET pin; the time and RAM are battery-backed. */
  reset(): void {
    this.lock.with(() => {
      this.model.resetPin();
      this.sync();
    });
  }

  migrate(): Migrate {
    return lockedMigrate(this.lock, this.model, () => this.sync());
  }

  private startTimer(): void {
    if (!this.isMain || this.timerRunning) return;
    this.timerRunning = true;
    const id = ++this.timerId;
    void this.timerLoop(id);
  }

  private stopTimer(): void {
    if (!this.timerRunning) return;
    this.timerRunning = false;
    this.timerId++;
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
  }

  private async timerLoop(id: number): Promise<void> {
    while (id === this.timerId) {
      const gen = Atomics.load(this.ctl, CTL_GEN);
      const next = this.lock.with(() => {
        this.model.advance();
        this.sync();
        return this.model.nextInterruptNs();
      });
      // If sync() bumped the generation itself the wait returns at once and
      // the next round finds nothing new.
      const ms = next === undefined ? undefined : Math.max(RTC_MIN_TIMER_MS, Number(next) / 1e6);
      const w = Atomics.waitAsync(this.ctl, CTL_GEN, gen, ms);
      if (w.async) await w.value;
    }
  }
}
