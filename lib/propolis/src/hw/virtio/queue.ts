// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The device side of a split virtqueue (virtio 1.2 §2.7): pop descriptor
// chains the driver made available, push used elements back, and decide
// when to notify — with everything read from the guest treated as hostile.
//
// What is checked, and what happens when a check fails:
//  - Ring geometry (size a power of two up to the device's maximum; the
//    descriptor table 16-, the avail ring 2- and the used ring 4-byte
//    aligned; each part wholly inside one guest RAM region, the used ring
//    writable), the avail index (never more than `size` ahead of what the
//    device consumed), head and `next` indices (inside their table), chain
//    length (at most the table's entries: a loop is a chain that never
//    ends), indirect tables (only with VIRTIO_F_INDIRECT_DESC, never inside
//    another, never with NEXT, length a non-zero multiple of 16, at most
//    `maxSize` entries, inside guest RAM), framing (no device-readable
//    buffer after a device-writable one) and the total length (< 2^32).
//    Failing any of these is a *queue fault*: the queue is marked broken (it
//    is not touched again until reset) and the owner's `onFault` is told,
//    which sets DEVICE_NEEDS_RESET (pci.ts). Nothing is written.
//  - Data buffers are not checked while walking: each access through the
//    Chain helpers goes through GuestMemory and fails (returns false) if a
//    buffer is not wholly in guest RAM with the right protection; the
//    device then answers with its error status (virtio-block: IOERR).
// Guest memory is only ever touched through GuestMemory/MemSlice, so no
// failure mode can reach host memory outside guest RAM.
//
// Memory ordering against a driver on another CPU. The driver publishes
// descriptors and ring entries, then avail.idx; the device reads avail.idx
// first and the entries after it. The device writes used entries, then
// used.idx. Both directions need only that loads stay in program order
// with loads and stores with stores: x86 (TSO) gives that in hardware, and
// V8 keeps typed-array/DataView accesses in program order (they are
// effectful operations on its effect chain; it does not reorder or merge
// them across the calls in between). The one reordering x86 does make —
// a later load passing an earlier store — matters where the device stores
// and then checks the driver's view (publishing avail_event/clearing
// NO_NOTIFY, then re-reading avail.idx; storing used.idx, then reading
// used_event): there `fence()` issues an atomic read-modify-write on a
// SharedArrayBuffer, which V8 compiles to a locked instruction, a full
// barrier on x86. This file assumes an x86-64 host, as the VMM does.
//
// Threading: the queue's registers and cursors live in shared words (one
// Int32Array per queue, in a SharedArrayBuffer every thread maps); each
// thread has its own SplitQueue over them, with its own cached views of
// the rings. Processing (popAvail/pushUsed/notification decisions) happens
// only with the queue's lock held — `tryLock()` by the thread that took a
// notify, `lock.lock()` by reset and export — so at most one thread walks
// a queue at a time. Register writes (sizes, addresses, enable) come from
// the transport without the queue lock; they bump `Q.GEN`, and a walker
// picks the new geometry up at its next call.

import { record } from '../pci/state.js';
import { t } from '../../migrate.js';
import { SharedMutex } from '../../sync/mutex.js';
import { Prot, type GuestMemory, type MemSlice } from '../../vmm/memory.js';
import {
  LEGACY_PFN_SHIFT,
  VIRTIO_F,
  VIRTIO_MSI_NO_VECTOR,
  VIRTQ,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
  legacyLayout,
  virtqPartSizes,
} from './bits.js';

/** Words of one queue's shared state. */
export const Q = {
  /** SharedMutex word: held while a thread processes the queue (or resets/exports it). */
  LOCK: 0,
  /** A notify arrived while another thread held the lock (see pci.ts). */
  PENDING: 1,
  /** Current size (the driver may lower it through the modern interface). */
  SIZE: 2,
  /** queue_enable (modern). */
  ENABLED: 3,
  /** The driver has notified this queue at least once since reset (the seed's `live`). */
  LIVE: 4,
  /** Addresses have been set (the seed's `mapping_valid`). */
  MAPPED: 5,
  DESC_LO: 6,
  DESC_HI: 7,
  AVAIL_LO: 8,
  AVAIL_HI: 9,
  USED_LO: 10,
  USED_HI: 11,
  /** Next avail ring index the device will consume (u16, free-running). */
  NEXT_AVAIL: 12,
  /** Next used ring index the device will write (u16, free-running). */
  NEXT_USED: 13,
  /** NEXT_USED when the device last decided whether to notify. */
  SIGNALLED: 14,
  /** MSI-X vector for this queue (the transport's register). */
  MSIX_VECTOR: 15,
  /** Set by a queue fault; cleared by reset. */
  BROKEN: 16,
  /** Bumped whenever the geometry changes, so every thread refreshes its ring views. */
  GEN: 17,
  WORDS: 18,
} as const;

