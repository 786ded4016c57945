// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The file backend: a raw disk image in a regular file or a block device,
// as Propolis's `file_storage_backend` / `[block_dev.<n>] type = "file"`.
//
// `FileBackend.describe` runs once, on the main thread: it checks the
// options and the image (exists, is a regular file or a block device, is
// writable if it must be, holds at least one block), fixes the capacity and
// probes whether holes can be punched. The descriptor then opens on any
// thread (`FileBackend.open`, or `openBackend`); every open reports the
// capacity fixed at describe time, so all threads agree on it.
//
// Requests use positioned vectored I/O (preadv/pwritev through Node's
// fs.readvSync/writevSync), flush is fdatasync(2), discard punches a hole
// and write-zeroes zeroes a range with fallocate(2) (or writes zeros where
// the file system cannot). A request never throws: any error (EIO, ENOSPC,
// EBADF, a short read because the file shrank, …) becomes
// `BlockResult.Failure` and is kept in `lastError` for diagnostics.
//
// With `direct`, the image is opened O_DIRECT (no page cache). O_DIRECT
// needs buffers, offsets and lengths aligned to the device's logical block;
// guest buffers have no such promise, so data always bounces through a
// page-aligned scratch mapping of this instance, and requests must start
// and end on a block boundary of this backend (others fail).
//
// Threading: a FileBackend belongs to the thread that opened it (its scratch
// buffer and `lastError` are not shared). Several threads may open the same
// descriptor; each gets its own file descriptor on the same image.

import * as fs from 'node:fs';
import * as libc from '../../../kvm/src/libc.js';
import { BlockBackendError, errCode } from './errors.js';
import { blockSizeOption, boolOption, badOption, workersOption } from './options.js';
import {
  EIO,
  EOPNOTSUPP,
  errnoName,
  fallocate,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  sizeBySeek,
} from './syscalls.js';
import { BlockResult, type BackendDescriptor, type BlockTarget, type DeviceInfo } from './types.js';

export interface FileBackendOptions {
  path: string;
  /** Open the image read-only; write-type requests then answer `ReadOnly`. Default false. */
  readOnly?: boolean;
  /** Bytes per block: a power of two from 512 to 64 KiB. Default 512. */
  blockSize?: number;
  /** Bypass the page cache (O_DIRECT). Default false. */
  direct?: boolean;
  /** Worker threads of a pool in front of this backend: default 8, above 32 means 8. */
  workers?: number;
  /** Make flush a no-op (Propolis's `skip_flush`): faster, and not durable. Default false. */
  skipFlush?: boolean;
}

export interface FileBackendParams {
  readonly path: string;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly direct: boolean;
  readonly workers: number;
  readonly skipFlush: boolean;
  readonly blockDevice: boolean;
  /** Capacity fixed at describe time. */
  readonly totalBlocks: number;
  /**
   * Bytes past the last whole block (image size not a multiple of the block
   * size): they stay in the image and the guest cannot reach them.
   */
  readonly tailBytes: number;
  readonly supportsDiscard: boolean;
}

export interface FileBackendDescriptor extends BackendDescriptor {
  readonly kind: 'file';
  readonly params: FileBackendParams;
}

/**
 * The system calls a FileBackend makes, so tests can inject faults (ENOSPC,
 * EIO) that a healthy host cannot produce on demand. Each may throw a Node
 * system error; `fallocate` returns an errno instead.
 */
export interface FileIo {
  readv(fd: number, bufs: Uint8Array[], position: number): number;
  writev(fd: number, bufs: Uint8Array[], position: number): number;
  fdatasync(fd: number): void;
  fstat(fd: number): { size: number; nlink: number };
  fallocate(fd: number, mode: number, offset: number, len: number): number;
}

export const nodeFileIo: FileIo = {
  readv: (fd, bufs, position) => fs.readvSync(fd, bufs, position),
  writev: (fd, bufs, position) => fs.writevSync(fd, bufs, position),
  fdatasync: (fd) => fs.fdatasyncSync(fd),
  fstat: (fd) => fs.fstatSync(fd),
  fallocate,
};

/** Size of the aligned bounce buffer of a direct-I/O backend. */
const DIRECT_SCRATCH = 1 << 20;
/** Zeros written per call where fallocate cannot zero a range. */
const ZERO_CHUNK = 1 << 20;
let zeroChunk: Uint8Array | undefined;

