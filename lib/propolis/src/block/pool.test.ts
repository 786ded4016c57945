// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The worker pool beyond the shared suite: many concurrent submissions
// (every completion delivered once, flushes after the writes before them,
// data intact), completions through the eventfd with manual reaping, guest
// buffers outside RAM refused, pause/paused/resume, stop, and start-up
// failures reported as the backend's typed error.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as libc from '../../../kvm/src/libc.js';
import { pattern, TestGuestRam } from './backend.case.js';
import { BlockBackendError } from './errors.js';
import { FileBackend } from './file.js';
import { InMemoryBackend } from './in-memory.js';
import { BlockWorkerPool } from './pool.js';
import { BlockOp, BlockResult } from './types.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'block-pool-'));
let ram: TestGuestRam;
before(() => {
  ram = TestGuestRam.map(16 << 20);
});
after(() => {
  // Every pool below is stopped inside its own test, so no worker still views this RAM.
  ram.unmap();
  fs.rmSync(root, { recursive: true, force: true });
});

function imageFile(size: number): string {
  const p = path.join(root, `img-${Math.random().toString(36).slice(2)}.raw`);
  fs.writeFileSync(p, '');
  fs.truncateSync(p, size);
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('block worker pool', () => {
  it('delivers every completion of many concurrent requests, flushes after the writes before them', async () => {
    const blocks = 512;
    const bs = 4096;
    const p = imageFile(blocks * bs);
    const desc = FileBackend.describe('conc', { path: p, blockSize: bs });
    const pool = new BlockWorkerPool(desc, { layout: ram.layout, workers: 4, queueDepth: 32 });
    await pool.start();
    try {
      // Writes to distinct blocks in a shuffled order, a flush after every 40.
      const order = Array.from({ length: blocks }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = (i * 7919 + 13) % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const done: string[] = [];
      const before = new Map<string, string[]>();
      const all: Promise<BlockResult>[] = [];
      let writes: string[] = [];
      for (let i = 0; i < order.length; i++) {
        const blk = order[i]!;
        const data = pattern(bs, blk + 1);
        // Two segments per write, each in its own place in guest RAM.
        const segs = ram.place([1000, bs - 1000]);
        ram.mem.write(segs[0]!, data.subarray(0, 1000));
        ram.mem.write(segs[2]!, data.subarray(1000));
        const name = `w${blk}`;
        writes.push(name);
        all.push(pool.submitAsync(BlockOp.Write, blk * bs, 0, segs).then((r) => (done.push(name), r)));
        if (i % 40 === 39) {
          const f = `f${i}`;
          before.set(f, writes);
          writes = [...writes];
          all.push(pool.submitAsync(BlockOp.Flush, 0).then((r) => (done.push(f), r)));
        }
      }
      const results = await Promise.all(all);
      assert.ok(results.every((r) => r === BlockResult.Success));
      assert.equal(done.length, all.length);
      assert.equal(new Set(done).size, done.length, 'each completion delivered once');
      for (const [f, ws] of before) {
        const at = done.indexOf(f);
        for (const w of ws) assert.ok(done.indexOf(w) < at, `${f} completed before ${w}, submitted earlier`);
      }
      assert.equal(pool.inFlight, 0);

      // Read everything back through the pool, 16 blocks per request.
      const reads: Promise<void>[] = [];
      for (let b = 0; b < blocks; b += 16) {
        const segs = ram.place(Array<number>(16).fill(bs));
        reads.push(
          pool.submitAsync(BlockOp.Read, b * bs, 0, segs).then((r) => {
            assert.equal(r, BlockResult.Success);
            for (let k = 0; k < 16; k++) {
              const got = new Uint8Array(bs);
              ram.mem.read(segs[2 * k]!, got);
              assert.deepEqual(got, pattern(bs, b + k + 1), `block ${b + k}`);
            }
          }),
        );
        if (reads.length === 8) await Promise.all(reads.splice(0)); // keep guest RAM slots from being reused
      }
      await Promise.all(reads);
    } finally {
      await pool.stop();
    }
    assert.deepEqual(new Uint8Array(fs.readFileSync(p).subarray(5 * bs, 6 * bs)), pattern(bs, 6));
  });

  it('signals its eventfd and delivers completions by tag when reaped by hand', async () => {
    const desc = InMemoryBackend.describe('efd', { size: 1 << 20, workers: 2 });
    const tags: number[] = [];
    const results: BlockResult[] = [];
    const pool = new BlockWorkerPool(desc, {
      layout: ram.layout,
      autoReap: false,
      queueDepth: 64,
      onComplete: (tag, r) => {
        tags.push(tag);
        results.push(r);
      },
    });
    await pool.start();
    try {
      assert.ok(pool.eventfd >= 0);
      const pfd = new Uint8Array(libc.POLLFD_SIZE);
      const dv = new DataView(pfd.buffer);
      dv.setInt32(0, pool.eventfd, true);
      dv.setInt16(4, libc.POLLIN, true);
      const readable = (ms: number): boolean => {
        dv.setInt16(6, 0, true);
        return libc.poll(pfd, 1, ms) === 1 && (dv.getInt16(6, true) & libc.POLLIN) !== 0;
      };
      assert.equal(readable(0), false, 'nothing pending yet');
      const n = 200;
      for (let i = 0; i < n; i++) {
        const segs = ram.place([512]);
        const op = i % 3 === 0 ? BlockOp.Read : i % 3 === 1 ? BlockOp.Write : BlockOp.Flush;
        assert.ok(pool.submit(op, (i % 64) * 512, 0, segs, 1, 1000 + i) >= 0);
        if (i % 50 === 49) {
          // As a device thread would: block on the eventfd, then reap.
          while (tags.length < i + 1) {
            assert.ok(readable(5000), 'eventfd readable while completions are pending');
            pool.reap();
          }
        }
      }
      // A worker signals right after marking its completion, so a reap that ran between the two leaves one
      // late signal with nothing behind it (harmless: the next reap finds nothing). Let such signals land,
      // reap once more, and then the eventfd must be clear.
      await new Promise((r) => setTimeout(r, 50));
      if (readable(0)) assert.equal(pool.reap(), 0, 'a late signal has no completion behind it');
      assert.equal(readable(0), false, 'reaping cleared the eventfd');
      assert.deepEqual(
        [...tags].sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => 1000 + i),
      );
      assert.ok(results.every((r) => r === BlockResult.Success));
      // A full pool says so instead of queueing.
      const filled: number[] = [];
      for (let i = 0; i < 64; i++) filled.push(pool.submit(BlockOp.Flush, 0, 0, undefined, 0, i));
      assert.ok(filled.every((s) => s >= 0));
      assert.equal(pool.submit(BlockOp.Flush, 0, 0, undefined, 0, 99), -1);
      while (tags.length < n + 64) {
        assert.ok(readable(5000));
        pool.reap();
      }
    } finally {
      await pool.stop();
    }
    assert.equal(pool.eventfd, -1);
  });

  it('delivers every completion even when a callback throws, then rethrows', async () => {
    const desc = InMemoryBackend.describe('throw', { size: 65536 });
    const got: number[] = [];
    const pool = new BlockWorkerPool(desc, {
      layout: ram.layout,
      autoReap: false,
      onComplete: (tag) => {
        got.push(tag);
        if (tag === 2) throw new Error('callback bug');
      },
    });
    await pool.start();
    try {
      for (let i = 0; i < 5; i++) pool.submit(BlockOp.Flush, 0, 0, undefined, 0, i);
      const deadline = Date.now() + 5000;
      while (got.length < 5 && Date.now() < deadline) {
        try {
          pool.reap();
        } catch (e) {
          assert.match((e as Error).message, /callback bug/);
        }
      }
      assert.deepEqual(
        [...got].sort((a, b) => a - b),
        [0, 1, 2, 3, 4],
      );
    } finally {
      await pool.stop();
    }
  });

  it('refuses guest buffers outside RAM or without the access needed, and malformed requests', async () => {
    const desc = InMemoryBackend.describe('bounds', { seed: { bytes: pattern(65536, 3) } });
    const pool = new BlockWorkerPool(desc, { layout: ram.layout, maxSegments: 4 });
    await pool.start();
    try {
      const r = (op: BlockOp, offset: number, segs: number[], nseg?: number): Promise<BlockResult> =>
        pool.submitAsync(op, offset, 0, segs, nseg);
      const end = ram.ramGpa + ram.size;
      assert.equal(await r(BlockOp.Read, 0, [end + 0x1000, 512]), BlockResult.Failure, 'past RAM');
      assert.equal(await r(BlockOp.Read, 0, [end - 256, 512]), BlockResult.Failure, 'straddling the end of RAM');
      assert.equal(await r(BlockOp.Read, 0, [0, 512]), BlockResult.Failure, 'below RAM');
      assert.equal(await r(BlockOp.Read, 0, [ram.romGpa, 512]), BlockResult.Failure, 'into read-only memory');
      assert.equal(await r(BlockOp.Write, 0, [ram.romGpa, 512]), BlockResult.Success, 'from read-only memory');
      assert.equal(await r(BlockOp.Read, 0, [ram.ramGpa, 512, end + 4096, 512]), BlockResult.Failure, 'one bad of two');
      assert.equal(await r(BlockOp.Read, 0, [-4096, 512]), BlockResult.Failure, 'negative address');
      assert.equal(await r(BlockOp.Read, 0, [ram.ramGpa, 0.5]), BlockResult.Failure, 'fractional length');
      assert.equal(await r(BlockOp.Read, NaN, [ram.ramGpa, 512]), BlockResult.Failure, 'NaN offset');
      assert.equal(await r(BlockOp.Read, 0, Array<number>(10).fill(ram.ramGpa)), BlockResult.Failure, '5 > 4 segments');
      assert.equal(await r(BlockOp.Read, 0, [ram.ramGpa, 512], 2), BlockResult.Failure, 'fewer pairs than nseg');
      assert.equal(await r(99 as BlockOp, 0, []), BlockResult.Failure, 'unknown op');
      assert.equal(await pool.submitAsync(BlockOp.Discard, -512, 512), BlockResult.Failure);
      // A refused read left the disk alone, and good requests still work.
      const segs = ram.place([512]);
      assert.equal(await r(BlockOp.Read, 512, segs), BlockResult.Success);
      const got = new Uint8Array(512);
      ram.mem.read(segs[0]!, got);
      assert.deepEqual(got, pattern(65536, 3).subarray(512, 1024));
    } finally {
      await pool.stop();
    }
  });

  it('holds requests submitted while paused and drains the ones before', async () => {
    const desc = InMemoryBackend.describe('pause', { size: 1 << 20, workers: 2 });
    const disk = new Uint8Array(desc.params.contents);
    const pool = new BlockWorkerPool(desc, { layout: ram.layout });
    await pool.start();
    try {
      const settled: string[] = [];
      const write = (name: string, blk: number, v: number): Promise<BlockResult> => {
        const segs = ram.place([4096]);
        ram.mem.write(segs[0]!, new Uint8Array(4096).fill(v));
        return pool.submitAsync(BlockOp.Write, blk * 4096, 0, segs).then((r) => (settled.push(name), r));
      };
      const early = Array.from({ length: 20 }, (_, i) => write(`early${i}`, i, 1));
      pool.pause();
      const late = Array.from({ length: 5 }, (_, i) => write(`late${i}`, 100 + i, 2));
      const flushLate = pool.submitAsync(BlockOp.Flush, 0);
      await pool.paused();
      assert.equal(settled.filter((s) => s.startsWith('early')).length, 20);
      await sleep(30);
      assert.ok(!settled.some((s) => s.startsWith('late')), 'nothing submitted after pause ran');
      assert.equal(disk[100 * 4096], 0);
      assert.equal(pool.inFlight, 6);
      pool.resume();
      assert.deepEqual(
        await Promise.all([...early, ...late, flushLate]),
        Array<BlockResult>(26).fill(BlockResult.Success),
      );
      assert.equal(disk[100 * 4096], 2);
      await pool.paused(); // nothing in flight: resolves at once
    } finally {
      await pool.stop();
    }
  });

  it('fails held requests at stop and refuses submissions after it', async () => {
    const desc = InMemoryBackend.describe('stop', { size: 65536 });
    const pool = new BlockWorkerPool(desc, { layout: ram.layout, workers: 1 });
    await pool.start();
    pool.pause();
    const held = pool.submitAsync(BlockOp.Flush, 0);
    await pool.stop();
    assert.equal(await held, BlockResult.Failure);
    assert.throws(
      () => pool.submit(BlockOp.Flush, 0, 0, undefined, 0, 0),
      (e: unknown) => e instanceof BlockBackendError && e.code === 'BLOCK_POOL' && /not running/.test(e.message),
    );
    await pool.stop(); // twice is harmless
  });

  it('rejects start with the backend error when a worker cannot open the image', async () => {
    const p = imageFile(65536);
    const desc = FileBackend.describe('gone', { path: p });
    fs.rmSync(p);
    const pool = new BlockWorkerPool(desc, { layout: ram.layout, workers: 2 });
    await assert.rejects(pool.start(), (e: unknown) => {
      assert.ok(e instanceof BlockBackendError, String(e));
      assert.equal(e.code, 'BLOCK_NOT_FOUND');
      assert.ok(e.message.includes(p), e.message);
      return true;
    });
    assert.equal(pool.eventfd, -1);
  });

  it('checks its options', () => {
    const desc = InMemoryBackend.describe('opts', { size: 4096 });
    for (const o of [{ workers: 0 }, { workers: 33 }, { queueDepth: 0 }, { maxSegments: 1.5 }]) {
      assert.throws(
        () => new BlockWorkerPool(desc, { layout: ram.layout, ...o }),
        (e: unknown) => e instanceof BlockBackendError && e.code === 'BLOCK_BAD_OPTION',
      );
    }
  });
});
