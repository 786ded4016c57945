// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Test helpers that play the guest's virtio driver: a driver-side split
// virtqueue over guest memory built from plain buffers, drivers for the
// modern and legacy PCI interfaces that go through the PCI topology and
// the BAR router exactly as a guest's accesses would, a host with a
// chosen memory map, and a watch that proves a test's guest memory
// changed only where it was allowed to.
//
// The numbers here are the spec's, written out again on purpose: they do
// not come from bits.ts, so a wrong constant in the device cannot hide
// behind the same constant in its test.
//
// Threading: single-threaded test code. Several VirtioTestHosts over one
// GuestMemory stand for several vCPU threads.

import { FakeHost } from '../../testing/fake-host.js';
import { GuestMemory, Prot } from '../../vmm/memory.js';
import { PciTopology } from '../pci/topology.js';

// ---- guest memory ----

export const RAM_SIZE = 0x10_0000;
export const ROM_BASE = 0x20_0000;
export const ROM_SIZE = 0x1000;

/** RAM at [0, 1 MiB), a hole, and a read-only page at 2 MiB. */
export function testMemory(): { mem: GuestMemory; ram: Uint8Array; rom: Uint8Array } {
  const ram = new Uint8Array(RAM_SIZE);
  const rom = new Uint8Array(ROM_SIZE).fill(0xa5);
  const mem = GuestMemory.fromBuffers([
    { gpa: 0, bytes: ram },
    { gpa: ROM_BASE, bytes: rom, prot: Prot.Read },
  ]);
  return { mem, ram, rom };
}

/** A FakeHost over a given guest memory (share one memory between hosts for "threads"). */
export class VirtioTestHost extends FakeHost {
  override readonly mem: GuestMemory;
  constructor(mem: GuestMemory) {
    super(16);
    this.mem = mem;
  }
}

export const IO_WINDOW: [number, number] = [0xc000, 0x10000];
export const MMIO_WINDOW: [number, number] = [0xe000_0000, 0xf000_0000];

/** Register this host's PCI windows (once per host, after the device attached). */
export function pciWindows(host: FakeHost): PciTopology {
  const topo = PciTopology.of(host);
  topo.registerWindows(host, { io: [IO_WINDOW], mmio: [MMIO_WINDOW] });
  return topo;
}

/** Records which bytes of a buffer changed, to check that nothing outside allowed ranges did. */
export class MemoryWatch {
  private readonly before: Uint8Array;
  constructor(private readonly bytes: Uint8Array) {
    this.before = bytes.slice();
  }

  /** Offsets that changed outside every [start, end) in `allowed`. */
  changedOutside(allowed: [number, number][]): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.bytes.length; i++) {
      if (this.bytes[i] !== this.before[i] && !allowed.some(([s, e]) => i >= s && i < e)) out.push(i);
    }
    return out;
  }

  /** Offsets that changed anywhere. */
  changed(): number[] {
    return this.changedOutside([]);
  }
}

// ---- the driver side of a split virtqueue ----

export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
export const AVAIL_F_NO_INTERRUPT = 1;
export const USED_F_NO_NOTIFY = 1;

export interface Buf {
  addr: number;
  len: number;
  /** Device-writable. */
  write?: boolean;
}

export interface RawDesc {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

function need(ok: boolean, what: string): void {
  if (!ok) throw new Error(`test driver: ${what} failed`);
}

/** A driver's split virtqueue: it lays out and fills the rings the device reads. */
export class FakeDriverQueue {
  private freeDesc = 0;
  private availIdx = 0;
  private seenUsed = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly size: number,
    readonly desc: number,
    readonly avail: number,
    readonly used: number,
  ) {
    this.clear();
  }

  /** Rings packed from `base` with the modern alignments (desc 16, avail 2, used 4). */
  static at(mem: GuestMemory, size: number, base: number): FakeDriverQueue {
    const desc = base;
    const avail = desc + 16 * size;
    const used = Math.ceil((avail + 6 + 2 * size) / 4) * 4;
    return new FakeDriverQueue(mem, size, desc, avail, used);
  }

