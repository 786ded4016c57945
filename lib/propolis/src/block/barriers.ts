// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Flush barriers for a backend that runs requests concurrently.
//
// The contract: a flush starts only after every write-type request (write,
// discard, write-zeroes) submitted before it has completed, so it covers
// them all — fdatasync(2) makes durable what has been written, not what is
// still being written on another thread. Requests submitted after a flush
// do not wait for it (neither virtio-block nor NVMe orders them).
//
// Writes are grouped into epochs, each closed by the flush(es) submitted
// after its writes. An epoch's flushes are released once it and every
// earlier epoch have no writes outstanding. Writes complete in any order.
//
// Threading: a pure class, used only by the submitting thread.

export class FlushBarriers {
  /** Epoch id of `counts[0]`. */
  private base = 0;
  /** Outstanding writes per epoch, oldest first; the last epoch is the open one. */
  private readonly counts: number[] = [0];
  /** Flushes waiting at the end of each epoch (parallel to `counts`; the open epoch has none). */
  private readonly flushes: number[][] = [[]];

  /** A write-type request was submitted; returns its epoch, to hand back to `writeDone`. */
  write(): number {
    const last = this.counts.length - 1;
    this.counts[last]! += 1;
    return this.base + last;
  }

  /** A flush (identified by `id`) was submitted; true if it may start now. */
  flush(id: number): boolean {
    const last = this.counts.length - 1;
    if (last === 0 && this.counts[0] === 0) return true;
    if (this.counts[last] === 0) {
      // No writes since the previous flush: wait with it.
      this.flushes[last - 1]!.push(id);
      return false;
    }
    this.flushes[last]!.push(id);
    this.counts.push(0);
    this.flushes.push([]);
    return false;
  }

  /** A write of `epoch` completed; returns the flushes that may start now, if any. */
  writeDone(epoch: number): number[] | undefined {
    const i = epoch - this.base;
    if (i < 0 || i >= this.counts.length || this.counts[i]! <= 0)
      throw new Error(`write of epoch ${epoch} not pending`);
    this.counts[i]! -= 1;
    let out: number[] | undefined;
    while (this.counts.length > 1 && this.counts[0] === 0) {
      this.counts.shift();
      const f = this.flushes.shift()!;
      this.base++;
      out = out ? out.concat(f) : f;
    }
    return out;
  }

  /** Write-type requests not yet completed. */
  get pendingWrites(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  /** Flushes held back. */
  get heldFlushes(): number {
    let n = 0;
    for (const f of this.flushes) n += f.length;
    return n;
  }
}
