// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// fw_cfg (legacy interface) and the debug-exit device.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { QemuDebugExit } from './debug-exit.js';
import { QemuFwCfg } from './fwcfg.js';

function readItem(host: FakeHost, selector: number, n: number): number[] {
  host.pio.write(0x510, 2, selector);
  return Array.from({ length: n }, () => host.pio.read(0x511, 1));
}

describe('QemuFwCfg (legacy I/O)', () => {
  it('reads the signature, the interface id and the vCPU count', () => {
    const host = new FakeHost();
    QemuFwCfg.attach(QemuFwCfg.describe({ cpus: 6 }), host);
    assert.equal(String.fromCharCode(...readItem(host, 0x0000, 4)), 'QEMU');
    assert.deepEqual(readItem(host, 0x0001, 4), [1, 0, 0, 0]);
    assert.deepEqual(readItem(host, 0x0005, 2), [6, 0]);
  });

  it('returns zeros past an item and for unknown selectors, ignores data writes', () => {
    const host = new FakeHost();
    QemuFwCfg.attach(QemuFwCfg.describe({ cpus: 1 }), host);
    assert.deepEqual(readItem(host, 0x0005, 4), [1, 0, 0, 0]);
    assert.deepEqual(readItem(host, 0x1234, 2), [0, 0]);
    host.pio.write(0x511, 1, 0x55);
    assert.deepEqual(readItem(host, 0x0000, 1), [0x51]);
    assert.equal(host.pio.read(0x510, 1), 0xff, 'the selector port reads all-ones');
  });

  it('round-trips the read position through export/import and validates it', () => {
    const host = new FakeHost();
    const fw = QemuFwCfg.attach(QemuFwCfg.describe({ cpus: 1 }), host);
    readItem(host, 0x0000, 2);
    const state = fw.migrate().export();
    const host2 = new FakeHost();
    const fw2 = QemuFwCfg.attach(QemuFwCfg.describe({ cpus: 1 }), host2);
    fw2.migrate().import(new PayloadOffers(state));
    assert.equal(host2.pio.read(0x511, 1), 'M'.charCodeAt(0));
    const bad = [{ ...state[0]!, data: { selector: 0, offset: 99 } }];
    assert.throws(() => fw2.migrate().import(new PayloadOffers(bad)), MigrateError);
  });
});

describe('QemuDebugExit', () => {
  it('turns a write of v into a halt with status (v << 1) | 1', () => {
    const host = new FakeHost();
    QemuDebugExit.attach(QemuDebugExit.describe('exit'), host);
    host.pio.write(0x501, 1, 0);
    host.pio.write(0x501, 1, 0x104); // byte-wide: only 0x04 counts
    assert.deepEqual(
      host.halts.map((h) => h.status),
      [1, 9],
    );
    assert.equal(host.pio.read(0x501, 1), 0xff);
  });

  it('refuses a port range outside the I/O space', () => {
    assert.throws(() => QemuDebugExit.describe('x', 0xffff, 2), RangeError);
  });
});