  /** The legacy layout for a queue whose page frame number is `pfn` (used ring on the next 4 KiB boundary). */
  static legacy(mem: GuestMemory, size: number, pfn: number): FakeDriverQueue {
    const desc = pfn * 4096;
    const avail = desc + 16 * size;
    const used = Math.ceil((avail + 6 + 2 * size) / 4096) * 4096;
    return new FakeDriverQueue(mem, size, desc, avail, used);
  }

  /** Bytes of the used ring including avail_event (to allow in memory watches). */
  get usedRange(): [number, number] {
    return [this.used, this.used + 6 + 8 * this.size];
  }

  clear(): void {
    const zero = (addr: number, n: number): void => need(this.mem.write(addr, new Uint8Array(n)), 'clear ring');
    zero(this.desc, 16 * this.size);
    zero(this.avail, 6 + 2 * this.size);
    zero(this.used, 6 + 8 * this.size);
    this.freeDesc = 0;
    this.availIdx = 0;
    this.seenUsed = 0;
  }

  /** Write descriptor `i` of the main table as given (hostile tests write anything). */
  setDesc(i: number, d: RawDesc): void {
    writeDesc(this.mem, this.desc + 16 * i, d);
  }

  /** Take descriptors from a simple round-robin allocator and chain `bufs` through them; the head index. */
  addChain(bufs: Buf[]): number {
    const idx = bufs.map(() => this.takeDesc());
    bufs.forEach((b, k) => {
      const last = k === bufs.length - 1;
      this.setDesc(idx[k] as number, {
        addr: b.addr,
        len: b.len,
        flags: (b.write ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT),
        next: last ? 0 : (idx[k + 1] as number),
      });
    });
    return idx[0] as number;
  }

  /** One main descriptor pointing at an indirect table at `table` holding `bufs`; the head index. */
  addIndirect(table: number, bufs: Buf[]): number {
    bufs.forEach((b, k) => {
      const last = k === bufs.length - 1;
      writeDesc(this.mem, table + 16 * k, {
        addr: b.addr,
        len: b.len,
        flags: (b.write ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT),
        next: last ? 0 : k + 1,
      });
    });
    const head = this.takeDesc();
    this.setDesc(head, { addr: table, len: 16 * bufs.length, flags: DESC_F_INDIRECT, next: 0 });
    return head;
  }

  private takeDesc(): number {
    const i = this.freeDesc;
    this.freeDesc = (this.freeDesc + 1) % this.size;
    return i;
  }

  /** Make `head` available: ring entry, then the index (what a driver's barrier orders). */
  publish(head: number): void {
    need(this.mem.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head), 'avail ring entry');
    this.availIdx = (this.availIdx + 1) & 0xffff;
    need(this.mem.writeU16(this.avail + 2, this.availIdx), 'avail idx');
  }

  /** Set avail.idx to anything (hostile tests). */
  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    need(this.mem.writeU16(this.avail + 2, this.availIdx), 'avail idx');
  }

  setAvailFlags(f: number): void {
    need(this.mem.writeU16(this.avail, f), 'avail flags');
  }

  /** EVENT_IDX: interrupt me when the used index passes `v`. */
  setUsedEvent(v: number): void {
    need(this.mem.writeU16(this.avail + 4 + 2 * this.size, v), 'used_event');
  }

  get usedIdx(): number {
    return this.mem.readU16(this.used + 2) as number;
  }

  get usedFlags(): number {
    return this.mem.readU16(this.used) as number;
  }

  /** EVENT_IDX: the avail index at which the device wants a notify. */
  get availEvent(): number {
    return this.mem.readU16(this.used + 4 + 8 * this.size) as number;
  }

  /** Used elements the device added since the last call. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const end = this.usedIdx;
    while (this.seenUsed !== end) {
      const e = this.used + 4 + 8 * (this.seenUsed % this.size);
      out.push({ id: this.mem.readU32(e) as number, len: this.mem.readU32(e + 4) as number });
      this.seenUsed = (this.seenUsed + 1) & 0xffff;
    }
    return out;
  }
}

export function writeDesc(mem: GuestMemory, at: number, d: RawDesc): void {
  need(mem.writeU32(at, d.addr % 0x1_0000_0000), 'descriptor');
  need(mem.writeU32(at + 4, Math.floor(d.addr / 0x1_0000_0000)), 'descriptor');
  need(mem.writeU32(at + 8, d.len), 'descriptor');
  need(mem.writeU16(at + 12, d.flags), 'descriptor');
  need(mem.writeU16(at + 14, d.next), 'descriptor');
}

// ---- PCI: configuration cycles and the two virtio interfaces ----

export const STATUS_ACK = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

export const F_INDIRECT_DESC = 1n << 28n;
export const F_EVENT_IDX = 1n << 29n;
export const F_VERSION_1 = 1n << 32n;

/** Where a test places the function's BARs. */
export const BAR0_IO = 0xc000;
export const BAR1_MSIX = 0xe000_0000;
export const BAR2_MODERN = 0xe001_0000;

