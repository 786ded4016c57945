// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The kernel ABI of tap devices and interface queries, declared once.
//
// `struct ifreq` (<net/if.h>), the TUN ioctls and flags (<linux/if_tun.h>),
// the SIOCGIF* socket ioctls (<linux/sockios.h>), the virtio-net header the
// tap prepends to every frame (<linux/virtio_net.h>) and the few libc
// constants this package passes to syscalls. `uapi.test.ts` compiles a C
// program against those headers from these same declarations and compares
// every size, offset, ioctl number and constant, so a wrong number here fails
// a test rather than handing the kernel a malformed request.
//
// Threading: pure data; usable from any thread.

import { bytes, IOR, IOW, nested, struct, u16, u8, i32 } from '../../kvm/src/abi.js';
import type { Ioctl, StructDef } from '../../kvm/src/abi.js';

/** Bytes in an interface name buffer, NUL included: names are at most 15 bytes. */
export const IFNAMSIZ = 16;

/**
 * `struct ifreq`: the name, then a 24-byte union (its largest member is
 * `struct ifmap`). Only the union members this package uses are declared;
 * they all start at offset 16.
 *
 * `ifr_flags` is a C `short`; it is declared u16 because it holds a bit
 * mask (abi.ts has no signed 16-bit kind, and none of the IFF_* bits the
 * VMM sets reaches bit 15 except IFF_TUN_EXCL, which is write-only).
 */
export const Ifreq = struct('ifreq', 40, {
  name: bytes(0, IFNAMSIZ, 'ifr_name'),
  flags: u16(16, 'ifr_flags'),
  mtu: i32(16, 'ifr_mtu'),
  ifindex: i32(16, 'ifr_ifindex'),
  hwaddrFamily: u16(16, 'ifr_hwaddr.sa_family'),
  hwaddrData: bytes(18, 14, 'ifr_hwaddr.sa_data'),
});

/**
 * The header a tap with IFF_VNET_HDR puts before every frame it delivers and
 * expects before every frame written to it: the legacy 10-byte
 * `virtio_net_hdr`. Multi-byte fields are in the byte order set by
 * TUNSETVNETLE/BE, which defaults to the host's (little-endian on x86-64,
 * which is also virtio 1.0's order), so the VMM never changes it.
 */
export const VirtioNetHdr = struct('virtio_net_hdr', 10, {
  flags: u8(0),
  gsoType: u8(1),
  hdrLen: u16(2),
  gsoSize: u16(4),
  csumStart: u16(6),
  csumOffset: u16(8),
});

/**
 * The 12-byte header of VIRTIO_NET_F_MRG_RXBUF and of every VERSION_1
 * device: the legacy header plus `num_buffers`. A tap configured with a
 * 12-byte header (TUNSETVNETHDRSZ) writes the first 10 bytes on receive and
 * skips `num_buffers` without writing it: the device model fills it in.
 */
export const VirtioNetHdrMrgRxbuf = struct('virtio_net_hdr_mrg_rxbuf', 12, {
  hdr: nested(VirtioNetHdr, 0),
  numBuffers: u16(10),
});

// ---- TUN ioctls (<linux/if_tun.h>, type 'T') ----
//
// The size encoded in these numbers is `int` or `unsigned int` even where the
// argument is a `struct ifreq *`: the header declares them that way, and the
// number is what the kernel matches on.

const T = 'T'.charCodeAt(0);
const INT = 4;

