// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Tap devices: the host end of a guest NIC, where illumos Propolis has a
// VNIC driven by viona. A `Tap` is one queue of a tap device, opened through
// /dev/net/tun in tap mode with a virtio-net header on every frame
// (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), non-blocking.
//
// Frames cross as `virtio_net_hdr` (10 bytes, or 12 with num_buffers) plus
// the Ethernet frame, exactly the layout a virtio-net device exchanges with
// its guest, so a device can move bytes between guest buffers and the tap
// without rewriting them (except num_buffers: see `VirtioNetHdrMrgRxbuf`).
//
// Threading: a Tap is a file descriptor and a few preallocated buffers. All
// calls are synchronous syscalls. `waitReadable` blocks the calling thread
// in poll(2), so it belongs on a dedicated I/O worker, never on the main
// event loop with a non-zero timeout. To use a tap on another thread, pass
// `tap.handle()` (plain data) to the worker and `Tap.adopt()` it there: fds
// are per process, the koffi bindings per thread. One thread reads a given
// fd at a time; sends may come from another thread (each write(2) carries
// one whole frame).

import type { Ioctl } from '../../kvm/src/abi.js';
import {
  close,
  errno,
  ioctlInt,
  ioctlPtr,
  O_CLOEXEC,
  O_RDWR,
  open,
  poll,
  POLLFD_SIZE,
  POLLIN,
  read,
  write,
} from '../../kvm/src/libc.js';
import {
  LinkExistsError,
  LinkNotFoundError,
  LinkSyscallError,
  LinkOptionError,
  TapUnavailableError,
} from './errors.js';
import { checkLinkName } from './names.js';
import { ifreqFor, ifreqName, queryLink, type LinkInfo } from './query.js';
import { maybeInNetns, readv, writev, type IoVec } from './sys.js';
import {
  EACCES,
  EBADF,
  EAGAIN,
  EBUSY,
  EINTR,
  EINVAL,
  ENOENT,
  EPERM,
  IFF_ATTACH_QUEUE,
  IFF_DETACH_QUEUE,
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_TAP,
  IFF_TUN_EXCL,
  IFF_VNET_HDR,
  O_NONBLOCK,
  POLLERR,
  POLLHUP,
  POLLNVAL,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  TUNGETFEATURES,
  TUNGETIFF,
  TUNGETVNETHDRSZ,
  TUNSETGROUP,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNSETOWNER,
  TUNSETPERSIST,
  TUNSETQUEUE,
  TUNSETVNETHDRSZ,
  VirtioNetHdr,
  VirtioNetHdrMrgRxbuf,
} from './uapi.js';

export const TUN_DEVICE = '/dev/net/tun';

/** How `Tap.open` treats the name: make a new device, use an existing one, or either. */
export type TapMode = 'create' | 'attach' | 'create-or-attach';

/** The two header sizes a virtio-net device uses: legacy without MRG_RXBUF, and MRG_RXBUF or VERSION_1. */
export type VnetHdrLen = 10 | 12;

/**
 * What the reader of the tap (the guest) can take, set with TUNSETOFFLOAD.
 * These follow the guest's negotiated features: GUEST_CSUM → csum,
 * GUEST_TSO4/6 → tso4/tso6, GUEST_ECN → tsoEcn, GUEST_UFO → ufo. Without
 * them the kernel hands over only complete, checksummed frames of at most
 * the MTU. (Offloads the other way, HOST_CSUM/TSO for frames the guest
 * sends, need no setting: a tap always accepts them in the vnet header.)
 */
export interface TapOffloads {
  readonly csum?: boolean;
  readonly tso4?: boolean;
  readonly tso6?: boolean;
  readonly tsoEcn?: boolean;
  /** Accepted for guests that negotiate GUEST_UFO; current kernels never produce UFO frames. */
  readonly ufo?: boolean;
}

