// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The debug-exit device: a write of v ends the VM with status (v << 1) | 1.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeHost } from '../../testing/fake-host.js';
import { QemuDebugExit } from './debug-exit.js';

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
