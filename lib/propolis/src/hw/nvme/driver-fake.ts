// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Test helpers for the NVMe controller: an in-memory BlockTarget that
// records what it is asked, a test bed that places a `pci-nvme` on a
// FakeHost's PCI topology and programs its BARs and MSI-X as firmware
// would, and `NvmeTestDriver`, which plays the host driver over guest
// memory (a plain buffer) and MMIO only — the way a guest sees the device.
//
// The driver uses its own constants (NVMe 1.4 layouts written out here),
// not the controller's, so a wrong constant in the controller cannot hide.
//
// Threading: test code on one thread. `NvmeTestBed.sibling()` attaches a
// second instance over the same shared state and guest memory, standing
// for a second vCPU thread; with `threads: true` guest RAM and the disk are
// SharedArrayBuffers and the descriptor is cloneable, so real worker
// threads (driver-worker.ts) can attach their own instances.

import assert from 'node:assert/strict';
import { BlockResult, type BackendDescriptor, type BlockTarget, type DeviceInfo } from '../../block/types.js';
import type { DeviceDescriptor } from '../../device.js';
import { FakeHost } from '../../testing/fake-host.js';
import { GuestMemory } from '../../vmm/memory.js';
import { PciTopology } from '../pci/topology.js';
import { PciNvme } from './pci-nvme.js';

// ---- the test's own NVMe constants ----

export const T = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  DB: 0x1000,
  CC_EN: 1,
  CC_IOSQES6: 6 << 16,
  CC_IOCQES4: 4 << 20,
  CC_SHN_NORMAL: 1 << 14,
  CSTS_RDY: 1,
  CSTS_CFS: 2,
  CSTS_SHST_COMPLETE: 2 << 2,
  PAGE: 4096,
} as const;

export const OPC = {
  DELETE_SQ: 0x00,
  CREATE_SQ: 0x01,
  GET_LOG: 0x02,
  DELETE_CQ: 0x04,
  CREATE_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  AER: 0x0c,
  DBBUF: 0x7c,
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  DSM: 0x09,
} as const;

/** Status values as SCT << 8 | SC. */
export const SC = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_TRANSFER_ERROR: 0x004,
  INTERNAL_ERROR: 0x006,
  INVALID_NAMESPACE: 0x00b,
  PRP_OFFSET_INVALID: 0x013,
  LBA_OUT_OF_RANGE: 0x080,
  CQ_INVALID: 0x100,
  INVALID_QID: 0x101,
  INVALID_QSIZE: 0x102,
  INVALID_VECTOR: 0x108,
  INVALID_DELETION: 0x10c,
  NOT_SAVEABLE: 0x10d,
  WRITE_RO: 0x182,
  WRITE_FAULT: 0x280,
  READ_ERROR: 0x281,
} as const;

// ---- in-memory disk ----

/** The shared content and counters behind MemBlockTargets. */
export class MemDisk {
  readonly bytes: Uint8Array;
  flushes = 0;
  reads = 0;
  writes = 0;
  readonly discards: [number, number][] = [];
  /** Requests outside the disk: the controller should never issue one. */
  violations = 0;
  /** Make the next operation of this kind fail. */
  failNext: 'read' | 'write' | 'flush' | undefined;

  constructor(
    readonly info: DeviceInfo,
    fill = 0,
    /** Share the content of another disk (another thread's view). */
    buffer?: SharedArrayBuffer,
  ) {
    this.bytes = new Uint8Array(buffer ?? new SharedArrayBuffer(info.blockSize * info.totalBlocks));
    if (!buffer) this.bytes.fill(fill);
  }

  target(): BlockTarget {
    return new MemBlockTarget(this);
  }
}

export class MemBlockTarget implements BlockTarget {
  closed = false;
  constructor(readonly disk: MemDisk) {}

  get info(): DeviceInfo {
    return this.disk.info;
  }

  private span(offset: number, bufs: Uint8Array[]): number | undefined {
    const len = bufs.reduce((n, b) => n + b.length, 0);
    if (offset < 0 || offset + len > this.disk.bytes.length || offset % this.info.blockSize !== 0) {
      this.disk.violations++;
      return undefined;
    }
    return len;
  }

