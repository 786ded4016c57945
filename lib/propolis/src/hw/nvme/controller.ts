// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The NVMe controller model: BAR0 registers and doorbells, the admin and
// I/O queues, command execution against a BlockTarget, completions with
// phase tags, interrupts, shadow doorbells, and its `nvme-ctrl` state.
// Pure of any bus: the attachment (pci-nvme.ts) routes BAR0 accesses here
// and supplies an `NvmeEnv` (guest memory, the block target, MSI-X and
// INTx, bus mastering).
//
// How commands run. A submission-queue tail doorbell write executes the
// queue's new entries right away, synchronously, on the thread that wrote
// the doorbell (for now the vCPU thread that took the MMIO exit; later an
// I/O thread woken by an ioeventfd calls `processQueue`). For each entry:
// reserve a slot in the queue's CQ (if the CQ is full the SQ is "corked" on
// it and resumes when the host moves the CQ head), copy the 64-byte entry
// out of guest memory (so the guest cannot change it under us), execute it,
// post the completion. After the batch the CQ's interrupt fires once.
// Because every command completes before the next is fetched, no command
// is ever outstanding across doorbells: Abort finds nothing to abort, and a
// command id reused by the host never conflicts with a live one.
//
// Guest mistakes never throw: a bad command gets its status; a doorbell
// value that is out of range or moves a pointer past the other end, or a
// doorbell for a queue that does not exist, is ignored and counted (NVMe
// would report it through an asynchronous event, which this controller does
// not implement); a bad controller configuration sets CSTS.CFS.
//
// Threading: one instance per thread over shared state (state.ts documents
// the words and the lock order). Per-thread caches: the byte views of the
// queue rings (revalidated by a generation stamp), the identify pages, the
// PRP walker and the command buffer.

import { BlockResult, type BlockTarget, type DeviceInfo } from '../../block/types.js';
import type { AccessSize } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { Prot, type GuestMemory, type MemSlice } from '../../vmm/memory.js';
import {
  ADMIN_OPC,
  AQA,
  BAR0_SIZE,
  CAP,
  CC,
  CNS,
  CQE_DW3,
  CQE_SIZE,
  CQES_LOG2,
  CSTS,
  DNR,
  DSM,
  FEATURE,
  MAX_IO_QUEUE_ENTRIES,
  MAX_IO_QUEUES,
  MAX_QUEUES,
  MAX_TRANSFER_BYTES,
  MIN_QUEUE_ENTRIES,
  MSIX_VECTORS,
  NVM_OPC,
  NVME_VERSION,
  PAGE_SIZE,
  REG,
  RW_FUA,
  SQE,
  SQE_DW0,
  SQE_SIZE,
  SQES_LOG2,
  STATUS,
} from './bits.js';
import { identifyController, identifyNamespace, type NvmeIdentity } from './identify.js';
import { copyFromSegments, copyToSegments, PrpWalker, zeroSegments } from './prp.js';
import {
  checkState,
  cqWord,
  CQW,
  NvmeCtrlV1,
  QUEUE_WORDS,
  sqWord,
  SQW,
  STATE_BYTES,
  W,
  type NvmeCtrlState,
  type NvmeCqState,
  type NvmeSqState,
} from './state.js';

/** What the controller needs from the thread it runs on. */
export interface NvmeEnv {
  readonly mem: GuestMemory;
  readonly block: BlockTarget;
  /** PCI Command.BME: no DMA (so no queue processing) while clear. */
  busMaster(): boolean;
  msixEnabled(): boolean;
  /** Signal MSI-X vector `v`. */
  notify(v: number): void;
  /** The pin-based interrupt request. */
  setIntx(level: boolean): void;
  /** A read or write of `bytes` completed successfully (I/O accounting). */
  countIo?(write: boolean, bytes: number): void;
}

const TWO32 = 0x1_0000_0000;
const U16 = 0xffff;
/** Default Number of Queues answer: fifteen of each, zero-based. */
const NQA_DEFAULT = (MAX_IO_QUEUES - 1) | ((MAX_IO_QUEUES - 1) << 16);
const CAP_BIG = (BigInt(CAP.HI) << 32n) | BigInt(CAP.LO);

type Handler = (c: NvmeController) => number;

export class NvmeController {
  private readonly w: Int32Array;
  private readonly sqLocks: SharedMutex[] = [];
  private readonly cqLocks: SharedMutex[] = [];
  private readonly ctlLock: SharedMutex;
  private readonly intxLock: SharedMutex;
  private readonly info: DeviceInfo;
  private readonly idCtrl: Uint8Array;
  private readonly idNs: Uint8Array;
  private readonly prp = new PrpWalker();
  /** The entry being executed (a private copy). */
  private readonly cmd = new Uint32Array(SQE_SIZE / 4);
  /** Dword 0 of the completion being built. */
  private result = 0;
  private readonly ranges = new Uint8Array(DSM.MAX_RANGES * DSM.RANGE_BYTES);
  private readonly rangesView = new DataView(this.ranges.buffer);
  private readonly sqRings: (MemSlice | undefined)[] = new Array<MemSlice | undefined>(MAX_QUEUES);
  private readonly cqRings: (MemSlice | undefined)[] = new Array<MemSlice | undefined>(MAX_QUEUES);
  private readonly sqRingGen = new Int32Array(MAX_QUEUES).fill(-1);
  private readonly cqRingGen = new Int32Array(MAX_QUEUES).fill(-1);

  constructor(
    state: SharedArrayBuffer,
    identity: NvmeIdentity,
    private readonly env: NvmeEnv,
  ) {
    if (state.byteLength < STATE_BYTES) throw new RangeError('NVMe state buffer too small');
    this.w = new Int32Array(state, 0, STATE_BYTES / 4);
    const word = (i: number): SharedMutex => new SharedMutex(this.w.subarray(i, i + 1));
    for (let q = 0; q < MAX_QUEUES; q++) {
      this.sqLocks.push(word(sqWord(q, SQW.LOCK)));
      this.cqLocks.push(word(cqWord(q, CQW.LOCK)));
    }
    this.ctlLock = word(W.CTL_LOCK);
    this.intxLock = word(W.INTX_LOCK);
    this.info = env.block.info;
    this.idCtrl = identifyController(identity);
    this.idNs = identifyNamespace(this.info);
  }

  /** Allocate the shared state at power-on values. */
  static createState(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(STATE_BYTES);
    powerOn(new Int32Array(sab));
    return sab;
  }

  // ---- small helpers over the shared words ----

  private get(i: number): number {
    return Atomics.load(this.w, i) >>> 0;
  }

  private set(i: number, v: number): void {
    Atomics.store(this.w, i, v | 0);
  }

  private addr(lo: number): number {
    return this.get(lo + 1) * TWO32 + this.get(lo);
  }

  private setAddr(lo: number, v: number): void {
    this.set(lo, v % TWO32);
    this.set(lo + 1, Math.floor(v / TWO32));
  }

  /** A full barrier: orders our plain guest-memory stores and loads around it (x86: a locked instruction). */
  private fence(): void {
    Atomics.add(this.w, W.FENCE, 0);
  }

  private running(): boolean {
    return (this.get(W.CSTS) & (CSTS.RDY | CSTS.CFS)) === CSTS.RDY;
  }

  private lockAll(): void {
    for (const l of this.sqLocks) l.lock();
    for (const l of this.cqLocks) l.lock();
    this.ctlLock.lock();
  }

