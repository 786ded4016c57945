// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A single-producer, single-consumer byte ring in shared memory.
//
// Used for device output that a vCPU thread produces and the main thread
// consumes (a UART's transmitted bytes). The producer side must be
// serialised by its caller (the device lock); the consumer is one thread.
// The consumer sleeps with Atomics.waitAsync on the `head` word, so the
// producer only pays an Atomics.notify, never a thread hop of its own.

const HEAD = 0; // total bytes ever written (wraps at 2^32)
const TAIL = 1; // total bytes ever read
const HDR_BYTES = 8;

export class ByteRing {
  private readonly idx: Int32Array;
  private readonly data: Uint8Array;
  readonly capacity: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.capacity = sab.byteLength - HDR_BYTES;
    if (this.capacity <= 0 || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new RangeError(`byte ring capacity must be a power of two, got ${this.capacity}`);
    }
    this.idx = new Int32Array(sab, 0, 2);
    this.data = new Uint8Array(sab, HDR_BYTES);
  }

  static create(capacity: number): ByteRing {
    return new ByteRing(new SharedArrayBuffer(HDR_BYTES + capacity));
  }

  get length(): number {
    return (Atomics.load(this.idx, HEAD) - Atomics.load(this.idx, TAIL)) >>> 0;
  }

  get space(): number {
    return this.capacity - this.length;
  }

  /** Producer: append one byte; false when full. */
  push(b: number): boolean {
    const head = Atomics.load(this.idx, HEAD);
    if ((head - Atomics.load(this.idx, TAIL)) >>> 0 >= this.capacity) return false;
    const wasEmpty = head === Atomics.load(this.idx, TAIL);
    this.data[head & (this.capacity - 1)] = b;
    Atomics.store(this.idx, HEAD, (head + 1) | 0);
    // Wake the consumer only on empty → non-empty: it drains everything it
    // finds, and a consumer about to wait sees HEAD moved (waitAsync
    // compares the value), so no wake-up is lost. Waking per byte cost a
    // cross-thread hop per byte of guest output.
    if (wasEmpty) Atomics.notify(this.idx, HEAD);
    return true;
  }

  /** Consumer: take up to `max` bytes (a copy). */
  drain(max = this.capacity): Uint8Array {
    const tail = Atomics.load(this.idx, TAIL);
    const n = Math.min(max, (Atomics.load(this.idx, HEAD) - tail) >>> 0);
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(tail + i) & (this.capacity - 1)] as number;
    Atomics.store(this.idx, TAIL, (tail + n) | 0);
    return out;
  }

  /**
   * Consumer: resolve when bytes may be available — at once if some already
   * are, else after the next push or `wake()`. Callers loop.
   */
  async waitReadable(): Promise<void> {
    const head = Atomics.load(this.idx, HEAD);
    if ((head - Atomics.load(this.idx, TAIL)) >>> 0 > 0) return;
    const r = Atomics.waitAsync(this.idx, HEAD, head);
    if (r.async) await r.value;
  }

  /** Wake a consumer blocked in waitReadable (e.g. at shutdown). */
  wake(): void {
    Atomics.notify(this.idx, HEAD);
  }
}