/** Create or attach to a tun/tap device; argument `struct ifreq *` (name, flags). */
export const TUNSETIFF = IOW('TUNSETIFF', T, 202, INT);
/** Make the device outlive its last fd (1) or not (0); argument by value. */
export const TUNSETPERSIST = IOW('TUNSETPERSIST', T, 203, INT);
/** Let this uid attach to the device; argument by value. */
export const TUNSETOWNER = IOW('TUNSETOWNER', T, 204, INT);
/** Let this gid attach to the device; argument by value. */
export const TUNSETGROUP = IOW('TUNSETGROUP', T, 206, INT);
/** IFF_* flags the kernel supports; argument `unsigned int *`. */
export const TUNGETFEATURES = IOR('TUNGETFEATURES', T, 207, INT);
/** TUN_F_* offloads the reader of this fd can take; argument by value. */
export const TUNSETOFFLOAD = IOW('TUNSETOFFLOAD', T, 208, INT);
/** Name and flags of the attached device; argument `struct ifreq *`. */
export const TUNGETIFF = IOR('TUNGETIFF', T, 210, INT);
/** Current vnet header size; argument `int *`. */
export const TUNGETVNETHDRSZ = IOR('TUNGETVNETHDRSZ', T, 215, INT);
/** Set the vnet header size (at least 10); argument `int *`. */
export const TUNSETVNETHDRSZ = IOW('TUNSETVNETHDRSZ', T, 216, INT);
/** Enable (IFF_ATTACH_QUEUE) or disable (IFF_DETACH_QUEUE) one queue of a multi-queue device; `struct ifreq *`. */
export const TUNSETQUEUE = IOW('TUNSETQUEUE', T, 217, INT);

// ---- interface queries on a socket (<linux/sockios.h>) ----
//
// These predate the _IOC encoding: plain numbers, checked like the rest.

export const SIOCGIFFLAGS: Ioctl = { name: 'SIOCGIFFLAGS', nr: 0x8913 };
export const SIOCGIFMTU: Ioctl = { name: 'SIOCGIFMTU', nr: 0x8921 };
export const SIOCGIFHWADDR: Ioctl = { name: 'SIOCGIFHWADDR', nr: 0x8927 };
export const SIOCGIFINDEX: Ioctl = { name: 'SIOCGIFINDEX', nr: 0x8933 };

// ---- TUNSETIFF flags (ifr_flags) ----

export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_ATTACH_QUEUE = 0x0200;
export const IFF_DETACH_QUEUE = 0x0400;
/** Reported by TUNGETIFF on a persistent device. */
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** With TUNSETIFF: fail with EBUSY instead of attaching when the name exists. */
export const IFF_TUN_EXCL = 0x8000;

// ---- TUNSETOFFLOAD bits: what the fd's reader (the guest) can take ----

/** Frames may arrive with a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;

// ---- virtio_net_hdr values ----

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

// ---- interface flags and hardware types (<net/if.h>, <net/if_arp.h>) ----

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const ARPHRD_ETHER = 1;

// ---- libc constants for the syscalls made here ----

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const O_RDONLY = 0;
export const O_NONBLOCK = 0o4000;
export const CLONE_NEWNET = 0x40000000;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
export const EACCES = 13;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EBADFD = 77;

/** Everything the header check walks; `uapi.test.ts` fails if an export is missing here. */
export const ALL_STRUCTS: readonly StructDef[] = [Ifreq, VirtioNetHdr, VirtioNetHdrMrgRxbuf];

export const ALL_IOCTLS: readonly Ioctl[] = [
  TUNSETIFF,
  TUNSETPERSIST,
  TUNSETOWNER,
  TUNSETGROUP,
  TUNGETFEATURES,
  TUNSETOFFLOAD,
  TUNGETIFF,
  TUNGETVNETHDRSZ,
  TUNSETVNETHDRSZ,
  TUNSETQUEUE,
  SIOCGIFFLAGS,
  SIOCGIFMTU,
  SIOCGIFHWADDR,
  SIOCGIFINDEX,
];

export const ALL_CONSTANTS: Readonly<Record<string, number>> = {
  IFNAMSIZ,
  IFF_TUN,
  IFF_TAP,
  IFF_MULTI_QUEUE,
  IFF_ATTACH_QUEUE,
  IFF_DETACH_QUEUE,
  IFF_PERSIST,
  IFF_NO_PI,
  IFF_VNET_HDR,
  IFF_TUN_EXCL,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_ECN,
  IFF_UP,
  IFF_RUNNING,
  ARPHRD_ETHER,
  AF_INET,
  SOCK_DGRAM,
  SOCK_CLOEXEC,
  O_RDONLY,
  O_NONBLOCK,
  CLONE_NEWNET,
  POLLERR,
  POLLHUP,
  POLLNVAL,
  EPERM,
  ENOENT,
  EINTR,
  EBADF,
  EAGAIN,
  EACCES,
  EBUSY,
  EEXIST,
  ENODEV,
  EINVAL,
  EBADFD,
};