export type QueuePart = 'desc' | 'avail' | 'used';
const PART_LO: Record<QueuePart, number> = { desc: Q.DESC_LO, avail: Q.AVAIL_LO, used: Q.USED_LO };

const TWO32 = 0x1_0000_0000;

/** Ring feature bits a queue honours, as they sit in the low word of the negotiated features. */
const F_INDIRECT = 1 << VIRTIO_F.INDIRECT_DESC;
const F_EVENT_IDX = 1 << VIRTIO_F.EVENT_IDX;

// A full barrier (see the file comment): one locked RMW on a shared word.
const FENCE_WORD = new Int32Array(new SharedArrayBuffer(4));
function fence(): void {
  Atomics.add(FENCE_WORD, 0, 0);
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * One descriptor chain as the device sees it: the buffers in order, the
 * device-readable ones first. Reused for every chain a queue pops (so the
 * walk allocates nothing); valid until the next `popAvail`.
 */
export class Chain {
  /** Head descriptor index (what goes into the used ring). */
  head = 0;
  /** Buffers in the chain, zero-length ones included. */
  count = 0;
  /** The first `readable` buffers are device-readable, the rest device-writable. */
  readable = 0;
  readBytes = 0;
  writeBytes = 0;
  private readonly addrs: Float64Array;
  private readonly lens: Float64Array;

  constructor(readonly capacity: number) {
    this.addrs = new Float64Array(capacity);
    this.lens = new Float64Array(capacity);
  }

  clear(head: number): void {
    this.head = head;
    this.count = 0;
    this.readable = 0;
    this.readBytes = 0;
    this.writeBytes = 0;
  }

  /** Append a buffer; a reason string if the chain would be malformed. */
  push(addr: number, len: number, writable: boolean): string | undefined {
    if (this.count >= this.capacity) return `chain has more than ${this.capacity} descriptors`;
    if (this.readBytes + this.writeBytes + len >= TWO32) return 'chain is 4 GiB or longer';
    if (writable) {
      this.writeBytes += len;
    } else {
      if (this.readable !== this.count) return 'device-readable descriptor after a device-writable one';
      this.readable++;
      this.readBytes += len;
    }
    this.addrs[this.count] = addr;
    this.lens[this.count] = len;
    this.count++;
    return undefined;
  }

  /** Buffer `i`'s guest address and length (for tests and diagnostics). */
  buffer(i: number): { addr: number; len: number; writable: boolean } {
    return { addr: this.addrs[i] as number, len: this.lens[i] as number, writable: i >= this.readable };
  }

  /**
   * Walk `len` bytes starting `off` bytes into the readable (`writable`
   * false) or writable part, calling `fn(gpa, n, pos)` for each contiguous
   * piece (`pos` = bytes done before it). False if the part is too short
   * or `fn` refuses a piece.
   */
  private pieces(
    writable: boolean,
    off: number,
    len: number,
    fn: (gpa: number, n: number, pos: number) => boolean,
  ): boolean {
    const total = writable ? this.writeBytes : this.readBytes;
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > total) {
      return false;
    }
    let i = writable ? this.readable : 0;
    const end = writable ? this.count : this.readable;
    let skip = off;
    let pos = 0;
    for (; i < end && pos < len; i++) {
      const blen = this.lens[i] as number;
      if (skip >= blen) {
        skip -= blen;
        continue;
      }
      const n = Math.min(blen - skip, len - pos);
      if (!fn((this.addrs[i] as number) + skip, n, pos)) return false;
      pos += n;
      skip = 0;
    }
    return pos === len;
  }

  /** Copy readable bytes `[off, off + dst.length)` into `dst`. */
  read(mem: GuestMemory, off: number, dst: Uint8Array): boolean {
    return this.pieces(false, off, dst.length, (gpa, n, pos) => mem.read(gpa, dst.subarray(pos, pos + n)));
  }

  /** Copy `src` into the writable part at `off`. Pieces before a failing one may have been written. */
  write(mem: GuestMemory, off: number, src: Uint8Array): boolean {
    return this.pieces(true, off, src.length, (gpa, n, pos) => mem.write(gpa, src.subarray(pos, pos + n)));
  }

  /** Write one byte at `off` in the writable part. */
  writeU8(mem: GuestMemory, off: number, v: number): boolean {
    return this.pieces(true, off, 1, (gpa) => mem.writeU8(gpa, v));
  }

  /**
   * Views of guest memory covering `len` bytes at `off` of the readable
   * (`writable` false) or writable part, appended to `out`. False (and
   * `out` partly filled) if any piece is not wholly in guest RAM with the
   * needed protection.
   */
  views(mem: GuestMemory, writable: boolean, off: number, len: number, out: Uint8Array[]): boolean {
    const prot = writable ? Prot.Write : Prot.Read;
    return this.pieces(writable, off, len, (gpa, n) => {
      if (n === 0) return true;
      const s = mem.slice(gpa, n, prot);
      if (!s) return false;
      out.push(s.bytes);
      return true;
    });
  }
}

