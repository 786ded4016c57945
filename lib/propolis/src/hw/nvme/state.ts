// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The controller's shared state — registers, features, the doorbell buffer
// addresses and the sixteen submission and completion queue slots — as
// 32-bit words of one SharedArrayBuffer, and the `nvme-ctrl` v1 payload.
//
// Every word is read and written with Atomics. 64-bit guest addresses are
// kept as two words (low, high) and combined into a JS number; an address
// at or above 2^53 is not a safe integer and GuestMemory refuses it.
//
// Locks (SharedMutex words inside the same buffer), always taken in this
// order: SQ locks by ascending id → CQ locks by ascending id → CTL → INTX.
//  - SQ y's lock: held while SQ y's entries are fetched and executed, and
//    while SQ y is created, deleted, reset or imported. Queue-table changes
//    happen only in admin commands (which run under SQ 0's lock), in a
//    controller reset and in import (which take every lock), so holding an
//    SQ's lock keeps that SQ — and the CQ it posts to — in place.
//  - CQ y's lock: held while CQ y's head, tail, reservations and corked set
//    change.
//  - CTL: register writes (CC, AQA, ASQ, ACQ, INTMS/INTMC).
//  - INTX: recomputing and driving the pin-based interrupt.
//
// Threading: pure layout and validation; the controller (controller.ts)
// does the locking.

import { MigrateError, schema, t } from '../../migrate.js';
import { Prot, type GuestMemory } from '../../vmm/memory.js';
import { record } from '../pci/state.js';
import {
  AQA,
  CC,
  CQE_SIZE,
  CSTS,
  MAX_ADMIN_QUEUE_ENTRIES,
  MAX_IO_QUEUE_ENTRIES,
  MAX_IO_QUEUES,
  MAX_QUEUES,
  MIN_QUEUE_ENTRIES,
  MSIX_VECTORS,
  PAGE_SIZE,
  SQE_SIZE,
} from './bits.js';

/** Controller words. */
export const W = {
  CTL_LOCK: 0,
  INTX_LOCK: 1,
  CC: 2,
  CSTS: 3,
  AQA: 4,
  ASQ_LO: 5,
  ASQ_HI: 6,
  ACQ_LO: 7,
  ACQ_HI: 8,
  INTMS: 9,
  /** 1 while a Doorbell Buffer Config is in force. */
  DB_ON: 10,
  DBS_LO: 11,
  DBS_HI: 12,
  DBE_LO: 13,
  DBE_HI: 14,
  /** Number of Queues feature: NSQA (15:0) | NCQA (31:16), zero-based. */
  NQA: 15,
  /** Volatile Write Cache feature: WCE. */
  WCE: 16,
  /** The INTx level last requested from the PCI function. */
  INTX_LEVEL: 17,
  /** Target of a full-barrier Atomics operation (see Queues.fence). */
  FENCE: 18,
  /** Bumped whenever any queue is created, deleted or imported; stamps each queue's GEN. */
  QGEN: 19,
  /** Counters of guest mistakes that have no status to carry them. */
  BAD_DOORBELLS: 20,
  BAD_REGISTER_WRITES: 21,
  QUEUES: 32,
} as const;

/** Words of one submission queue slot. */
export const SQW = {
  LOCK: 0,
  VALID: 1,
  BASE_LO: 2,
  BASE_HI: 3,
  SIZE: 4,
  HEAD: 5,
  TAIL: 6,
  CQID: 7,
  GEN: 8,
} as const;

/** Words of one completion queue slot. */
export const CQW = {
  LOCK: 0,
  VALID: 1,
  BASE_LO: 2,
  BASE_HI: 3,
  SIZE: 4,
  HEAD: 5,
  TAIL: 6,
  PHASE: 7,
  IEN: 8,
  IV: 9,
  /** Entries promised to commands being executed, not yet posted. */
  RESERVED: 10,
  /** Bit y: SQ y stopped because this CQ was full; resume it when the head moves. */
  CORKED: 11,
  GEN: 12,
} as const;