export interface TapOptions {
  /** Link name; omitted only with mode 'create', where the kernel picks `tapN`. */
  readonly name?: string;
  readonly mode: TapMode;
  /** Default 12 (virtio 1.0 and MRG_RXBUF); 10 for a legacy device without MRG_RXBUF. */
  readonly vnetHdrLen?: VnetHdrLen;
  /** Open one queue of a multi-queue device (IFF_MULTI_QUEUE); every queue of a device must agree. */
  readonly multiQueue?: boolean;
  /** Default none. */
  readonly offloads?: TapOffloads;
  /** Make the device outlive this fd (TUNSETPERSIST), as `ip tuntap add` does. */
  readonly persist?: boolean;
  /** With persist: let this uid (TUNSETOWNER) / gid (TUNSETGROUP) attach without CAP_NET_ADMIN. */
  readonly owner?: number;
  readonly group?: number;
  /** `ip netns` name to create or find the device in; default: this thread's namespace. */
  readonly netns?: string;
}

/** What a worker needs to use a tap opened elsewhere in the process. */
export interface TapHandle {
  readonly fd: number;
  readonly name: string;
  readonly vnetHdrLen: VnetHdrLen;
  readonly netns: string | undefined;
}

/** Bits returned by `waitReadable`; 0 means the timeout passed (or a signal interrupted the wait). */
export const TapReady = {
  /** A frame is waiting: call `recv` until it returns 0. */
  Readable: 1,
  /** The wake fd (e.g. an eventfd or ioeventfd) is readable. */
  Wake: 2,
  /** The device is gone (deleted, or its namespace destroyed): reads will fail. */
  Gone: 4,
} as const;

/**
 * The largest frame a tap can hand over with TSO/UFO offloads on (a 64 KiB
 * GSO packet plus an Ethernet and VLAN header), not counting the vnet header.
 * Without offloads, MTU + 18 is enough. A read into a shorter buffer is
 * silently truncated (it returns the buffer's length and the rest of the
 * frame is dropped); a buffer shorter than the vnet header fails with -EINVAL
 * and also drops the frame. So the reader sizes its buffers first.
 */
export const MAX_GSO_FRAME = 65535 + 14 + 4;

/** TUN_F_* bits for a set of offloads; throws `LinkOptionError` for combinations the kernel refuses. */
export function tunOffloadFlags(o: TapOffloads): number {
  const segmentation = o.tso4 === true || o.tso6 === true || o.ufo === true || o.tsoEcn === true;
  if (segmentation && o.csum !== true) {
    throw new LinkOptionError('TSO/UFO offloads need checksum offload (csum) too');
  }
  if (o.tsoEcn === true && o.tso4 !== true && o.tso6 !== true) {
    throw new LinkOptionError('tsoEcn needs tso4 or tso6');
  }
  return (
    (o.csum === true ? TUN_F_CSUM : 0) |
    (o.tso4 === true ? TUN_F_TSO4 : 0) |
    (o.tso6 === true ? TUN_F_TSO6 : 0) |
    (o.tsoEcn === true ? TUN_F_TSO_ECN : 0) |
    (o.ufo === true ? TUN_F_UFO : 0)
  );
}

function checkVnetHdrLen(len: number): VnetHdrLen {
  if (len === VirtioNetHdr.size || len === VirtioNetHdrMrgRxbuf.size) return len as VnetHdrLen;
  throw new LinkOptionError(`vnet header length ${len}: only 10 and 12 are virtio-net header sizes`);
}

function openTunDevice(): number {
  const fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) return fd;
  const e = errno();
  if (e === ENOENT) {
    throw new TapUnavailableError(`${TUN_DEVICE} does not exist: load the tun module (modprobe tun)`);
  }
  if (e === EACCES || e === EPERM) {
    throw new TapUnavailableError(`${TUN_DEVICE} is not accessible to this process: run as root or grant access`);
  }
  throw new LinkSyscallError(`open(${TUN_DEVICE})`, undefined, e);
}

