// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// libc entry points this package needs beyond lib/kvm's libc.ts (socket,
// setns, readv, writev), and running a synchronous function inside a named
// network namespace.
//
// Threading: koffi binds per isolate, so each worker that imports this module
// gets its own bindings. `inNetns` moves only the calling thread (setns(2)
// acts on one thread); the function it runs must be synchronous so no other
// JavaScript runs on this thread while it is in the other namespace. Other
// threads (libuv's pool, workers) are unaffected.

import koffi from 'koffi';

import { close, errno, O_CLOEXEC, open } from '../../kvm/src/libc.js';
import { LinkSyscallError, NetnsNotFoundError } from './errors.js';
import { checkNetnsName } from './names.js';
import { CLONE_NEWNET, ENOENT, O_RDONLY } from './uapi.js';

const libc = koffi.load('libc.so.6');

export const socket = libc.func('int socket(int domain, int type, int protocol)') as (
  domain: number,
  type: number,
  protocol: number,
) => number;

const setns = libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;

// `struct iovec` with a TypedArray base: koffi passes the array's own memory
// (its byteOffset included), so readv fills the caller's buffers in place.
// The type name is private to this package to avoid clashing with another
// module's declaration in the same process.
koffi.struct('dladm_iovec', { base: 'void *', len: 'size_t' });

/** One element of a scatter/gather list: `base` is read or written in place, `len` ≤ its length. */
export interface IoVec {
  base: Uint8Array;
  len: number;
}

export const readv = libc.func('long readv(int fd, const dladm_iovec *iov, int iovcnt)') as (
  fd: number,
  iov: readonly IoVec[],
  cnt: number,
) => number;

export const writev = libc.func('long writev(int fd, const dladm_iovec *iov, int iovcnt)') as (
  fd: number,
  iov: readonly IoVec[],
  cnt: number,
) => number;

/** Where `ip netns add NAME` leaves the namespace's handle. */
export function netnsPath(name: string): string {
  return `/run/netns/${checkNetnsName(name)}`;
}

/**
 * Run `fn` with the calling thread in network namespace `name` (a name from
 * `ip netns add`), then return the thread to where it was. Sockets and tap
 * fds opened inside keep that namespace after the thread leaves.
 *
 * If the thread cannot be returned to its namespace the process is in a
 * state nothing else here expects, so that is thrown as a plain Error
 * (a bug or a broken host, not an operator error).
 */
export function inNetns<T>(name: string, fn: () => T): T {
  const path = netnsPath(name);
  const target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    const e = errno();
    if (e === ENOENT) throw new NetnsNotFoundError(name);
    throw new LinkSyscallError(`open(${path})`, undefined, e);
  }
  const home = open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    const e = errno();
    close(target);
    throw new LinkSyscallError('open(/proc/thread-self/ns/net)', undefined, e);
  }
  try {
    if (setns(target, CLONE_NEWNET) !== 0) throw new LinkSyscallError(`setns(${path})`, undefined, errno());
    const goHome = (): void => {
      if (setns(home, CLONE_NEWNET) !== 0) {
        throw new Error(`dladm: could not return this thread to its network namespace (errno ${errno()})`);
      }
    };
    let result: T;
    try {
      result = fn();
    } catch (e) {
      goHome(); // if this throws too, its error is the one that matters
      throw e;
    }
    goHome();
    return result;
  } finally {
    close(home);
    close(target);
  }
}

/** `fn()` in namespace `netns`, or right here when it is undefined. */
export function maybeInNetns<T>(netns: string | undefined, fn: () => T): T {
  return netns === undefined ? fn() : inNetns(netns, fn);
}
