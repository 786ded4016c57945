// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The block layer's contract between storage frontends (virtio-block,
// NVMe) and backends (file, in-memory), after the seed's block layer:
// operations Read/Write/Flush/Discard (plus WriteZeroes), results
// Success/Failure/ReadOnly/Unsupported, and a DeviceInfo.
//
// A backend is described once on the main thread (a structured-cloneable
// descriptor: paths, SharedArrayBuffers) and opened on whichever thread
// processes a device's queues; an opened `BlockTarget` executes requests
// synchronously on the calling thread, directly between guest memory and
// storage. Guest buffers arrive as byte views already bounds-checked
// against guest RAM by the frontend (GuestMemory.slice). For asynchronous
// use a `BlockWorkerPool` (pool.ts) runs a backend on worker threads;
// requests to it carry a `BlockOp` and name guest buffers by (gpa, length).
// Backend kinds: file.ts, in-memory.ts; `openBackend` in backend.ts.
//
// Threading: a BlockTarget belongs to the thread that opened it.

/**
 * The operations a frontend asks of a backend. Numbers, because requests
 * cross threads in shared memory (see pool.ts).
 */
export enum BlockOp {
  Read = 0,
  Write = 1,
  Flush = 2,
  Discard = 3,
  WriteZeroes = 4,
}

export enum BlockResult {
  Success = 'success',
  /** The operation failed (EIO, ENOSPC, …); the guest sees an I/O error. */
  Failure = 'failure',
  /** A write-type request on a read-only backend. */
  ReadOnly = 'read-only',
  Unsupported = 'unsupported',
}

export interface DeviceInfo {
  /** Bytes per block (512, 4096, …). */
  blockSize: number;
  /** Capacity in blocks. */
  totalBlocks: number;
  readOnly: boolean;
  supportsDiscard: boolean;
}

export interface BlockTarget {
  readonly info: DeviceInfo;
  /** Read `sum(bufs lengths)` bytes at byte `offset` into `bufs`, in order. */
  read(offset: number, bufs: Uint8Array[]): BlockResult;
  /** Write `bufs` at byte `offset`; durable only after `flush`. */
  write(offset: number, bufs: Uint8Array[]): BlockResult;
  /** Make every completed write durable (reach stable storage) before returning. */
  flush(): BlockResult;
  /** Deallocate `len` bytes at `offset` (a hint; reads may return old data or zeros). */
  discard(offset: number, len: number): BlockResult;
  /** Make `len` bytes at `offset` read as zeros. */
  writeZeroes(offset: number, len: number): BlockResult;
  close(): void;
}

/** A structured-cloneable backend description, opened per thread with `openBackend`. */
export interface BackendDescriptor {
  readonly kind: string;
  readonly name: string;
  readonly params: unknown;
}
