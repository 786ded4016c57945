// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusConflictError, MmioBus, PioBus, type AccessSize } from './pio.js';

describe('PioBus', () => {
  it('dispatches to the owner of a port and answers all-ones elsewhere', () => {
    const bus = new PioBus();
    const seen: [number, number, number][] = [];
    bus.register(0x3f8, 8, { pioRead: (p) => p & 0xff, pioWrite: (p, s, v) => void seen.push([p, s, v]) }, 'uart');
    assert.equal(bus.read(0x3fd, 1), 0xfd);
    bus.write(0x3f8, 1, 0x41);
    assert.deepEqual(seen, [[0x3f8, 1, 0x41]]);
    assert.equal(bus.read(0x80, 1), 0xff);
    assert.equal(bus.read(0x80, 2), 0xffff);
    assert.equal(bus.read(0x80, 4), 0xffffffff);
    bus.write(0x80, 1, 0);
    assert.equal(bus.unhandledReads, 3);
    assert.equal(bus.unhandledWrites, 1);
    assert.equal(bus.owner(0x3ff), 'uart');
    assert.equal(bus.owner(0x400), undefined);
  });

  it('refuses overlapping or out-of-range registrations', () => {
    const bus = new PioBus();
    const h = { pioRead: () => 0, pioWrite: () => {} };
    bus.register(0x60, 1, h, 'a');
    assert.throws(() => bus.register(0x5f, 2, h, 'b'), BusConflictError);
    assert.throws(() => bus.register(0xffff, 2, h, 'c'), RangeError);
    assert.throws(() => bus.register(-1, 1, h, 'd'), RangeError);
  });
});

describe('MmioBus', () => {
  it('finds ranges and treats accesses straddling a range end as unclaimed', () => {
    const bus = new MmioBus();
    const h = (tag: number) => ({ mmioRead: (_a: number, _s: AccessSize) => tag, mmioWrite: () => {} });
    bus.register(0xfee00000, 0x1000, h(1), 'a');
    bus.register(0xc0000000, 0x100, h(2), 'b');
    assert.equal(bus.read(0xfee00010, 4), 1);
    assert.equal(bus.read(0xc0000000, 8), 2);
    assert.equal(bus.read(0xc00000fc, 8), 0xffffffffffffffffn, 'straddles the end');
    assert.equal(bus.read(0x1000, 2), 0xffff);
    assert.throws(() => bus.register(0xfee00800, 0x1000, h(3), 'c'), BusConflictError);
  });
});
