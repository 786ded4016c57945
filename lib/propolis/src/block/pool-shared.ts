// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The shared memory between a BlockWorkerPool and its workers: request
// slots, one submission ring and one completion ring per worker. Nothing on
// the data path goes through postMessage.
//
//   header      SQ_HEAD, SQ_TAIL, IDLE (workers asleep), CQ_PENDING
//               (completions not yet reaped; 0 → 1 wakes the submitter)
//   sq          ring of slot numbers, one producer (the submitter) and
//               many consumers (workers claim an entry by CAS on SQ_HEAD)
//   cq[w]       per worker: head, tail, ring of slot numbers; one producer
//               (worker w) and one consumer (the submitter)
//   slot ints   per slot: op, segment count, result
//   slot f64s   per slot: byte offset, byte length (discard/write-zeroes)
//   segments    per slot: up to maxSegments (gpa, length) pairs
//
// A slot is owned by the submitter while free, by the rings and one worker
// while in flight, and is handed back through a completion ring. Its fields
// are plain memory written before the Atomics.store that publishes it and
// read after the Atomics.load that observes it; JavaScript's memory model
// makes that store/load pair order the plain accesses around it.
//
// Every ring holds queueDepth + MAX_WORKERS entries or more, so it cannot
// overflow: at most queueDepth slots exist, plus one exit marker per worker
// at stop. Indices are free-running int32 counters (wrap-around is fine:
// only differences and low bits are used).
//
// Threading: one PoolShared view per thread, over one SharedArrayBuffer.

import { MAX_WORKERS } from './options.js';
import { BlockResult } from './types.js';

const SQ_HEAD = 0;
const SQ_TAIL = 1;
const IDLE = 2;
export const CQ_PENDING = 3;
const HEADER_WORDS = 16;

const SLOT_OP = 0;
const SLOT_NSEG = 1;
const SLOT_RESULT = 2;
const SLOT_INTS = 4;

const SLOT_OFFSET = 0;
const SLOT_LEN = 1;
const SLOT_F64S = 2;

/** A worker reading this slot number from the submission ring exits. */
export const EXIT_MARKER = -1;

export interface PoolGeometry {
  readonly queueDepth: number;
  readonly workers: number;
  readonly maxSegments: number;
  /** Entries per ring, a power of two ≥ queueDepth + MAX_WORKERS. */
  readonly ringSize: number;
}

export function poolGeometry(queueDepth: number, workers: number, maxSegments: number): PoolGeometry {
  let ringSize = 1;
  while (ringSize < queueDepth + MAX_WORKERS) ringSize *= 2;
  return { queueDepth, workers, maxSegments, ringSize };
}

/** Results travel as small integers. */
const RESULTS = [BlockResult.Success, BlockResult.Failure, BlockResult.ReadOnly, BlockResult.Unsupported] as const;
const RESULT_CODE = new Map<BlockResult, number>(RESULTS.map((r, i) => [r, i]));