function where(name: string, path: string): string {
  return `block backend "${name}": image ${path}`;
}

function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Open flags for an image; O_CLOEXEC keeps the image out of spawned helpers. */
function openFlags(readOnly: boolean, direct: boolean): number {
  const c = fs.constants;
  return (readOnly ? c.O_RDONLY : c.O_RDWR) | (direct ? c.O_DIRECT : 0) | libc.O_CLOEXEC;
}

/** Open an image and turn the ways that fails into operator errors. */
function openImage(name: string, path: string, readOnly: boolean, direct: boolean): { fd: number; st: fs.Stats } {
  let st: fs.Stats;
  try {
    // stat before open: opening a FIFO would block until a writer appears.
    st = fs.statSync(path);
  } catch (e) {
    if (errCode(e) === 'ENOENT') {
      throw new BlockBackendError('BLOCK_NOT_FOUND', `${where(name, path)} does not exist`, { cause: e });
    }
    throw new BlockBackendError('BLOCK_OPEN', `${where(name, path)}: ${(e as Error).message}`, { cause: e });
  }
  if (!st.isFile() && !st.isBlockDevice()) {
    throw new BlockBackendError(
      'BLOCK_NOT_A_DISK',
      `${where(name, path)} is ${fileKind(st)}, not a regular file or block device`,
    );
  }
  // Root may write any file whatever its mode; an image whose owner removed
  // every write bit is still refused for a writable backend, so a mistaken
  // configuration cannot modify an image meant to be kept pristine.
  if (!readOnly && (st.mode & 0o222) === 0) {
    throw new BlockBackendError(
      'BLOCK_NOT_WRITABLE',
      `${where(name, path)} has no write permission (mode ${(st.mode & 0o777).toString(8)}); ` +
        'make it writable or configure the backend read-only',
    );
  }
  let fd: number;
  try {
    fd = fs.openSync(path, openFlags(readOnly, direct));
  } catch (e) {
    const code = errCode(e);
    if (!readOnly && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ETXTBSY')) {
      throw new BlockBackendError(
        'BLOCK_NOT_WRITABLE',
        `${where(name, path)} cannot be opened for writing (${code}); configure the backend read-only`,
        { cause: e },
      );
    }
    if (direct && code === 'EINVAL') {
      throw new BlockBackendError(
        'BLOCK_DIRECT_UNSUPPORTED',
        `${where(name, path)}: the file system does not support O_DIRECT; turn direct I/O off`,
        { cause: e },
      );
    }
    if (code === 'ENOENT') {
      throw new BlockBackendError('BLOCK_NOT_FOUND', `${where(name, path)} does not exist`, { cause: e });
    }
    throw new BlockBackendError('BLOCK_OPEN', `${where(name, path)}: ${(e as Error).message}`, { cause: e });
  }
  return { fd, st };
}

function imageSize(name: string, path: string, fd: number, st: fs.Stats): number {
  if (!st.isBlockDevice()) return st.size;
  const n = sizeBySeek(fd);
  if (n < 0)
    throw new BlockBackendError('BLOCK_OPEN', `${where(name, path)}: cannot size the device: ${errnoName(-n)}`);
  return n;
}

/** A page-aligned anonymous mapping for O_DIRECT bounces. */
function mapScratch(name: string, path: string): { addr: bigint; bytes: Uint8Array } {
  const addr = libc.mmap(
    0n,
    DIRECT_SCRATCH,
    libc.PROT_READ | libc.PROT_WRITE,
    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS,
    -1,
    0,
  );
  if (addr === libc.MAP_FAILED) {
    throw new BlockBackendError('BLOCK_OPEN', `${where(name, path)}: cannot map a direct-I/O buffer`);
  }
  return { addr, bytes: new Uint8Array(libc.view(addr, DIRECT_SCRATCH)) };
}

function sum(bufs: Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.byteLength;
  return n;
}

