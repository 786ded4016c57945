// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The few libc entry points the VMM needs, bound through koffi.
//
// Threading: koffi function objects are created per isolate, so each worker
// thread that imports this module binds its own; the calls are plain
// synchronous syscalls and safe from any thread. errno is thread-local in
// libc and koffi reads it on the calling thread, so `errno()` must be called
// right after the failing call, before any other FFI call on the same thread.

import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

// ioctl(2) is variadic in C. On x86-64 SysV a variadic callee only uses %al
// to decide whether to spill vector registers, and no vector argument is ever
// passed here, so fixed prototypes are ABI-safe and let koffi skip the slower
// variadic path. Two shapes: a pointer argument and an integer argument.
export const ioctlPtr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as (
  fd: number,
  req: number,
  arg: Uint8Array | null,
) => number;
export const ioctlInt = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as (
  fd: number,
  req: number,
  arg: number,
) => number;
/** ioctl whose argument is a raw address (bigint), e.g. a buffer inside a mapping. */
export const ioctlAddr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'uintptr_t']) as (
  fd: number,
  req: number,
  arg: bigint,
) => number;

export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
export const read = libc.func('long read(int fd, void *buf, size_t count)') as (
  fd: number,
  buf: Uint8Array,
  count: number,
) => number;
export const write = libc.func('long write(int fd, void *buf, size_t count)') as (
  fd: number,
  buf: Uint8Array,
  count: number,
) => number;
const mmapRaw = libc.func('uintptr_t mmap(uintptr_t addr, size_t len, int prot, int flags, int fd, int64_t off)') as (
  addr: bigint,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => number | bigint;

/**
 * mmap(2); returns `MAP_FAILED` on error. koffi hands back a 64-bit integer
 * as a Number when it is a safe integer (every user-space address) and as a
 * BigInt otherwise (MAP_FAILED), so the result is normalised to bigint here:
 * callers do bigint arithmetic on addresses and compare with `MAP_FAILED`.
 */
export function mmap(addr: bigint, len: number, prot: number, flags: number, fd: number, off: number): bigint {
  return BigInt(mmapRaw(addr, len, prot, flags, fd, off));
}
export const munmap = libc.func('int munmap(uintptr_t addr, size_t len)') as (addr: bigint, len: number) => number;
export const mprotect = libc.func('int mprotect(uintptr_t addr, size_t len, int prot)') as (
  addr: bigint,
  len: number,
  prot: number,
) => number;
export const madvise = libc.func('int madvise(uintptr_t addr, size_t len, int advice)') as (
  addr: bigint,
  len: number,
  advice: number,
) => number;
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)') as (
  init: number,
  flags: number,
) => number;
export const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)') as (
  fds: Uint8Array,
  nfds: number,
  timeout: number,
) => number;
export const epollCreate1 = libc.func('int epoll_create1(int flags)') as (flags: number) => number;
export const epollCtl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as (
  epfd: number,
  op: number,
  fd: number,
  event: Uint8Array | null,
) => number;
export const epollWait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as (
  epfd: number,
  events: Uint8Array,
  maxevents: number,
  timeout: number,
) => number;

const syscall3 = libc.func('syscall', 'long', ['long', 'long', 'long', 'long']) as (
  nr: number,
  a: number,
  b: number,
  c: number,
) => number;
const getpidFn = libc.func('int getpid()') as () => number;
const strerrorFn = libc.func('const char *strerror(int errnum)') as (e: number) => string;

const SYS_gettid = 186;
const SYS_tgkill = 234;

/** Kernel thread id of the calling thread (each worker_thread is its own kernel thread). */
export function gettid(): number {
  return syscall3(SYS_gettid, 0, 0, 0);
}

/** Send `sig` to one thread of this process; used to kick a vCPU thread out of KVM_RUN. */
export function tgkill(tid: number, sig: number): number {
  return syscall3(SYS_tgkill, getpidFn(), tid, sig);
}

export function errno(): number {
  return koffi.errno();
}

export function strerror(e: number): string {
  return strerrorFn(e);
}

const errnoNames = new Map<number, string>(
  Object.entries(koffi.os.errno as Record<string, number>).map(([name, n]) => [n, name]),
);

export function errnoName(e: number): string {
  return errnoNames.get(e) ?? `errno ${e}`;
}

/** Signal an eventfd (adds 1 to its counter). Returns false if the write failed. */
export function eventfdSignal(fd: number): boolean {
  const b = eventfdBuf;
  new DataView(b.buffer).setBigUint64(0, 1n, true);
  return write(fd, b, 8) === 8;
}

/** Read and reset an eventfd's counter; 0n when nothing was pending (non-blocking fd) or on error. */
export function eventfdRead(fd: number): bigint {
  const b = eventfdBuf;
  if (read(fd, b, 8) !== 8) return 0n;
  return new DataView(b.buffer).getBigUint64(0, true);
}
const eventfdBuf = new Uint8Array(8);

/** A view over native memory. The caller guarantees the mapping outlives every use of the view. */
export function view(addr: bigint, len: number): ArrayBuffer {
  return koffi.view(addr, len) as ArrayBuffer;
}

export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
export const MADV_DONTDUMP = 16;
export const MADV_HUGEPAGE = 14;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
/** struct epoll_event is packed on x86-64: u32 events, then u64 data at offset 4. */
export const EPOLL_EVENT_SIZE = 12;
export const POLLIN = 0x001;
/** struct pollfd: int fd, short events, short revents. */
export const POLLFD_SIZE = 8;
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const E2BIG = 7;
export const EAGAIN = 11;
export const EACCES = 13;
