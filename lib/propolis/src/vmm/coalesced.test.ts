// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Replay of the coalesced-I/O ring, over a page laid out as the kernel does
// (8-byte header {first, last}, then 24-byte entries {addr u64, len u32,
// pio u32, data[8]}), with the test's own offsets.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MmioBus, PioBus } from '../pio.js';
import { SharedMutex } from '../sync/mutex.js';
import { COALESCED_MAX, CoalescedRing } from './coalesced.js';

function setup(): { page: DataView; ring: CoalescedRing; writes: [number, number, number][] } {
  const page = new DataView(new ArrayBuffer(4096));
  const pio = new PioBus();
  const writes: [number, number, number][] = [];
  pio.register(0x402, 1, { pioRead: () => 0xe9, pioWrite: (p, s, v) => void writes.push([p, s, v]) }, 'dbg');
  return { page, ring: new CoalescedRing(page, SharedMutex.create(), pio, new MmioBus()), writes };
}

function push(page: DataView, port: number, byte: number): void {
  const last = page.getUint32(4, true);
  const at = 8 + last * 24;
  page.setBigUint64(at, BigInt(port), true);
  page.setUint32(at + 8, 1, true);
  page.setUint32(at + 12, 1, true);
  page.setUint8(at + 16, byte);
  page.setUint32(4, (last + 1) % 170, true);
}

describe('CoalescedRing', () => {
  it('holds 170 entries per page, as the kernel sizes it', () => {
    assert.equal(COALESCED_MAX, 170);
  });

  it('replays queued writes in order, across the wrap-around, exactly once', () => {
    const { page, ring, writes } = setup();
    page.setUint32(0, 165, true);
    page.setUint32(4, 165, true);
    const text = 'hello, coalesced';
    for (const c of Buffer.from(text)) push(page, 0x402, c);
    assert.equal(ring.pending, true);
    assert.equal(ring.drain(), text.length);
    assert.equal(Buffer.from(writes.map((w) => w[2])).toString(), text);
    assert.equal(ring.pending, false);
    assert.equal(ring.drain(), 0);
    assert.equal(page.getUint32(0, true), (165 + text.length) % 170);
  });

  it('stops at corrupt indices instead of reading past the page', () => {
    const { page, ring, writes } = setup();
    page.setUint32(0, 0, true);
    page.setUint32(4, 5000, true);
    assert.equal(ring.drain(), 0);
    assert.equal(writes.length, 0);
  });
});
