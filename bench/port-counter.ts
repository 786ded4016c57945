// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A benchmark-only pseudo-device that claims no port: on each vCPU thread it
// interposes on that thread's port-I/O bus and counts, per port, the reads
// and writes the guest made and the time the owning device's handler took.
// The SeaBIOS section of `npm run bench` (bench/seabios-probe.ts) uses it to
// say where a firmware boot's exits went (fw_cfg, PCI config, UART, ...).
//
// How: `PioBus.read`/`write` are methods the vCPU worker calls on its own
// bus object, so replacing them on that one object (not on the prototype)
// wraps every access of that thread and nothing else. This relies on the
// worker calling through the bus object it gave the devices; if the exit
// loop ever caches the methods, the counts read zero; the benchmark prints
// the total next to the vCPU's io exit count, and flags a zero.
//
// The counts are of accesses: a `rep ins`/`rep outs` exit of N elements
// counts N times. Handler time is `performance.now()` around the call, so
// it excludes the KVM_RUN round trip itself (~10 µs here, PLATFORM.md).
//
// Threading: the vCPU threads' instances write the shared counters (one
// vCPU in the probe, so plain stores suffice; with several vCPUs two
// threads could lose an increment of the same port, which a benchmark can
// live with). The main thread's instance reads them after the vCPUs are
// paused, and names each port's owner from the main thread's own bus,
// which holds the same registrations. Adds a few hundred nanoseconds per
// access; not for production machines.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../lib/propolis/src/device.js';
import type { AccessSize, PioBus } from '../lib/propolis/src/pio.js';

const PORTS = 0x10000;

interface PortCounterShared {
  /** Float64Array[3 * 65536]: reads, writes, handler milliseconds, per port. */
  counts: SharedArrayBuffer;
}

export interface PortCount {
  port: number;
  /** Name the device registered the port under; undefined when nothing claims it. */
  owner: string | undefined;
  reads: number;
  writes: number;
  /** Total time in the device's handler, microseconds. */
  handlerUs: number;
}

export class PortCounter implements MachineDevice {
  readonly typeName = 'bench-port-counter';
  private readonly counts: Float64Array;
  private readonly bus: PioBus;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as PortCounterShared;
    this.counts = new Float64Array(sh.counts);
    this.bus = host.pio;
    if (host.thread === 'vcpu') this.interpose(host.pio);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(): DeviceDescriptor {
    const shared: PortCounterShared = { counts: new SharedArrayBuffer(3 * PORTS * Float64Array.BYTES_PER_ELEMENT) };
    return { module: import.meta.url, export: 'PortCounter', name: 'bench-port-counter', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): PortCounter {
    return new PortCounter(desc, host);
  }

  private interpose(bus: PioBus): void {
    const c = this.counts;
    const read = bus.read.bind(bus);
    const write = bus.write.bind(bus);
    bus.read = (port: number, size: AccessSize): number => {
      const p = port & 0xffff;
      const t = performance.now();
      try {
        return read(port, size);
      } finally {
        c[p]!++;
        c[2 * PORTS + p]! += performance.now() - t;
      }
    };
    bus.write = (port: number, size: AccessSize, value: number): void => {
      const p = port & 0xffff;
      const t = performance.now();
      try {
        write(port, size, value);
      } finally {
        c[PORTS + p]!++;
        c[2 * PORTS + p]! += performance.now() - t;
      }
    };
  }

  /** Every port the guest touched, busiest first. Main thread, vCPUs paused. */
  result(): PortCount[] {
    const c = this.counts;
    const out: PortCount[] = [];
    for (let p = 0; p < PORTS; p++) {
      const reads = c[p]!;
      const writes = c[PORTS + p]!;
      if (reads + writes === 0) continue;
      out.push({ port: p, owner: this.bus.owner(p), reads, writes, handlerUs: c[2 * PORTS + p]! * 1000 });
    }
    return out.sort((a, b) => b.reads + b.writes - (a.reads + a.writes) || a.port - b.port);
  }

  migrate(): 'non-migratable' {
    return 'non-migratable';
  }
}