  read(offset: number, bufs: Uint8Array[]): BlockResult {
    this.disk.reads++;
    if (this.disk.failNext === 'read') return ((this.disk.failNext = undefined), BlockResult.Failure);
    if (this.span(offset, bufs) === undefined) return BlockResult.Failure;
    let o = offset;
    for (const b of bufs) {
      b.set(this.disk.bytes.subarray(o, o + b.length));
      o += b.length;
    }
    return BlockResult.Success;
  }

  write(offset: number, bufs: Uint8Array[]): BlockResult {
    this.disk.writes++;
    if (this.info.readOnly) return BlockResult.ReadOnly;
    if (this.disk.failNext === 'write') return ((this.disk.failNext = undefined), BlockResult.Failure);
    if (this.span(offset, bufs) === undefined) return BlockResult.Failure;
    let o = offset;
    for (const b of bufs) {
      this.disk.bytes.set(b, o);
      o += b.length;
    }
    return BlockResult.Success;
  }

  flush(): BlockResult {
    this.disk.flushes++;
    if (this.disk.failNext === 'flush') return ((this.disk.failNext = undefined), BlockResult.Failure);
    return BlockResult.Success;
  }

  discard(offset: number, len: number): BlockResult {
    if (!this.info.supportsDiscard) return BlockResult.Unsupported;
    if (offset < 0 || offset + len > this.disk.bytes.length) {
      this.disk.violations++;
      return BlockResult.Failure;
    }
    this.disk.discards.push([offset, len]);
    this.disk.bytes.fill(0, offset, offset + len);
    return BlockResult.Success;
  }

  writeZeroes(offset: number, len: number): BlockResult {
    this.disk.bytes.fill(0, offset, offset + len);
    return BlockResult.Success;
  }

  close(): void {
    this.closed = true;
  }
}

// ---- the test bed: the device on a PCI topology, as firmware leaves it ----

export interface BedOptions {
  ramBytes?: number;
  blocks?: number;
  blockSize?: number;
  readOnly?: boolean;
  discard?: boolean;
  serial?: string | Uint8Array;
  /** Guest RAM byte value outside what tests write (a sentinel). */
  ramFill?: number;
  /**
   * Share guest RAM, the disk and the allocator of another bed, with a new
   * controller on a new host (for state import): nothing is programmed.
   */
  restoreFrom?: NvmeTestBed;
  /**
   * Guest RAM in shared memory and the disk opened from a descriptor (through
   * `memDiskOpener`), so the descriptor can travel to worker threads.
   */
  threads?: boolean;
}

/** The descriptor of a MemDisk shared between threads. */
export interface MemDiskParams {
  buffer: SharedArrayBuffer;
  info: DeviceInfo;
}

/** An opener for `setNvmeBackendOpener` that opens `mem-disk` descriptors. */
export function memDiskOpener(d: BackendDescriptor): BlockTarget {
  assert.equal(d.kind, 'mem-disk');
  const p = d.params as MemDiskParams;
  return new MemDisk(p.info, 0, p.buffer).target();
}

/** Guest memory over a SharedArrayBuffer, as each thread would build it. */
export function sharedGuestMemory(ram: SharedArrayBuffer): GuestMemory {
  return GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(ram) }]);
}

export const BAR0 = 0xfe00_0000;
export const BAR4 = 0xfe10_0000;
const DEV = 4;
/** Where the bump allocator starts; below it is never handed out (sentinel space). */
const ALLOC_BASE = 0x10_0000;

export class NvmeTestBed {
  readonly host: FakeHost;
  readonly disk: MemDisk;
  readonly desc: DeviceDescriptor;
  readonly dev: PciNvme;
  readonly topo: PciTopology;
  /** Guest RAM, when shared with worker threads. */
  readonly ram: SharedArrayBuffer | undefined;
  private next = ALLOC_BASE;