export interface QueueStateV1Shape {
  id: number;
  size: number;
  descr_gpa: bigint;
  mapping_valid: boolean;
  live: boolean;
  enabled: boolean;
  is_control: boolean;
  notify_data: number;
  avail_gpa: bigint;
  avail_cur_idx: number;
  used_gpa: bigint;
  used_idx: number;
}

/** One queue in the seed's `pci-virtio` payload (`VirtQueueV1`). */
export const VirtQueueV1 = record({
  id: t.u16,
  size: t.u16,
  descr_gpa: t.u64,
  mapping_valid: t.bool,
  live: t.bool,
  enabled: t.bool,
  is_control: t.bool,
  notify_data: t.u16,
  avail_gpa: t.u64,
  avail_cur_idx: t.u16,
  used_gpa: t.u64,
  used_idx: t.u16,
});

export class SplitQueue {
  /** The chain `popAvail` returns (reused). */
  readonly chain: Chain;
  readonly lock: SharedMutex;
  /** Why the queue last faulted on this thread (diagnostics). */
  fault: string | undefined;
  private readonly w: Int32Array;
  // This thread's views of the rings, valid for `gen` and `mem`.
  private gen = -1;
  private mem: GuestMemory | undefined;
  private desc: MemSlice | undefined;
  private avail: MemSlice | undefined;
  private used: MemSlice | undefined;
  private size = 0;

  /**
   * `words` is this queue's shared state (Q.WORDS int32s, set up by
   * `SplitQueue.init`); `features[0]` holds the low 32 bits of the
   * negotiated features, of which the queue honours INDIRECT_DESC and
   * EVENT_IDX; `onFault` hears about queue faults (with the queue lock held).
   */
  constructor(
    readonly index: number,
    readonly maxSize: number,
    words: Int32Array,
    private readonly features: Int32Array,
    private readonly onFault: (q: SplitQueue, why: string) => void = () => {},
  ) {
    if (!isPow2(maxSize) || maxSize > VIRTQ_MAX_SIZE) throw new RangeError(`queue size ${maxSize}`);
    if (words.length < Q.WORDS) throw new RangeError('queue state too small');
    this.w = words;
    this.lock = new SharedMutex(words.subarray(Q.LOCK, Q.LOCK + 1));
    // Direct part (at most `size` ≤ maxSize) plus one indirect table (at most maxSize).
    this.chain = new Chain(2 * maxSize);
  }

