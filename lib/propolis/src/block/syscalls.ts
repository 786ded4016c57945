// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The two file syscalls the block layer needs and Node's fs does not offer:
// fallocate(2), for discard (punch a hole) and write-zeroes (zero a range),
// and lseek(2), to size a block device (fstat reports 0 bytes for one).
//
// Threading: koffi binds functions per isolate, so every thread importing
// this module gets its own bindings. errno is thread-local and koffi reads
// it on the calling thread; each wrapper reads it right after its call.

import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const fallocateRaw = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as (
  fd: number,
  mode: number,
  offset: number,
  len: number,
) => number;
const lseekRaw = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as (
  fd: number,
  offset: number,
  whence: number,
) => number | bigint;

/** <linux/falloc.h> */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

const SEEK_END = 2;

/** fallocate(2): 0 on success, else the errno. */
export function fallocate(fd: number, mode: number, offset: number, len: number): number {
  return fallocateRaw(fd, mode, offset, len) === 0 ? 0 : koffi.errno();
}

/** The size of whatever `fd` refers to, by seeking to its end; a negative errno on failure. */
export function sizeBySeek(fd: number): number {
  const r = Number(lseekRaw(fd, 0, SEEK_END));
  return r < 0 ? -koffi.errno() : r;
}

const errnoNames = new Map<number, string>(
  Object.entries(koffi.os.errno as Record<string, number>).map(([name, n]) => [n, name]),
);

export function errnoName(e: number): string {
  return errnoNames.get(e) ?? `errno ${e}`;
}

export const EOPNOTSUPP = (koffi.os.errno as Record<string, number>)['EOPNOTSUPP'] ?? 95;
export const EIO = (koffi.os.errno as Record<string, number>)['EIO'] ?? 5;