/** Configuration space of one function, through the topology's configuration cycles. */
export class FakeCfg {
  constructor(
    private readonly topo: PciTopology,
    readonly bus: number,
    readonly dev: number,
    readonly fn: number,
  ) {}

  read(off: number, size: 1 | 2 | 4): number {
    return this.topo.cfgRead(this.bus, this.dev, this.fn, off, size);
  }

  write(off: number, size: 1 | 2 | 4, v: number): void {
    this.topo.cfgWrite(this.bus, this.dev, this.fn, off, size, v);
  }

  /** Capabilities as a driver finds them: [id, offset] along the list. */
  caps(): [number, number][] {
    const out: [number, number][] = [];
    let p = this.read(0x34, 1);
    for (let n = 0; p !== 0 && n < 48; n++) {
      out.push([this.read(p, 1), p]);
      p = this.read(p + 1, 1);
    }
    return out;
  }

  /** Program the BARs this test uses and enable I/O, memory and bus mastering. */
  enable(opts: { io?: boolean; modern?: boolean } = {}): void {
    if (opts.io ?? true) this.write(0x10, 4, BAR0_IO);
    this.write(0x14, 4, BAR1_MSIX);
    if (opts.modern) this.write(0x18, 4, BAR2_MODERN);
    this.write(0x04, 2, 0x0007);
  }

  /** MSI-X: program vector `v` and unmask it. */
  msixVector(host: FakeHost, v: number, addr: number, data: number): void {
    host.mmio.write(BAR1_MSIX + 16 * v, 4, addr);
    host.mmio.write(BAR1_MSIX + 16 * v + 4, 4, 0);
    host.mmio.write(BAR1_MSIX + 16 * v + 8, 4, data);
    host.mmio.write(BAR1_MSIX + 16 * v + 12, 4, 0);
  }

  /** Enable (or disable) MSI-X through its capability. */
  msixEnable(on: boolean): void {
    const cap = this.caps().find(([id]) => id === 0x11);
    if (!cap) throw new Error('test driver: no MSI-X capability');
    this.write(cap[1] + 2, 2, on ? 0x8000 : 0);
  }

  /** The virtio vendor capabilities: cfg_type → {bar, offset, length, extra}. */
  virtioCaps(): Map<number, { bar: number; offset: number; length: number; extra: number; at: number }> {
    const m = new Map<number, { bar: number; offset: number; length: number; extra: number; at: number }>();
    for (const [id, at] of this.caps()) {
      if (id !== 0x09) continue;
      m.set(this.read(at + 3, 1), {
        bar: this.read(at + 4, 1),
        offset: this.read(at + 8, 4),
        length: this.read(at + 12, 4),
        extra: this.read(at + 2, 1) >= 20 ? this.read(at + 16, 4) : 0,
        at,
      });
    }
    return m;
  }
}

/** A virtio 1.x driver using the common configuration in the modern BAR (offsets from its capabilities). */
export class ModernDriver {
  readonly common: number;
  readonly notifyAddr: number;
  readonly isrAddr: number;
  readonly device: number;

  constructor(
    readonly host: FakeHost,
    cfg: FakeCfg,
  ) {
    const caps = cfg.virtioCaps();
    const at = (type: number): number => {
      const c = caps.get(type);
      if (!c || c.bar !== 2) throw new Error(`test driver: virtio capability ${type} missing or not in BAR2`);
      return BAR2_MODERN + c.offset;
    };
    this.common = at(1);
    this.notifyAddr = at(2);
    this.isrAddr = at(3);
    this.device = at(4);
  }

  r(off: number, size: 1 | 2 | 4): number {
    return Number(this.host.mmio.read(this.common + off, size));
  }

