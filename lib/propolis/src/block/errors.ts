// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Operator errors of the block layer: bad backend options, image files that
// are missing, of the wrong kind or not writable. They are raised only when
// a backend is described or opened — never by a request, which reports a
// `BlockResult` instead — and carry a stable `code` and the path involved.
//
// Threading: plain values; a pool worker sends `{code, message}` to the
// thread that started it, which rebuilds the error with `fromWire`.

export type BlockErrorCode =
  /** An option has the wrong type or value (block size, worker count, size, …). */
  | 'BLOCK_BAD_OPTION'
  /** The image file does not exist. */
  | 'BLOCK_NOT_FOUND'
  /** The path is neither a regular file nor a block device. */
  | 'BLOCK_NOT_A_DISK'
  /** A writable backend over a file that cannot or must not be written. */
  | 'BLOCK_NOT_WRITABLE'
  /** The image holds less than one block. */
  | 'BLOCK_TOO_SMALL'
  /** The image shrank between describe and open. */
  | 'BLOCK_CHANGED'
  /** O_DIRECT was asked for and the file system refuses it. */
  | 'BLOCK_DIRECT_UNSUPPORTED'
  /** Any other failure to open or inspect the image (errno in the message). */
  | 'BLOCK_OPEN'
  /** A descriptor of a kind this build does not know. */
  | 'BLOCK_UNKNOWN_KIND'
  /** A pool worker could not start, or the pool was used outside its lifecycle. */
  | 'BLOCK_POOL';

export class BlockBackendError extends Error {
  constructor(
    readonly code: BlockErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BlockBackendError';
  }

  /** What crosses a thread boundary (`code` does not survive structured cloning of an Error). */
  toWire(): { code: BlockErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }

  static fromWire(w: { code: BlockErrorCode; message: string }): BlockBackendError {
    return new BlockBackendError(w.code, w.message);
  }
}

/** The errno name of a Node system error (`ENOENT`, …), if it is one. */
export function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}
