// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Link facts, the counterpart of the seed's `dladm::Handle::query_link`:
// link name → link id (Linux: the ifindex), MTU and MAC. Asked of the kernel
// with SIOCGIF* ioctls on an AF_INET datagram socket opened in the link's
// network namespace; no command is run.
//
// Threading: synchronous syscalls; any thread. With `netns`, the calling
// thread briefly enters that namespace to open the socket (see sys.ts).

import { close, errno, ioctlPtr } from '../../kvm/src/libc.js';
import { StructBuf, type Ioctl } from '../../kvm/src/abi.js';
import { LinkNotFoundError, LinkSyscallError } from './errors.js';
import { checkLinkName, formatMac } from './names.js';
import { maybeInNetns, socket } from './sys.js';
import {
  AF_INET,
  ARPHRD_ETHER,
  ENODEV,
  Ifreq,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SIOCGIFFLAGS,
  SIOCGIFHWADDR,
  SIOCGIFINDEX,
  SIOCGIFMTU,
} from './uapi.js';

export interface LinkInfo {
  readonly name: string;
  /** The kernel's interface index: what dladm calls the link id. */
  readonly ifindex: number;
  readonly mtu: number;
  /** `aa:bb:cc:dd:ee:ff` for Ethernet-type links (taps, veths, bridges); undefined otherwise. */
  readonly mac: string | undefined;
  /** ARPHRD_* hardware type (1 = Ethernet). */
  readonly hwType: number;
  /** Interface flags (IFF_UP, IFF_RUNNING, ...). */
  readonly flags: number;
}

export interface QueryOptions {
  /** Network namespace (an `ip netns` name) holding the link; default: this thread's. */
  readonly netns?: string;
}

/** An `ifreq` naming `link`, for SIOCGIF* and TUNSETIFF. */
export function ifreqFor(link: string): StructBuf<(typeof Ifreq)['fields']> {
  const req = new StructBuf(Ifreq);
  req.bytes.set(new TextEncoder().encode(link), 0); // checkLinkName bounds it to 15 ASCII bytes
  return req;
}

/** The NUL-terminated name in an `ifreq`. */
export function ifreqName(req: StructBuf<(typeof Ifreq)['fields']>): string {
  const raw = req.get('name');
  const end = raw.indexOf(0);
  return new TextDecoder().decode(raw.subarray(0, end < 0 ? raw.length : end));
}

/** Look up a link by name. Throws `LinkNotFoundError` when there is none, `LinkNameError` for a bad name. */
export function queryLink(name: string, opts: QueryOptions = {}): LinkInfo {
  checkLinkName(name);
  const fd = maybeInNetns(opts.netns, () => socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd < 0) throw new LinkSyscallError('socket(AF_INET, SOCK_DGRAM)', name, errno());
  try {
    const ask = (io: Ioctl): StructBuf<(typeof Ifreq)['fields']> => {
      const req = ifreqFor(name);
      if (ioctlPtr(fd, io.nr, req.bytes) < 0) {
        const e = errno();
        if (e === ENODEV) throw new LinkNotFoundError(name, opts.netns);
        throw new LinkSyscallError(io.name, name, e);
      }
      return req;
    };
    const ifindex = ask(SIOCGIFINDEX).get('ifindex');
    const mtu = ask(SIOCGIFMTU).get('mtu');
    const flags = ask(SIOCGIFFLAGS).get('flags');
    const hw = ask(SIOCGIFHWADDR);
    const hwType = hw.get('hwaddrFamily');
    const mac = hwType === ARPHRD_ETHER ? formatMac(hw.get('hwaddrData').slice(0, 6)) : undefined;
    return { name, ifindex, mtu, mac, hwType, flags };
  } finally {
    close(fd);
  }
}
