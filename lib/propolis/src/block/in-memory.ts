// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The in-memory backend: a disk whose contents live in a SharedArrayBuffer,
// after Propolis's in-memory backend (and `blob_storage_backend`, whose
// base64 blob seeds it). Its length is a non-zero multiple of the block
// size; it can start zeroed or from a file, bytes or base64. It has no
// discard (as in the seed); write-zeroes works. Its contents migrate as
// `in-memory-block-backend` v1.
//
// Threading: the descriptor carries the SharedArrayBuffer itself, so every
// thread that opens it (a vCPU, a pool worker, the main thread exporting
// state) sees one disk. Requests from several threads may run at once, as
// on real hardware: overlapping writes race, and nothing orders them but
// the frontend. `import` replaces the whole contents and must only run while
// no request is in flight (the device paused).

import * as fs from 'node:fs';
import { BlockBackendError, errCode } from './errors.js';
import { MigrateError, schema, type Migrate, type Payload, type PayloadOffers } from '../migrate.js';
import { badOption, blockSizeOption, boolOption, show, workersOption } from './options.js';
import { BlockResult, type BackendDescriptor, type BlockTarget, type DeviceInfo } from './types.js';

export type InMemorySeed =
  /** Contents of a file (an image), read once at describe time. */
  | { path: string }
  | { bytes: Uint8Array }
  /** Base64 as in the seed's `blob_storage_backend`. */
  | { base64: string };

export interface InMemoryBackendOptions {
  /** Disk size in bytes; defaults to the seed's length. A non-zero multiple of the block size. */
  size?: number;
  /** Bytes per block, a power of two from 512 to 64 KiB. Default 512 (the blob backend's). */
  blockSize?: number;
  readOnly?: boolean;
  /** Initial contents; shorter than `size` leaves the rest zero. */
  seed?: InMemorySeed;
  /** Worker threads of a pool in front of this backend (default 1: a copy is quick). */
  workers?: number;
}

export interface InMemoryBackendParams {
  readonly contents: SharedArrayBuffer;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly workers: number;
}

