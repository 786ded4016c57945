// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Names of links and network namespaces, checked before they reach a
// syscall or a command line, and MAC address text.
//
// The kernel accepts any link name of 1..15 bytes without '/', ':' or
// whitespace other than "." and "..". This package is stricter: ASCII
// letters, digits, '_', '.', '-', not starting with '-' (so no name can be
// read as an option by `ip`) and no '%' (TUNSETIFF would treat "tap%d" as a
// template and pick a different name). A name that passes here is safe as
// one argv element and as `ifr_name`.
//
// Threading: pure functions; usable from any thread.

import { LinkNameError, NetnsNameError } from './errors.js';
import { IFNAMSIZ } from './uapi.js';

const LINK_CHARS = /^[A-Za-z0-9_.-]+$/;

/** The longest link name: IFNAMSIZ less the terminating NUL. */
export const MAX_LINK_NAME = IFNAMSIZ - 1;

/** Throws `LinkNameError` unless `name` is a link name this package will pass on. */
export function checkLinkName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new LinkNameError(String(name), 'empty');
  if (!LINK_CHARS.test(name)) {
    throw new LinkNameError(name, 'only ASCII letters, digits, "_", "." and "-" are allowed');
  }
  if (name.length > MAX_LINK_NAME) {
    throw new LinkNameError(name, `${name.length} bytes; at most ${MAX_LINK_NAME} fit in IFNAMSIZ`);
  }
  if (name.startsWith('-')) throw new LinkNameError(name, 'must not start with "-"');
  if (name === '.' || name === '..') throw new LinkNameError(name, 'reserved');
  return name;
}

/** Longest namespace name accepted; `ip netns` allows more, but these end up in paths and logs. */
export const MAX_NETNS_NAME = 64;

/** Throws `NetnsNameError` unless `name` is a namespace name (a file under /run/netns) this package uses. */
export function checkNetnsName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new NetnsNameError(String(name), 'empty');
  if (!LINK_CHARS.test(name)) {
    throw new NetnsNameError(name, 'only ASCII letters, digits, "_", "." and "-" are allowed');
  }
  if (name.length > MAX_NETNS_NAME) throw new NetnsNameError(name, `longer than ${MAX_NETNS_NAME} characters`);
  if (name.startsWith('-') || name.startsWith('.')) throw new NetnsNameError(name, 'must not start with "-" or "."');
  return name;
}

/** `aa:bb:cc:dd:ee:ff` (lower case) from 6 bytes. */
export function formatMac(b: Uint8Array): string {
  if (b.length !== 6) throw new RangeError(`a MAC address has 6 bytes, not ${b.length}`);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** 6 bytes from `aa:bb:cc:dd:ee:ff` (either case); throws RangeError on anything else. */
export function parseMac(s: string): Uint8Array {
  const m =
    /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/.exec(s);
  if (m === null) throw new RangeError(`not a MAC address: ${JSON.stringify(s)}`);
  return Uint8Array.from(m.slice(1), (h) => parseInt(h, 16));
}
