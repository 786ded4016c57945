// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The benchmark's device, at port 0x10 for guests/out/pio-bench.rom: a 32-bit
// IN returns the iteration count N, every OUT is one iteration. It counts the
// OUTs and takes the monotonic clock (`process.hrtime.bigint()`, the same
// clock on every thread) at the first and at the N-th, so the time between
// them covers N-1 exit round trips and nothing else.
//
// Threading: the vCPU worker's instance handles the exits; the main
// thread's instance reads the result after the guest halted. Both see the
// counters through SharedArrayBuffers. The OUT handler does two array
// stores and a compare, and reads the clock only twice per run, so it
// allocates nothing in the steady state.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../lib/propolis/src/device.js';
import type { AccessSize, PioHandler } from '../lib/propolis/src/pio.js';

export const PIO_BENCH_PORT = 0x10;
const PORTS = 4;

// Float64Array slots.
const N = 0;
const COUNT = 1;
// BigInt64Array slots.
const FIRST = 0;
const LAST = 1;

interface PioBenchShared {
  port: number;
  /** Float64Array: [N, OUTs counted]. */
  counters: SharedArrayBuffer;
  /** BigInt64Array: [hrtime of the first OUT, hrtime of the N-th OUT]. */
  times: SharedArrayBuffer;
}

export interface PioBenchResult {
  n: number;
  outs: number;
  /** Nanoseconds from the first to the N-th OUT (N-1 round trips). */
  ns: bigint;
}

export class PioBenchDevice implements MachineDevice, PioHandler {
  readonly typeName = 'pio-bench';
  private readonly counters: Float64Array;
  private readonly times: BigInt64Array;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as PioBenchShared;
    this.counters = new Float64Array(sh.counters);
    this.times = new BigInt64Array(sh.times);
    host.pio.register(sh.port, PORTS, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(n: number, port = PIO_BENCH_PORT): DeviceDescriptor {
    if (!Number.isInteger(n) || n < 2 || n > 0xffff_ffff)
      throw new RangeError(`pio-bench: N must be 2..2^32-1, got ${n}`);
    const counters = new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT);
    new Float64Array(counters)[N] = n;
    const shared: PioBenchShared = {
      port,
      counters,
      times: new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT),
    };
    return { module: import.meta.url, export: 'PioBenchDevice', name: 'pio-bench', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): PioBenchDevice {
    return new PioBenchDevice(desc, host);
  }

  pioRead(_port: number, size: AccessSize): number {
    // The guest asks for N once, at the start: begin a fresh count.
    this.counters[COUNT] = 0;
    const n = this.counters[N]!;
    return size >= 4 ? n >>> 0 : n & ((1 << (size * 8)) - 1);
  }

  pioWrite(): void {
    const c = this.counters;
    const count = c[COUNT]! + 1;
    c[COUNT] = count;
    if (count === 1) this.times[FIRST] = process.hrtime.bigint();
    else if (count === c[N]) this.times[LAST] = process.hrtime.bigint();
  }

  /** The run's result; read it on the main thread after the guest halted. */
  result(): PioBenchResult {
    return { n: this.counters[N]!, outs: this.counters[COUNT]!, ns: this.times[LAST]! - this.times[FIRST]! };
  }

  migrate(): 'non-migratable' {
    return 'non-migratable';
  }
}
