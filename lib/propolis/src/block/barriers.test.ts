// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Flush barriers: a flush is released exactly when the last write-type
// request submitted before it completes — never earlier, never later —
// checked on small cases and against a model over random sequences.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlushBarriers } from './barriers.js';

describe('flush barriers', () => {
  it('lets a flush with nothing outstanding start at once', () => {
    const b = new FlushBarriers();
    assert.equal(b.flush(1), true);
    const e = b.write();
    assert.deepEqual(b.writeDone(e), undefined);
    assert.equal(b.flush(2), true);
  });

  it('holds a flush until every earlier write completed, in any order', () => {
    const b = new FlushBarriers();
    const w1 = b.write();
    const w2 = b.write();
    assert.equal(b.flush(10), false);
    const w3 = b.write(); // after the flush: not waited for
    assert.equal(b.writeDone(w2), undefined);
    assert.deepEqual(b.writeDone(w1), [10]);
    assert.equal(b.heldFlushes, 0);
    assert.equal(b.pendingWrites, 1);
    assert.equal(b.flush(11), false);
    assert.deepEqual(b.writeDone(w3), [11]);
  });

  it('releases back-to-back flushes together, and a later flush only after the writes between', () => {
    const b = new FlushBarriers();
    const w1 = b.write();
    assert.equal(b.flush(1), false);
    assert.equal(b.flush(2), false);
    const w2 = b.write();
    assert.equal(b.flush(3), false);
    assert.deepEqual(b.writeDone(w2), undefined); // flush 3 still waits for w1
    assert.deepEqual(b.writeDone(w1), [1, 2, 3]);
  });

  it('refuses to complete a write twice', () => {
    const b = new FlushBarriers();
    const w = b.write();
    b.writeDone(w);
    assert.throws(() => b.writeDone(w), /not pending/);
  });

  it('matches a model over random sequences', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const b = new FlushBarriers();
      const pending = new Map<number, number>(); // write id → epoch
      const flushNeeds = new Map<number, Set<number>>(); // held flush → writes it waits for
      let next = 0;
      for (let step = 0; step < 200; step++) {
        const r = rand(10);
        if (r < 5) {
          pending.set(next++, b.write());
        } else if (r < 7) {
          const id = next++;
          const now = b.flush(id);
          assert.equal(now, pending.size === 0, `flush ${id} with ${pending.size} writes pending`);
          if (!now) flushNeeds.set(id, new Set(pending.keys()));
        } else if (pending.size > 0) {
          const ids = [...pending.keys()];
          const w = ids[rand(ids.length)]!;
          const released = b.writeDone(pending.get(w)!) ?? [];
          pending.delete(w);
          const want: number[] = [];
          for (const [f, needs] of flushNeeds) {
            needs.delete(w);
            if (needs.size === 0) want.push(f);
          }
          for (const f of want) flushNeeds.delete(f);
          assert.deepEqual(
            [...released].sort((x, y) => x - y),
            want.sort((x, y) => x - y),
          );
        }
      }
      assert.equal(b.pendingWrites, pending.size);
      assert.equal(b.heldFlushes, flushNeeds.size);
    }
  });
});
