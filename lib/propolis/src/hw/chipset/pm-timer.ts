// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The ACPI power-management timer: a free-running counter at 3.579545 MHz,
// 24 bits wide (or 32 with the FADT's TMR_VAL_EXT), read through a 32-bit
// register whose upper bits read 0 in 24-bit mode. TMR_STS is set each
// time the counter's top bit changes.
//
// The count is a function of the host's monotonic clock (CLOCK_MONOTONIC
// through process.hrtime, which every thread of the process shares) plus an
// offset in shared memory, so all vCPU threads read one timeline and a read
// costs no exit to another thread. Nothing ticks: TMR_STS is derived on
// demand by comparing the top-bit "epoch" of the count with the one last
// acknowledged. Migration carries the count itself; import re-bases the
// offset on the destination's clock.
//
// Threading: the offset and acknowledged epoch are BigInt64 words in shared
// memory, read and written atomically; the owner serialises writers.

export const PM_TIMER_HZ = 3_579_545n;
const NS_PER_S = 1_000_000_000n;

export type PmTimerBits = 24 | 32;

/** Shared words: [0] tick offset, [1] acknowledged epoch. */
export const PM_TIMER_STATE_BYTES = 16;

export type Clock = () => bigint;
export const monotonicNs: Clock = () => process.hrtime.bigint();

export class AcpiPmTimer {
  private readonly words: BigInt64Array;
  private readonly mask: bigint;
  private readonly shift: bigint;

  constructor(
    state: SharedArrayBuffer | ArrayBuffer,
    readonly bits: PmTimerBits = 24,
    private readonly clock: Clock = monotonicNs,
  ) {
    this.words = new BigInt64Array(state, 0, 2);
    this.mask = (1n << BigInt(bits)) - 1n;
    this.shift = BigInt(bits - 1);
  }

  private hostTicks(): bigint {
    return (this.clock() * PM_TIMER_HZ) / NS_PER_S;
  }

  /** Unwrapped ticks (host ticks plus offset); the register shows the low bits. */
  private ticks(): bigint {
    return this.hostTicks() + Atomics.load(this.words, 0);
  }

  /** The PM_TMR register. */
  read(): number {
    return Number(BigInt.asUintN(64, this.ticks()) & this.mask);
  }

  private epoch(): bigint {
    return BigInt.asUintN(64, this.ticks()) >> this.shift;
  }

  /** Continue counting from `count` now (reset: 0; import: the saved count). */
  set(count: number): void {
    Atomics.store(this.words, 0, BigInt(count) - this.hostTicks());
    this.ack();
  }

  /** TMR_STS: the counter's top bit changed since the last acknowledgement. */
  get overflowed(): boolean {
    return this.epoch() !== Atomics.load(this.words, 1);
  }

  /** Clear TMR_STS. */
  ack(): void {
    Atomics.store(this.words, 1, this.epoch());
  }

  /** Set TMR_STS (importing a saved status). */
  markOverflowed(): void {
    Atomics.store(this.words, 1, this.epoch() - 1n);
  }
}
