// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PRP walker on its own, over guest memory made of plain buffers:
// which bytes each layout maps, and how every malformed layout is refused
// (with the test's own status values: SCT << 8 | SC, DNR bit 14).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GuestMemory, Prot } from '../../vmm/memory.js';
import { PrpWalker } from './prp.js';
import { plainMemory } from './driver-fake.js';

const P = 4096;
const DNR = 0x4000;
const INVALID_FIELD = 0x002 | DNR;
const XFER_ERROR = 0x004 | DNR;
const PRP_OFFSET = 0x013 | DNR;

function putU64(ram: Uint8Array, at: number, v: number): void {
  const dv = new DataView(ram.buffer, ram.byteOffset);
  dv.setUint32(at, v % 2 ** 32, true);
  dv.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
}

function expectRuns(w: PrpWalker, ram: Uint8Array, runs: [number, number][]): void {
  assert.deepEqual(
    w.segments.map((s) => {
      assert.equal(s.buffer, ram.buffer);
      return [s.byteOffset, s.length];
    }),
    runs,
  );
}

describe('PRP walker', () => {
  it('maps a transfer inside PRP1 alone', () => {
    const { mem, ram } = plainMemory(64 * P);
    const w = new PrpWalker();
    assert.equal(w.map(mem, 3 * P + 0x200, 0xdead_0000, 1024, Prot.Write), 0, 'PRP2 is ignored');
    expectRuns(w, ram, [[3 * P + 0x200, 1024]]);
  });

  it('uses PRP2 as the second page, merging contiguous pages and splitting others', () => {
    const { mem, ram } = plainMemory(64 * P);
    const w = new PrpWalker();
    assert.equal(w.map(mem, 5 * P + 0xe00, 6 * P, 0x1000, Prot.Read), 0);
    expectRuns(w, ram, [[5 * P + 0xe00, 0x1000]]);
    assert.equal(w.map(mem, 5 * P + 0xe00, 9 * P, 0x1000, Prot.Read), 0);
    expectRuns(w, ram, [
      [5 * P + 0xe00, 0x200],
      [9 * P, 0xe00],
    ]);
  });

  it('walks a PRP list with an unaligned first entry and scattered pages', () => {
    const { mem, ram } = plainMemory(64 * P);
    const list = 20 * P;
    [30, 31, 40].forEach((p, i) => putU64(ram, list + 8 * i, p * P));
    const w = new PrpWalker();
    // 0x100 in the first page, then three more pages, the last one partly.
    const len = P - 0x100 + 2 * P + 0x300;
    assert.equal(w.map(mem, 2 * P + 0x100, list, len, Prot.Write), 0);
    expectRuns(w, ram, [
      [2 * P + 0x100, P - 0x100],
      [30 * P, 2 * P],
      [40 * P, 0x300],
    ]);
  });

  it('follows a list that starts at an offset and chains at the page end', () => {
    const { mem, ram } = plainMemory(128 * P);
    // The list starts two slots before the end of its page: one data entry, then the chain.
    const list = 10 * P + P - 16;
    putU64(ram, list, 50 * P);
    putU64(ram, list + 8, 11 * P); // chain
    putU64(ram, 11 * P, 51 * P);
    putU64(ram, 11 * P + 8, 60 * P);
    const w = new PrpWalker();
    assert.equal(w.map(mem, 49 * P, list, 4 * P, Prot.Read), 0);
    expectRuns(w, ram, [
      [49 * P, 3 * P],
      [60 * P, P],
    ]);
  });

  it('treats the last slot as data when only one page remains', () => {
    const { mem, ram } = plainMemory(64 * P);
    const list = 10 * P + P - 16; // two slots left in the page
    putU64(ram, list, 20 * P);
    putU64(ram, list + 8, 30 * P); // exactly the last page: data, not a chain
    const w = new PrpWalker();
    assert.equal(w.map(mem, 19 * P, list, 3 * P, Prot.Read), 0);
    expectRuns(w, ram, [
      [19 * P, 2 * P],
      [30 * P, P],
    ]);
  });

  it('refuses misaligned PRP1, PRP2 data pointers, list pointers and list entries', () => {
    const { mem, ram } = plainMemory(64 * P);
    const w = new PrpWalker();
    assert.equal(w.map(mem, 2 * P + 2, 0, 512, Prot.Read), PRP_OFFSET, 'PRP1 not dword-aligned');
    assert.equal(w.map(mem, 2 * P + 0x800, 5 * P + 8, P, Prot.Read), PRP_OFFSET, 'PRP2 data pointer with offset');
    assert.equal(w.map(mem, 2 * P, 10 * P + 4, 3 * P, Prot.Read), PRP_OFFSET, 'list pointer not qword-aligned');
    putU64(ram, 10 * P, 20 * P + 0x10);
    assert.equal(w.map(mem, 2 * P, 10 * P, 3 * P, Prot.Read), PRP_OFFSET, 'list entry with offset');
    const list = 11 * P + P - 8; // one slot: the chain
    putU64(ram, list, 12 * P + 8);
    assert.equal(w.map(mem, 2 * P, list, 4 * P, Prot.Read), PRP_OFFSET, 'chain pointer not page-aligned');
    assert.equal(w.segments.length, 0, 'nothing mapped after a failure');
  });

  it('refuses pages and lists outside guest RAM, and protection it lacks', () => {
    const ram = new Uint8Array(16 * P);
    const rom = new Uint8Array(P);
    const mem = GuestMemory.fromBuffers([
      { gpa: 0, bytes: ram },
      { gpa: 32 * P, bytes: rom, prot: Prot.Read },
    ]);
    const w = new PrpWalker();
    assert.equal(w.map(mem, 16 * P, 0, 512, Prot.Read), XFER_ERROR, 'PRP1 past the end of RAM');
    assert.equal(w.map(mem, 15 * P + 0xe00, 16 * P, 0x1000, Prot.Read), XFER_ERROR, 'PRP2 past the end');
    assert.equal(w.map(mem, 2 * P, 100 * P, 3 * P, Prot.Read), XFER_ERROR, 'list outside RAM');
    putU64(ram, 3 * P, 2 ** 60);
    assert.equal(w.map(mem, 2 * P, 3 * P, 3 * P, Prot.Read), XFER_ERROR, 'entry beyond 2^53');
    assert.equal(w.map(mem, 32 * P, 0, 512, Prot.Write), XFER_ERROR, 'writing into read-only memory');
    assert.equal(w.map(mem, 32 * P, 0, 512, Prot.Read), 0, 'reading it is fine');
    assert.equal(w.map(mem, 0, 0, 0, Prot.Read), INVALID_FIELD, 'empty transfer');
  });

  it('maps a transfer across two adjacent regions page by page', () => {
    const a = new Uint8Array(2 * P);
    const b = new Uint8Array(2 * P);
    const mem = GuestMemory.fromBuffers([
      { gpa: 0, bytes: a },
      { gpa: 2 * P, bytes: b },
    ]);
    const w = new PrpWalker();
    assert.equal(w.map(mem, P, 2 * P, 2 * P, Prot.Write), 0);
    assert.deepEqual(
      w.segments.map((s) => [s.buffer === a.buffer ? 'a' : 'b', s.byteOffset, s.length]),
      [
        ['a', P, P],
        ['b', 0, P],
      ],
    );
  });
});