  constructor(readonly opts: BedOptions = {}) {
    const from = opts.restoreFrom;
    if (from) {
      this.opts = from.opts;
      this.host = new FakeHost(16);
      Object.defineProperty(this.host, 'mem', { value: from.host.mem });
      this.disk = from.disk;
      this.next = from.next;
    } else if (opts.threads) {
      this.ram = new SharedArrayBuffer(opts.ramBytes ?? 8 << 20);
      this.host = new FakeHost(16);
      Object.defineProperty(this.host, 'mem', { value: sharedGuestMemory(this.ram) });
      this.disk = new MemDisk({
        blockSize: opts.blockSize ?? 512,
        totalBlocks: opts.blocks ?? 4096,
        readOnly: false,
        supportsDiscard: true,
      });
    } else {
      const ram = opts.ramBytes ?? 8 << 20;
      this.host = new FakeHost(ram);
      if (opts.ramFill !== undefined) this.host.mem.write(0, new Uint8Array(ram).fill(opts.ramFill));
      this.disk = new MemDisk({
        blockSize: opts.blockSize ?? 512,
        totalBlocks: opts.blocks ?? 4096,
        readOnly: opts.readOnly ?? false,
        supportsDiscard: opts.discard ?? true,
      });
    }
    const disk = this.disk;
    const params: MemDiskParams = { buffer: disk.bytes.buffer as SharedArrayBuffer, info: disk.info };
    this.desc = PciNvme.describe({
      name: 'nvme-test',
      pciPath: `0.${DEV}.0`,
      serial: opts.serial ?? 'SERIAL-1234',
      backend: opts.threads ? { kind: 'mem-disk', name: 'disk', params } : () => disk.target(),
    });
    this.dev = PciNvme.attach(this.desc, this.host);
    this.topo = PciTopology.of(this.host);
    this.topo.registerWindows(this.host, { io: [[0xc000, 0x10000]], mmio: [[0xfe00_0000, 0xfec0_0000]] });
    if (from) return;
    // Firmware: BAR0 (64-bit), BAR4, memory space + bus master.
    this.cfgWrite(0x10, 4, BAR0);
    this.cfgWrite(0x14, 4, 0);
    this.cfgWrite(0x20, 4, BAR4);
    this.cfgWrite(0x04, 2, 0x0006);
  }

  get ramBytes(): number {
    return this.opts.ramBytes ?? 8 << 20;
  }

  /** Another "thread": a second host over the same guest memory, with its own device instance. */
  sibling(): { host: FakeHost; dev: PciNvme } {
    const host = new FakeHost(16);
    Object.defineProperty(host, 'mem', { value: this.host.mem });
    const dev = PciNvme.attach(this.desc, host);
    PciTopology.of(host).registerWindows(host, { io: [], mmio: [[0xfe00_0000, 0xfec0_0000]] });
    return { host, dev };
  }

  cfgRead(off: number, size: 1 | 2 | 4): number {
    return this.topo.cfgRead(0, DEV, 0, off, size);
  }

  cfgWrite(off: number, size: 1 | 2 | 4, v: number): void {
    this.topo.cfgWrite(0, DEV, 0, off, size, v);
  }

  reg32(off: number): number {
    return Number(this.host.mmio.read(BAR0 + off, 4));
  }

  reg64(off: number): bigint {
    return BigInt(this.host.mmio.read(BAR0 + off, 8));
  }

  setReg32(off: number, v: number): void {
    this.host.mmio.write(BAR0 + off, 4, v >>> 0);
  }

  setReg64(off: number, v: bigint): void {
    this.host.mmio.write(BAR0 + off, 8, v);
  }

  /** Program MSI-X vector `v` (address 0xFEE0_0000, data 0x100 + v), unmask it, enable MSI-X. */
  enableMsix(vectors: number[]): void {
    for (const v of vectors) {
      this.host.mmio.write(BAR4 + 16 * v, 4, 0xfee0_0000);
      this.host.mmio.write(BAR4 + 16 * v + 4, 4, 0);
      this.host.mmio.write(BAR4 + 16 * v + 8, 4, 0x100 + v);
      this.host.mmio.write(BAR4 + 16 * v + 12, 4, 0);
    }
    const cap = this.msixCap();
    this.cfgWrite(cap + 2, 2, 0x8000 | (this.cfgRead(cap + 2, 2) & 0x7ff));
  }