export class PoolShared {
  readonly hdr: Int32Array;
  private readonly sq: Int32Array;
  private readonly cq: Int32Array[];
  /** Per worker: [head, tail]. */
  private readonly cqIdx: Int32Array[];
  private readonly ints: Int32Array;
  private readonly f64s: Float64Array;
  readonly segs: Float64Array;
  private readonly mask: number;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly geo: PoolGeometry,
  ) {
    const { queueDepth: q, workers: n, maxSegments: s, ringSize: r } = geo;
    // Float64 sections first, so they are 8-byte aligned.
    let off = 0;
    this.f64s = new Float64Array(sab, off, q * SLOT_F64S);
    off += this.f64s.byteLength;
    this.segs = new Float64Array(sab, off, q * s * 2);
    off += this.segs.byteLength;
    this.hdr = new Int32Array(sab, off, HEADER_WORDS);
    off += this.hdr.byteLength;
    this.sq = new Int32Array(sab, off, r);
    off += this.sq.byteLength;
    this.cq = [];
    this.cqIdx = [];
    for (let w = 0; w < n; w++) {
      this.cqIdx.push(new Int32Array(sab, off, 2));
      off += 8;
      this.cq.push(new Int32Array(sab, off, r));
      off += r * 4;
    }
    this.ints = new Int32Array(sab, off, q * SLOT_INTS);
    this.mask = r - 1;
  }

  static bytes(geo: PoolGeometry): number {
    const { queueDepth: q, workers: n, maxSegments: s, ringSize: r } = geo;
    return q * SLOT_F64S * 8 + q * s * 16 + HEADER_WORDS * 4 + r * 4 + n * (8 + r * 4) + q * SLOT_INTS * 4;
  }

  static create(geo: PoolGeometry): PoolShared {
    return new PoolShared(new SharedArrayBuffer(PoolShared.bytes(geo)), geo);
  }

  // --- slot fields -------------------------------------------------------

  setRequest(slot: number, op: number, offset: number, len: number, nseg: number): void {
    this.ints[slot * SLOT_INTS + SLOT_OP] = op;
    this.ints[slot * SLOT_INTS + SLOT_NSEG] = nseg;
    this.f64s[slot * SLOT_F64S + SLOT_OFFSET] = offset;
    this.f64s[slot * SLOT_F64S + SLOT_LEN] = len;
  }

  op(slot: number): number {
    return this.ints[slot * SLOT_INTS + SLOT_OP]!;
  }
  nseg(slot: number): number {
    return this.ints[slot * SLOT_INTS + SLOT_NSEG]!;
  }
  offset(slot: number): number {
    return this.f64s[slot * SLOT_F64S + SLOT_OFFSET]!;
  }
  len(slot: number): number {
    return this.f64s[slot * SLOT_F64S + SLOT_LEN]!;
  }
  /** Index into `segs` of the slot's first (gpa, length) pair. */
  segBase(slot: number): number {
    return slot * this.geo.maxSegments * 2;
  }
  setResult(slot: number, r: BlockResult): void {
    this.ints[slot * SLOT_INTS + SLOT_RESULT] = RESULT_CODE.get(r) ?? 1;
  }
  result(slot: number): BlockResult {
    return RESULTS[this.ints[slot * SLOT_INTS + SLOT_RESULT]!] ?? BlockResult.Failure;
  }

  // --- submission ring ---------------------------------------------------

  /** Submitter: publish a slot (or EXIT_MARKER) to the workers. */
  push(slot: number): void {
    const t = Atomics.load(this.hdr, SQ_TAIL);
    Atomics.store(this.sq, t & this.mask, slot);
    Atomics.store(this.hdr, SQ_TAIL, (t + 1) | 0);
    // A worker about to sleep has raised IDLE before re-checking SQ_TAIL,
    // and sleeps only if SQ_TAIL still holds the value it saw, so either it
    // sees this entry or this load sees it idle (sequentially consistent).
    if (Atomics.load(this.hdr, IDLE) > 0) Atomics.notify(this.hdr, SQ_TAIL, 1);
  }

  /** Worker: claim the next slot, sleeping while there is none. */
  take(): number {
    const hdr = this.hdr;
    for (;;) {
      const h = Atomics.load(hdr, SQ_HEAD);
      const t = Atomics.load(hdr, SQ_TAIL);
      if (h !== t) {
        // Read before claiming: the entry at h cannot be reused until
        // SQ_HEAD has moved past h, in which case the CAS below fails.
        const slot = Atomics.load(this.sq, h & this.mask);
        if (Atomics.compareExchange(hdr, SQ_HEAD, h, (h + 1) | 0) === h) return slot;
        continue;
      }
      Atomics.add(hdr, IDLE, 1);
      if (Atomics.load(hdr, SQ_TAIL) === t) Atomics.wait(hdr, SQ_TAIL, t);
      Atomics.sub(hdr, IDLE, 1);
    }
  }

  // --- completion rings --------------------------------------------------

  /**
   * Worker `w`: hand a finished slot back. Returns true when the submitter
   * must be woken (no completion was pending), so the caller signals the
   * eventfd; waiters on CQ_PENDING are notified here.
   */
  complete(w: number, slot: number): boolean {
    const idx = this.cqIdx[w]!;
    const t = Atomics.load(idx, 1);
    Atomics.store(this.cq[w]!, t & this.mask, slot);
    Atomics.store(idx, 1, (t + 1) | 0);
    if (Atomics.add(this.hdr, CQ_PENDING, 1) !== 0) return false;
    Atomics.notify(this.hdr, CQ_PENDING);
    return true;
  }

  /**
   * Submitter: consume every completion published so far, calling `each`
   * per slot. Clears CQ_PENDING first: a completion published after that
   * raises it again (and wakes the submitter), so none is ever missed.
   */
  drain(each: (slot: number) => void): void {
    Atomics.exchange(this.hdr, CQ_PENDING, 0);
    for (let w = 0; w < this.cq.length; w++) {
      const idx = this.cqIdx[w]!;
      const ring = this.cq[w]!;
      let h = Atomics.load(idx, 0);
      const t = Atomics.load(idx, 1);
      while (h !== t) {
        const slot = Atomics.load(ring, h & this.mask);
        h = (h + 1) | 0;
        Atomics.store(idx, 0, h);
        each(slot);
      }
    }
  }

  /** Submitter: raise CQ_PENDING for a completion it made itself; true if it went 0 → 1. */
  raisePending(): boolean {
    if (Atomics.add(this.hdr, CQ_PENDING, 1) !== 0) return false;
    Atomics.notify(this.hdr, CQ_PENDING);
    return true;
  }
}
