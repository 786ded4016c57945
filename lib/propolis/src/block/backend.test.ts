// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The shared backend suite (backend.case.ts) against every backend kind —
// file (buffered, O_DIRECT, read-only) and in-memory (writable,
// read-only) — each opened directly on this thread and behind a
// BlockWorkerPool whose workers open it themselves.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import {
  backendCases,
  poolTarget,
  syncTarget,
  TestGuestRam,
  type CaseFixture,
  type CaseSetup,
} from './backend.case.js';
import { openBackend } from './backend.js';
import { FileBackend, type FileBackendOptions } from './file.js';
import { InMemoryBackend } from './in-memory.js';
import { BlockWorkerPool } from './pool.js';
import type { BackendDescriptor } from './types.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'block-suite-'));
  dirs.push(d);
  return d;
}

/** Read the image through a file descriptor of our own: what another process would see. */
function readFile(p: string, offset: number, len: number): Uint8Array {
  const fd = fs.openSync(p, 'r');
  try {
    const out = new Uint8Array(len);
    fs.readSync(fd, out, 0, len, offset);
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

interface Described {
  desc: BackendDescriptor;
  outside(offset: number, len: number): Uint8Array;
}

function fileDisk(opts: Omit<FileBackendOptions, 'path'>) {
  return (s: CaseSetup): Described => {
    const p = path.join(tempDir(), 'disk.img');
    fs.writeFileSync(p, s.contents);
    const desc = FileBackend.describe('suite', { ...opts, path: p, readOnly: s.readOnly, blockSize: s.blockSize });
    return { desc, outside: (o, n) => readFile(p, o, n) };
  };
}

function memoryDisk(s: CaseSetup): Described {
  const desc = InMemoryBackend.describe('suite', {
    seed: { bytes: s.contents },
    readOnly: s.readOnly,
    blockSize: s.blockSize,
  });
  const view = new Uint8Array(desc.params.contents);
  return { desc, outside: (o, n) => view.slice(o, o + n) };
}

function direct(describe: (s: CaseSetup) => Described) {
  return (s: CaseSetup): Promise<CaseFixture> => {
    const d = describe(s);
    const t = openBackend(d.desc);
    return Promise.resolve({
      target: syncTarget(t),
      outside: d.outside,
      dispose: () => Promise.resolve(t.close()),
    });
  };
}

function pooled(describe: (s: CaseSetup) => Described) {
  return async (s: CaseSetup): Promise<CaseFixture> => {
    const d = describe(s);
    const ram = TestGuestRam.map(4 << 20);
    const pool = new BlockWorkerPool(d.desc, { layout: ram.layout, workers: 2, queueDepth: 16 });
    await pool.start();
    return {
      target: poolTarget(pool, ram),
      outside: d.outside,
      dispose: async () => {
        await pool.stop();
        ram.unmap();
      },
    };
  };
}

const kinds: [string, boolean, (s: CaseSetup) => Described][] = [
  ['file', false, fileDisk({})],
  ['file, read-only', true, fileDisk({})],
  ['file, O_DIRECT', false, fileDisk({ direct: true })],
  ['file, 4 KiB blocks', false, fileDisk({})],
  ['in-memory', false, memoryDisk],
  ['in-memory, read-only', true, memoryDisk],
];

for (const [name, readOnly, describe] of kinds) {
  const blockSize = name.includes('4 KiB') ? 4096 : 512;
  backendCases(name, { readOnly, blockSize }, direct(describe));
  backendCases(`${name}, through a worker pool`, { readOnly, blockSize }, pooled(describe));
}