  disableMsix(): void {
    const cap = this.msixCap();
    this.cfgWrite(cap + 2, 2, this.cfgRead(cap + 2, 2) & 0x7ff);
  }

  msixCap(): number {
    for (let p = this.cfgRead(0x34, 1); p !== 0; p = this.cfgRead(p + 1, 1)) {
      if (this.cfgRead(p, 1) === 0x11) return p;
    }
    throw new Error('no MSI-X capability');
  }

  /** Page-aligned (by default) guest memory from the bump allocator. */
  alloc(bytes: number, align = T.PAGE): number {
    const a = Math.ceil(this.next / align) * align;
    this.next = a + bytes;
    assert.ok(this.next <= this.ramBytes, 'test bed out of guest RAM');
    return a;
  }

  read(gpa: number, n: number): Uint8Array {
    const b = new Uint8Array(n);
    assert.ok(this.host.mem.read(gpa, b), `read 0x${gpa.toString(16)}+${n}`);
    return b;
  }

  /** A driver write into guest RAM (also applied to the tracked expectation, if any). */
  write(gpa: number, data: Uint8Array): void {
    assert.ok(this.host.mem.write(gpa, data), `write 0x${gpa.toString(16)}+${data.length}`);
    this.expected?.set(data, gpa);
  }

  /** All of guest RAM. */
  snapshot(): Uint8Array {
    return this.read(0, this.ramBytes);
  }

  private expected: Uint8Array | undefined;

  /** From now on, remember what guest RAM should hold: its bytes now plus the driver's writes. */
  track(): void {
    this.expected = this.snapshot();
  }

  /**
   * Assert that, since track(), the device changed guest RAM only inside
   * `allowed` ranges (the driver's own writes are expected); tracking restarts.
   */
  assertOnlyChanged(allowed: [number, number][], what: string): void {
    const before = this.expected;
    assert.ok(before, 'track() first');
    const now = this.snapshot();
    for (let i = 0; i < now.length; i++) {
      if (now[i] !== before[i] && !allowed.some(([a, n]) => i >= a && i < a + n)) {
        assert.fail(`${what}: guest byte 0x${i.toString(16)} changed outside the allowed ranges`);
      }
    }
    this.expected = now;
  }
}

// ---- the driver ----

export interface Sqe {
  opc: number;
  cid?: number;
  nsid?: number;
  fuse?: number;
  psdt?: number;
  prp1?: number;
  prp2?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
}

export interface Cqe {
  dw0: number;
  sqhd: number;
  sqid: number;
  cid: number;
  phase: number;
  /** SCT << 8 | SC */
  status: number;
  dnr: boolean;
}

interface DrvQueue {
  sqBase: number;
  sqSize: number;
  sqTail: number;
  cqid: number;
}

interface DrvCq {
  base: number;
  size: number;
  head: number;
  phase: number;
}

const lo32 = (v: number): number => v % 0x1_0000_0000;
const hi32 = (v: number): number => Math.floor(v / 0x1_0000_0000);

export class NvmeTestDriver {
  readonly sqs = new Map<number, DrvQueue>();
  readonly cqs = new Map<number, DrvCq>();
  private nextCid = 1;
  /** Shadow doorbell and EventIdx pages, once configured. */
  dbbuf: { shadow: number; evtidx: number } | undefined;
  /** MMIO doorbell writes this driver made. */
  mmioDoorbells = 0;

  constructor(readonly bed: NvmeTestBed) {}

  /** This driver's queue bookkeeping, carried over to the controller of another bed (after a state import). */
  moveTo(bed: NvmeTestBed): NvmeTestDriver {
    const d = new NvmeTestDriver(bed);
    for (const [k, v] of this.sqs) d.sqs.set(k, { ...v });
    for (const [k, v] of this.cqs) d.cqs.set(k, { ...v });
    d.dbbuf = this.dbbuf;
    d.nextCid = this.nextCid;
    return d;
  }

