// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial console history, as the seed keeps it for COM1: the first
// 1 MiB the guest ever wrote (firmware banners, early boot) and the latest
// 1 MiB, addressed by absolute byte offsets since the VM was created. A
// byte between the two parts has been evicted; asking for it is an error.
// A read that starts in the first part ends at that part's end, even when
// the rolling part continues it.
//
// Threading: main thread; a plain model, no I/O.

export const HISTORY_PART_BYTES = 1024 * 1024;

export class SerialHistoryError extends Error {
  readonly code = 'SERIAL_HISTORY';
}

/** Where a read starts: an absolute offset, or a distance back from the newest byte. */
export type HistoryOffset = { fromStart: number } | { mostRecent: number };

export class SerialHistory {
  private readonly beginning: Uint8Array;
  private beginningLen = 0;
  /** Circular; `rollingLen` valid bytes ending at absolute offset `total`. */
  private readonly rolling: Uint8Array;
  private rollingLen = 0;
  private rollingHead = 0;
  private totalBytes = 0;

  constructor(private readonly partBytes = HISTORY_PART_BYTES) {
    this.beginning = new Uint8Array(partBytes);
    this.rolling = new Uint8Array(partBytes);
  }

  /** Bytes ever written (the absolute offset just past the newest byte). */
  get total(): number {
    return this.totalBytes;
  }

  /** The absolute offset of the oldest byte still in the rolling part. */
  get rollingStart(): number {
    return this.totalBytes - this.rollingLen;
  }

  append(bytes: Uint8Array): void {
    let src = bytes;
    if (this.beginningLen < this.partBytes) {
      const n = Math.min(src.length, this.partBytes - this.beginningLen);
      this.beginning.set(src.subarray(0, n), this.beginningLen);
      this.beginningLen += n;
      src = src.subarray(n);
    }
    // What the first part did not take goes to the rolling part, which
    // keeps the newest `partBytes` of it.
    this.totalBytes += bytes.length;
    if (src.length === 0) return;
    const cap = this.partBytes;
    if (src.length > cap) src = src.subarray(src.length - cap);
    let off = 0;
    while (off < src.length) {
      const n = Math.min(src.length - off, cap - this.rollingHead);
      this.rolling.set(src.subarray(off, off + n), this.rollingHead);
      this.rollingHead = (this.rollingHead + n) % cap;
      off += n;
    }
    this.rollingLen = Math.min(cap, this.rollingLen + src.length);
  }

  /** The absolute offset a read from `at` starts at. */
  resolve(at: HistoryOffset): number {
    if ('fromStart' in at) return at.fromStart;
    return Math.max(0, this.totalBytes - at.mostRecent);
  }

  /**
   * Up to `maxBytes` bytes from `at`, and the offset just past the last one.
   * Past the end: no bytes (and the offset asked for). Evicted: throws.
   */
  read(at: HistoryOffset, maxBytes: number): { data: Uint8Array; lastByteOffset: number } {
    const start = this.resolve(at);
    const data = this.slice(start, maxBytes);
    return { data, lastByteOffset: start + data.length };
  }

  private slice(start: number, maxBytes: number): Uint8Array {
    if (start >= this.totalBytes) return new Uint8Array(0);
    if (start < this.beginningLen) {
      // A read starting in the first part ends where that part ends.
      const end = Math.min(this.beginningLen, start + maxBytes);
      return this.beginning.slice(start, end);
    }
    if (start < this.rollingStart) {
      throw new SerialHistoryError(
        `requested byte offset ${start} is no longer cached: the history holds bytes 0..${this.beginningLen} ` +
          `and ${this.rollingStart}..${this.totalBytes}`,
      );
    }
    const n = Math.min(maxBytes, this.totalBytes - start);
    const out = new Uint8Array(n);
    const cap = this.partBytes;
    // Index in the ring of absolute offset `start`.
    let idx = (this.rollingHead - (this.totalBytes - start) + cap * 2) % cap;
    let done = 0;
    while (done < n) {
      const k = Math.min(n - done, cap - idx);
      out.set(this.rolling.subarray(idx, idx + k), done);
      done += k;
      idx = (idx + k) % cap;
    }
    return out;
  }

  /**
   * For a websocket replay: the first offset at or after `start` that the
   * history still holds (a start inside the evicted gap moves to the
   * oldest byte of the rolling part).
   */
  firstAvailable(start: number): number {
    if (start < this.beginningLen || start >= this.rollingStart) return start;
    return this.rollingStart;
  }
}