  private unlockAll(): void {
    this.ctlLock.unlock();
    for (let q = MAX_QUEUES - 1; q >= 0; q--) (this.cqLocks[q] as SharedMutex).unlock();
    for (let q = MAX_QUEUES - 1; q >= 0; q--) (this.sqLocks[q] as SharedMutex).unlock();
  }

  // ---- counters (diagnostics) ----

  /** Doorbell writes ignored: bad value, no such queue, controller not ready. */
  get badDoorbells(): number {
    return this.get(W.BAD_DOORBELLS);
  }

  /** Register writes ignored: read-only or reserved registers, unaligned accesses. */
  get badRegisterWrites(): number {
    return this.get(W.BAD_REGISTER_WRITES);
  }

  /** A Doorbell Buffer Config is in force (doorbell values may come from the shadow buffer). */
  get shadowDoorbells(): boolean {
    return this.get(W.DB_ON) !== 0;
  }

  private count(i: number): void {
    Atomics.add(this.w, i, 1);
  }

  // ---- BAR0 ----

  regRead(off: number, size: AccessSize): number | bigint {
    if (!Number.isInteger(off) || off < 0 || off + size > BAR0_SIZE) {
      return size === 8 ? 0xffff_ffff_ffff_ffffn : size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    }
    if (size === 4 && off % 4 === 0) return this.dwordRead(off);
    if (size === 8 && off % 4 === 0) {
      return (BigInt(this.dwordRead(off + 4)) << 32n) | BigInt(this.dwordRead(off));
    }
    // Small or unaligned: byte by byte.
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const o = off + i;
      v = (v << 8n) | BigInt((this.dwordRead(o & ~3) >>> (8 * (o & 3))) & 0xff);
    }
    return size === 8 ? v : Number(v);
  }

  regWrite(off: number, size: AccessSize, value: number | bigint): void {
    if (!Number.isInteger(off) || off < 0 || off + size > BAR0_SIZE) return;
    if (size === 8) {
      if (off % 4 !== 0) return void this.count(W.BAD_REGISTER_WRITES);
      const big = BigInt.asUintN(64, BigInt(value));
      this.dwordWrite(off, Number(big & 0xffff_ffffn));
      this.dwordWrite(off + 4, Number(big >> 32n));
      return;
    }
    const v = Number(value) >>> 0;
    if (size === 4) {
      if (off % 4 !== 0) return void this.count(W.BAD_REGISTER_WRITES);
      this.dwordWrite(off, v);
      return;
    }
    // A byte or halfword write merges into its dword; across dwords it is dropped.
    const shift = 8 * (off & 3);
    if ((off & 3) + size > 4) return void this.count(W.BAD_REGISTER_WRITES);
    const mask = size === 1 ? 0xff : 0xffff;
    const aligned = off & ~3;
    // Write-1 registers (INTMS, INTMC) and doorbells merge with zeros, not with what they read.
    const base =
      aligned === REG.INTMS || aligned === REG.INTMC || aligned >= REG.DOORBELLS ? 0 : this.dwordRead(aligned);
    this.dwordWrite(aligned, ((base & ~(mask << shift)) | ((v & mask) << shift)) >>> 0);
  }

  private dwordRead(off: number): number {
    const r = REG_READ[off >> 2];
    return r ? r(this) >>> 0 : 0;
  }

  private dwordWrite(off: number, v: number): void {
    if (off >= REG.DOORBELLS) {
      const i = (off - REG.DOORBELLS) >> 2;
      const qid = i >> 1;
      if (qid >= MAX_QUEUES) return void this.count(W.BAD_DOORBELLS);
      if (i & 1) this.cqDoorbell(qid, v);
      else this.sqDoorbell(qid, v);
      return;
    }
    const h = REG_WRITE[off >> 2];
    if (h) h(this, v);
    else this.count(W.BAD_REGISTER_WRITES);
  }

  // Register handlers (see REG_READ / REG_WRITE below).

  /** @internal */ readCc(): number {
    return this.get(W.CC);
  }
  /** @internal */ readCsts(): number {
    return this.get(W.CSTS);
  }
  /** @internal */ readWord(i: number): number {
    return this.get(i);
  }

  /** @internal */ writeIntms(v: number, set: boolean): void {
    this.ctlLock.with(() => this.set(W.INTMS, set ? this.get(W.INTMS) | v : this.get(W.INTMS) & ~v));
    this.updateIntx();
  }

  /** @internal AQA, ASQ and ACQ take writes only while the controller is disabled. */
  writeAdminReg(i: number, v: number): void {
    this.ctlLock.with(() => {
      if (this.get(W.CC) & CC.EN) return void this.count(W.BAD_REGISTER_WRITES);
      if (i === W.AQA) v &= AQA.WRITABLE;
      // The base registers' low 12 bits are reserved: queues are page-aligned.
      if (i === W.ASQ_LO || i === W.ACQ_LO) v &= ~(PAGE_SIZE - 1);
      this.set(i, v);
    });
  }

  /** @internal */ writeCc(value: number): void {
    this.lockAll();
    try {
      const old = this.get(W.CC);
      let cc = value & CC.WRITABLE;
      const wasEn = (old & CC.EN) !== 0;
      const en = (cc & CC.EN) !== 0;
      if (wasEn && !en) this.controllerReset();
      if (wasEn && en) cc = (cc & ~CC.FROZEN_WHILE_ENABLED) | (old & CC.FROZEN_WHILE_ENABLED);
      this.set(W.CC, cc);
      // While disabled, CFS reflects the last configuration written; once
      // enabled it is sticky until the host disables the controller.
      let csts = this.get(W.CSTS);
      if (!wasEn) csts &= ~CSTS.CFS;
      if (!entrySizesOk(cc)) csts |= CSTS.CFS;
      if (!wasEn && en) {
        if ((csts & CSTS.CFS) === 0 && this.enableAdminQueues(cc)) csts |= CSTS.RDY;
        else csts |= CSTS.CFS;
      }
      const shn = (cc >>> CC.SHN_SHIFT) & CC.SHN_MASK;
      const shst = (csts >>> CSTS.SHST_SHIFT) & CSTS.SHST_MASK;
      if (shn !== 0 && shst === CSTS.SHST_NORMAL) {
        // Shutdown: make completed writes durable, then report it done.
        this.env.block.flush();
        csts = (csts & ~(CSTS.SHST_MASK << CSTS.SHST_SHIFT)) | (CSTS.SHST_COMPLETE << CSTS.SHST_SHIFT);
      } else if (shn === 0 && shst !== CSTS.SHST_NORMAL) {
        csts &= ~(CSTS.SHST_MASK << CSTS.SHST_SHIFT);
      }
      this.set(W.CSTS, csts);
    } finally {
      this.unlockAll();
    }
    this.updateIntx();
  }

  /** With every lock held: CSS, MPS, AMS and the admin queues must be usable; create them. */
  private enableAdminQueues(cc: number): boolean {
    if (((cc >>> CC.CSS_SHIFT) & CC.CSS_MASK) !== 0) return false; // NVM command set only
    if (((cc >>> CC.MPS_SHIFT) & CC.MPS_MASK) !== 0) return false; // 4 KiB pages only
    if (((cc >>> CC.AMS_SHIFT) & CC.AMS_MASK) !== 0) return false; // round robin only
    const aqa = this.get(W.AQA);
    const sqSize = (aqa & AQA.ASQS_MASK) + 1;
    const cqSize = ((aqa >>> AQA.ACQS_SHIFT) & AQA.ASQS_MASK) + 1;
    if (sqSize < MIN_QUEUE_ENTRIES || cqSize < MIN_QUEUE_ENTRIES) return false;
    const asq = this.addr(W.ASQ_LO);
    const acq = this.addr(W.ACQ_LO);
    if (!this.env.mem.slice(asq, sqSize * SQE_SIZE, Prot.Read)) return false;
    if (!this.env.mem.slice(acq, cqSize * CQE_SIZE, Prot.Write)) return false;
    this.makeCq(0, acq, cqSize, true, 0);
    this.makeSq(0, asq, sqSize, 0);
    return true;
  }

  /** With every lock held: a controller reset (CC.EN 1 → 0). AQA, ASQ and ACQ are kept. */
  private controllerReset(): void {
    for (let q = 0; q < MAX_QUEUES; q++) {
      this.set(sqWord(q, SQW.VALID), 0);
      this.set(cqWord(q, CQW.VALID), 0);
      this.set(cqWord(q, CQW.CORKED), 0);
      this.set(cqWord(q, CQW.RESERVED), 0);
    }
    this.set(W.CSTS, 0);
    this.set(W.INTMS, 0);
    this.clearDoorbellBuffer();
    this.set(W.NQA, NQA_DEFAULT);
    this.set(W.WCE, 1);
  }

  private clearDoorbellBuffer(): void {
    this.set(W.DB_ON, 0);
    this.setAddr(W.DBS_LO, 0);
    this.setAddr(W.DBE_LO, 0);
  }

  // ---- queues ----

  private makeSq(qid: number, base: number, size: number, cqid: number): void {
    this.setAddr(sqWord(qid, SQW.BASE_LO), base);
    this.set(sqWord(qid, SQW.SIZE), size);
    this.set(sqWord(qid, SQW.HEAD), 0);
    this.set(sqWord(qid, SQW.TAIL), 0);
    this.set(sqWord(qid, SQW.CQID), cqid);
    this.set(sqWord(qid, SQW.GEN), Atomics.add(this.w, W.QGEN, 1) + 1);
    this.set(sqWord(qid, SQW.VALID), 1);
  }

  private makeCq(qid: number, base: number, size: number, ien: boolean, iv: number): void {
    this.setAddr(cqWord(qid, CQW.BASE_LO), base);
    this.set(cqWord(qid, CQW.SIZE), size);
    this.set(cqWord(qid, CQW.HEAD), 0);
    this.set(cqWord(qid, CQW.TAIL), 0);
    // The host zeroes its queue; the first pass through it posts phase 1.
    this.set(cqWord(qid, CQW.PHASE), 1);
    this.set(cqWord(qid, CQW.IEN), ien ? 1 : 0);
    this.set(cqWord(qid, CQW.IV), iv);
    this.set(cqWord(qid, CQW.RESERVED), 0);
    this.set(cqWord(qid, CQW.CORKED), 0);
    this.set(cqWord(qid, CQW.GEN), Atomics.add(this.w, W.QGEN, 1) + 1);
    this.set(cqWord(qid, CQW.VALID), 1);
  }

  private sqRing(qid: number): MemSlice | undefined {
    const gen = Atomics.load(this.w, sqWord(qid, SQW.GEN));
    if (this.sqRingGen[qid] !== gen) {
      const base = this.addr(sqWord(qid, SQW.BASE_LO));
      this.sqRings[qid] = this.env.mem.slice(base, this.get(sqWord(qid, SQW.SIZE)) * SQE_SIZE, Prot.Read);
      this.sqRingGen[qid] = gen;
    }
    return this.sqRings[qid];
  }

  private cqRing(qid: number): MemSlice | undefined {
    const gen = Atomics.load(this.w, cqWord(qid, CQW.GEN));
    if (this.cqRingGen[qid] !== gen) {
      const base = this.addr(cqWord(qid, CQW.BASE_LO));
      this.cqRings[qid] = this.env.mem.slice(base, this.get(cqWord(qid, CQW.SIZE)) * CQE_SIZE, Prot.Write);
      this.cqRingGen[qid] = gen;
    }
    return this.cqRings[qid];
  }

  // Shadow doorbell buffer slots: SQ y at index 2y, CQ y at 2y + 1 (the doorbell layout, DSTRD 0).

  private shadowRead(slot: number): number | undefined {
    return this.env.mem.readU32(this.addr(W.DBS_LO) + 4 * slot);
  }

  private shadowWrite(slot: number, v: number): void {
    this.env.mem.writeU32(this.addr(W.DBS_LO) + 4 * slot, v);
  }

  private eventIdxWrite(slot: number, v: number): void {
    this.env.mem.writeU32(this.addr(W.DBE_LO) + 4 * slot, v);
  }

  /** With SQ `qid` locked: adopt the shadow tail if it is a valid move; the tail in force. */
  private shadowTail(qid: number, size: number, head: number, tail: number): number {
    const v = this.shadowRead(2 * qid);
    if (v === undefined || v === tail) return tail;
    if (!sqTailOk(size, head, tail, v)) {
      this.count(W.BAD_DOORBELLS);
      return tail;
    }
    this.set(sqWord(qid, SQW.TAIL), v);
    return v;
  }

  /** With CQ `qid` locked: adopt the shadow head if it is a valid move; the head in force. */
  private shadowHead(qid: number, size: number, head: number, tail: number): number {
    const v = this.shadowRead(2 * qid + 1);
    if (v === undefined || v === head) return head;
    if (!cqHeadOk(size, head, tail, v)) {
      this.count(W.BAD_DOORBELLS);
      return head;
    }
    this.set(cqWord(qid, CQW.HEAD), v);
    return v;
  }

  private sqDoorbell(qid: number, value: number): void {
    if (!this.running()) return void this.count(W.BAD_DOORBELLS);
    const v = value & U16;
    const lock = this.sqLocks[qid] as SharedMutex;
    let cqid = -1;
    lock.lock();
    try {
      if (this.get(sqWord(qid, SQW.VALID)) === 0) return void this.count(W.BAD_DOORBELLS);
      const size = this.get(sqWord(qid, SQW.SIZE));
      const head = this.get(sqWord(qid, SQW.HEAD));
      const tail = this.get(sqWord(qid, SQW.TAIL));
      if (!sqTailOk(size, head, tail, v)) return void this.count(W.BAD_DOORBELLS);
      this.set(sqWord(qid, SQW.TAIL), v);
      // Drivers (Linux, SPDK) do not use the shadow buffer for the admin
      // queue: mirror its doorbell there so the shadow stays the truth.
      if (qid === 0 && this.shadowDoorbells) this.shadowWrite(0, v);
      cqid = this.drainLocked(qid);
    } finally {
      lock.unlock();
    }
    if (cqid >= 0) this.interrupt(cqid);
  }

  private cqDoorbell(qid: number, value: number): void {
    if (!this.running()) return void this.count(W.BAD_DOORBELLS);
    const v = value & U16;
    const lock = this.cqLocks[qid] as SharedMutex;
    let corked = 0;
    lock.lock();
    try {
      if (this.get(cqWord(qid, CQW.VALID)) === 0) return void this.count(W.BAD_DOORBELLS);
      const size = this.get(cqWord(qid, CQW.SIZE));
      const head = this.get(cqWord(qid, CQW.HEAD));
      const tail = this.get(cqWord(qid, CQW.TAIL));
      if (!cqHeadOk(size, head, tail, v)) return void this.count(W.BAD_DOORBELLS);
      this.set(cqWord(qid, CQW.HEAD), v);
      if (qid === 0 && this.shadowDoorbells) this.shadowWrite(1, v);
      corked = this.get(cqWord(qid, CQW.CORKED));
      this.set(cqWord(qid, CQW.CORKED), 0);
    } finally {
      lock.unlock();
    }
    // Resume the SQs that stopped on this CQ (never with a CQ lock held: SQ locks come first).
    for (let q = 0; corked !== 0; q++, corked >>>= 1) if (corked & 1) this.processQueue(q);
    this.updateIntx();
  }

  /**
   * Execute what is pending on submission queue `qid` (0–15): the entry
   * point for a thread woken by the queue's doorbell (an ioeventfd). While
   * shadow doorbells are on, the tail comes from the shadow buffer; without
   * them only what an MMIO doorbell write announced is seen.
   */
  processQueue(qid: number): void {
    if (!Number.isInteger(qid) || qid < 0 || qid >= MAX_QUEUES) return;
    const lock = this.sqLocks[qid] as SharedMutex;
    let cqid = -1;
    lock.lock();
    try {
      cqid = this.drainLocked(qid);
    } finally {
      lock.unlock();
    }
    if (cqid >= 0) this.interrupt(cqid);
  }

  /**
   * The host moved CQ `qid`'s head without an MMIO write (shadow doorbells,
   * or a bound ioeventfd): resume the submission queues waiting on it.
   */
  kickCompletionQueue(qid: number): void {
    if (!Number.isInteger(qid) || qid < 0 || qid >= MAX_QUEUES || !this.running()) return;
    const lock = this.cqLocks[qid] as SharedMutex;
    let corked = 0;
    lock.lock();
    try {
      if (this.get(cqWord(qid, CQW.VALID)) === 0) return;
      if (this.shadowDoorbells) {
        const size = this.get(cqWord(qid, CQW.SIZE));
        this.shadowHead(qid, size, this.get(cqWord(qid, CQW.HEAD)), this.get(cqWord(qid, CQW.TAIL)));
      }
      corked = this.get(cqWord(qid, CQW.CORKED));
      this.set(cqWord(qid, CQW.CORKED), 0);
    } finally {
      lock.unlock();
    }
    for (let q = 0; corked !== 0; q++, corked >>>= 1) if (corked & 1) this.processQueue(q);
    this.updateIntx();
  }

  /**
   * With SQ `qid` locked: run its entries until it is empty or its CQ is
   * full. Returns the CQ id if completions were posted, else -1.
   */
  private drainLocked(qid: number): number {
    if (!this.running() || this.get(sqWord(qid, SQW.VALID)) === 0 || !this.env.busMaster()) return -1;
    const ring = this.sqRing(qid);
    if (!ring) return -1; // validated at creation; cannot happen while the layout is fixed
    const size = this.get(sqWord(qid, SQW.SIZE));
    const cqid = this.get(sqWord(qid, SQW.CQID));
    const shadow = this.shadowDoorbells;
    let head = this.get(sqWord(qid, SQW.HEAD));
    let tail = this.get(sqWord(qid, SQW.TAIL));
    if (shadow) tail = this.shadowTail(qid, size, head, tail);
    let posted = false;
    for (;;) {
      if (head === tail) {
        if (!shadow) break;
        // Ask for a doorbell on the next submission, then look once more:
        // the host may have written the shadow before it saw our EventIdx.
        this.eventIdxWrite(2 * qid, tail);
        this.fence();
        tail = this.shadowTail(qid, size, head, tail);
        if (head === tail) break;
        continue;
      }
      if (!this.reserve(cqid, qid)) break;
      const off = head * SQE_SIZE;
      for (let i = 0; i < this.cmd.length; i++) this.cmd[i] = ring.readU32(off + 4 * i) ?? 0;
      head = head + 1 === size ? 0 : head + 1;
      this.set(sqWord(qid, SQW.HEAD), head);
      this.result = 0;
      const status = qid === 0 ? this.admin() : this.io();
      this.post(cqid, qid, head, this.cmd[SQE.CDW0]! >>> SQE_DW0.CID_SHIFT, status);
      posted = true;
    }
    return posted ? cqid : -1;
  }

  /** Reserve a completion slot on `cqid` for SQ `sqid`; false (and SQ corked) if the CQ is full. */
  private reserve(cqid: number, sqid: number): boolean {
    const lock = this.cqLocks[cqid] as SharedMutex;
    lock.lock();
    try {
      const size = this.get(cqWord(cqid, CQW.SIZE));
      const tail = this.get(cqWord(cqid, CQW.TAIL));
      const reserved = this.get(cqWord(cqid, CQW.RESERVED));
      let head = this.get(cqWord(cqid, CQW.HEAD));
      if (cqFree(size, head, tail, reserved) <= 0 && this.shadowDoorbells) {
        head = this.shadowHead(cqid, size, head, tail);
        if (cqFree(size, head, tail, reserved) <= 0) {
          // Ask for a doorbell when the host consumes, then look once more.
          this.eventIdxWrite(2 * cqid + 1, head);
          this.fence();
          head = this.shadowHead(cqid, size, head, tail);
        }
      }
      if (cqFree(size, head, tail, reserved) <= 0) {
        this.set(cqWord(cqid, CQW.CORKED), this.get(cqWord(cqid, CQW.CORKED)) | (1 << sqid));
        return false;
      }
      this.set(cqWord(cqid, CQW.RESERVED), reserved + 1);
      return true;
    } finally {
      lock.unlock();
    }
  }

  /** Post a completion into a reserved slot. */
  private post(cqid: number, sqid: number, sqhd: number, cid: number, status: number): void {
    const lock = this.cqLocks[cqid] as SharedMutex;
    lock.lock();
    try {
      const ring = this.cqRing(cqid);
      const size = this.get(cqWord(cqid, CQW.SIZE));
      let tail = this.get(cqWord(cqid, CQW.TAIL));
      let phase = this.get(cqWord(cqid, CQW.PHASE));
      if (ring) {
        const off = tail * CQE_SIZE;
        ring.writeU32(off, this.result);
        ring.writeU32(off + 4, 0);
        ring.writeU32(off + 8, (sqhd | (sqid << 16)) >>> 0);
        // Dword 3 (with the phase tag that makes the entry valid) goes last.
        this.fence();
        ring.writeU32(off + 12, (cid | (phase << CQE_DW3.PHASE_SHIFT) | (status << CQE_DW3.STATUS_SHIFT)) >>> 0);
      }
      tail++;
      if (tail === size) {
        tail = 0;
        phase ^= 1;
      }
      this.set(cqWord(cqid, CQW.TAIL), tail);
      this.set(cqWord(cqid, CQW.PHASE), phase);
      this.set(cqWord(cqid, CQW.RESERVED), this.get(cqWord(cqid, CQW.RESERVED)) - 1);
      // Pin-based interrupts must drop once the host has consumed everything:
      // with shadow doorbells, ask for a doorbell when it consumes the last entry.
      if (this.shadowDoorbells && this.get(cqWord(cqid, CQW.IEN)) !== 0 && !this.env.msixEnabled()) {
        this.eventIdxWrite(2 * cqid + 1, (tail + size - 1) % size);
      }
    } finally {
      lock.unlock();
    }
  }

  private interrupt(cqid: number): void {
    if (this.get(cqWord(cqid, CQW.IEN)) === 0) return;
    if (this.env.msixEnabled()) this.env.notify(this.get(cqWord(cqid, CQW.IV)));
    else this.updateIntx();
  }

  /**
   * The pin-based interrupt: asserted while a valid CQ with interrupts
   * enabled holds unconsumed entries and INTMS does not mask vector 0
   * (with MSI-X on, the PCI function keeps the pin released whatever we ask).
   */
  private updateIntx(): void {
    this.intxLock.lock();
    try {
      let level = 0;
      if ((this.get(W.INTMS) & 1) === 0) {
        for (let q = 0; q < MAX_QUEUES && level === 0; q++) {
          if (
            this.get(cqWord(q, CQW.VALID)) !== 0 &&
            this.get(cqWord(q, CQW.IEN)) !== 0 &&
            this.get(cqWord(q, CQW.HEAD)) !== this.get(cqWord(q, CQW.TAIL))
          ) {
            level = 1;
          }
        }
      }
      if (this.get(W.INTX_LEVEL) !== level) {
        this.set(W.INTX_LEVEL, level);
        this.env.setIntx(level === 1);
      }
    } finally {
      this.intxLock.unlock();
    }
  }

  // ---- command execution ----

  private mapData(len: number, prot: Prot): number {
    const c = this.cmd;
    return this.prp.map(
      this.env.mem,
      c[SQE.PRP1_HI]! * TWO32 + c[SQE.PRP1_LO]!,
      c[SQE.PRP2_HI]! * TWO32 + c[SQE.PRP2_LO]!,
      len,
      prot,
    );
  }

  /** Return `bytes` to the host through the command's PRPs. */
  private sendToHost(bytes: Uint8Array): number {
    const st = this.mapData(bytes.length, Prot.Write);
    if (st === 0) copyToSegments(this.prp.segments, bytes);
    return st;
  }

  private admin(): number {
    const dw0 = this.cmd[SQE.CDW0]!;
    if (((dw0 >>> SQE_DW0.FUSE_SHIFT) & SQE_DW0.FUSE_MASK) !== 0) return STATUS.INVALID_FIELD | DNR;
    if (((dw0 >>> SQE_DW0.PSDT_SHIFT) & SQE_DW0.PSDT_MASK) !== 0) return STATUS.INVALID_FIELD | DNR;
    const h = ADMIN[dw0 & SQE_DW0.OPC_MASK];
    // Unknown opcodes: Invalid Command Opcode (the seed answers Internal Error).
    return h ? h(this) : STATUS.INVALID_OPCODE | DNR;
  }

  private io(): number {
    const dw0 = this.cmd[SQE.CDW0]!;
    // Fused operations are not supported (Identify FUSES is 0); nor are SGLs.
    if (((dw0 >>> SQE_DW0.FUSE_SHIFT) & SQE_DW0.FUSE_MASK) !== 0) return STATUS.INVALID_FIELD | DNR;
    if (((dw0 >>> SQE_DW0.PSDT_SHIFT) & SQE_DW0.PSDT_MASK) !== 0) return STATUS.INVALID_FIELD | DNR;
    const h = NVM[dw0 & SQE_DW0.OPC_MASK];
    return h ? h(this) : STATUS.INVALID_OPCODE | DNR;
  }

  /** @internal */ createIoCq(): number {
    const c = this.cmd;
    const qid = c[SQE.CDW10]! & U16;
    const size = (c[SQE.CDW10]! >>> 16) + 1;
    const pc = (c[SQE.CDW11]! & 1) !== 0;
    const ien = (c[SQE.CDW11]! & 2) !== 0;
    const iv = c[SQE.CDW11]! >>> 16;
    const base = c[SQE.PRP1_HI]! * TWO32 + c[SQE.PRP1_LO]!;
    if (qid === 0 || qid >= MAX_QUEUES) return STATUS.INVALID_QUEUE_ID | DNR;
    if (this.get(cqWord(qid, CQW.VALID)) !== 0) return STATUS.INVALID_QUEUE_ID | DNR;
    if (size < MIN_QUEUE_ENTRIES || size > MAX_IO_QUEUE_ENTRIES) return STATUS.INVALID_QUEUE_SIZE | DNR;
    if (!pc) return STATUS.INVALID_FIELD | DNR; // CAP.CQR: queues must be physically contiguous
    if (((this.get(W.CC) >>> CC.IOCQES_SHIFT) & CC.IOCQES_MASK) !== CQES_LOG2) return STATUS.INVALID_FIELD | DNR;
    if (iv >= MSIX_VECTORS || (ien && iv !== 0 && !this.env.msixEnabled())) {
      return STATUS.INVALID_INTERRUPT_VECTOR | DNR;
    }
    if (base % PAGE_SIZE !== 0 || !this.env.mem.slice(base, size * CQE_SIZE, Prot.Write)) {
      return STATUS.INVALID_FIELD | DNR;
    }
    this.cqLocks[qid]!.with(() => {
      this.makeCq(qid, base, size, ien, iv);
      this.initShadow(2 * qid + 1);
    });
    return STATUS.SUCCESS;
  }

  /** @internal */ createIoSq(): number {
    const c = this.cmd;
    const qid = c[SQE.CDW10]! & U16;
    const size = (c[SQE.CDW10]! >>> 16) + 1;
    const pc = (c[SQE.CDW11]! & 1) !== 0;
    const cqid = c[SQE.CDW11]! >>> 16;
    const base = c[SQE.PRP1_HI]! * TWO32 + c[SQE.PRP1_LO]!;
    if (qid === 0 || qid >= MAX_QUEUES) return STATUS.INVALID_QUEUE_ID | DNR;
    if (this.get(sqWord(qid, SQW.VALID)) !== 0) return STATUS.INVALID_QUEUE_ID | DNR;
    if (size < MIN_QUEUE_ENTRIES || size > MAX_IO_QUEUE_ENTRIES) return STATUS.INVALID_QUEUE_SIZE | DNR;
    if (!pc) return STATUS.INVALID_FIELD | DNR;
    if (((this.get(W.CC) >>> CC.IOSQES_SHIFT) & CC.IOSQES_MASK) !== SQES_LOG2) return STATUS.INVALID_FIELD | DNR;
    if (cqid === 0 || cqid >= MAX_QUEUES || this.get(cqWord(cqid, CQW.VALID)) === 0) {
      return STATUS.COMPLETION_QUEUE_INVALID | DNR;
    }
    if (base % PAGE_SIZE !== 0 || !this.env.mem.slice(base, size * SQE_SIZE, Prot.Read)) {
      return STATUS.INVALID_FIELD | DNR;
    }
    // Admin commands run under SQ 0's lock; SQ qid > 0 comes after it.
    this.sqLocks[qid]!.with(() => {
      this.makeSq(qid, base, size, cqid);
      this.initShadow(2 * qid);
    });
    return STATUS.SUCCESS;
  }

  /** A new queue under shadow doorbells starts at 0 in both buffers (whatever the host left there). */
  private initShadow(slot: number): void {
    if (!this.shadowDoorbells) return;
    this.shadowWrite(slot, 0);
    this.eventIdxWrite(slot, 0);
  }

  /** @internal */ deleteIoSq(): number {
    const qid = this.cmd[SQE.CDW10]! & U16;
    if (qid === 0 || qid >= MAX_QUEUES || this.get(sqWord(qid, SQW.VALID)) === 0) {
      return STATUS.INVALID_QUEUE_ID | DNR;
    }
    const lock = this.sqLocks[qid]!;
    lock.lock();
    try {
      // Nothing of this queue is in flight once we hold its lock.
      this.set(sqWord(qid, SQW.VALID), 0);
      const cqid = this.get(sqWord(qid, SQW.CQID));
      this.cqLocks[cqid]!.with(() =>
        this.set(cqWord(cqid, CQW.CORKED), this.get(cqWord(cqid, CQW.CORKED)) & ~(1 << qid)),
      );
    } finally {
      lock.unlock();
    }
    return STATUS.SUCCESS;
  }

  /** @internal */ deleteIoCq(): number {
    const qid = this.cmd[SQE.CDW10]! & U16;
    if (qid === 0 || qid >= MAX_QUEUES || this.get(cqWord(qid, CQW.VALID)) === 0) {
      return STATUS.INVALID_QUEUE_ID | DNR;
    }
    // SQs are created and deleted only here, under SQ 0's lock: this check cannot race.
    for (let q = 1; q < MAX_QUEUES; q++) {
      if (this.get(sqWord(q, SQW.VALID)) !== 0 && this.get(sqWord(q, SQW.CQID)) === qid) {
        return STATUS.INVALID_QUEUE_DELETION | DNR;
      }
    }
    this.cqLocks[qid]!.with(() => this.set(cqWord(qid, CQW.VALID), 0));
    this.updateIntx();
    return STATUS.SUCCESS;
  }

  /** @internal */ getLogPage(): number {
    // NUMDL (CDW10 31:16) and NUMDU (CDW11 15:0): dwords, zero-based. Every log reads as zeros.
    const c = this.cmd;
    const bytes = ((c[SQE.CDW11]! & U16) * 0x1_0000 + (c[SQE.CDW10]! >>> 16) + 1) * 4;
    if (bytes > MAX_TRANSFER_BYTES) return STATUS.INVALID_FIELD | DNR;
    const st = this.mapData(bytes, Prot.Write);
    if (st === 0) zeroSegments(this.prp.segments);
    return st;
  }

  /** @internal */ identify(): number {
    const cns = this.cmd[SQE.CDW10]! & 0xff;
    if (cns === CNS.CONTROLLER) return this.sendToHost(this.idCtrl);
    if (cns === CNS.NAMESPACE) {
      if (this.cmd[SQE.NSID] !== 1) return STATUS.INVALID_NAMESPACE | DNR;
      return this.sendToHost(this.idNs);
    }
    return STATUS.INVALID_FIELD | DNR;
  }

  /** @internal */ abort(): number {
    // Nothing is ever outstanding (see the file comment): "not aborted".
    this.result = 1;
    return STATUS.SUCCESS;
  }

  /** @internal */ setFeatures(): number {
    const c = this.cmd;
    const fid = c[SQE.CDW10]! & 0xff;
    if (c[SQE.CDW10]! >>> 31) return STATUS.FEATURE_NOT_SAVEABLE | DNR;
    switch (fid) {
      case FEATURE.NUMBER_OF_QUEUES: {
        const nsqr = c[SQE.CDW11]! & U16;
        const ncqr = c[SQE.CDW11]! >>> 16;
        if (nsqr === U16 || ncqr === U16) return STATUS.INVALID_FIELD | DNR;
        const nqa = Math.min(nsqr, MAX_IO_QUEUES - 1) | (Math.min(ncqr, MAX_IO_QUEUES - 1) << 16);
        this.set(W.NQA, nqa);
        this.result = nqa;
        return STATUS.SUCCESS;
      }
      case FEATURE.VOLATILE_WRITE_CACHE:
        this.set(W.WCE, c[SQE.CDW11]! & 1);
        return STATUS.SUCCESS;
      default:
        return STATUS.INVALID_FIELD | DNR;
    }
  }

  /** @internal */ getFeatures(): number {
    switch (this.cmd[SQE.CDW10]! & 0xff) {
      case FEATURE.NUMBER_OF_QUEUES:
        this.result = this.get(W.NQA);
        break;
      case FEATURE.VOLATILE_WRITE_CACHE:
        this.result = this.get(W.WCE);
        break;
      case FEATURE.OXIDE_DEVICE:
        this.result = this.info.readOnly ? 1 : 0;
        break;
      default:
        this.result = 0;
    }
    return STATUS.SUCCESS;
  }

  /** @internal */ doorbellBufferConfig(): number {
    const c = this.cmd;
    const shadow = c[SQE.PRP1_HI]! * TWO32 + c[SQE.PRP1_LO]!;
    const evtidx = c[SQE.PRP2_HI]! * TWO32 + c[SQE.PRP2_LO]!;
    const ok = (a: number): boolean =>
      a !== 0 && a % PAGE_SIZE === 0 && this.env.mem.slice(a, PAGE_SIZE, Prot.ReadWrite) !== undefined;
    if (!ok(shadow) || !ok(evtidx)) return STATUS.INVALID_FIELD | DNR;
    // We hold SQ 0's lock; take the others in order so no queue is mid-update.
    for (let q = 1; q < MAX_QUEUES; q++) this.sqLocks[q]!.lock();
    for (let q = 0; q < MAX_QUEUES; q++) this.cqLocks[q]!.lock();
    try {
      this.setAddr(W.DBS_LO, shadow);
      this.setAddr(W.DBE_LO, evtidx);
      this.set(W.DB_ON, 1);
      // Start both buffers from the values the MMIO doorbells established.
      for (let q = 0; q < MAX_QUEUES; q++) {
        if (this.get(sqWord(q, SQW.VALID))) {
          this.shadowWrite(2 * q, this.get(sqWord(q, SQW.TAIL)));
          this.eventIdxWrite(2 * q, this.get(sqWord(q, SQW.TAIL)));
        }
        if (this.get(cqWord(q, CQW.VALID))) {
          this.shadowWrite(2 * q + 1, this.get(cqWord(q, CQW.HEAD)));
          this.eventIdxWrite(2 * q + 1, this.get(cqWord(q, CQW.HEAD)));
        }
      }
    } finally {
      for (let q = MAX_QUEUES - 1; q >= 0; q--) this.cqLocks[q]!.unlock();
      for (let q = MAX_QUEUES - 1; q >= 1; q--) this.sqLocks[q]!.unlock();
    }
    return STATUS.SUCCESS;
  }

  /** @internal */ flush(): number {
    const nsid = this.cmd[SQE.NSID]!;
    if (nsid !== 1 && nsid !== 0xffff_ffff) return STATUS.INVALID_NAMESPACE | DNR;
    return this.blockStatus(this.env.block.flush(), true);
  }

  /** @internal */ readWrite(write: boolean): number {
    const c = this.cmd;
    if (c[SQE.NSID] !== 1) return STATUS.INVALID_NAMESPACE | DNR;
    const hi = c[SQE.CDW11]!;
    const nlb = (c[SQE.CDW12]! & U16) + 1;
    // LBAs at or above 2^53 are beyond any namespace (and any exact JS number).
    if (hi >= 0x20_0000) return STATUS.LBA_OUT_OF_RANGE | DNR;
    const slba = hi * TWO32 + c[SQE.CDW10]!;
    if (slba + nlb > this.info.totalBlocks) return STATUS.LBA_OUT_OF_RANGE | DNR;
    const bs = this.info.blockSize;
    const bytes = nlb * bs;
    if (bytes > MAX_TRANSFER_BYTES) return STATUS.INVALID_FIELD | DNR;
    if (write && this.info.readOnly) return STATUS.WRITE_TO_READ_ONLY_RANGE | DNR;
    // Read: the device writes guest memory; write: it reads it.
    const st = this.mapData(bytes, write ? Prot.Read : Prot.Write);
    if (st !== 0) return st;
    const segs = this.prp.segments;
    if (!write) {
      const rs = this.blockStatus(this.env.block.read(slba * bs, segs), false);
      if (rs === 0) this.env.countIo?.(false, bytes);
      return rs;
    }
    const r = this.blockStatus(this.env.block.write(slba * bs, segs), true);
    if (r === 0) this.env.countIo?.(true, bytes);
    // Force Unit Access, or the write cache turned off: durable before completion.
    if (r === 0 && ((c[SQE.CDW12]! & RW_FUA) !== 0 || this.get(W.WCE) === 0)) {
      return this.blockStatus(this.env.block.flush(), true);
    }
    return r;
  }

  /** @internal */ datasetManagement(): number {
    const c = this.cmd;
    if (c[SQE.NSID] !== 1) return STATUS.INVALID_NAMESPACE | DNR;
    if ((c[SQE.CDW11]! & DSM.AD) === 0) return STATUS.SUCCESS; // attributes only: hints we ignore
    if (this.info.readOnly) return STATUS.WRITE_TO_READ_ONLY_RANGE | DNR;
    const n = (c[SQE.CDW10]! & 0xff) + 1;
    const bytes = n * DSM.RANGE_BYTES;
    const st = this.mapData(bytes, Prot.Read);
    if (st !== 0) return st;
    copyFromSegments(this.prp.segments, this.ranges.subarray(0, bytes));
    const dv = this.rangesView;
    // Check every range before deallocating any.
    for (let i = 0; i < n; i++) {
      const len = dv.getUint32(16 * i + 4, true);
      const hi = dv.getUint32(16 * i + 12, true);
      const slba = hi * TWO32 + dv.getUint32(16 * i + 8, true);
      if (hi >= 0x20_0000 || slba + len > this.info.totalBlocks) return STATUS.LBA_OUT_OF_RANGE | DNR;
    }
    if (!this.info.supportsDiscard) return STATUS.SUCCESS; // deallocation is advisory
    const bs = this.info.blockSize;
    for (let i = 0; i < n; i++) {
      const len = dv.getUint32(16 * i + 4, true);
      if (len === 0) continue;
      const slba = dv.getUint32(16 * i + 12, true) * TWO32 + dv.getUint32(16 * i + 8, true);
      const res = this.env.block.discard(slba * bs, len * bs);
      if (res !== BlockResult.Success && res !== BlockResult.Unsupported) return this.blockStatus(res, true);
    }
    return STATUS.SUCCESS;
  }

  private blockStatus(r: BlockResult, write: boolean): number {
    switch (r) {
      case BlockResult.Success:
        return STATUS.SUCCESS;
      case BlockResult.ReadOnly:
        return STATUS.WRITE_TO_READ_ONLY_RANGE | DNR;
      case BlockResult.Unsupported:
        return STATUS.INTERNAL_ERROR | DNR;
      case BlockResult.Failure:
        return write ? STATUS.WRITE_FAULT : STATUS.UNRECOVERED_READ_ERROR;
    }
  }

  // ---- lifecycle and state (main thread, vCPUs paused) ----

  /** Power-on state: registers, features and queues as after a cold start. */
  powerOn(): void {
    this.lockAll();
    try {
      powerOn(this.w);
    } finally {
      this.unlockAll();
    }
    this.updateIntx();
  }

  exportState(): NvmeCtrlState {
    this.lockAll();
    try {
      const cqs: NvmeCqState[] = [];
      const sqs: NvmeSqState[] = [];
      for (let q = 0; q < MAX_QUEUES; q++) {
        if (this.get(cqWord(q, CQW.VALID))) {
          cqs.push({
            id: q,
            base: BigInt(this.addr(cqWord(q, CQW.BASE_LO))),
            size: this.get(cqWord(q, CQW.SIZE)),
            head: this.get(cqWord(q, CQW.HEAD)),
            tail: this.get(cqWord(q, CQW.TAIL)),
            phase: this.get(cqWord(q, CQW.PHASE)) !== 0,
            ien: this.get(cqWord(q, CQW.IEN)) !== 0,
            iv: this.get(cqWord(q, CQW.IV)),
          });
        }
        if (this.get(sqWord(q, SQW.VALID))) {
          sqs.push({
            id: q,
            base: BigInt(this.addr(sqWord(q, SQW.BASE_LO))),
            size: this.get(sqWord(q, SQW.SIZE)),
            head: this.get(sqWord(q, SQW.HEAD)),
            tail: this.get(sqWord(q, SQW.TAIL)),
            cq_id: this.get(sqWord(q, SQW.CQID)),
          });
        }
      }
      const nqa = this.get(W.NQA);
      return {
        cap: CAP_BIG,
        cc: this.get(W.CC),
        csts: this.get(W.CSTS),
        aqa: this.get(W.AQA),
        intms: this.get(W.INTMS),
        asq_base: BigInt(this.addr(W.ASQ_LO)),
        acq_base: BigInt(this.addr(W.ACQ_LO)),
        dbbuf_shadow: BigInt(this.shadowDoorbells ? this.addr(W.DBS_LO) : 0),
        dbbuf_evtidx: BigInt(this.shadowDoorbells ? this.addr(W.DBE_LO) : 0),
        nsqa: nqa & U16,
        ncqa: nqa >>> 16,
        wce: this.get(W.WCE) !== 0,
        cqs,
        sqs,
      };
    } finally {
      this.unlockAll();
    }
  }

  /** The payload for exportState(). */
  exportPayload(): ReturnType<typeof NvmeCtrlV1.encode> {
    return NvmeCtrlV1.encode(this.exportState());
  }

  /**
   * Check a decoded state for meaning against this controller and guest
   * memory: a message naming the first problem, or undefined.
   */
  checkImport(s: NvmeCtrlState): string | undefined {
    return checkState(s, this.env.mem, CAP_BIG);
  }

  /** Apply a state that passed checkImport (vCPUs paused). */
  importState(s: NvmeCtrlState): void {
    this.lockAll();
    try {
      powerOn(this.w);
      this.set(W.CC, s.cc);
      this.set(W.CSTS, s.csts);
      this.set(W.AQA, s.aqa);
      this.set(W.INTMS, s.intms);
      this.setAddr(W.ASQ_LO, Number(s.asq_base));
      this.setAddr(W.ACQ_LO, Number(s.acq_base));
      if (s.dbbuf_shadow !== 0n) {
        this.setAddr(W.DBS_LO, Number(s.dbbuf_shadow));
        this.setAddr(W.DBE_LO, Number(s.dbbuf_evtidx));
        this.set(W.DB_ON, 1);
      }
      this.set(W.NQA, s.nsqa | (s.ncqa << 16));
      this.set(W.WCE, s.wce ? 1 : 0);
      for (const q of s.cqs) {
        this.makeCq(q.id, Number(q.base), q.size, q.ien, q.iv);
        this.set(cqWord(q.id, CQW.HEAD), q.head);
        this.set(cqWord(q.id, CQW.TAIL), q.tail);
        this.set(cqWord(q.id, CQW.PHASE), q.phase ? 1 : 0);
      }
      for (const q of s.sqs) {
        this.makeSq(q.id, Number(q.base), q.size, q.cq_id);
        this.set(sqWord(q.id, SQW.HEAD), q.head);
        this.set(sqWord(q.id, SQW.TAIL), q.tail);
        // An SQ with entries left may have been waiting for CQ space:
        // resume it at the next CQ doorbell (the cork itself is not saved).
        if (q.head !== q.tail) {
          const i = cqWord(q.cq_id, CQW.CORKED);
          this.set(i, this.get(i) | (1 << q.id));
        }
      }
      // The interrupt level is recomputed below.
      this.set(W.INTX_LEVEL, 0);
    } finally {
      this.unlockAll();
    }
    this.env.setIntx(false);
    this.updateIntx();
  }
}