  /** Shared state for `count` queues; use `words(sab, i)` for queue i. */
  static allocate(count: number): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * Q.WORDS * count);
  }

  static words(sab: SharedArrayBuffer, i: number): Int32Array {
    return new Int32Array(sab, 4 * Q.WORDS * i, Q.WORDS);
  }

  // ---- shared registers ----

  private get(i: number): number {
    return Atomics.load(this.w, i);
  }

  private set(i: number, v: number): void {
    Atomics.store(this.w, i, v);
  }

  private bump(): void {
    Atomics.add(this.w, Q.GEN, 1);
  }

  /** Power-on state (with the lock held, or before any thread uses the queue). */
  reset(): void {
    for (let i: number = Q.SIZE; i < Q.WORDS; i++) if (i !== Q.GEN) this.set(i, 0);
    this.set(Q.SIZE, this.maxSize);
    this.set(Q.MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
    this.set(Q.PENDING, 0);
    this.fault = undefined;
    this.bump();
  }

  get currentSize(): number {
    return this.get(Q.SIZE);
  }

  /** Set the size (modern queue_size); false for a size that is not a power of two in 1..maxSize. */
  setSize(n: number): boolean {
    if (!isPow2(n) || n > this.maxSize) return false;
    this.set(Q.SIZE, n);
    this.bump();
    return true;
  }

  get enabled(): boolean {
    return this.get(Q.ENABLED) !== 0;
  }

  enable(): void {
    this.set(Q.ENABLED, 1);
    this.bump();
  }

  get mapped(): boolean {
    return this.get(Q.MAPPED) !== 0;
  }

  get broken(): boolean {
    return this.get(Q.BROKEN) !== 0;
  }

  get live(): boolean {
    return this.get(Q.LIVE) !== 0;
  }

  markLive(): void {
    if (this.get(Q.LIVE) === 0) this.set(Q.LIVE, 1);
  }

  get msixVector(): number {
    return this.get(Q.MSIX_VECTOR);
  }

  set msixVector(v: number) {
    this.set(Q.MSIX_VECTOR, v);
  }

  /** A part's guest address (may be beyond 2^53 if the guest wrote it so; such an address is never valid). */
  addr(part: QueuePart): number {
    const lo = PART_LO[part];
    return (this.get(lo + 1) >>> 0) * TWO32 + (this.get(lo) >>> 0);
  }

  /** The 32-bit half `half` (0 low, 1 high) of a part's address, as the register reads. */
  addrWord(part: QueuePart, half: 0 | 1): number {
    return this.get(PART_LO[part] + half) >>> 0;
  }

  /** A driver write of one 32-bit half of an address (modern queue_desc/driver/device). */
  setAddrWord(part: QueuePart, half: 0 | 1, v: number): void {
    this.set(PART_LO[part] + half, v | 0);
    this.set(Q.MAPPED, 1);
    this.bump();
  }

  /** Set all three addresses (tests, import). */
  setAddrs(desc: number, avail: number, used: number): void {
    const put = (p: QueuePart, a: number): void => {
      this.set(PART_LO[p], (a % TWO32) | 0);
      this.set(PART_LO[p] + 1, Math.floor(a / TWO32) | 0);
    };
    put('desc', desc);
    put('avail', avail);
    put('used', used);
    this.set(Q.MAPPED, 1);
    this.bump();
  }

  /**
   * The legacy Queue Address register: the page frame of a queue laid out
   * the legacy way at the current size; 0 unmaps the queue.
   */
  setLegacyPfn(pfn: number): void {
    if (pfn === 0) {
      this.set(Q.MAPPED, 0);
      this.bump();
      return;
    }
    const l = legacyLayout((pfn >>> 0) * 2 ** LEGACY_PFN_SHIFT, this.currentSize);
    this.setAddrs(l.desc, l.avail, l.used);
  }

  /** The Queue Address register as it reads: the descriptor table's page frame. */
  get legacyPfn(): number {
    return this.mapped ? Math.floor(this.addr('desc') / 2 ** LEGACY_PFN_SHIFT) % TWO32 : 0;
  }

  get nextAvail(): number {
    return this.get(Q.NEXT_AVAIL);
  }

  get nextUsed(): number {
    return this.get(Q.NEXT_USED);
  }

  private get eventIdx(): boolean {
    return (Atomics.load(this.features, 0) & F_EVENT_IDX) !== 0;
  }

  private get indirect(): boolean {
    return (Atomics.load(this.features, 0) & F_INDIRECT) !== 0;
  }

  // ---- geometry ----

  /**
   * Check the geometry against guest memory: why the queue cannot be used,
   * or undefined. Does not change anything.
   */
  validate(mem: GuestMemory): string | undefined {
    const r = this.resolveParts(mem);
    return typeof r === 'string' ? r : undefined;
  }

  private resolveParts(mem: GuestMemory): string | { desc: MemSlice; avail: MemSlice; used: MemSlice; size: number } {
    const size = this.currentSize;
    if (!isPow2(size) || size > this.maxSize) return `queue size ${size} is not a power of two up to ${this.maxSize}`;
    const sizes = virtqPartSizes(size);
    const desc = this.addr('desc');
    const avail = this.addr('avail');
    const used = this.addr('used');
    const hex = (n: number): string => `0x${n.toString(16)}`;
    if (desc % VIRTQ.DESC_ALIGN !== 0) return `descriptor table ${hex(desc)} is not 16-byte aligned`;
    if (avail % VIRTQ.AVAIL_ALIGN !== 0) return `avail ring ${hex(avail)} is not 2-byte aligned`;
    if (used % VIRTQ.USED_ALIGN !== 0) return `used ring ${hex(used)} is not 4-byte aligned`;
    const d = mem.slice(desc, sizes.desc, Prot.Read);
    if (!d) return `descriptor table ${hex(desc)}+${hex(sizes.desc)} is not in guest RAM`;
    const a = mem.slice(avail, sizes.avail, Prot.Read);
    if (!a) return `avail ring ${hex(avail)}+${hex(sizes.avail)} is not in guest RAM`;
    const u = mem.slice(used, sizes.used, Prot.ReadWrite);
    if (!u) return `used ring ${hex(used)}+${hex(sizes.used)} is not in writable guest RAM`;
    return { desc: d, avail: a, used: u, size };
  }

  /** Mark the queue broken and tell the owner (lock held). */
  private raise(why: string): void {
    this.fault = why;
    if (this.get(Q.BROKEN) === 0) {
      this.set(Q.BROKEN, 1);
      this.onFault(this, why);
    }
  }

  /** With the lock held: are the rings usable? Refreshes this thread's views when the geometry changed. */
  private ready(mem: GuestMemory): boolean {
    if (this.get(Q.BROKEN) !== 0) return false;
    const gen = this.get(Q.GEN);
    if (gen !== this.gen || mem !== this.mem) {
      this.gen = gen;
      this.mem = mem;
      this.desc = this.avail = this.used = undefined;
      if (!this.mapped) return false;
      const r = this.resolveParts(mem);
      if (typeof r === 'string') {
        this.raise(r);
        return false;
      }
      this.desc = r.desc;
      this.avail = r.avail;
      this.used = r.used;
      this.size = r.size;
    }
    return this.desc !== undefined;
  }

  // ---- processing (lock held) ----

  /**
   * Take the lock if free (the notify path; see pci.ts for what a loser
   * does). Relies on SharedMutex's documented encoding (0 unlocked, 1
   * locked); `unlock()` stays SharedMutex's, so waiters in `lock()` are woken.
   */
  tryLock(): boolean {
    return Atomics.compareExchange(this.lock.buffer, 0, 0, 1) === 0;
  }

  /** Record that the queue needs a processing pass (any thread). */
  markPending(): void {
    Atomics.store(this.w, Q.PENDING, 1);
  }

  get isPending(): boolean {
    return Atomics.load(this.w, Q.PENDING) !== 0;
  }

  /** Clear the mark; true if it was set. */
  takePending(): boolean {
    return Atomics.exchange(this.w, Q.PENDING, 0) !== 0;
  }

  /** Chains the driver has made available and the device has not popped yet (0 if unusable). */
  pending(mem: GuestMemory): number {
    if (!this.ready(mem)) return 0;
    const n = ((this.avail as MemSlice).readU16(VIRTQ.R_IDX) as number) - this.get(Q.NEXT_AVAIL);
    return n & 0xffff;
  }

  /**
   * The next available chain, or undefined when there is none — or when
   * the ring or the chain is malformed, in which case the queue faulted
   * (see the file comment) and `broken` is now true.
   */
  popAvail(mem: GuestMemory): Chain | undefined {
    if (!this.ready(mem)) return undefined;
    const avail = this.avail as MemSlice;
    const size = this.size;
    // avail.idx first, then the ring entry it covers (see the file comment).
    const idx = avail.readU16(VIRTQ.R_IDX) as number;
    const next = this.get(Q.NEXT_AVAIL);
    const n = (idx - next) & 0xffff;
    if (n === 0) return undefined;
    if (n > size) {
      this.raise(`avail index ${idx} is ${n} entries ahead of the device's ${next} (queue size ${size})`);
      return undefined;
    }
    const head = avail.readU16(VIRTQ.RING_HEADER + VIRTQ.AVAIL_ELEM * (next & (size - 1))) as number;
    this.set(Q.NEXT_AVAIL, (next + 1) & 0xffff);
    const why = this.walk(mem, head);
    if (why !== undefined) {
      this.raise(`chain at head ${head}: ${why}`);
      return undefined;
    }
    return this.chain;
  }

  /** Follow the chain from `head` into `this.chain`; a reason if it is malformed. */
  private walk(mem: GuestMemory, head: number): string | undefined {
    const c = this.chain;
    c.clear(head);
    let table = this.desc as MemSlice;
    let entries = this.size;
    let inIndirect = false;
    let i = head;
    let hops = 0;
    for (;;) {
      if (i >= entries) return `descriptor index ${i} is outside a table of ${entries}`;
      // More hops than entries means a loop (or a chain longer than the table allows).
      if (++hops > entries) return `more than ${entries} descriptors: a loop or an over-long chain`;
      const o = VIRTQ.DESC_SIZE * i;
      const lo = table.readU32(o + VIRTQ.D_ADDR) as number;
      const hi = table.readU32(o + VIRTQ.D_ADDR + 4) as number;
      const len = table.readU32(o + VIRTQ.D_LEN) as number;
      const flags = table.readU16(o + VIRTQ.D_FLAGS) as number;
      const next = table.readU16(o + VIRTQ.D_NEXT) as number;
      const addr = hi * TWO32 + lo;
      if (flags & VIRTQ_DESC_F.INDIRECT) {
        if (inIndirect) return 'indirect descriptor inside an indirect table';
        if (!this.indirect) return 'indirect descriptor without VIRTIO_F_INDIRECT_DESC';
        if (flags & VIRTQ_DESC_F.NEXT) return 'indirect descriptor with NEXT set';
        if (len === 0 || len % VIRTQ.DESC_SIZE !== 0) return `indirect table length ${len} is not a multiple of 16`;
        const n = len / VIRTQ.DESC_SIZE;
        if (n > this.maxSize) return `indirect table of ${n} descriptors exceeds ${this.maxSize}`;
        const t = mem.slice(addr, len, Prot.Read);
        if (!t) return `indirect table 0x${addr.toString(16)}+${len} is not in guest RAM`;
        // The WRITE flag of the descriptor naming the table is ignored (spec §2.7.5.3.2).
        table = t;
        entries = n;
        inIndirect = true;
        i = 0;
        hops = 0;
        continue;
      }
      const why = c.push(addr, len, (flags & VIRTQ_DESC_F.WRITE) !== 0);
      if (why !== undefined) return why;
      if ((flags & VIRTQ_DESC_F.NEXT) === 0) return undefined;
      i = next;
    }
  }

  /** Put `head` in the used ring with `len` bytes written. False if the queue is unusable. */
  pushUsed(mem: GuestMemory, head: number, len: number): boolean {
    if (!this.ready(mem)) return false;
    const used = this.used as MemSlice;
    const next = this.get(Q.NEXT_USED);
    const slot = VIRTQ.RING_HEADER + VIRTQ.USED_ELEM * (next & (this.size - 1));
    used.writeU32(slot, head >>> 0);
    used.writeU32(slot + 4, Math.min(Math.max(len, 0), TWO32 - 1) >>> 0);
    // The element is stored before the index that publishes it (see the file comment).
    used.writeU16(VIRTQ.R_IDX, (next + 1) & 0xffff);
    this.set(Q.NEXT_USED, (next + 1) & 0xffff);
    return true;
  }

  /** While processing: ask the driver not to notify (NO_NOTIFY; with EVENT_IDX the stale avail_event does it). */
  suppressNotify(mem: GuestMemory): void {
    if (!this.ready(mem) || this.eventIdx) return;
    (this.used as MemSlice).writeU16(VIRTQ.R_FLAGS, VIRTQ_USED_F_NO_NOTIFY);
  }

  /**
   * After processing: ask for notifications again (clear NO_NOTIFY, or
   * publish avail_event = the next index the device will consume), then
   * look again — true if the driver made more chains available meanwhile,
   * which the caller must process since the driver may not have notified.
   */
  resumeNotify(mem: GuestMemory): boolean {
    if (!this.ready(mem)) return false;
    const used = this.used as MemSlice;
    if (this.eventIdx) {
      used.writeU16(VIRTQ.RING_HEADER + VIRTQ.USED_ELEM * this.size, this.get(Q.NEXT_AVAIL));
    } else {
      used.writeU16(VIRTQ.R_FLAGS, 0);
    }
    fence();
    return ((this.avail as MemSlice).readU16(VIRTQ.R_IDX) as number) !== this.get(Q.NEXT_AVAIL);
  }

  /**
   * Should the driver be notified of the used elements pushed since the
   * last call? EVENT_IDX: when used_event lies among them; otherwise
   * unless the driver set NO_INTERRUPT.
   */
  takeSignal(mem: GuestMemory): boolean {
    if (!this.ready(mem)) return false;
    const now = this.get(Q.NEXT_USED);
    const old = this.get(Q.SIGNALLED);
    if (now === old) return false;
    this.set(Q.SIGNALLED, now);
    const avail = this.avail as MemSlice;
    // Our used.idx store must be visible before we read the driver's request.
    fence();
    if (this.eventIdx) {
      const usedEvent = avail.readU16(VIRTQ.RING_HEADER + VIRTQ.AVAIL_ELEM * this.size) as number;
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return ((avail.readU16(VIRTQ.R_FLAGS) as number) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  // ---- state (lock held; vCPUs paused) ----

  exportState(): QueueStateV1Shape {
    const big = (p: QueuePart): bigint => (BigInt(this.addrWord(p, 1)) << 32n) | BigInt(this.addrWord(p, 0));
    return {
      id: this.index,
      size: this.currentSize,
      descr_gpa: big('desc'),
      mapping_valid: this.mapped,
      live: this.live,
      enabled: this.enabled,
      is_control: false,
      notify_data: this.index,
      avail_gpa: big('avail'),
      avail_cur_idx: this.nextAvail,
      used_gpa: big('used'),
      used_idx: this.nextUsed,
    };
  }

  /** Why a saved queue cannot be restored here, or undefined. `fixedSize`: legacy queues cannot be resized. */
  checkImport(s: QueueStateV1Shape, fixedSize: boolean): string | undefined {
    if (s.id !== this.index) return `queue ${this.index}: saved id ${s.id}`;
    if (fixedSize ? s.size !== this.maxSize : !isPow2(s.size) || s.size > this.maxSize) {
      return `queue ${this.index}: size ${s.size} (this queue takes ${fixedSize ? '' : 'up to '}${this.maxSize})`;
    }
    if (s.notify_data !== this.index) return `queue ${this.index}: notify data ${s.notify_data}`;
    if (s.is_control) return `queue ${this.index}: saved as a control queue`;
    return undefined;
  }

  /** Apply a state checked by checkImport. Addresses are not checked here: the next use validates them. */
  importState(s: QueueStateV1Shape, msixVector: number): void {
    this.reset();
    this.set(Q.SIZE, s.size);
    const put = (p: QueuePart, a: bigint): void => {
      this.set(PART_LO[p], Number(a & 0xffff_ffffn) | 0);
      this.set(PART_LO[p] + 1, Number(a >> 32n) | 0);
    };
    put('desc', s.descr_gpa);
    put('avail', s.avail_gpa);
    put('used', s.used_gpa);
    this.set(Q.MAPPED, s.mapping_valid ? 1 : 0);
    this.set(Q.LIVE, s.live ? 1 : 0);
    this.set(Q.ENABLED, s.enabled ? 1 : 0);
    this.set(Q.NEXT_AVAIL, s.avail_cur_idx);
    this.set(Q.NEXT_USED, s.used_idx);
    // Anything pushed before the snapshot was signalled (or deliberately not) on the source.
    this.set(Q.SIGNALLED, s.used_idx);
    this.set(Q.MSIX_VECTOR, msixVector);
    this.bump();
  }
}
