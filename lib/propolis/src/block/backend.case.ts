// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The shared suite every backend passes (STYLE.md: one interface, one
// suite). `backendCases(name, make)` registers the cases; `make` builds a
// fresh fixture per case: a disk with the given contents behind some
// backend (a BlockTarget, or a pool in front of one), and a way to look at
// the disk from outside it (the image file read with fs, or the shared
// buffer), which is how durability is checked.
//
// Also the helpers the block tests share: a seeded pattern, adapters from a
// BlockTarget or a BlockWorkerPool to the suite's async target, and guest
// RAM mapped like the Machine maps it.
//
// Threading: test code on the main thread; pools under test run workers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as libc from '../../../kvm/src/libc.js';
import { memoryFromLayout } from '../vmm/host.js';
import { Prot, type GuestMemory } from '../vmm/memory.js';
import type { MemoryLayoutEntry } from '../vmm/vcpu-control.js';
import type { BlockWorkerPool } from './pool.js';
import { BlockOp, BlockResult, type BlockTarget, type DeviceInfo } from './types.js';

/** What the suite drives: a backend, synchronous or not, behind promises. */
export interface CaseTarget {
  readonly info: DeviceInfo;
  read(offset: number, bufs: Uint8Array[]): Promise<BlockResult>;
  write(offset: number, bufs: Uint8Array[]): Promise<BlockResult>;
  flush(): Promise<BlockResult>;
  discard(offset: number, len: number): Promise<BlockResult>;
  writeZeroes(offset: number, len: number): Promise<BlockResult>;
}

export interface CaseSetup {
  readOnly: boolean;
  blockSize: number;
  /** The disk's initial contents; its length is the capacity. */
  contents: Uint8Array;
}

export interface CaseFixture {
  target: CaseTarget;
  /** The disk's bytes as seen from outside the backend. */
  outside(offset: number, len: number): Uint8Array;
  /** Close the backend (and stop its pool), remove temporary files. */
  dispose(): Promise<void>;
}

/** A deterministic byte pattern (xorshift32), so failures reproduce. */
export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Split `len` bytes into buffers of the given sizes (the last takes the rest). */
export function split(len: number, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = len;
  for (const s of sizes) {
    if (left === 0) break;
    const n = Math.min(s, left);
    out.push(new Uint8Array(n));
    left -= n;
  }
  if (left > 0) out.push(new Uint8Array(left));
  return out;
}

export function concat(bufs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(bufs.reduce((n, b) => n + b.byteLength, 0));
  let o = 0;
  for (const b of bufs) {
    out.set(b, o);
    o += b.byteLength;
  }
  return out;
}

/** Fill `bufs` with consecutive bytes of `src`. */
export function scatter(src: Uint8Array, bufs: Uint8Array[]): Uint8Array[] {
  let o = 0;
  for (const b of bufs) {
    b.set(src.subarray(o, o + b.byteLength));
    o += b.byteLength;
  }
  return bufs;
}

export function syncTarget(t: BlockTarget): CaseTarget {
  return {
    info: t.info,
    read: (o, b) => Promise.resolve(t.read(o, b)),
    write: (o, b) => Promise.resolve(t.write(o, b)),
    flush: () => Promise.resolve(t.flush()),
    discard: (o, n) => Promise.resolve(t.discard(o, n)),
    writeZeroes: (o, n) => Promise.resolve(t.writeZeroes(o, n)),
  };
}

/**
 * Guest RAM for pool tests: one shared anonymous mapping, as the Machine
 * makes it, described by a layout the pool's workers map themselves. A
 * read-only page range (`romGpa`) sits after RAM, to check that buffers
 * needing write access there are refused. Unmap only after the pool stopped.
 */
export class TestGuestRam {
  readonly layout: MemoryLayoutEntry[];
  readonly mem: GuestMemory;
  readonly ramGpa = 0x10_0000;
  readonly romGpa: number;
  private next = 0;

  private constructor(
    private readonly addr: bigint,
    readonly size: number,
    readonly romSize: number,
  ) {
    this.romGpa = this.ramGpa + size + 0x10_0000;
    this.layout = [
      { gpa: this.ramGpa, size, hostAddr: addr, prot: Prot.ReadWrite },
      { gpa: this.romGpa, size: romSize, hostAddr: addr + BigInt(size), prot: Prot.Read },
    ];
    this.mem = memoryFromLayout(this.layout);
  }

  static map(size: number, romSize = 0x1_0000): TestGuestRam {
    const addr = libc.mmap(
      0n,
      size + romSize,
      libc.PROT_READ | libc.PROT_WRITE,
      libc.MAP_SHARED | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE,
      -1,
      0,
    );
    if (addr === libc.MAP_FAILED) throw new Error(`mmap of ${size} bytes failed: ${libc.errnoName(libc.errno())}`);
    return new TestGuestRam(addr, size, romSize);
  }