/** Power-on values of every word (locks stay as they are: the caller may hold them). */
function powerOn(w: Int32Array): void {
  for (let i = 0; i < W.QUEUES; i++) {
    if (i !== W.CTL_LOCK && i !== W.INTX_LOCK && i !== W.QGEN) Atomics.store(w, i, 0);
  }
  for (let q = 0; q < MAX_QUEUES; q++) {
    for (let k = 1; k < QUEUE_WORDS; k++) {
      Atomics.store(w, sqWord(q, k), 0);
      Atomics.store(w, cqWord(q, k), 0);
    }
    // Fresh stamps, so no thread keeps a view of a queue from before.
    Atomics.store(w, sqWord(q, SQW.GEN), Atomics.add(w, W.QGEN, 1) + 1);
    Atomics.store(w, cqWord(q, CQW.GEN), Atomics.add(w, W.QGEN, 1) + 1);
  }
  Atomics.store(w, W.NQA, NQA_DEFAULT);
  Atomics.store(w, W.WCE, 1);
}

/** CC.IOSQES / IOCQES: 0 (not yet set) or the one size supported. */
function entrySizesOk(cc: number): boolean {
  const sqes = (cc >>> CC.IOSQES_SHIFT) & CC.IOSQES_MASK;
  const cqes = (cc >>> CC.IOCQES_SHIFT) & CC.IOCQES_MASK;
  return (sqes === 0 || sqes === SQES_LOG2) && (cqes === 0 || cqes === CQES_LOG2);
}