/** Why TUNSETIFF refused, in words an operator can act on. */
function setIffHint(e: number, mode: TapMode, multiQueue: boolean): string | undefined {
  switch (e) {
    case EPERM:
      return 'creating a tap needs CAP_NET_ADMIN; attaching to a pre-created one needs its owner or group (ip tuntap add ... user UID)';
    case EBUSY:
      return multiQueue
        ? 'the device is attached without multi-queue, or has no free queue'
        : `the device is already attached to another fd${mode === 'attach' ? ' (another VMM?)' : ''}`;
    case EINVAL:
      return `the existing link is not a ${multiQueue ? 'multi-queue' : 'single-queue'} tap (a tun, another kind of link, or a multi-queue mismatch)`;
    default:
      return undefined;
  }
}

export class Tap {
  #fd: number;
  #vnetHdrLen: VnetHdrLen;
  readonly #owned: boolean;
  /** Two pollfds: the tap and an optional wake fd. Reused by every wait. */
  readonly #pollBuf = new Uint8Array(2 * POLLFD_SIZE);
  readonly #pollView = new DataView(this.#pollBuf.buffer);
  /** Scatter/gather entries reused by `recvv`/`sendv`. */
  readonly #iov: IoVec[] = [];

  private constructor(
    fd: number,
    readonly name: string,
    vnetHdrLen: VnetHdrLen,
    readonly netns: string | undefined,
    owned: boolean,
  ) {
    this.#fd = fd;
    this.#vnetHdrLen = vnetHdrLen;
    this.#owned = owned;
  }

  /**
   * Open one queue of a tap: create it, or attach to an existing one (the
   * seed's `vnic = NAME`). Throws `LinkNotFoundError` (attach, no such link),
   * `LinkExistsError` (create, the name is taken), `LinkSyscallError` with a
   * hint (busy, not a tap, not permitted), `TapUnavailableError`.
   */
  static open(opts: TapOptions): Tap {
    const multiQueue = opts.multiQueue === true;
    const vnetHdrLen = checkVnetHdrLen(opts.vnetHdrLen ?? VirtioNetHdrMrgRxbuf.size);
    const offloadBits = tunOffloadFlags(opts.offloads ?? {});
    if (opts.name === undefined) {
      if (opts.mode !== 'create') throw new LinkOptionError(`a tap opened with mode '${opts.mode}' needs a name`);
    } else {
      checkLinkName(opts.name);
    }
    const wanted = opts.name ?? '';
    const { netns } = opts;

    // For attach, the link must exist before TUNSETIFF, which would otherwise
    // create it; its ifindex, compared afterwards, catches a link that was
    // deleted and re-created in between.
    const before = opts.mode === 'attach' ? queryLink(wanted, { netns }).ifindex : undefined;

    return maybeInNetns(netns, () => {
      const fd = openTunDevice();
      try {
        const req = ifreqFor(wanted);
        const flags =
          IFF_TAP |
          IFF_NO_PI |
          IFF_VNET_HDR |
          (multiQueue ? IFF_MULTI_QUEUE : 0) |
          (opts.mode === 'create' ? IFF_TUN_EXCL : 0);
        req.set('flags', flags);
        if (ioctlPtr(fd, TUNSETIFF.nr, req.bytes) < 0) {
          const e = errno();
          if (e === EBUSY && opts.mode === 'create') throw new LinkExistsError(wanted, netns);
          throw new LinkSyscallError('TUNSETIFF', wanted || undefined, e, setIffHint(e, opts.mode, multiQueue));
        }
        const name = ifreqName(req);
        const tap = new Tap(fd, name, vnetHdrLen, netns, true);
        if (before !== undefined && queryLink(name).ifindex !== before) {
          throw new LinkNotFoundError(name, netns);
        }
        tap.setVnetHdrLen(vnetHdrLen);
        tap.setOffloads(offloadBits);
        if (opts.owner !== undefined) tap.#ioctlValue(TUNSETOWNER, opts.owner);
        if (opts.group !== undefined) tap.#ioctlValue(TUNSETGROUP, opts.group);
        if (opts.persist === true) tap.setPersist(true);
        return tap;
      } catch (e) {
        close(fd);
        throw e;
      }
    });
  }

