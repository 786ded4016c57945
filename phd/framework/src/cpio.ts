// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A writer for cpio archives in the "newc" format (SVR4 without CRC), the
// format the Linux kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// Each member is a 110-byte header of ASCII fields — the magic "070701"
// and thirteen 8-digit hexadecimal numbers: inode, mode, uid, gid, nlink,
// mtime, file size, device major/minor, rdev major/minor, name size
// (including its NUL) and a check field (0 without CRC) — then the NUL-
// terminated name padded to a multiple of 4 bytes (counting the header),
// then the data padded likewise. A symlink's data is its target. The
// archive ends with a member named "TRAILER!!!".
//
// Threading: pure functions.

export const CPIO_NEWC_MAGIC = '070701';
export const CPIO_TRAILER = 'TRAILER!!!';

/** File type bits of `mode` (as in <sys/stat.h>). */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

export class CpioError extends Error {
  readonly code = 'CPIO';
}

const enc = new TextEncoder();

function hex8(n: number, what: string, path: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new CpioError(`${path}: ${what} ${n} does not fit in 32 bits`);
  return n.toString(16).padStart(8, '0');
}

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/**
 * An archive holding `entries` in order (parents before children, as the
 * kernel creates them in archive order). Paths are relative ("bin/sh");
 * a leading "/" is dropped. Owner root, one link each, mtime `mtime`.
 */
export function cpioNewc(entries: readonly CpioEntry[], mtime = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  let ino = 1;
  const member = (name: string, mode: number, data: Uint8Array, rdev: [number, number], nlink: number): void => {
    const nameBytes = enc.encode(name + '\0');
    const fields = [
      ino++,
      mode,
      0, // uid
      0, // gid
      nlink,
      mtime,
      data.length,
      0, // dev major
      0, // dev minor
      rdev[0],
      rdev[1],
      nameBytes.length,
      0, // check
    ];
    const labels = ['inode', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'size', 'devmajor', 'devminor'];
    const header = CPIO_NEWC_MAGIC + fields.map((v, i) => hex8(v, labels[i] ?? 'field', name)).join('');
    parts.push(enc.encode(header), nameBytes, new Uint8Array(pad4(header.length + nameBytes.length)));
    parts.push(data, new Uint8Array(pad4(data.length)));
  };
  const seen = new Set<string>();
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (path === '' || path.split('/').some((c) => c === '' || c === '..')) {
      throw new CpioError(`bad path ${JSON.stringify(e.path)}`);
    }
    if (seen.has(path)) throw new CpioError(`${path} appears twice`);
    seen.add(path);
    switch (e.type) {
      case 'dir':
        member(path, S_IFDIR | (e.mode ?? 0o755), new Uint8Array(0), [0, 0], 2);
        break;
      case 'file':
        member(path, S_IFREG | (e.mode ?? 0o644), typeof e.data === 'string' ? enc.encode(e.data) : e.data, [0, 0], 1);
        break;
      case 'symlink':
        member(path, S_IFLNK | 0o777, enc.encode(e.target), [0, 0], 1);
        break;
      case 'chardev':
        member(path, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(0), [e.major, e.minor], 1);
        break;
    }
  }
  member(CPIO_TRAILER, 0, new Uint8Array(0), [0, 0], 1);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