/** CQ slots neither holding unconsumed entries nor promised to running commands (one stays empty). */
function cqFree(size: number, head: number, tail: number, reserved: number): number {
  return size - 1 - ((tail - head + size) % size) - reserved;
}

/** A new SQ tail: inside the queue, and not moving past the head. */
function sqTailOk(size: number, head: number, tail: number, v: number): boolean {
  if (v >= size) return false;
  const added = (v - tail + size) % size;
  const free = (head - 1 - tail + 2 * size) % size;
  return added <= free;
}

/** A new CQ head: inside the queue, and not moving past the tail. */
function cqHeadOk(size: number, head: number, tail: number, v: number): boolean {
  if (v >= size) return false;
  return (v - head + size) % size <= (tail - head + size) % size;
}

// Register dispatch tables, by dword index in BAR0's first page.
const REG_READ: ((c: NvmeController) => number)[] = [];
const REG_WRITE: ((c: NvmeController, v: number) => void)[] = [];
REG_READ[REG.CAP >> 2] = () => CAP.LO;
REG_READ[(REG.CAP >> 2) + 1] = () => CAP.HI;
REG_READ[REG.VS >> 2] = () => NVME_VERSION;
// INTMS and INTMC both read the current mask.
REG_READ[REG.INTMS >> 2] = (c) => c.readWord(W.INTMS);
REG_READ[REG.INTMC >> 2] = (c) => c.readWord(W.INTMS);
REG_READ[REG.CC >> 2] = (c) => c.readCc();
REG_READ[REG.CSTS >> 2] = (c) => c.readCsts();
REG_READ[REG.AQA >> 2] = (c) => c.readWord(W.AQA);
REG_READ[REG.ASQ >> 2] = (c) => c.readWord(W.ASQ_LO);
REG_READ[(REG.ASQ >> 2) + 1] = (c) => c.readWord(W.ASQ_HI);
REG_READ[REG.ACQ >> 2] = (c) => c.readWord(W.ACQ_LO);
REG_READ[(REG.ACQ >> 2) + 1] = (c) => c.readWord(W.ACQ_HI);
REG_WRITE[REG.INTMS >> 2] = (c, v) => c.writeIntms(v, true);
REG_WRITE[REG.INTMC >> 2] = (c, v) => c.writeIntms(v, false);
REG_WRITE[REG.CC >> 2] = (c, v) => c.writeCc(v);
REG_WRITE[REG.AQA >> 2] = (c, v) => c.writeAdminReg(W.AQA, v);
REG_WRITE[REG.ASQ >> 2] = (c, v) => c.writeAdminReg(W.ASQ_LO, v);
REG_WRITE[(REG.ASQ >> 2) + 1] = (c, v) => c.writeAdminReg(W.ASQ_HI, v);
REG_WRITE[REG.ACQ >> 2] = (c, v) => c.writeAdminReg(W.ACQ_LO, v);
REG_WRITE[(REG.ACQ >> 2) + 1] = (c, v) => c.writeAdminReg(W.ACQ_HI, v);

