// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The register-table helper: splitting accesses across registers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegBlock } from './regs.js';

describe('RegBlock', () => {
  function block(): { b: RegBlock; writes: [string, number, number][]; reads: string[] } {
    const writes: [string, number, number][] = [];
    const reads: string[] = [];
    const b = new RegBlock(8, [
      { off: 0, size: 2, read: () => (reads.push('a'), 0x1234), write: (v, m) => void writes.push(['a', v, m]) },
      { off: 2, size: 1, read: () => (reads.push('b'), 0x56) },
      { off: 4, size: 4, read: () => (reads.push('c'), 0x9abc_def0), write: (v, m) => void writes.push(['c', v, m]) },
    ]);
    return { b, writes, reads };
  }

  it('composes reads across registers, reading each once, with 0 for holes and 0xFF past the end', () => {
    const { b, reads } = block();
    assert.equal(b.read(0, 4), 0x0056_1234);
    assert.deepEqual(reads, ['a', 'b']);
    assert.equal(b.read(1, 2), 0x5612);
    assert.equal(b.read(5, 2), 0xbcde);
    assert.equal(b.read(6, 4), 0xffff_9abc);
    assert.equal(b.read(-1, 2), 0x34ff);
  });

  it('hands each register the bytes written, in place, with a byte mask', () => {
    const { b, writes } = block();
    b.write(1, 4, 0xaabb_ccdd);
    assert.deepEqual(writes, [
      ['a', 0xdd00, 0xff00],
      ['c', 0xaa, 0xff],
    ]);
    writes.length = 0;
    b.write(4, 4, 0xffff_ffff);
    assert.deepEqual(writes, [['c', 0xffff_ffff, 0xffff_ffff]]);
    writes.length = 0;
    b.write(7, 4, 0x1122_3344);
    assert.deepEqual(writes, [['c', 0x4400_0000, 0xff00_0000]]);
  });

  it('rejects overlapping or out-of-range definitions', () => {
    assert.throws(() => new RegBlock(4, [{ off: 2, size: 4 }]), RangeError);
    assert.throws(
      () =>
        new RegBlock(4, [
          { off: 0, size: 2 },
          { off: 1, size: 1 },
        ]),
      RangeError,
    );
  });
});
