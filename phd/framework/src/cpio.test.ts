// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The newc writer, read back by a reader written here from the format's
// description (the kernel's buffer-format.rst): headers, alignment, file
// types, device numbers, the trailer; and the Linux initramfs layout.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildLinuxInitramfs, LINUX_INIT_SCRIPT } from './artifacts.js';
import { cpioNewc, CpioError } from './cpio.js';

interface Member {
  name: string;
  mode: number;
  nlink: number;
  rdev: [number, number];
  data: Buffer;
  headerAt: number;
}

function readNewc(buf: Uint8Array): Member[] {
  const b = Buffer.from(buf);
  const out: Member[] = [];
  let off = 0;
  const align = (n: number): number => (n + 3) & ~3;
  for (;;) {
    assert.equal(off % 4, 0, 'every header starts 4-byte aligned');
    assert.equal(b.toString('latin1', off, off + 6), '070701', `magic at ${off}`);
    const f = (i: number): number => Number.parseInt(b.toString('latin1', off + 6 + 8 * i, off + 14 + 8 * i), 16);
    const namesize = f(11);
    const filesize = f(6);
    const nameAt = off + 110;
    const name = b.toString('latin1', nameAt, nameAt + namesize - 1);
    assert.equal(b[nameAt + namesize - 1], 0, 'names are NUL-terminated');
    const dataAt = align(nameAt + namesize);
    const m: Member = {
      name,
      mode: f(1),
      nlink: f(4),
      rdev: [f(9), f(10)],
      data: b.subarray(dataAt, dataAt + filesize),
      headerAt: off,
    };
    assert.equal(f(12), 0, 'check field is 0 without CRC');
    off = align(dataAt + filesize);
    if (name === 'TRAILER!!!') {
      assert.equal(off, b.length, 'nothing after the trailer');
      return out;
    }
    out.push(m);
  }
}

describe('cpioNewc', () => {
  it('writes members a newc reader reads back, with padding to 4 bytes', () => {
    const archive = cpioNewc([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: '/bin/hello', data: 'hi!', mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: 'hello' },
      { type: 'chardev', path: 'console', major: 5, minor: 1 },
      { type: 'file', path: 'empty', data: new Uint8Array(0) },
    ]);
    const m = readNewc(archive);
    assert.deepEqual(
      m.map((x) => [x.name, x.mode.toString(8), x.nlink, x.rdev, x.data.toString('latin1')]),
      [
        ['bin', '40755', 2, [0, 0], ''],
        ['bin/hello', '100755', 1, [0, 0], 'hi!'],
        ['bin/sh', '120777', 1, [0, 0], 'hello'],
        ['console', '20600', 1, [5, 1], ''],
        ['empty', '100644', 1, [0, 0], ''],
      ],
    );
    // The first header is byte 0; "bin\0" after 110 header bytes is padded to 116.
    assert.equal(m[1]!.headerAt, 116);
  });

  it('refuses bad paths and duplicates', () => {
    assert.throws(() => cpioNewc([{ type: 'dir', path: 'a/../b' }]), CpioError);
    assert.throws(() => cpioNewc([{ type: 'dir', path: '' }]), CpioError);
    assert.throws(
      () =>
        cpioNewc([
          { type: 'dir', path: 'a' },
          { type: 'dir', path: '/a' },
        ]),
      /appears twice/,
    );
  });

  it('assembles the Linux initramfs: busybox, /init, /dev/console', () => {
    const busybox = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]);
    const m = readNewc(buildLinuxInitramfs(busybox));
    const byName = new Map(m.map((x) => [x.name, x]));
    assert.deepEqual([...byName.get('bin/busybox')!.data], [...busybox]);
    assert.equal(byName.get('bin/busybox')!.mode, 0o100755);
    assert.equal(byName.get('init')!.data.toString(), LINUX_INIT_SCRIPT);
    assert.equal(byName.get('init')!.mode, 0o100755);
    assert.deepEqual(byName.get('dev/console')!.rdev, [5, 1]);
    assert.ok(m.findIndex((x) => x.name === 'bin') < m.findIndex((x) => x.name === 'bin/busybox'), 'parents first');
    assert.match(LINUX_INIT_SCRIPT, /^#!\/bin\/busybox sh\n/);
  });
});
