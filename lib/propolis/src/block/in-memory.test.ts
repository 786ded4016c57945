// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The in-memory backend beyond the shared suite: sizes and seeds (bytes,
// base64 as the seed's blob backend, a file), operator errors, and its
// state as `in-memory-block-backend` v1 — round trip, and refusal of a
// payload of the wrong length or shape.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { MigrateError, PayloadOffers, type Payload } from '../migrate.js';
import { pattern } from './backend.case.js';
import { backendInfo, openBackend } from './backend.js';
import { BlockBackendError, type BlockErrorCode } from './errors.js';
import { InMemoryBackend, InMemoryBlockBackendV1 } from './in-memory.js';
import { BlockResult } from './types.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'block-mem-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function refused(code: BlockErrorCode, match: RegExp, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BlockBackendError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, match);
    return true;
  });
}

function migrateError(code: MigrateError['code'], match: RegExp, fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MigrateError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, match);
    return true;
  });
}

describe('in-memory backend', () => {
  it('is zeroed to the requested size, in blocks', () => {
    const d = InMemoryBackend.describe('mem', { size: 8192, blockSize: 4096 });
    assert.deepEqual(backendInfo(d), { blockSize: 4096, totalBlocks: 2, readOnly: false, supportsDiscard: false });
    const t = openBackend(d);
    const b = new Uint8Array(8192).fill(1);
    assert.equal(t.read(0, [b]), BlockResult.Success);
    assert.deepEqual(b, new Uint8Array(8192));
  });

  it('starts from bytes, base64 (512-byte blocks, as the blob backend) or a file', () => {
    const data = pattern(2048, 21);
    const read = (t: InMemoryBackend, n: number): Uint8Array => {
      const b = new Uint8Array(n);
      assert.equal(t.read(0, [b]), BlockResult.Success);
      return b;
    };
    const blob = InMemoryBackend.open(
      InMemoryBackend.describe('blob', { seed: { base64: Buffer.from(data).toString('base64') }, readOnly: true }),
    );
    assert.deepEqual(blob.info, { blockSize: 512, totalBlocks: 4, readOnly: true, supportsDiscard: false });
    assert.deepEqual(read(blob, 2048), data);

    const p = path.join(root, 'seed.raw');
    fs.writeFileSync(p, data.subarray(0, 1000));
    const fromFile = InMemoryBackend.open(InMemoryBackend.describe('f', { seed: { path: p }, size: 4096 }));
    const want = new Uint8Array(4096);
    want.set(data.subarray(0, 1000));
    assert.deepEqual(read(fromFile, 4096), want);

    const fromBytes = InMemoryBackend.open(InMemoryBackend.describe('b', { seed: { bytes: data } }));
    assert.deepEqual(read(fromBytes, 2048), data);
  });

  it('refuses sizes that are not a non-zero multiple of the block size, and bad seeds', () => {
    refused('BLOCK_BAD_OPTION', /non-zero multiple of the 512-byte block size, got 0 bytes/, () =>
      InMemoryBackend.describe('m', {}),
    );
    refused('BLOCK_BAD_OPTION', /got 1000 bytes/, () => InMemoryBackend.describe('m', { size: 1000 }));
    refused('BLOCK_BAD_OPTION', /got 4608 bytes \(the seed length\)/, () =>
      InMemoryBackend.describe('m', { seed: { bytes: new Uint8Array(4608) }, blockSize: 4096 }),
    );
    refused('BLOCK_BAD_OPTION', /size must be an integer/, () => InMemoryBackend.describe('m', { size: 1.5 }));
    refused('BLOCK_BAD_OPTION', /block size/, () => InMemoryBackend.describe('m', { size: 4096, blockSize: 768 }));
    refused('BLOCK_BAD_OPTION', /seed holds 2048 bytes, more than the disk's 1024/, () =>
      InMemoryBackend.describe('m', { size: 1024, seed: { bytes: new Uint8Array(2048) } }),
    );
    refused('BLOCK_BAD_OPTION', /not valid base64/, () =>
      InMemoryBackend.describe('m', { seed: { base64: 'not base64!' } }),
    );
    const missing = path.join(root, 'missing.raw');
    refused('BLOCK_NOT_FOUND', new RegExp(`seed file ${missing} does not exist`), () =>
      InMemoryBackend.describe('m', { seed: { path: missing } }),
    );
    refused('BLOCK_NOT_A_DISK', /not a regular file/, () => InMemoryBackend.describe('m', { seed: { path: root } }));
  });

  it('has no discard, and write-zeroes works', () => {
    const t = InMemoryBackend.open(InMemoryBackend.describe('m', { seed: { bytes: pattern(4096, 2) } }));
    assert.equal(t.discard(0, 512), BlockResult.Unsupported);
    assert.equal(t.writeZeroes(512, 1024), BlockResult.Success);
    const b = new Uint8Array(4096);
    t.read(0, [b]);
    const want = pattern(4096, 2);
    want.fill(0, 512, 1536);
    assert.deepEqual(b, want);
  });

  it('is one disk on every thread that opens the descriptor', () => {
    const d = InMemoryBackend.describe('m', { size: 4096 });
    const copy = structuredClone(d); // as it travels in workerData
    const a = openBackend(d);
    const b = openBackend(copy);
    assert.equal(a.write(1024, [new Uint8Array(512).fill(0xab)]), BlockResult.Success);
    const got = new Uint8Array(512);
    assert.equal(b.read(1024, [got]), BlockResult.Success);
    assert.deepEqual(got, new Uint8Array(512).fill(0xab));
  });

  it('exports its contents as in-memory-block-backend v1 and imports them back', () => {
    const size = 4 << 20;
    const src = InMemoryBackend.open(InMemoryBackend.describe('m', { seed: { bytes: pattern(size, 8) } }));
    const payloads = src.export();
    assert.equal(payloads.length, 1);
    assert.equal(payloads[0]!.kind, 'in-memory-block-backend');
    assert.equal(payloads[0]!.version, 1);
    // Through JSON, as a snapshot file or a migration stream carries it.
    const wire = JSON.parse(JSON.stringify(payloads)) as Payload[];
    const dst = InMemoryBackend.open(InMemoryBackend.describe('m', { size }));
    dst.import(new PayloadOffers(wire));
    const got = new Uint8Array(size);
    assert.equal(dst.read(0, [got]), BlockResult.Success);
    assert.deepEqual(got, pattern(size, 8));
  });

  it('refuses a payload of the wrong length, shape or kind, changing nothing', () => {
    const dst = InMemoryBackend.open(InMemoryBackend.describe('m', { seed: { bytes: pattern(4096, 4) } }));
    const payload = (bytes: unknown): Payload => ({ kind: 'in-memory-block-backend', version: 1, data: { bytes } });
    migrateError('ImportFailed', /payload holds 2048 bytes, the disk has 4096/, () =>
      dst.import(new PayloadOffers([InMemoryBlockBackendV1.encode({ bytes: new Uint8Array(2048) })])),
    );
    migrateError('DeserializationFailed', /expected base64 bytes/, () =>
      dst.import(new PayloadOffers([payload([1, 2, 3])])),
    );
    migrateError('DeserializationFailed', /expected base64 bytes/, () =>
      dst.import(new PayloadOffers([payload('@@@@')])),
    );
    migrateError('DeserializationFailed', /bytes: missing/, () =>
      dst.import(new PayloadOffers([{ kind: 'in-memory-block-backend', version: 1, data: {} }])),
    );
    migrateError('DataMissing', /in-memory-block-backend v1/, () =>
      dst.import(new PayloadOffers([{ kind: 'in-memory-block-backend', version: 2, data: {} }])),
    );
    const ok = InMemoryBlockBackendV1.encode({ bytes: new Uint8Array(4096) });
    migrateError('UnexpectedPayload', /uart-16550 v1/, () =>
      dst.import(new PayloadOffers([ok, { kind: 'uart-16550', version: 1, data: {} }])),
    );
    const b = new Uint8Array(4096);
    dst.read(0, [b]);
    assert.deepEqual(b, pattern(4096, 4));
  });
});