  w(off: number, size: 1 | 2 | 4, v: number): void {
    this.host.mmio.write(this.common + off, size, v);
  }

  get status(): number {
    return this.r(0x14, 1);
  }

  set status(v: number) {
    this.w(0x14, 1, v);
  }

  deviceFeatures(): bigint {
    this.w(0x00, 4, 0);
    const lo = this.r(0x04, 4);
    this.w(0x00, 4, 1);
    const hi = this.r(0x04, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  writeDriverFeatures(f: bigint): void {
    this.w(0x08, 4, 0);
    this.w(0x0c, 4, Number(f & 0xffff_ffffn));
    this.w(0x08, 4, 1);
    this.w(0x0c, 4, Number(f >> 32n));
  }

  /** Reset, ACKNOWLEDGE, DRIVER, write `features`, FEATURES_OK; true if the device kept FEATURES_OK. */
  negotiate(features: bigint): boolean {
    this.status = 0;
    this.status = STATUS_ACK;
    this.status = STATUS_ACK | STATUS_DRIVER;
    this.writeDriverFeatures(features);
    this.status = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK;
    return (this.status & STATUS_FEATURES_OK) !== 0;
  }

  /** Select queue `i`, set its size and addresses from `q`, optionally its vector, and enable it. */
  setupQueue(i: number, q: FakeDriverQueue, vector?: number): void {
    this.w(0x16, 2, i);
    this.w(0x18, 2, q.size);
    if (vector !== undefined) this.w(0x1a, 2, vector);
    for (const [off, a] of [
      [0x20, q.desc],
      [0x28, q.avail],
      [0x30, q.used],
    ] as const) {
      this.w(off, 4, a % 0x1_0000_0000);
      this.w(off + 4, 4, Math.floor(a / 0x1_0000_0000));
    }
    this.w(0x1c, 2, 1);
  }

  driverOk(): void {
    this.status = this.status | STATUS_DRIVER_OK;
  }

  notify(i: number): void {
    this.host.mmio.write(this.notifyAddr, 2, i);
  }

  readIsr(): number {
    return Number(this.host.mmio.read(this.isrAddr, 1));
  }

  configRead(off: number, size: 1 | 2 | 4): number {
    return Number(this.host.mmio.read(this.device + off, size));
  }
}

/** A pre-1.0 driver using the legacy header in I/O BAR0. */
export class LegacyDriver {
  constructor(
    readonly host: FakeHost,
    readonly base = BAR0_IO,
  ) {}

  r(off: number, size: 1 | 2 | 4): number {
    return this.host.pio.read(this.base + off, size);
  }

  w(off: number, size: 1 | 2 | 4, v: number): void {
    this.host.pio.write(this.base + off, size, v);
  }

  get status(): number {
    return this.r(0x12, 1);
  }

  set status(v: number) {
    this.w(0x12, 1, v);
  }

  /** Reset, ACKNOWLEDGE, DRIVER, and accept `features` (low 32 bits); returns what reads back. */
  negotiate(features: number): number {
    this.status = 0;
    this.status = STATUS_ACK;
    this.status = STATUS_ACK | STATUS_DRIVER;
    this.w(0x04, 4, features);
    return this.r(0x04, 4);
  }

  /** Select queue `i`, check its size and give the legacy page frame; optionally its MSI-X vector. */
  setupQueue(i: number, q: FakeDriverQueue, vector?: number): void {
    this.w(0x0e, 2, i);
    if (this.r(0x0c, 2) !== q.size) throw new Error(`test driver: queue ${i} size ${this.r(0x0c, 2)}, not ${q.size}`);
    if (vector !== undefined) this.w(0x16, 2, vector);
    this.w(0x08, 4, q.desc / 4096);
  }

  driverOk(): void {
    this.status = this.status | STATUS_DRIVER_OK;
  }

  notify(i: number): void {
    this.w(0x10, 2, i);
  }

  readIsr(): number {
    return this.r(0x13, 1);
  }

  /** Device configuration: after 0x14 bytes of header, 0x18 while MSI-X is enabled. */
  configRead(off: number, size: 1 | 2 | 4, msix: boolean): number {
    return this.r((msix ? 0x18 : 0x14) + off, size);
  }
}
