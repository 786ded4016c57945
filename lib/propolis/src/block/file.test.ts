// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The file backend beyond the shared suite: operator errors at describe and
// open time, and failures underneath a running backend (a truncated or
// removed image, a full file system, I/O errors, a closed backend), which
// must become BlockResult.Failure, never an exception.
//
// A full file system is a real one where possible: a 64 KiB tmpfs mounted
// for this test (the suite runs as root). Where mounting is not allowed the
// case falls back to injecting ENOSPC through FileIo, and says so in its name.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { pattern } from './backend.case.js';
import { openBackend } from './backend.js';
import { BlockBackendError, type BlockErrorCode } from './errors.js';
import { FileBackend, nodeFileIo, type FileBackendOptions, type FileIo } from './file.js';
import { BlockResult } from './types.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'block-file-'));

/** A file system of our own mounted at `<root>/<name>`, or why there is none. */
function mountFs(name: string, type: string, options: string[]): { dir: string } | { reason: string } {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  const r = spawnSync('mount', ['-t', type, ...options, type, dir], { encoding: 'utf8' });
  if (r.status === 0) return { dir };
  return { reason: (r.stderr || r.error?.message || `mount exited ${r.status}`).trim() };
}

/** Full after 64 KiB; no FALLOC_FL_ZERO_RANGE. */
const tiny = mountFs('tiny', 'tmpfs', ['-o', 'size=64k']);
/** No O_DIRECT (tmpfs has it since Linux 6.6). */
const ramfs = mountFs('ramfs', 'ramfs', []);

after(() => {
  for (const m of [tiny, ramfs]) if ('dir' in m) spawnSync('umount', [m.dir]);
  fs.rmSync(root, { recursive: true, force: true });
});

let n = 0;
function image(bytes: number | Uint8Array, dir = root): string {
  const p = path.join(dir, `img-${n++}.raw`);
  if (typeof bytes === 'number') {
    fs.writeFileSync(p, '');
    fs.truncateSync(p, bytes);
  } else fs.writeFileSync(p, bytes);
  return p;
}