  /** Program the admin queues and enable the controller; returns CSTS. */
  enable(opts: { sqSize?: number; cqSize?: number; cc?: number } = {}): number {
    const b = this.bed;
    const sqSize = opts.sqSize ?? 32;
    const cqSize = opts.cqSize ?? 32;
    const asq = b.alloc(sqSize * 64);
    const acq = b.alloc(cqSize * 16);
    b.write(acq, new Uint8Array(cqSize * 16)); // a driver zeroes its completion queues
    b.setReg32(T.AQA, ((cqSize - 1) << 16) | (sqSize - 1));
    b.setReg64(T.ASQ, BigInt(asq));
    b.setReg64(T.ACQ, BigInt(acq));
    b.setReg32(T.CC, opts.cc ?? T.CC_EN | T.CC_IOSQES6 | T.CC_IOCQES4);
    this.sqs.set(0, { sqBase: asq, sqSize, sqTail: 0, cqid: 0 });
    this.cqs.set(0, { base: acq, size: cqSize, head: 0, phase: 1 });
    this.dbbuf = undefined;
    return b.reg32(T.CSTS);
  }

  /** Clear CC.EN, keeping the other fields (or write `cc`). */
  disable(cc?: number): void {
    this.bed.setReg32(T.CC, cc ?? this.bed.reg32(T.CC) & ~T.CC_EN);
    this.sqs.clear();
    this.cqs.clear();
    this.dbbuf = undefined;
  }