/** `bufs` without their first `skip` bytes (the rare path after a short transfer). */
function dropFront(bufs: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

export class FileBackend implements BlockTarget {
  readonly info: DeviceInfo;
  /** The last error a request met (for logs and tests); requests report only Failure. */
  lastError: string | undefined;
  private fd: number;
  private readonly capacity: number;
  private scratch: { addr: bigint; bytes: Uint8Array } | undefined;
  /** Cleared when the file system turns out not to zero ranges; zeros are written instead. */
  private zeroRange = true;

  private constructor(
    private readonly desc: FileBackendDescriptor,
    fd: number,
    private readonly io: FileIo,
  ) {
    const p = desc.params;
    this.fd = fd;
    this.capacity = p.totalBlocks * p.blockSize;
    this.info = {
      blockSize: p.blockSize,
      totalBlocks: p.totalBlocks,
      readOnly: p.readOnly,
      supportsDiscard: p.supportsDiscard,
    };
    if (p.direct) this.scratch = mapScratch(desc.name, p.path);
  }

  /**
   * Check options and image and fix the capacity. Throws BlockBackendError
   * (BLOCK_BAD_OPTION, BLOCK_NOT_FOUND, BLOCK_NOT_A_DISK, BLOCK_NOT_WRITABLE,
   * BLOCK_TOO_SMALL, BLOCK_DIRECT_UNSUPPORTED, BLOCK_OPEN).
   */
  static describe(name: string, opts: FileBackendOptions): FileBackendDescriptor {
    if (typeof opts !== 'object' || opts === null) badOption(name, 'options must be an object');
    if (typeof opts.path !== 'string' || opts.path === '') badOption(name, 'path must be a non-empty string');
    const path = opts.path;
    const blockSize = blockSizeOption(name, opts.blockSize);
    const readOnly = boolOption(name, 'readOnly', opts.readOnly);
    const direct = boolOption(name, 'direct', opts.direct);
    const skipFlush = boolOption(name, 'skipFlush', opts.skipFlush);
    const workers = workersOption(name, opts.workers);

    const { fd, st } = openImage(name, path, readOnly, direct);
    try {
      const size = imageSize(name, path, fd, st);
      const totalBlocks = Math.floor(size / blockSize);
      if (totalBlocks === 0) {
        throw new BlockBackendError(
          'BLOCK_TOO_SMALL',
          `${where(name, path)} holds ${size} bytes, less than one ${blockSize}-byte block`,
        );
      }
      if (direct) probeDirect(name, path, fd, blockSize);
      return {
        kind: 'file',
        name,
        params: {
          path,
          readOnly,
          blockSize,
          direct,
          workers,
          skipFlush,
          blockDevice: st.isBlockDevice(),
          totalBlocks,
          tailBytes: size - totalBlocks * blockSize,
          supportsDiscard: !readOnly && st.isFile() && probePunchHole(fd, size),
        },
      };
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Open a described image on this thread. `io` replaces the system calls
   * (fault injection in tests). Throws BlockBackendError if the image can no
   * longer be opened as described (BLOCK_CHANGED if it shrank).
   */
  static open(desc: FileBackendDescriptor, io: FileIo = nodeFileIo): FileBackend {
    const p = desc.params;
    const { fd, st } = openImage(desc.name, p.path, p.readOnly, p.direct);
    try {
      const size = imageSize(desc.name, p.path, fd, st);
      if (size < p.totalBlocks * p.blockSize) {
        throw new BlockBackendError(
          'BLOCK_CHANGED',
          `${where(desc.name, p.path)} shrank to ${size} bytes since it was described with ` +
            `${p.totalBlocks} blocks of ${p.blockSize} bytes`,
        );
      }
      return new FileBackend(desc, fd, io);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get path(): string {
    return this.desc.params.path;
  }

  private fail(op: string, offset: number, e: unknown): BlockResult {
    this.lastError = `${op} at byte ${offset} of ${this.path}: ${e instanceof Error ? e.message : String(e)}`;
    return BlockResult.Failure;
  }

  /** The request lies inside the device (the frontend checks too; this keeps a bad one off the file). */
  private inRange(offset: number, len: number): boolean {
    return Number.isSafeInteger(offset) && offset >= 0 && offset + len <= this.capacity;
  }

  private aligned(offset: number, len: number): boolean {
    const m = this.info.blockSize - 1;
    return (offset & m) === 0 && (len & m) === 0;
  }

  /** A request that cannot run: closed backend, out of range, or unaligned under O_DIRECT. */
  private refuse(op: string, offset: number, len: number): BlockResult | undefined {
    if (this.fd < 0) return this.fail(op, offset, 'backend is closed');
    if (!this.inRange(offset, len)) return this.fail(op, offset, `${len} bytes exceed the capacity`);
    if (this.scratch && !this.aligned(offset, len)) return this.fail(op, offset, 'unaligned request under O_DIRECT');
    return undefined;
  }

  read(offset: number, bufs: Uint8Array[]): BlockResult {
    const len = sum(bufs);
    const no = this.refuse('read', offset, len);
    if (no) return no;
    if (len === 0) return BlockResult.Success;
    try {
      return this.scratch ? this.readDirect(offset, bufs, len) : this.readAll(offset, bufs, len);
    } catch (e) {
      return this.fail('read', offset, e);
    }
  }

  private readAll(offset: number, bufs: Uint8Array[], len: number): BlockResult {
    let done = this.io.readv(this.fd, bufs, offset);
    while (done < len) {
      // A short read: the file ended before the capacity fixed at open, so
      // it was truncated underneath us. The data is gone: fail, never zero-fill.
      const n = this.io.readv(this.fd, dropFront(bufs, done), offset + done);
      if (n <= 0) return this.fail('read', offset, `image ends before byte ${offset + len} (truncated?)`);
      done += n;
    }
    return BlockResult.Success;
  }

  private readDirect(offset: number, bufs: Uint8Array[], len: number): BlockResult {
    const scratch = this.scratch!.bytes;
    let bi = 0;
    let boff = 0;
    for (let done = 0; done < len;) {
      const n = Math.min(scratch.byteLength, len - done);
      const chunk = scratch.subarray(0, n);
      const got = this.io.readv(this.fd, [chunk], offset + done);
      if (got !== n) return this.fail('read', offset, `short direct read (${got} of ${n} bytes; truncated?)`);
      // Scatter the chunk over the guest buffers.
      for (let c = 0; c < n;) {
        const b = bufs[bi]!;
        const k = Math.min(b.byteLength - boff, n - c);
        b.set(chunk.subarray(c, c + k), boff);
        c += k;
        boff += k;
        if (boff === b.byteLength) {
          bi++;
          boff = 0;
        }
      }
      done += n;
    }
    return BlockResult.Success;
  }

  write(offset: number, bufs: Uint8Array[]): BlockResult {
    if (this.info.readOnly) return BlockResult.ReadOnly;
    const len = sum(bufs);
    const no = this.refuse('write', offset, len);
    if (no) return no;
    if (len === 0) return BlockResult.Success;
    try {
      return this.scratch ? this.writeDirect(offset, bufs, len) : this.writeAll(offset, bufs, len);
    } catch (e) {
      return this.fail('write', offset, e);
    }
  }

  private writeAll(offset: number, bufs: Uint8Array[], len: number): BlockResult {
    let done = this.io.writev(this.fd, bufs, offset);
    while (done < len) {
      const n = this.io.writev(this.fd, dropFront(bufs, done), offset + done);
      if (n <= 0) return this.fail('write', offset, 'the file system accepted no more bytes');
      done += n;
    }
    return BlockResult.Success;
  }

  private writeDirect(offset: number, bufs: Uint8Array[], len: number): BlockResult {
    const scratch = this.scratch!.bytes;
    let bi = 0;
    let boff = 0;
    for (let done = 0; done < len;) {
      const n = Math.min(scratch.byteLength, len - done);
      // Gather the next chunk of the guest buffers.
      for (let c = 0; c < n;) {
        const b = bufs[bi]!;
        const k = Math.min(b.byteLength - boff, n - c);
        scratch.set(b.subarray(boff, boff + k), c);
        c += k;
        boff += k;
        if (boff === b.byteLength) {
          bi++;
          boff = 0;
        }
      }
      const put = this.io.writev(this.fd, [scratch.subarray(0, n)], offset + done);
      if (put !== n) return this.fail('write', offset, `short direct write (${put} of ${n} bytes)`);
      done += n;
    }
    return BlockResult.Success;
  }

  flush(): BlockResult {
    if (this.fd < 0) return this.fail('flush', 0, 'backend is closed');
    if (this.info.readOnly || this.desc.params.skipFlush) return BlockResult.Success;
    try {
      this.io.fdatasync(this.fd);
      if (!this.desc.params.blockDevice) {
        // Durable, but maybe not where the operator will look: an image
        // removed or cut short underneath us has lost the guest's data.
        const st = this.io.fstat(this.fd);
        if (st.nlink === 0) return this.fail('flush', 0, 'the image file was removed');
        if (st.size < this.capacity) return this.fail('flush', 0, `the image was truncated to ${st.size} bytes`);
      }
      return BlockResult.Success;
    } catch (e) {
      return this.fail('flush', 0, e);
    }
  }

  /** fallocate(2) through `io`; an exception (an injected fault) counts as EIO. */
  private fallocate(mode: number, offset: number, len: number): number {
    try {
      return this.io.fallocate(this.fd, mode, offset, len);
    } catch {
      return EIO;
    }
  }

  discard(offset: number, len: number): BlockResult {
    if (this.info.readOnly) return BlockResult.ReadOnly;
    if (!this.info.supportsDiscard) return BlockResult.Unsupported;
    const no = this.refuse('discard', offset, len);
    if (no) return no;
    if (len === 0) return BlockResult.Success;
    const e = this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
    if (e === 0) return BlockResult.Success;
    this.fail('discard', offset, `fallocate(PUNCH_HOLE): ${errnoName(e)}`);
    return e === EOPNOTSUPP ? BlockResult.Unsupported : BlockResult.Failure;
  }

  writeZeroes(offset: number, len: number): BlockResult {
    if (this.info.readOnly) return BlockResult.ReadOnly;
    const no = this.refuse('write-zeroes', offset, len);
    if (no) return no;
    if (len === 0) return BlockResult.Success;
    if (this.zeroRange) {
      const e = this.fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len);
      if (e === 0) return BlockResult.Success;
      if (e !== EOPNOTSUPP) return this.fail('write-zeroes', offset, `fallocate(ZERO_RANGE): ${errnoName(e)}`);
      this.zeroRange = false; // e.g. tmpfs: write the zeros ourselves from now on
    }
    try {
      if (this.scratch) {
        this.scratch.bytes.fill(0);
        for (let done = 0; done < len;) {
          const n = Math.min(this.scratch.bytes.byteLength, len - done);
          const put = this.io.writev(this.fd, [this.scratch.bytes.subarray(0, n)], offset + done);
          if (put !== n) return this.fail('write-zeroes', offset, `short direct write (${put} of ${n} bytes)`);
          done += n;
        }
        return BlockResult.Success;
      }
      zeroChunk ??= new Uint8Array(ZERO_CHUNK);
      for (let done = 0; done < len;) {
        const n = Math.min(ZERO_CHUNK, len - done);
        const r = this.writeAll(offset + done, [zeroChunk.subarray(0, n)], n);
        if (r !== BlockResult.Success) return r;
        done += n;
      }
      return BlockResult.Success;
    } catch (e) {
      return this.fail('write-zeroes', offset, e);
    }
  }

  close(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {}
      this.fd = -1;
    }
    // Requests check `fd` first, so nothing touches the scratch view after this.
    if (this.scratch) {
      libc.munmap(this.scratch.addr, DIRECT_SCRATCH);
      this.scratch = undefined;
    }
  }
}

/**
 * Whether O_DIRECT reads of this backend's blocks work: the device's logical
 * block may be larger than the configured block size (4Kn disks).
 */
function probeDirect(name: string, path: string, fd: number, blockSize: number): void {
  const s = mapScratch(name, path);
  try {
    fs.readSync(fd, s.bytes, 0, blockSize, 0);
  } catch (e) {
    throw new BlockBackendError(
      'BLOCK_DIRECT_UNSUPPORTED',
      `${where(name, path)}: O_DIRECT reads of ${blockSize}-byte blocks fail (${errCode(e) ?? String(e)}); ` +
        'use a larger block size or turn direct I/O off',
      { cause: e },
    );
  } finally {
    // The view `s.bytes` is dropped with this frame; nothing keeps it.
    libc.munmap(s.addr, DIRECT_SCRATCH);
  }
}

/**
 * Whether the file system punches holes, asked without touching data: a
 * hole past the end of the file (KEEP_SIZE leaves the size alone) is a
 * no-op where punching is supported and EOPNOTSUPP where it is not.
 */
function probePunchHole(fd: number, size: number): boolean {
  const past = Math.ceil((size + 1) / 65536) * 65536;
  return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, past, 65536) === 0;
}
