// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial history's offsets and eviction, against a plain array of
// everything written (small part sizes so that wrap-around is cheap).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HISTORY_PART_BYTES, SerialHistory, SerialHistoryError } from './history.js';

const PART = 64;

function bytes(from: number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
}

describe('SerialHistory', () => {
  it('keeps 1 MiB at the start and 1 MiB at the end by default', () => {
    assert.equal(HISTORY_PART_BYTES, 1024 * 1024);
  });

  it('reads from an absolute offset and from the newest byte back', () => {
    const h = new SerialHistory(PART);
    h.append(bytes(0, 10));
    assert.equal(h.total, 10);
    assert.deepEqual(h.read({ fromStart: 3 }, 100), { data: bytes(3, 7), lastByteOffset: 10 });
    assert.deepEqual(h.read({ mostRecent: 4 }, 100), { data: bytes(6, 4), lastByteOffset: 10 });
    assert.deepEqual(h.read({ fromStart: 0 }, 4), { data: bytes(0, 4), lastByteOffset: 4 });
    // More than was ever written: from the start.
    assert.deepEqual(h.read({ mostRecent: 1000 }, 100), { data: bytes(0, 10), lastByteOffset: 10 });
    // Past the end: nothing, and the offset asked for.
    assert.deepEqual(h.read({ fromStart: 50 }, 100), { data: new Uint8Array(0), lastByteOffset: 50 });
    assert.deepEqual(h.read({ mostRecent: 0 }, 100), { data: new Uint8Array(0), lastByteOffset: 10 });
    assert.deepEqual(h.read({ fromStart: 2 }, 0), { data: new Uint8Array(0), lastByteOffset: 2 });
  });

  it('a read starting in the first part ends with it', () => {
    const h = new SerialHistory(PART);
    h.append(bytes(0, PART + 20));
    const r = h.read({ fromStart: PART - 5 }, 100);
    assert.deepEqual(r, { data: bytes(PART - 5, 5), lastByteOffset: PART });
    // …and the next read continues in the rolling part.
    assert.deepEqual(h.read({ fromStart: r.lastByteOffset }, 100), {
      data: bytes(PART, 20),
      lastByteOffset: PART + 20,
    });
  });

  it('refuses offsets that were evicted, naming what it still holds', () => {
    const h = new SerialHistory(PART);
    h.append(bytes(0, 3 * PART + 10));
    assert.equal(h.rollingStart, 2 * PART + 10);
    assert.throws(
      () => h.read({ fromStart: PART + 3 }, 10),
      (e: unknown) =>
        e instanceof SerialHistoryError &&
        /byte offset 67 is no longer cached/.test(e.message) &&
        /0\.\.64 and 138\.\.202/.test(e.message),
    );
    assert.equal(h.firstAvailable(PART + 3), 2 * PART + 10);
    assert.equal(h.firstAvailable(5), 5);
    assert.deepEqual(h.read({ mostRecent: 5 }, 100), { data: bytes(3 * PART + 5, 5), lastByteOffset: 3 * PART + 10 });
  });

  it('matches a model of every byte written, over random appends', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const h = new SerialHistory(PART);
    const all: number[] = [];
    for (let step = 0; step < 400; step++) {
      const n = rand(3) === 0 ? rand(3 * PART) : rand(10);
      const b = bytes(all.length, n);
      h.append(b);
      all.push(...b);
      const total = all.length;
      const start = rand(total + 5);
      const max = 1 + rand(2 * PART);
      const firstEnd = Math.min(PART, total);
      const rollingStart = Math.max(firstEnd, total - PART);
      if (start < firstEnd) {
        const end = Math.min(firstEnd, start + max);
        assert.deepEqual(h.read({ fromStart: start }, max).data, Uint8Array.from(all.slice(start, end)));
      } else if (start >= rollingStart) {
        const end = Math.min(total, start + max);
        const r = h.read({ fromStart: start }, max);
        assert.deepEqual(r.data, Uint8Array.from(all.slice(start, end)));
        assert.equal(r.lastByteOffset, start + r.data.length);
      } else {
        assert.throws(() => h.read({ fromStart: start }, max), SerialHistoryError);
      }
    }
  });
});
