// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Physical Region Page lists (NVMe 1.4 §4.3): turning a command's PRP1 and
// PRP2 and a byte count into byte views of guest memory.
//
// The rules enforced, with 4 KiB memory pages:
//  - PRP1 may start anywhere dword-aligned in its page; it covers up to the
//    end of that page;
//  - if what is left fits in one page, PRP2 is that page (offset 0);
//  - otherwise PRP2 points (qword-aligned, any offset) at a PRP list: one
//    page-aligned entry per further page; when more entries are needed than
//    are left in the list's page, the page's last entry points to the next
//    list page (page-aligned);
//  - every page named must lie in guest RAM with the protection the
//    transfer needs.
// Everything read from the guest (the list entries) is untrusted. Contiguous
// pages are merged into one view. The walk is bounded: every list page
// yields at least one data page, and the caller caps the byte count (MDTS).
//
// Threading: per-thread object (it reuses its output array); pure over the
// GuestMemory it is given.

import { Prot, type GuestMemory } from '../../vmm/memory.js';
import { DNR, PAGE_SIZE, STATUS } from './bits.js';

const TWO32 = 0x1_0000_0000;
const ENTRIES_PER_PAGE = PAGE_SIZE / 8;

export class PrpWalker {
  /** The views of the last successful `map`, in transfer order. */
  readonly segments: Uint8Array[] = [];
  private mem!: GuestMemory;
  private prot: Prot = Prot.Read;
  private runStart = 0;
  private runLen = 0;

  /**
   * Map `len` bytes (> 0) described by PRP1/PRP2 into `segments`. Returns a
   * status (0 on success; segments are then complete, otherwise empty).
   */
  map(mem: GuestMemory, prp1: number, prp2: number, len: number, prot: Prot): number {
    this.segments.length = 0;
    this.mem = mem;
    this.prot = prot;
    this.runLen = 0;
    const st = this.walk(prp1, prp2, len);
    if (st !== 0) this.segments.length = 0;
    return st;
  }

  private walk(prp1: number, prp2: number, len: number): number {
    if (!Number.isSafeInteger(len) || len <= 0) return STATUS.INVALID_FIELD | DNR;
    if (prp1 % 4 !== 0) return STATUS.PRP_OFFSET_INVALID | DNR;
    const first = Math.min(len, PAGE_SIZE - (prp1 % PAGE_SIZE));
    let st = this.add(prp1, first);
    if (st !== 0) return st;
    let rem = len - first;
    if (rem === 0) return this.flush();
    if (rem <= PAGE_SIZE) {
      if (prp2 % PAGE_SIZE !== 0) return STATUS.PRP_OFFSET_INVALID | DNR;
      st = this.add(prp2, rem);
      return st !== 0 ? st : this.flush();
    }
    if (prp2 % 8 !== 0) return STATUS.PRP_OFFSET_INVALID | DNR;
    let list = prp2;
    while (rem > 0) {
      const slots = ENTRIES_PER_PAGE - (list % PAGE_SIZE) / 8;
      for (let i = 0; i < slots && rem > 0; i++) {
        const entry = this.entry(list + 8 * i);
        if (entry === undefined) return STATUS.DATA_TRANSFER_ERROR | DNR;
        if (entry % PAGE_SIZE !== 0) return STATUS.PRP_OFFSET_INVALID | DNR;
        if (i === slots - 1 && rem > PAGE_SIZE) {
          // The page's last slot, with more than one page to go: the next list page.
          list = entry;
          break;
        }
        const n = Math.min(rem, PAGE_SIZE);
        st = this.add(entry, n);
        if (st !== 0) return st;
        rem -= n;
      }
    }
    return this.flush();
  }

  /** A 64-bit list entry as a number (unsafe values are refused later by GuestMemory). */
  private entry(gpa: number): number | undefined {
    const lo = this.mem.readU32(gpa);
    const hi = this.mem.readU32(gpa + 4);
    if (lo === undefined || hi === undefined) return undefined;
    return hi * TWO32 + lo;
  }

  private add(gpa: number, n: number): number {
    if (!Number.isSafeInteger(gpa)) return STATUS.DATA_TRANSFER_ERROR | DNR;
    if (this.runLen > 0 && this.runStart + this.runLen === gpa) {
      this.runLen += n;
      return 0;
    }
    const st = this.flush();
    this.runStart = gpa;
    this.runLen = n;
    return st;
  }

  /** Emit the current run of contiguous pages as views (one, or per page if it crosses regions). */
  private flush(): number {
    const len = this.runLen;
    if (len === 0) return 0;
    this.runLen = 0;
    const whole = this.mem.slice(this.runStart, len, this.prot);
    if (whole) {
      this.segments.push(whole.bytes);
      return 0;
    }
    // Adjacent regions: the run may still be valid page by page.
    let gpa = this.runStart;
    let left = len;
    while (left > 0) {
      const n = Math.min(left, PAGE_SIZE - (gpa % PAGE_SIZE));
      const s = this.mem.slice(gpa, n, this.prot);
      if (!s) return STATUS.DATA_TRANSFER_ERROR | DNR;
      this.segments.push(s.bytes);
      gpa += n;
      left -= n;
    }
    return 0;
  }
}

/** Copy `src` into the mapped segments (a controller-to-host transfer). */
export function copyToSegments(segments: readonly Uint8Array[], src: Uint8Array): void {
  let off = 0;
  for (const s of segments) {
    const n = Math.min(s.length, src.length - off);
    if (n <= 0) return;
    s.set(src.subarray(off, off + n));
    off += n;
  }
}

/** Fill the mapped segments with zeros. */
export function zeroSegments(segments: readonly Uint8Array[]): void {
  for (const s of segments) s.fill(0);
}

/** Copy the mapped segments into `dst` (a host-to-controller transfer). */
export function copyFromSegments(segments: readonly Uint8Array[], dst: Uint8Array): void {
  let off = 0;
  for (const s of segments) {
    const n = Math.min(s.length, dst.length - off);
    if (n <= 0) return;
    dst.set(s.subarray(0, n), off);
    off += n;
  }
}