  /**
   * Place `lens` buffers in RAM, leaving gaps so no two are contiguous;
   * returns flat (gpa, length) pairs. Space is reused from the start once
   * it runs out (callers keep at most a few MiB in flight).
   */
  place(lens: number[]): number[] {
    const segs: number[] = [];
    for (const n of lens) {
      const need = n + 64;
      if (this.next + need > this.size) this.next = 0;
      segs.push(this.ramGpa + this.next + 8, n);
      this.next += need;
    }
    return segs;
  }

  /** Every view (ours, the workers') must be gone: stop pools first. */
  unmap(): void {
    libc.munmap(this.addr, this.size + this.romSize);
  }
}

/** The suite's target over a running pool: buffers are copied through guest RAM. */
export function poolTarget(pool: BlockWorkerPool, ram: TestGuestRam): CaseTarget {
  return {
    info: pool.info,
    async read(offset, bufs) {
      const segs = ram.place(bufs.map((b) => b.byteLength));
      const r = await pool.submitAsync(BlockOp.Read, offset, 0, segs);
      bufs.forEach((b, i) => assert.ok(ram.mem.read(segs[2 * i]!, b)));
      return r;
    },
    async write(offset, bufs) {
      const segs = ram.place(bufs.map((b) => b.byteLength));
      bufs.forEach((b, i) => assert.ok(ram.mem.write(segs[2 * i]!, b)));
      return pool.submitAsync(BlockOp.Write, offset, 0, segs);
    },
    flush: () => pool.submitAsync(BlockOp.Flush, 0),
    discard: (o, n) => pool.submitAsync(BlockOp.Discard, o, n),
    writeZeroes: (o, n) => pool.submitAsync(BlockOp.WriteZeroes, o, n),
  };
}

const MiB = 1 << 20;