export const QUEUE_WORDS = 16;

export function sqWord(qid: number, w: number): number {
  return W.QUEUES + qid * QUEUE_WORDS + w;
}

export function cqWord(qid: number, w: number): number {
  return W.QUEUES + (MAX_QUEUES + qid) * QUEUE_WORDS + w;
}

export const STATE_WORDS = W.QUEUES + 2 * MAX_QUEUES * QUEUE_WORDS;
export const STATE_BYTES = 4 * STATE_WORDS;

export const NvmeCqV1 = record({
  id: t.u16,
  base: t.u64,
  size: t.u32,
  head: t.u16,
  tail: t.u16,
  phase: t.bool,
  ien: t.bool,
  iv: t.u16,
});

export const NvmeSqV1 = record({
  id: t.u16,
  base: t.u64,
  size: t.u32,
  head: t.u16,
  tail: t.u16,
  cq_id: t.u16,
});

/**
 * `nvme-ctrl` v1: registers, admin queue bases, doorbell-buffer addresses
 * (0 when not configured), the two features a guest can change, and the
 * live queues.
 */
export const NvmeCtrlV1 = schema('nvme-ctrl', 1, {
  cap: t.u64,
  cc: t.u32,
  csts: t.u32,
  aqa: t.u32,
  intms: t.u32,
  asq_base: t.u64,
  acq_base: t.u64,
  dbbuf_shadow: t.u64,
  dbbuf_evtidx: t.u64,
  nsqa: t.u16,
  ncqa: t.u16,
  wce: t.bool,
  cqs: t.array(NvmeCqV1, MAX_QUEUES),
  sqs: t.array(NvmeSqV1, MAX_QUEUES),
});

export type NvmeCtrlState = ReturnType<typeof NvmeCtrlV1.decode>;
export type NvmeCqState = NvmeCtrlState['cqs'][number];
export type NvmeSqState = NvmeCtrlState['sqs'][number];

export function importError(name: string, why: string): MigrateError {
  return new MigrateError('ImportFailed', `${name} (nvme-ctrl): ${why}`);
}

/**
 * Check a decoded `nvme-ctrl` state for meaning: registers with defined
 * bits only, queues inside their limits and inside guest RAM, admin queues
 * matching AQA/ASQ/ACQ, every SQ on an existing CQ. A message naming the
 * first problem, or undefined.
 */