function refused(code: BlockErrorCode, match: RegExp | string, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BlockBackendError, `expected a BlockBackendError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (typeof match === 'string') assert.ok(e.message.includes(match), `"${e.message}" should name ${match}`);
    else assert.match(e.message, match);
    return true;
  });
}

function open(opts: FileBackendOptions, io?: FileIo): FileBackend {
  return FileBackend.open(FileBackend.describe('disk0', opts), io);
}

describe('file backend: describe and open', () => {
  it('refuses a missing image, naming it', () => {
    const p = path.join(root, 'nope.raw');
    refused('BLOCK_NOT_FOUND', p, () => FileBackend.describe('disk0', { path: p }));
  });

  it('refuses what is not a regular file or block device', () => {
    refused('BLOCK_NOT_A_DISK', /is a directory/, () => FileBackend.describe('disk0', { path: root }));
    refused('BLOCK_NOT_A_DISK', /\/dev\/null is a character device/, () =>
      FileBackend.describe('disk0', { path: '/dev/null' }),
    );
    // A FIFO is refused from its stat, without the open that would block.
    const fifo = path.join(root, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    refused('BLOCK_NOT_A_DISK', /is a FIFO/, () => FileBackend.describe('disk0', { path: fifo, readOnly: true }));
  });

  it('refuses to write an image without write permission, and reads it read-only', () => {
    const p = image(pattern(4096, 3));
    fs.chmodSync(p, 0o444);
    refused('BLOCK_NOT_WRITABLE', p, () => FileBackend.describe('disk0', { path: p }));
    const t = open({ path: p, readOnly: true });
    const b = new Uint8Array(512);
    assert.equal(t.read(512, [b]), BlockResult.Success);
    assert.deepEqual(b, pattern(4096, 3).subarray(512, 1024));
    assert.equal(t.write(0, [b]), BlockResult.ReadOnly);
    t.close();
  });

  it('checks the block size, worker count and path options', () => {
    const p = image(8192);
    for (const bs of [0, 256, 1000, 513, 1 << 17, '512', NaN, 4096.5]) {
      refused('BLOCK_BAD_OPTION', /block size must be a power of two/, () =>
        FileBackend.describe('disk0', { path: p, blockSize: bs as number }),
      );
    }
    for (const w of [0, -1, 1.5, '8']) {
      refused('BLOCK_BAD_OPTION', /workers/, () => FileBackend.describe('disk0', { path: p, workers: w as number }));
    }
    const workers = (w: number | undefined): number =>
      FileBackend.describe('d', { path: p, workers: w }).params.workers;
    assert.deepEqual([workers(undefined), workers(1), workers(32), workers(33), workers(1000)], [8, 1, 32, 8, 8]);
    refused('BLOCK_BAD_OPTION', /path/, () => FileBackend.describe('disk0', { path: '' }));
    refused('BLOCK_BAD_OPTION', /readOnly/, () =>
      FileBackend.describe('disk0', { path: p, readOnly: 'yes' as unknown as boolean }),
    );
    assert.equal(FileBackend.describe('disk0', { path: p, blockSize: 4096 }).params.totalBlocks, 2);
  });

  it('refuses an image smaller than one block', () => {
    refused('BLOCK_TOO_SMALL', /holds 0 bytes/, () => FileBackend.describe('disk0', { path: image(0) }));
    refused('BLOCK_TOO_SMALL', /holds 1000 bytes, less than one 4096-byte block/, () =>
      FileBackend.describe('disk0', { path: image(1000), blockSize: 4096 }),
    );
  });

  it('leaves a partial last block unreachable', () => {
    const data = pattern(1000, 9);
    const d = FileBackend.describe('disk0', { path: image(data) });
    assert.equal(d.params.totalBlocks, 1);
    assert.equal(d.params.tailBytes, 488);
    const t = FileBackend.open(d);
    const b = new Uint8Array(512);
    assert.equal(t.read(0, [b]), BlockResult.Success);
    assert.deepEqual(b, data.subarray(0, 512));
    assert.equal(t.read(512, [b]), BlockResult.Failure);
    t.close();
  });

  it('refuses to open an image that shrank since it was described', () => {
    const p = image(16384);
    const d = FileBackend.describe('disk0', { path: p });
    fs.truncateSync(p, 8192);
    refused('BLOCK_CHANGED', /shrank to 8192 bytes/, () => FileBackend.open(d));
    refused('BLOCK_CHANGED', p, () => openBackend(d));
  });

  const noDirect =
    'dir' in ramfs
      ? 'refuses O_DIRECT where the file system has none (ramfs)'
      : `refuses O_DIRECT where the file system has none, or serves it (/dev/shm: mounting ramfs failed: ${ramfs.reason})`;
  it(noDirect, () => {
    const p = image(4096, 'dir' in ramfs ? ramfs.dir : '/dev/shm');
    try {
      if ('dir' in ramfs) {
        refused('BLOCK_DIRECT_UNSUPPORTED', `${p}: the file system does not support O_DIRECT`, () =>
          FileBackend.describe('disk0', { path: p, direct: true }),
        );
        return;
      }
      try {
        const t = open({ path: p, direct: true });
        assert.equal(t.read(0, [new Uint8Array(512)]), BlockResult.Success);
        t.close();
      } catch (e) {
        assert.ok(e instanceof BlockBackendError && e.code === 'BLOCK_DIRECT_UNSUPPORTED', String(e));
      }
    } finally {
      fs.rmSync(p);
    }
  });

  it('refuses a descriptor of an unknown kind', () => {
    refused('BLOCK_UNKNOWN_KIND', /"crucible"/, () => openBackend({ kind: 'crucible', name: 'd', params: {} }));
  });

  it('probes hole punching at describe time', () => {
    // ext4, xfs and tmpfs all punch holes; a read-only backend never discards.
    assert.equal(FileBackend.describe('d', { path: image(8192) }).params.supportsDiscard, true);
    assert.equal(FileBackend.describe('d', { path: image(8192), readOnly: true }).params.supportsDiscard, false);
  });
});

describe('file backend: failures underneath', () => {
  it('fails reads past the end of an image truncated underneath, and the next flush', () => {
    const data = pattern(64 * 1024, 5);
    const p = image(data);
    const t = open({ path: p });
    fs.truncateSync(p, 16 * 1024);
    const b = new Uint8Array(4096);
    assert.equal(t.read(0, [b]), BlockResult.Success);
    assert.deepEqual(b, data.subarray(0, 4096));
    assert.equal(t.read(14 * 1024, [b]), BlockResult.Failure); // straddles the new end: a short read
    assert.match(t.lastError ?? '', /truncated/);
    assert.equal(t.read(32 * 1024, [b]), BlockResult.Failure);
    assert.equal(t.flush(), BlockResult.Failure);
    assert.match(t.lastError ?? '', /truncated to 16384 bytes/);
    t.close();
  });

  it('fails the flush of an image removed underneath', () => {
    const p = image(8192);
    const t = open({ path: p });
    assert.equal(t.write(0, [new Uint8Array(512).fill(7)]), BlockResult.Success);
    assert.equal(t.flush(), BlockResult.Success);
    fs.rmSync(p);
    assert.equal(t.flush(), BlockResult.Failure);
    assert.match(t.lastError ?? '', /removed/);
    t.close();
  });

  const fullName =
    'dir' in tiny
      ? 'fails writes to a sparse image on a full file system (a 64 KiB tmpfs)'
      : `fails writes on ENOSPC (simulated through FileIo: mounting a tmpfs failed: ${tiny.reason})`;
  it(fullName, () => {
    let t: FileBackend;
    if ('dir' in tiny) {
      // 1 MiB of holes on 64 KiB of space: the first large write fills it.
      const p = image(1 << 20, tiny.dir);
      t = open({ path: p });
      fs.rmSync(p); // frees the space at close, for the cases after this one
    } else {
      const enospc: FileIo = {
        ...nodeFileIo,
        writev: () => {
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      };
      t = open({ path: image(1 << 20) }, enospc);
    }
    const big = pattern(256 * 1024, 11);
    assert.equal(t.write(0, [big]), BlockResult.Failure);
    assert.match(t.lastError ?? '', /ENOSPC/);
    // What fits still works, and reading never fails for want of space.
    assert.equal(t.read(512 * 1024, [new Uint8Array(4096)]), BlockResult.Success);
    t.close();
  });

  it('zeroes ranges by writing where fallocate cannot (tmpfs has no ZERO_RANGE)', () => {
    const dir = 'dir' in tiny ? tiny.dir : '/dev/shm';
    const data = pattern(16 * 1024, 13);
    const p = image(data, dir);
    try {
      const t = open({ path: p });
      assert.equal(t.writeZeroes(4096, 8192), BlockResult.Success);
      assert.equal(t.writeZeroes(0, 512), BlockResult.Success);
      t.close();
      const got = new Uint8Array(fs.readFileSync(p));
      const want = data.slice();
      want.fill(0, 4096, 12288);
      want.fill(0, 0, 512);
      assert.deepEqual(got, want);
    } finally {
      fs.rmSync(p);
    }
  });

  it('turns I/O errors into Failure (injected EIO)', () => {
    const eio = (op: string) => () => {
      throw Object.assign(new Error(`EIO: i/o error, ${op}`), { code: 'EIO' });
    };
    const io: FileIo = {
      ...nodeFileIo,
      readv: eio('read'),
      writev: eio('write'),
      fdatasync: eio('fdatasync'),
      fallocate: () => 5, // EIO
    };
    const t = open({ path: image(65536) }, io);
    const b = [new Uint8Array(512)];
    assert.equal(t.read(0, b), BlockResult.Failure);
    assert.match(t.lastError ?? '', /read at byte 0 of .*EIO/);
    assert.equal(t.write(0, b), BlockResult.Failure);
    assert.equal(t.flush(), BlockResult.Failure);
    assert.equal(t.discard(0, 4096), BlockResult.Failure);
    assert.equal(t.writeZeroes(0, 4096), BlockResult.Failure);
    assert.match(t.lastError ?? '', /ZERO_RANGE.*EIO/);
    t.close();
  });

  it('fails every request after close (no use of a stale descriptor)', () => {
    const t = open({ path: image(8192) });
    t.close();
    t.close();
    assert.equal(t.read(0, [new Uint8Array(512)]), BlockResult.Failure);
    assert.equal(t.write(0, [new Uint8Array(512)]), BlockResult.Failure);
    assert.equal(t.flush(), BlockResult.Failure);
    assert.equal(t.writeZeroes(0, 512), BlockResult.Failure);
    assert.match(t.lastError ?? '', /closed/);
  });

  it('fails unaligned requests under O_DIRECT instead of bouncing them into EINVAL', () => {
    const t = open({ path: image(65536), direct: true, blockSize: 4096 });
    assert.equal(t.read(512, [new Uint8Array(4096)]), BlockResult.Failure);
    assert.equal(t.read(0, [new Uint8Array(512)]), BlockResult.Failure);
    assert.match(t.lastError ?? '', /unaligned/);
    assert.equal(t.read(4096, [new Uint8Array(100), new Uint8Array(3996)]), BlockResult.Success);
    t.close();
  });
});
