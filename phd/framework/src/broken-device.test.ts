// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// End to end, the proof that PHD catches a broken device: the catalogue's
// disk persistence test runs twice under real propolis-servers — once as
// is (it passes), once with its data disk returning wrong data (the
// framework's beforeReset hook overwrites one sector of the disk's backing
// file after the guest wrote its pattern and before it reads it back). The
// second run must fail, and its message must name the disk and the first
// bad LBA, so whoever reads the report knows where to look.

import assert from 'node:assert/strict';
import { mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findTest } from '../../tests/src/index.js';
import { Framework } from './framework.js';
import { liveServerCount } from './server-process.js';
import { runTestCase } from './test-case.js';
import type { TestVm } from './test-vm.js';

const TEST = 'disk::file_backend_persistence_test';
const BAD_LBA = 2053;

const tmp = mkdtempSync(join(tmpdir(), 'phd-broken-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Overwrite one sector of a file-backed disk: the device now returns data the guest never wrote. */
function corruptSector(vm: TestVm, disk: string, lba: number): void {
  const fd = openSync(vm.disks.path(disk), 'r+');
  try {
    writeSync(fd, new Uint8Array(512).fill(0xa5), 0, 512, lba * 512);
  } finally {
    closeSync(fd);
  }
}

describe('PHD against a broken device', () => {
  it(`${TEST} passes on a working disk`, async () => {
    const r = await runTestCase(new Framework({ tmpDir: join(tmp, 'good') }), findTest(TEST));
    assert.equal(r.status, 'passed', `${r.message}\n${r.detail ?? ''}`);
    assert.equal(liveServerCount(), 0, 'every server process was ended');
  });

  it(`${TEST} fails, naming the disk and the LBA, when the disk returns wrong data`, async () => {
    let corrupted = 0;
    const fw = new Framework({
      tmpDir: join(tmp, 'broken'),
      hooks: {
        beforeReset: (vm) => {
          corruptSector(vm, 'data-virtio', BAD_LBA);
          corrupted++;
        },
      },
    });
    const r = await runTestCase(fw, findTest(TEST));
    assert.equal(corrupted, 1);
    assert.equal(r.status, 'failed', 'the test passed although its disk returned wrong data');
    assert.match(
      r.message ?? '',
      new RegExp(
        '^file_backend_persistence_test: disk data-virtio \\(virtio 00:05\\.0, vd[a-z] in the guest\\) after a reset: ' +
          `\`dverify vd[a-z] 2048 256 7\` → error: mismatch at lba ${BAD_LBA}$`,
      ),
    );
    assert.equal(liveServerCount(), 0, 'every server process was ended');
  });
});
