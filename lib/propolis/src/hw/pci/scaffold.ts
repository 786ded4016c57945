// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A PCI scaffold for tests: configuration mechanism #1 helpers that drive
// ports 0xCF8/0xCFC the way firmware does, and `PciTestDevice`, a function
// built from any PciBuilder chain whose BARs are plain scratch memory.
// Device tests elsewhere (virtio, NVMe) can place their device beside it.
//
// `ScaffoldHost` is a DeviceHost whose IRQ lines are the machine's real
// wired-OR lines, so INTx sharing can be tested across several "threads".
//
// Threading: PciTestDevice follows the device pattern (shared state, one
// instance per thread); the helpers are pure over a PioBus.

import type { DeviceDescriptor, DeviceHost, GuestEvents, IrqLine, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import type { Migrate, Payload, PayloadOffers } from '../../migrate.js';
import { MmioBus, PioBus, type AccessSize } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { SharedIrqLines, type IrqSourceAlloc } from '../../vmm/irq-lines.js';
import { GuestMemory } from '../../vmm/memory.js';
import type { PciBuilder } from './builder.js';
import { PciFunction, type PciBarHandler, type PciFunctionShared } from './function.js';
import type { PciPath } from './path.js';

/** CONFIG_ADDRESS for a configuration cycle. */
export function cfgAddress(bus: number, dev: number, fn: number, off: number): number {
  return (0x8000_0000 | (bus << 16) | (dev << 11) | (fn << 8) | (off & 0xfc)) >>> 0;
}

/** A configuration read through ports 0xCF8/0xCFC, as firmware does it. */
export function cfg1Read(pio: PioBus, bus: number, dev: number, fn: number, off: number, size: 1 | 2 | 4): number {
  pio.write(0xcf8, 4, cfgAddress(bus, dev, fn, off));
  return pio.read(0xcfc + (off & 3), size);
}

export function cfg1Write(
  pio: PioBus,
  bus: number,
  dev: number,
  fn: number,
  off: number,
  size: 1 | 2 | 4,
  value: number,
): void {
  pio.write(0xcf8, 4, cfgAddress(bus, dev, fn, off));
  pio.write(0xcfc + (off & 3), size, value);
}

/** Size a BAR the way firmware does: save, write all-ones, read, restore. Returns the read-back value. */
export function cfg1SizeBar(pio: PioBus, bus: number, dev: number, fn: number, bar: number): number {
  const off = 0x10 + 4 * bar;
  const old = cfg1Read(pio, bus, dev, fn, off, 4);
  cfg1Write(pio, bus, dev, fn, off, 4, 0xffff_ffff);
  const v = cfg1Read(pio, bus, dev, fn, off, 4);
  cfg1Write(pio, bus, dev, fn, off, 4, old);
  return v;
}

interface TestDevShared {
  pci: PciFunctionShared;
  lock: SharedArrayBuffer;
  /** Scratch memory per BAR index (at most 4 KiB; offsets wrap). */
  mem: (SharedArrayBuffer | undefined)[];
}

const SCRATCH_MAX = 4096;

export class PciTestDevice implements MachineDevice, PciBarHandler, Lifecycle {
  readonly typeName = 'pci-test-device';
  readonly pci: PciFunction;
  private readonly lock: SharedMutex;
  private readonly mem: (Uint8Array | undefined)[];

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as TestDevShared;
    this.lock = new SharedMutex(new Int32Array(sh.lock));
    this.mem = sh.mem.map((b) => (b ? new Uint8Array(b) : undefined));
    this.pci = PciFunction.attach(sh.pci, host, { name: descriptor.name, bars: this });
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(name: string, path: PciPath, builder: PciBuilder): DeviceDescriptor {
    const spec = builder.finish();
    const mem: (SharedArrayBuffer | undefined)[] = [];
    for (const b of spec.bars) mem[b.index] = new SharedArrayBuffer(Math.min(b.size, SCRATCH_MAX));
    const shared: TestDevShared = { pci: PciFunction.share(spec, path), lock: new SharedArrayBuffer(4), mem };
    return { module: import.meta.url, export: 'PciTestDevice', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): PciTestDevice {
    return new PciTestDevice(desc, host);
  }

  barRead(bar: number, off: number, size: AccessSize): number | bigint {
    const m = this.mem[bar];
    if (!m) return size === 8 ? 0xffff_ffff_ffff_ffffn : 0xffff_ffff;
    return this.lock.with(() => {
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(m[(off + i) % m.length] as number);
      return size === 8 ? v : Number(v);
    });
  }

  barWrite(bar: number, off: number, size: AccessSize, value: number | bigint): void {
    const m = this.mem[bar];
    if (!m) return;
    const v = BigInt(value);
    this.lock.with(() => {
      for (let i = 0; i < size; i++) m[(off + i) % m.length] = Number((v >> BigInt(8 * i)) & 0xffn);
    });
  }

  reset(): void {
    this.pci.reset();
    this.lock.with(() => this.mem.forEach((m) => m?.fill(0)));
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] => [this.pci.exportState()],
      import: (offers: PayloadOffers): void => {
        const s = this.pci.takeState(offers);
        offers.finish();
        this.pci.applyState(s);
      },
    };
  }
}

/**
 * A DeviceHost for multi-thread tests: like testing/fake-host.ts, but its
 * IRQ lines are the machine's real wired-OR lines (vmm/irq-lines.ts) over
 * a buffer that several hosts — "threads" — share. Make the main host
 * first and attach every device to it, then make the others with
 * `main.sibling()` and attach the same devices in the same order, as the
 * Machine does with its vCPU workers.
 */
export class ScaffoldHost implements DeviceHost {
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly mem: GuestMemory;
  readonly irqs: SharedIrqLines;
  readonly msis: { address: bigint; data: number }[] = [];
  readonly halts: string[] = [];
  readonly resets: string[] = [];
  readonly events: GuestEvents = {
    halt: (reason) => void this.halts.push(reason),
    reset: (reason) => void this.resets.push(reason),
  };
  private readonly singletons = new Map<string, unknown>();

  constructor(
    readonly thread: 'main' | 'vcpu' = 'main',
    readonly vcpuId: number | undefined = undefined,
    irqBuffer: SharedArrayBuffer = SharedIrqLines.createBuffer(),
    allocs: IrqSourceAlloc[] = [],
  ) {
    this.mem = GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(1 << 16) }]);
    this.irqs = new SharedIrqLines(irqBuffer, () => {}, allocs, thread === 'main');
  }

  /** Another thread's host over the same IRQ lines (call after the main host attached everything). */
  sibling(vcpuId: number): ScaffoldHost {
    return new ScaffoldHost('vcpu', vcpuId, this.irqs.sab, this.irqs.allocations);
  }

  irqLine(gsi: number, owner: string): IrqLine {
    return this.irqs.source(gsi, owner);
  }

  /** The wired-OR level of a platform line. */
  level(gsi: number): boolean {
    return this.irqs.level(gsi);
  }

  msi(address: bigint, data: number): void {
    this.msis.push({ address, data });
  }

  singleton<T>(key: string, create: () => T): T {
    if (!this.singletons.has(key)) this.singletons.set(key, create());
    return this.singletons.get(key) as T;
  }
}