/** Register the shared cases for one backend configuration. */
export function backendCases(
  name: string,
  opts: { readOnly: boolean; blockSize?: number },
  make: (setup: CaseSetup) => Promise<CaseFixture>,
): void {
  const blockSize = opts.blockSize ?? 512;
  const size = MiB;
  const initial = pattern(size, 0x5eed);

  const withDisk = (fn: (f: CaseFixture) => Promise<void>) => async () => {
    const f = await make({ readOnly: opts.readOnly, blockSize, contents: initial });
    try {
      await fn(f);
    } finally {
      await f.dispose();
    }
  };

  const readBack = async (t: CaseTarget, offset: number, len: number, sizes: number[]): Promise<Uint8Array> => {
    const bufs = split(len, sizes);
    assert.equal(await t.read(offset, bufs), BlockResult.Success, `read ${len} at ${offset}`);
    return concat(bufs);
  };

  describe(`block backend: ${name}`, () => {
    it(
      'reports its geometry',
      withDisk(async (f) => {
        const info = f.target.info;
        assert.deepEqual(
          [info.blockSize, info.totalBlocks, info.readOnly],
          [blockSize, size / blockSize, opts.readOnly],
        );
        assert.equal(typeof info.supportsDiscard, 'boolean');
        if (opts.readOnly) assert.equal(f.target.info.supportsDiscard, false);
      }),
    );

    it(
      'reads the initial contents at various offsets, into several buffers',
      withDisk(async (f) => {
        const cases: [number, number, number[]][] = [
          [0, blockSize, [blockSize]],
          [blockSize * 3, blockSize * 4, [100, blockSize - 100, blockSize * 2]],
          [size - blockSize * 8, blockSize * 8, [blockSize, 4096, 7, 1]],
          [blockSize * 64, 64 * 4096, Array<number>(64).fill(4096)],
          [blockSize * 2, 0, []],
        ];
        for (const [off, len, sizes] of cases) {
          assert.deepEqual(await readBack(f.target, off, len, sizes), initial.subarray(off, off + len), `at ${off}`);
        }
      }),
    );

    it(
      'refuses requests beyond the capacity',
      withDisk(async (f) => {
        const t = f.target;
        assert.equal(await t.read(size - blockSize, [new Uint8Array(blockSize * 2)]), BlockResult.Failure);
        assert.equal(await t.read(size, [new Uint8Array(blockSize)]), BlockResult.Failure);
        if (!opts.readOnly) {
          assert.equal(await t.write(size, [new Uint8Array(blockSize)]), BlockResult.Failure);
          assert.equal(await t.writeZeroes(size - blockSize, blockSize * 2), BlockResult.Failure);
        }
        assert.deepEqual(f.outside(size - blockSize, blockSize), initial.subarray(size - blockSize));
      }),
    );

    if (opts.readOnly) {
      it(
        'refuses every write-type request with ReadOnly and changes nothing',
        withDisk(async (f) => {
          const t = f.target;
          assert.equal(await t.write(0, [new Uint8Array(blockSize).fill(1)]), BlockResult.ReadOnly);
          assert.equal(await t.writeZeroes(0, blockSize), BlockResult.ReadOnly);
          assert.equal(await t.discard(0, blockSize), BlockResult.ReadOnly);
          assert.equal(await t.flush(), BlockResult.Success);
          assert.deepEqual(await readBack(t, 0, blockSize, [blockSize]), initial.subarray(0, blockSize));
          assert.deepEqual(f.outside(0, blockSize), initial.subarray(0, blockSize));
        }),
      );
      return;
    }

    it(
      'round-trips writes at various offsets, from several buffers',
      withDisk(async (f) => {
        const t = f.target;
        const model = initial.slice();
        const writes: [number, number, number[]][] = [
          [0, blockSize, [blockSize]],
          [blockSize * 5, blockSize * 3, [10, 500, blockSize * 3]],
          [size - blockSize * 2, blockSize * 2, [blockSize, blockSize]],
          [blockSize * 100, 32 * 4096, Array<number>(32).fill(4096)],
        ];
        let seed = 1;
        for (const [off, len, sizes] of writes) {
          const data = pattern(len, seed++);
          assert.equal(await t.write(off, scatter(data, split(len, sizes))), BlockResult.Success, `write at ${off}`);
          model.set(data, off);
        }
        // Read back across write boundaries, in other buffer shapes.
        assert.deepEqual(
          await readBack(t, 0, blockSize * 16, [blockSize * 3, 1000, 24]),
          model.subarray(0, blockSize * 16),
        );
        assert.deepEqual(
          await readBack(t, size - blockSize * 4, blockSize * 4, [blockSize * 4]),
          model.subarray(size - blockSize * 4),
        );
        assert.deepEqual(
          await readBack(t, blockSize * 99, 33 * 4096, [8192, 65536]),
          model.subarray(blockSize * 99, blockSize * 99 + 33 * 4096),
        );
        assert.equal(await t.flush(), BlockResult.Success);
        assert.deepEqual(f.outside(0, size), model);
      }),
    );

    it(
      'makes flushed writes visible outside the backend (a file: through another descriptor)',
      withDisk(async (f) => {
        const t = f.target;
        const data = pattern(blockSize * 8, 77);
        assert.equal(await t.write(blockSize * 40, [data]), BlockResult.Success);
        assert.equal(await t.flush(), BlockResult.Success);
        assert.deepEqual(f.outside(blockSize * 40, data.byteLength), data);
      }),
    );

    it(
      'write-zeroes zeroes exactly the range',
      withDisk(async (f) => {
        const t = f.target;
        const off = blockSize * 10;
        const len = blockSize * 6;
        assert.equal(await t.writeZeroes(off, len), BlockResult.Success);
        assert.deepEqual(await readBack(t, off, len, [len]), new Uint8Array(len));
        assert.deepEqual(
          await readBack(t, off - blockSize, blockSize, [blockSize]),
          initial.subarray(off - blockSize, off),
        );
        assert.deepEqual(
          await readBack(t, off + len, blockSize, [blockSize]),
          initial.subarray(off + len, off + len + blockSize),
        );
        assert.equal(await t.writeZeroes(off, 0), BlockResult.Success);
        // Large enough to need several chunks where zeros are written by hand.
        assert.equal(await t.writeZeroes(0, size), BlockResult.Success);
        assert.deepEqual(await readBack(t, 0, size, [size]), new Uint8Array(size));
      }),
    );

    it(
      'discards as advertised',
      withDisk(async (f) => {
        const t = f.target;
        const off = 64 * 1024;
        const len = 128 * 1024;
        const r = await t.discard(off, len);
        if (!t.info.supportsDiscard) {
          assert.equal(r, BlockResult.Unsupported);
          assert.deepEqual(await readBack(t, off, len, [len]), initial.subarray(off, off + len));
          return;
        }
        assert.equal(r, BlockResult.Success);
        // A discarded block reads as its old data or as zeros, never anything else.
        const got = await readBack(t, off, len, [len]);
        for (let b = 0; b < len; b += blockSize) {
          const blk = got.subarray(b, b + blockSize);
          const old = initial.subarray(off + b, off + b + blockSize);
          assert.ok(blk.every((x) => x === 0) || Buffer.compare(blk, old) === 0, `block at ${off + b}`);
        }
        assert.deepEqual(
          await readBack(t, off + len, blockSize, [blockSize]),
          initial.subarray(off + len, off + len + blockSize),
        );
      }),
    );
  });
}