// Command dispatch tables, by opcode.
const ADMIN: Handler[] = [];
ADMIN[ADMIN_OPC.DELETE_IO_SQ] = (c) => c.deleteIoSq();
ADMIN[ADMIN_OPC.CREATE_IO_SQ] = (c) => c.createIoSq();
ADMIN[ADMIN_OPC.GET_LOG_PAGE] = (c) => c.getLogPage();
ADMIN[ADMIN_OPC.DELETE_IO_CQ] = (c) => c.deleteIoCq();
ADMIN[ADMIN_OPC.CREATE_IO_CQ] = (c) => c.createIoCq();
ADMIN[ADMIN_OPC.IDENTIFY] = (c) => c.identify();
ADMIN[ADMIN_OPC.ABORT] = (c) => c.abort();
ADMIN[ADMIN_OPC.SET_FEATURES] = (c) => c.setFeatures();
ADMIN[ADMIN_OPC.GET_FEATURES] = (c) => c.getFeatures();
// Asynchronous events are not implemented (as in the seed).
ADMIN[ADMIN_OPC.ASYNC_EVENT_REQUEST] = () => STATUS.INVALID_OPCODE | DNR;
ADMIN[ADMIN_OPC.DOORBELL_BUFFER_CONFIG] = (c) => c.doorbellBufferConfig();

const NVM: Handler[] = [];
NVM[NVM_OPC.FLUSH] = (c) => c.flush();
NVM[NVM_OPC.WRITE] = (c) => c.readWrite(true);
NVM[NVM_OPC.READ] = (c) => c.readWrite(false);
NVM[NVM_OPC.DATASET_MANAGEMENT] = (c) => c.datasetManagement();