  /** Write an entry at the SQ tail (without ringing). */
  place(qid: number, e: Sqe): number {
    const q = this.sqs.get(qid);
    assert.ok(q, `no SQ ${qid}`);
    const cid = e.cid ?? this.nextCid++ & 0xffff;
    const b = new Uint8Array(64);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, (e.opc | ((e.fuse ?? 0) << 8) | ((e.psdt ?? 0) << 14) | (cid << 16)) >>> 0, true);
    dv.setUint32(4, (e.nsid ?? 0) >>> 0, true);
    dv.setUint32(24, lo32(e.prp1 ?? 0), true);
    dv.setUint32(28, hi32(e.prp1 ?? 0), true);
    dv.setUint32(32, lo32(e.prp2 ?? 0), true);
    dv.setUint32(36, hi32(e.prp2 ?? 0), true);
    const cdws = [e.cdw10, e.cdw11, e.cdw12, e.cdw13, e.cdw14, e.cdw15];
    cdws.forEach((v, i) => dv.setUint32(40 + 4 * i, (v ?? 0) >>> 0, true));
    this.bed.write(q.sqBase + 64 * q.sqTail, b);
    q.sqTail = (q.sqTail + 1) % q.sqSize;
    return cid;
  }

  /** Ring SQ `qid`'s tail doorbell with the driver's tail (or `value`). */
  ringSq(qid: number, value?: number): void {
    const q = this.sqs.get(qid);
    const v = value ?? q?.sqTail ?? 0;
    if (this.dbbuf && q && qid !== 0 && value === undefined) {
      // Shadow doorbell protocol: store the tail, ring only if EventIdx asks.
      const slot = 8 * qid;
      const old = this.u32(this.dbbuf.shadow + slot);
      this.setU32(this.dbbuf.shadow + slot, v);
      const ei = this.u32(this.dbbuf.evtidx + slot);
      if (!needEvent(ei, v, old)) return;
    }
    this.mmioDoorbells++;
    this.bed.setReg32(T.DB + 8 * qid, v);
  }

  /** Write CQ `qid`'s head doorbell. */
  ringCq(qid: number, value?: number): void {
    const c = this.cqs.get(qid);
    const v = value ?? c?.head ?? 0;
    if (this.dbbuf && c && qid !== 0 && value === undefined) {
      const slot = 8 * qid + 4;
      const old = this.u32(this.dbbuf.shadow + slot);
      this.setU32(this.dbbuf.shadow + slot, v);
      const ei = this.u32(this.dbbuf.evtidx + slot);
      if (!needEvent(ei, v, old)) return;
    }
    this.mmioDoorbells++;
    this.bed.setReg32(T.DB + 8 * qid + 4, v);
  }

  u32(gpa: number): number {
    return new DataView(this.bed.read(gpa, 4).buffer).getUint32(0, true);
  }

  setU32(gpa: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.bed.write(gpa, b);
  }

  /** The CQE at CQ `cqid`'s head if its phase says it is new (does not consume it). */
  peek(cqid: number): Cqe | undefined {
    const c = this.cqs.get(cqid);
    assert.ok(c, `no CQ ${cqid}`);
    const dv = new DataView(this.bed.read(c.base + 16 * c.head, 16).buffer);
    const dw3 = dv.getUint32(12, true);
    const phase = (dw3 >>> 16) & 1;
    if (phase !== c.phase) return undefined;
    const sf = dw3 >>> 17;
    return {
      dw0: dv.getUint32(0, true),
      sqhd: dv.getUint16(8, true),
      sqid: dv.getUint16(10, true),
      cid: dw3 & 0xffff,
      phase,
      status: sf & 0x7ff,
      dnr: (sf & 0x4000) !== 0,
    };
  }

  /** Take every new CQE from CQ `cqid` (advancing the head; the doorbell is rung if `ring`). */
  reap(cqid: number, ring = true): Cqe[] {
    const c = this.cqs.get(cqid);
    assert.ok(c);
    const out: Cqe[] = [];
    for (let e = this.peek(cqid); e; e = this.peek(cqid)) {
      out.push(e);
      c.head = (c.head + 1) % c.size;
      if (c.head === 0) c.phase ^= 1;
    }
    if (ring && out.length > 0) this.ringCq(cqid);
    return out;
  }

  /** Submit one command, ring, and return its completion. */
  submit(qid: number, e: Sqe): Cqe {
    const cid = this.place(qid, e);
    this.ringSq(qid);
    const cqid = this.sqs.get(qid)!.cqid;
    const got = this.reap(cqid);
    assert.equal(got.length, 1, `one completion for opcode 0x${e.opc.toString(16)} on SQ ${qid}`);
    const c = got[0]!;
    assert.equal(c.cid, cid, 'completion carries the command id');
    assert.equal(c.sqid, qid, 'completion carries the SQ id');
    return c;
  }

  admin(e: Sqe): Cqe {
    return this.submit(0, e);
  }

  createCq(qid: number, size: number, opts: { ien?: boolean; iv?: number; base?: number; pc?: boolean } = {}): Cqe {
    const base = opts.base ?? this.bed.alloc(size * 16);
    if (opts.base === undefined) this.bed.write(base, new Uint8Array(size * 16));
    const flags = ((opts.pc ?? true) ? 1 : 0) | ((opts.ien ?? true) ? 2 : 0);
    const r = this.admin({
      opc: OPC.CREATE_CQ,
      prp1: base,
      cdw10: (((size - 1) << 16) | qid) >>> 0,
      cdw11: (((opts.iv ?? 0) << 16) | flags) >>> 0,
    });
    if (r.status === 0) this.cqs.set(qid, { base, size, head: 0, phase: 1 });
    return r;
  }

  createSq(qid: number, size: number, cqid: number, opts: { base?: number; pc?: boolean } = {}): Cqe {
    const base = opts.base ?? this.bed.alloc(size * 64);
    const r = this.admin({
      opc: OPC.CREATE_SQ,
      prp1: base,
      cdw10: (((size - 1) << 16) | qid) >>> 0,
      cdw11: ((cqid << 16) | ((opts.pc ?? true) ? 1 : 0)) >>> 0,
    });
    if (r.status === 0) this.sqs.set(qid, { sqBase: base, sqSize: size, sqTail: 0, cqid });
    return r;
  }

  /** A CQ and an SQ with the same id; asserts success. */
  createPair(qid: number, size = 32, opts: { ien?: boolean; iv?: number; cqSize?: number } = {}): void {
    assert.equal(this.createCq(qid, opts.cqSize ?? size, opts).status, 0, `create CQ ${qid}`);
    assert.equal(this.createSq(qid, size, qid).status, 0, `create SQ ${qid}`);
  }

  deleteSq(qid: number): Cqe {
    const r = this.admin({ opc: OPC.DELETE_SQ, cdw10: qid });
    if (r.status === 0) this.sqs.delete(qid);
    return r;
  }

  deleteCq(qid: number): Cqe {
    const r = this.admin({ opc: OPC.DELETE_CQ, cdw10: qid });
    if (r.status === 0) this.cqs.delete(qid);
    return r;
  }

  /** Identify into a fresh page; the completion and the 4 KiB read back. */
  identify(cns: number, nsid = 0): { cqe: Cqe; data: Uint8Array } {
    const buf = this.bed.alloc(T.PAGE);
    const cqe = this.admin({ opc: OPC.IDENTIFY, nsid, prp1: buf, cdw10: cns });
    return { cqe, data: this.bed.read(buf, T.PAGE) };
  }

  configureDoorbellBuffer(): Cqe {
    const shadow = this.bed.alloc(T.PAGE);
    const evtidx = this.bed.alloc(T.PAGE);
    const r = this.admin({ opc: OPC.DBBUF, prp1: shadow, prp2: evtidx });
    if (r.status === 0) this.dbbuf = { shadow, evtidx };
    return r;
  }

  /**
   * PRP1/PRP2 for a buffer of `len` bytes at `gpa` (contiguous in guest
   * memory), as a host driver builds them: a list (chained if needed) when
   * more than two pages are touched. `listAt` places the list (default: a
   * fresh page).
   */
  prps(gpa: number, len: number, listAt?: number): { prp1: number; prp2: number; list: number | undefined } {
    const P = T.PAGE;
    const first = Math.min(len, P - (gpa % P));
    const rest = len - first;
    if (rest === 0) return { prp1: gpa, prp2: 0, list: undefined };
    const page2 = gpa - (gpa % P) + P;
    if (rest <= P) return { prp1: gpa, prp2: page2, list: undefined };
    const pages: number[] = [];
    for (let a = page2; a < gpa + len; a += P) pages.push(a);
    const list = listAt ?? this.bed.alloc(P * 2);
    let at = list;
    for (let i = 0; i < pages.length; i++) {
      const slotsLeft = (P - (at % P)) / 8;
      if (slotsLeft === 1 && pages.length - i > 1) {
        // Last slot of a list page: chain to a new list page.
        const next = this.bed.alloc(P);
        this.writeU64(at, next);
        at = next;
      }
      this.writeU64(at, pages[i]!);
      at += 8;
    }
    return { prp1: gpa, prp2: list, list };
  }

  writeU64(gpa: number, v: number): void {
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, lo32(v), true);
    dv.setUint32(4, hi32(v), true);
    this.bed.write(gpa, b);
  }

  /** Write `data` at `slba` from guest buffer `gpa` (data is copied there first). */
  writeBlocks(qid: number, slba: number, data: Uint8Array, gpa: number, extra: Partial<Sqe> = {}): Cqe {
    this.bed.write(gpa, data);
    const bs = this.bed.disk.info.blockSize;
    const { prp1, prp2 } = this.prps(gpa, data.length);
    return this.submit(qid, {
      opc: OPC.WRITE,
      nsid: 1,
      prp1,
      prp2,
      cdw10: lo32(slba),
      cdw11: hi32(slba),
      cdw12: data.length / bs - 1,
      ...extra,
    });
  }

  /** Read `nlb` blocks at `slba` into guest buffer `gpa`; returns the completion and the bytes. */
  readBlocks(qid: number, slba: number, nlb: number, gpa: number): { cqe: Cqe; data: Uint8Array } {
    const len = nlb * this.bed.disk.info.blockSize;
    const { prp1, prp2 } = this.prps(gpa, len);
    const cqe = this.submit(qid, {
      opc: OPC.READ,
      nsid: 1,
      prp1,
      prp2,
      cdw10: lo32(slba),
      cdw11: hi32(slba),
      cdw12: nlb - 1,
    });
    return { cqe, data: this.bed.read(gpa, len) };
  }
}

/** The shadow-doorbell rule: ring if EventIdx lies in [old, new). */
export function needEvent(eventIdx: number, newIdx: number, old: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/** A deterministic byte pattern. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Guest memory over a plain buffer (for pure tests of the PRP walker). */
export function plainMemory(bytes: number): { mem: GuestMemory; ram: Uint8Array } {
  const ram = new Uint8Array(bytes);
  return { mem: GuestMemory.fromBuffers([{ gpa: 0, bytes: ram }]), ram };
}