export function checkState(s: NvmeCtrlState, mem: GuestMemory, cap: bigint): string | undefined {
  if (s.cap !== cap) return `CAP 0x${s.cap.toString(16)} is not this controller's 0x${cap.toString(16)}`;
  if ((s.cc & ~CC.WRITABLE) !== 0) return `CC 0x${s.cc.toString(16)} has undefined bits`;
  const cstsBits = CSTS.RDY | CSTS.CFS | (CSTS.SHST_MASK << CSTS.SHST_SHIFT);
  if ((s.csts & ~cstsBits) !== 0) return `CSTS 0x${s.csts.toString(16)} has undefined bits`;
  const shst = (s.csts >>> CSTS.SHST_SHIFT) & CSTS.SHST_MASK;
  if (shst !== CSTS.SHST_NORMAL && shst !== CSTS.SHST_COMPLETE) return `CSTS.SHST ${shst} is never reported`;
  const ready = (s.csts & CSTS.RDY) !== 0;
  if (ready && (s.cc & CC.EN) === 0) return 'CSTS.RDY is set but CC.EN is clear';
  if ((s.aqa & ~AQA.WRITABLE) !== 0) return `AQA 0x${s.aqa.toString(16)} has reserved bits`;
  const page = BigInt(PAGE_SIZE - 1);
  const addrOk = (a: bigint): boolean => (a & page) === 0n && a < 1n << 52n;
  if (!addrOk(s.asq_base) || !addrOk(s.acq_base)) return 'admin queue base is not a page-aligned guest address';
  if ((s.dbbuf_shadow === 0n) !== (s.dbbuf_evtidx === 0n)) return 'only one doorbell buffer address is set';
  if (s.dbbuf_shadow !== 0n) {
    if (!addrOk(s.dbbuf_shadow) || !addrOk(s.dbbuf_evtidx)) return 'doorbell buffer is not page-aligned';
    if (!ready) return 'doorbell buffer configured on a controller that is not ready';
    for (const a of [s.dbbuf_shadow, s.dbbuf_evtidx]) {
      if (!mem.slice(Number(a), PAGE_SIZE, Prot.ReadWrite)) return `doorbell buffer 0x${a.toString(16)} is not in RAM`;
    }
  }
  if (s.nsqa >= MAX_IO_QUEUES || s.ncqa >= MAX_IO_QUEUES) return `Number of Queues ${s.nsqa}/${s.ncqa} above 14`;
  if (!ready && (s.cqs.length > 0 || s.sqs.length > 0)) return 'queues exist on a controller that is not ready';
  const seen = (ids: number[]): boolean => new Set(ids).size !== ids.length;
  if (seen(s.cqs.map((q) => q.id)) || seen(s.sqs.map((q) => q.id))) return 'a queue id appears twice';
  const asqs = (s.aqa & AQA.ASQS_MASK) + 1;
  const acqs = ((s.aqa >>> AQA.ACQS_SHIFT) & AQA.ASQS_MASK) + 1;
  for (const q of s.cqs) {
    const what = `CQ ${q.id}`;
    if (q.id >= MAX_QUEUES) return `${what}: id above ${MAX_QUEUES - 1}`;
    const why = queueCheck(what, q.id, q.base, q.size, q.head, q.tail, CQE_SIZE, Prot.Write, mem);
    if (why) return why;
    if (q.iv >= MSIX_VECTORS) return `${what}: interrupt vector ${q.iv} outside 0..${MSIX_VECTORS - 1}`;
    if (q.id === 0 && (q.base !== s.acq_base || q.size !== acqs || !q.ien || q.iv !== 0)) {
      return 'admin CQ does not match ACQ/AQA';
    }
  }
  for (const q of s.sqs) {
    const what = `SQ ${q.id}`;
    if (q.id >= MAX_QUEUES) return `${what}: id above ${MAX_QUEUES - 1}`;
    const why = queueCheck(what, q.id, q.base, q.size, q.head, q.tail, SQE_SIZE, Prot.Read, mem);
    if (why) return why;
    if (!s.cqs.some((c) => c.id === q.cq_id)) return `${what}: its CQ ${q.cq_id} does not exist`;
    if ((q.id === 0) !== (q.cq_id === 0)) return `${what}: admin and I/O queues cannot pair (CQ ${q.cq_id})`;
    if (q.id === 0 && (q.base !== s.asq_base || q.size !== asqs)) return 'admin SQ does not match ASQ/AQA';
  }
  if (ready && !(s.sqs.some((q) => q.id === 0) && s.cqs.some((q) => q.id === 0))) {
    return 'a ready controller without admin queues';
  }
  return undefined;
}

function queueCheck(
  what: string,
  id: number,
  base: bigint,
  size: number,
  head: number,
  tail: number,
  entry: number,
  prot: Prot,
  mem: GuestMemory,
): string | undefined {
  const max = id === 0 ? MAX_ADMIN_QUEUE_ENTRIES : MAX_IO_QUEUE_ENTRIES;
  if (size < MIN_QUEUE_ENTRIES || size > max) return `${what}: size ${size} outside ${MIN_QUEUE_ENTRIES}..${max}`;
  if (head >= size || tail >= size) return `${what}: head ${head} / tail ${tail} outside a queue of ${size}`;
  if ((base & BigInt(PAGE_SIZE - 1)) !== 0n || base >= 1n << 52n) return `${what}: base is not page-aligned`;
  if (!mem.slice(Number(base), size * entry, prot)) return `${what}: ring at 0x${base.toString(16)} is not in RAM`;
  return undefined;
}