  /**
   * Open `count` queues of one multi-queue tap (one per virtio-net queue
   * pair). The first is opened with `opts.mode`, the rest attach to it.
   */
  static openQueues(opts: TapOptions, count: number): Tap[] {
    if (!Number.isInteger(count) || count < 1) throw new LinkOptionError(`queue count ${count}`);
    const first = Tap.open({ ...opts, multiQueue: true });
    const taps = [first];
    try {
      for (let i = 1; i < count; i++) {
        taps.push(Tap.open({ ...opts, name: first.name, mode: 'attach', multiQueue: true, persist: false }));
      }
      return taps;
    } catch (e) {
      for (const t of taps) t.close();
      throw e;
    }
  }

  /** Use a tap opened by another thread of this process. The adopter does not own the fd: `close` only forgets it. */
  static adopt(h: TapHandle): Tap {
    return new Tap(h.fd, h.name, checkVnetHdrLen(h.vnetHdrLen), h.netns, false);
  }

  /** The IFF_* flags this kernel's tun driver supports (TUNGETFEATURES). */
  static features(): number {
    const fd = openTunDevice();
    try {
      const out = new Uint8Array(4);
      if (ioctlPtr(fd, TUNGETFEATURES.nr, out) < 0) throw new LinkSyscallError('TUNGETFEATURES', undefined, errno());
      return new DataView(out.buffer).getUint32(0, true);
    } finally {
      close(fd);
    }
  }

  /** The fd, for an epoll set on an I/O thread. -1 after `close`. */
  get fd(): number {
    return this.#fd;
  }

  get vnetHdrLen(): VnetHdrLen {
    return this.#vnetHdrLen;
  }