export interface InMemoryBackendDescriptor extends BackendDescriptor {
  readonly kind: 'in-memory';
  readonly params: InMemoryBackendParams;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Bytes as one base64 string: `t.bytes` (an array of numbers, checked one
 * by one) would make a disk of a few MiB into tens of MiB of JSON and
 * seconds of work. The decoded length is checked against the disk by import.
 */
const base64Bytes = {
  decode(v: unknown, path: string): Uint8Array {
    if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) {
      throw new MigrateError('DeserializationFailed', `${path}: expected base64 bytes`);
    }
    const b = Buffer.from(v, 'base64');
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  encode(v: Uint8Array): unknown {
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  },
};

export const InMemoryBlockBackendV1 = schema('in-memory-block-backend', 1, { bytes: base64Bytes });

function decodeBase64(name: string, s: unknown): Uint8Array {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !BASE64.test(s)) {
    badOption(name, 'seed.base64 is not valid base64');
  }
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Fill `dst` from the start of the file at `path`; returns the file's length. */
function readSeedFile(name: string, path: unknown, dst: Uint8Array | undefined): number {
  if (typeof path !== 'string' || path === '') badOption(name, 'seed.path must be a non-empty string');
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    const missing = errCode(e) === 'ENOENT';
    throw new BlockBackendError(
      missing ? 'BLOCK_NOT_FOUND' : 'BLOCK_OPEN',
      `block backend "${name}": seed file ${path} ${missing ? 'does not exist' : `cannot be read: ${(e as Error).message}`}`,
      { cause: e },
    );
  }
  if (!st.isFile())
    throw new BlockBackendError('BLOCK_NOT_A_DISK', `block backend "${name}": seed ${path} is not a regular file`);
  if (!dst) return st.size;
  const fd = fs.openSync(path, 'r');
  try {
    const want = Math.min(st.size, dst.byteLength);
    let done = 0;
    while (done < want) {
      const n = fs.readSync(fd, dst, done, want - done, done);
      if (n === 0) break; // the file shrank meanwhile: the rest stays zero
      done += n;
    }
  } catch (e) {
    throw new BlockBackendError('BLOCK_OPEN', `block backend "${name}": seed file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    fs.closeSync(fd);
  }
  return st.size;
}

export class InMemoryBackend implements BlockTarget, Migrate {
  readonly info: DeviceInfo;
  private readonly data: Uint8Array;
  private closed = false;

  private constructor(readonly desc: InMemoryBackendDescriptor) {
    const p = desc.params;
    this.data = new Uint8Array(p.contents);
    this.info = {
      blockSize: p.blockSize,
      totalBlocks: p.contents.byteLength / p.blockSize,
      readOnly: p.readOnly,
      supportsDiscard: false,
    };
  }

  /** Allocate (and seed) the disk. Throws BlockBackendError (BLOCK_BAD_OPTION, BLOCK_NOT_FOUND, …). */
  static describe(name: string, opts: InMemoryBackendOptions = {}): InMemoryBackendDescriptor {
    if (typeof opts !== 'object' || opts === null) badOption(name, 'options must be an object');
    const blockSize = blockSizeOption(name, opts.blockSize);
    const readOnly = boolOption(name, 'readOnly', opts.readOnly);
    const workers = workersOption(name, opts.workers, 1);

    const seed = opts.seed;
    let bytes: Uint8Array | undefined;
    let seedLen = 0;
    if (seed !== undefined) {
      if (typeof seed !== 'object' || seed === null) badOption(name, 'seed must be {path}, {bytes} or {base64}');
      if ('bytes' in seed) {
        if (!(seed.bytes instanceof Uint8Array)) badOption(name, 'seed.bytes must be a Uint8Array');
        bytes = seed.bytes;
      } else if ('base64' in seed) bytes = decodeBase64(name, seed.base64);
      else if ('path' in seed) seedLen = readSeedFile(name, seed.path, undefined);
      else badOption(name, 'seed must be {path}, {bytes} or {base64}');
      if (bytes) seedLen = bytes.byteLength;
    }

    const size = opts.size ?? seedLen;
    if (opts.size !== undefined && (typeof opts.size !== 'number' || !Number.isSafeInteger(opts.size)))
      badOption(name, `size must be an integer number of bytes, got ${show(opts.size)}`);
    if (size <= 0 || size % blockSize !== 0) {
      badOption(
        name,
        `size must be a non-zero multiple of the ${blockSize}-byte block size, got ${size} bytes` +
          (opts.size === undefined ? ' (the seed length)' : ''),
      );
    }
    if (seedLen > size) badOption(name, `the seed holds ${seedLen} bytes, more than the disk's ${size}`);

    let contents: SharedArrayBuffer;
    try {
      contents = new SharedArrayBuffer(size);
    } catch (e) {
      badOption(name, `cannot allocate ${size} bytes: ${(e as Error).message}`);
    }
    const view = new Uint8Array(contents);
    if (bytes) view.set(bytes);
    else if (seed && 'path' in seed) readSeedFile(name, seed.path, view);
    return { kind: 'in-memory', name, params: { contents, blockSize, readOnly, workers } };
  }

  static open(desc: InMemoryBackendDescriptor): InMemoryBackend {
    return new InMemoryBackend(desc);
  }

  private ok(offset: number, len: number): boolean {
    return !this.closed && Number.isSafeInteger(offset) && offset >= 0 && offset + len <= this.data.byteLength;
  }

  read(offset: number, bufs: Uint8Array[]): BlockResult {
    let len = 0;
    for (const b of bufs) len += b.byteLength;
    if (!this.ok(offset, len)) return BlockResult.Failure;
    let pos = offset;
    for (const b of bufs) {
      b.set(this.data.subarray(pos, pos + b.byteLength));
      pos += b.byteLength;
    }
    return BlockResult.Success;
  }

  write(offset: number, bufs: Uint8Array[]): BlockResult {
    if (this.info.readOnly) return BlockResult.ReadOnly;
    let len = 0;
    for (const b of bufs) len += b.byteLength;
    if (!this.ok(offset, len)) return BlockResult.Failure;
    let pos = offset;
    for (const b of bufs) {
      this.data.set(b, pos);
      pos += b.byteLength;
    }
    return BlockResult.Success;
  }

  /** Nothing to make durable: the contents live exactly as long as the buffer. */
  flush(): BlockResult {
    return this.closed ? BlockResult.Failure : BlockResult.Success;
  }

  discard(_offset: number, _len: number): BlockResult {
    return this.info.readOnly ? BlockResult.ReadOnly : BlockResult.Unsupported;
  }

  writeZeroes(offset: number, len: number): BlockResult {
    if (this.info.readOnly) return BlockResult.ReadOnly;
    if (!this.ok(offset, len)) return BlockResult.Failure;
    this.data.fill(0, offset, offset + len);
    return BlockResult.Success;
  }

  close(): void {
    this.closed = true;
  }

  /** The whole disk, encoded as base64 (no copy of the contents is kept). */
  export(): Payload[] {
    return [InMemoryBlockBackendV1.encode({ bytes: this.data })];
  }

  /** Replace the contents (only while no request is in flight); the payload's length must match the disk. */
  import(offers: PayloadOffers): void {
    const s = offers.take(InMemoryBlockBackendV1);
    offers.finish();
    if (s.bytes.byteLength !== this.data.byteLength) {
      throw new MigrateError(
        'ImportFailed',
        `in-memory-block-backend "${this.desc.name}": payload holds ${s.bytes.byteLength} bytes, ` +
          `the disk has ${this.data.byteLength}`,
      );
    }
    this.data.set(s.bytes);
  }
}