  handle(): TapHandle {
    this.#checkOpen('handle');
    return { fd: this.#fd, name: this.name, vnetHdrLen: this.#vnetHdrLen, netns: this.netns };
  }

  /** MTU, MAC and ifindex of the device, from its namespace. */
  info(): LinkInfo {
    return queryLink(this.name, { netns: this.netns });
  }

  /** Header size for every frame on this fd (the whole device shares it). */
  setVnetHdrLen(len: VnetHdrLen): void {
    checkVnetHdrLen(len);
    const arg = new Uint8Array(4);
    new DataView(arg.buffer).setInt32(0, len, true);
    this.#ioctlBuf(TUNSETVNETHDRSZ, arg);
    this.#vnetHdrLen = len;
  }

  /** The header size the kernel has (TUNGETVNETHDRSZ). */
  queryVnetHdrLen(): number {
    const arg = new Uint8Array(4);
    this.#ioctlBuf(TUNGETVNETHDRSZ, arg);
    return new DataView(arg.buffer).getInt32(0, true);
  }

  /**
   * Set what the guest can take (see `TapOffloads`); call again whenever the
   * guest renegotiates. A number is passed to the kernel as TUN_F_* bits
   * unchecked (the kernel answers EINVAL for bits it does not know).
   */
  setOffloads(o: TapOffloads | number): void {
    this.#ioctlValue(TUNSETOFFLOAD, typeof o === 'number' ? o : tunOffloadFlags(o));
  }

  /** Persistent: the device stays when its last fd closes. Turning it off on a pre-created tap makes close delete it. */
  setPersist(on: boolean): void {
    this.#ioctlValue(TUNSETPERSIST, on ? 1 : 0);
  }

  /** Enable or disable this queue of a multi-queue tap (TUNSETQUEUE); a disabled queue receives nothing. */
  setQueueEnabled(on: boolean): void {
    const req = ifreqFor('');
    req.set('flags', on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
    this.#ioctlBuf(TUNSETQUEUE, req.bytes);
  }

  /** The device's IFF_* flags as the kernel reports them (TUNGETIFF), IFF_PERSIST included. */
  tunFlags(): number {
    const req = ifreqFor('');
    this.#ioctlBuf(TUNGETIFF, req.bytes);
    return req.get('flags');
  }

  /**
   * Read one frame (vnet header first) into `buf`. Returns its length; 0 when
   * no frame is waiting; a negative errno on failure (-EBADFD once the device
   * is deleted). Never throws for I/O, so a device loop can count and go on.
   */
  recv(buf: Uint8Array): number {
    const n = read(this.#fd, buf, buf.byteLength);
    return n >= 0 ? n : this.#ioFailure();
  }

  /** As `recv`, scattering the frame over `bufs` in order (e.g. the buffers of one descriptor chain). */
  recvv(bufs: readonly Uint8Array[]): number {
    const n = readv(this.#fd, this.#fillIov(bufs), bufs.length);
    return n >= 0 ? n : this.#ioFailure();
  }

  /**
   * Write one frame (vnet header first). Returns bytes written, or a negative
   * errno: a frame the kernel refuses (shorter than its header, a GSO header
   * that does not match the frame: -EINVAL) is the guest's doing, so it is
   * reported, not thrown. -EAGAIN means the device is congested: drop or retry.
   */
  send(frame: Uint8Array): number {
    const n = write(this.#fd, frame, frame.byteLength);
    return n >= 0 ? n : -errno();
  }

  /** As `send`, gathering the frame from `bufs` in order. */
  sendv(bufs: readonly Uint8Array[]): number {
    const n = writev(this.#fd, this.#fillIov(bufs), bufs.length);
    return n >= 0 ? n : -errno();
  }

  /**
   * Block up to `timeoutMs` (-1: forever, 0: just look) until a frame is
   * waiting or `wakeFd` is readable. Returns `TapReady` bits. The wake fd is
   * only polled, not read: the caller drains it (eventfdRead).
   */
  waitReadable(timeoutMs: number, wakeFd?: number): number {
    this.#checkOpen('waitReadable');
    const v = this.#pollView;
    v.setInt32(0, this.#fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt16(6, 0, true);
    const nfds = wakeFd === undefined ? 1 : 2;
    if (wakeFd !== undefined) {
      v.setInt32(POLLFD_SIZE, wakeFd, true);
      v.setInt16(POLLFD_SIZE + 4, POLLIN, true);
      v.setInt16(POLLFD_SIZE + 6, 0, true);
    }
    const r = poll(this.#pollBuf, nfds, timeoutMs);
    if (r < 0) {
      const e = errno();
      if (e === EINTR) return 0;
      throw new LinkSyscallError('poll', this.name, e);
    }
    if (r === 0) return 0;
    let ready = 0;
    const tapEv = v.getInt16(6, true);
    if (tapEv & POLLIN) ready |= TapReady.Readable;
    if (tapEv & (POLLERR | POLLHUP | POLLNVAL)) ready |= TapReady.Gone;
    if (wakeFd !== undefined && v.getInt16(POLLFD_SIZE + 6, true) !== 0) ready |= TapReady.Wake;
    return ready;
  }

  /**
   * Close the fd (an adopted tap only forgets it). A device this fd created
   * without persist disappears with its last fd; a persistent one stays.
   */
  close(): void {
    if (this.#fd < 0) return;
    if (this.#owned) close(this.#fd);
    this.#fd = -1;
  }

  #fillIov(bufs: readonly Uint8Array[]): IoVec[] {
    const iov = this.#iov;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i] as Uint8Array;
      const e = iov[i];
      if (e === undefined) iov.push({ base: b, len: b.byteLength });
      else {
        e.base = b;
        e.len = b.byteLength;
      }
    }
    // koffi marshals the whole array: keep exactly the entries in use.
    iov.length = bufs.length;
    return iov;
  }

  #ioFailure(): number {
    const e = errno();
    return e === EAGAIN ? 0 : -e;
  }

  #checkOpen(op: string): void {
    if (this.#fd < 0) throw new LinkSyscallError(op, this.name, EBADF, 'the tap is closed');
  }

  #ioctlValue(io: Ioctl, value: number): void {
    this.#checkOpen(io.name);
    if (ioctlInt(this.#fd, io.nr, value) < 0) throw new LinkSyscallError(io.name, this.name, errno());
  }

  #ioctlBuf(io: Ioctl, arg: Uint8Array): void {
    this.#checkOpen(io.name);
    if (ioctlPtr(this.#fd, io.nr, arg) < 0) throw new LinkSyscallError(io.name, this.name, errno());
  }
}
