// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Link administration: persistent taps, up/down, MTU, Linux bridges. This is
// what an operator (or a test) does before a VM starts and after it stops;
// on illumos it is `dladm create-vnic` and friends.
//
// Everything but tap creation goes through iproute2's `ip`, run with an
// argument array (never a shell), with names checked first (names.ts): a
// bad name is a `LinkNameError` and no command runs. A failing command
// becomes a typed error that names the link and the command: a missing link
// or namespace is `LinkNotFoundError`/`NetnsNotFoundError`, an existing one
// `LinkExistsError`, anything else `LinkCommandError` with ip's message.
// Taps are created with TUNSETIFF + TUNSETPERSIST (tap.ts), which, unlike
// `ip tuntap add`, refuses an existing name atomically (IFF_TUN_EXCL).
//
// Threading: synchronous; each call waits for one short `ip` process
// (milliseconds). Meant for setup and teardown, not for a data path.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { LinkCommandError, LinkExistsError, LinkNotFoundError, NetnsNotFoundError, LinkOptionError } from './errors.js';
import { checkLinkName, checkNetnsName } from './names.js';
import { Tap } from './tap.js';

export interface LinkOptions {
  /** `ip netns` name of the namespace holding the link; default: this process's. */
  readonly netns?: string;
}

/** The `ip` binary: PATH often lacks /usr/sbin for non-login shells, so the usual places are tried first. */
function ipBinary(): string {
  for (const p of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) if (existsSync(p)) return p;
  return 'ip';
}

/** Path of iproute2's `ip`. */
export const IP_BINARY = ipBinary();
const IP_TIMEOUT_MS = 10_000;

/**
 * Run `ip [-n NETNS] ARGS...` and return its stdout. `link` is the link the
 * command is about, for errors. Arguments must already be validated.
 */
export function runIp(args: readonly string[], link?: string, opts: LinkOptions = {}): string {
  const argv = opts.netns === undefined ? [...args] : ['-n', checkNetnsName(opts.netns), ...args];
  const r = spawnSync(IP_BINARY, argv, { encoding: 'utf8', timeout: IP_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  const shown = ['ip', ...argv];
  if (r.error !== undefined) throw new LinkCommandError(link, shown, null, r.error.message, { cause: r.error });
  if (r.status === 0) return r.stdout;
  const stderr = r.stderr ?? '';
  const cause = new LinkCommandError(link, shown, r.status, stderr);
  if (/Cannot open network namespace/.test(stderr) && opts.netns !== undefined) {
    throw new NetnsNotFoundError(opts.netns, { cause });
  }
  const missing =
    /Cannot find device "([^"]+)"|Device "([^"]+)" does not exist|argument "([^"]+)" is wrong: Device does not exist/.exec(
      stderr,
    );
  if (missing !== null)
    throw new LinkNotFoundError(missing[1] ?? missing[2] ?? missing[3] ?? link ?? '?', opts.netns, { cause });
  if (/File exists/.test(stderr) && link !== undefined) throw new LinkExistsError(link, opts.netns, { cause });
  throw cause;
}

/** Facts `ip -d link show` reports, the part this package uses. */
export interface LinkDetails {
  readonly name: string;
  readonly ifindex: number;
  readonly mtu: number;
  /** MAC for Ethernet-type links. */
  readonly address: string | undefined;
  /** Administratively up (IFF_UP). */
  readonly up: boolean;
  readonly operstate: string;
  /** The bridge this link is a port of. */
  readonly master: string | undefined;
  /** `tun`, `veth`, `bridge`, ...; undefined for links without a kind (lo, physical NICs). */
  readonly kind: string | undefined;
  /** For `tun` links: `tap` or `tun`. */
  readonly tunType: string | undefined;
}

interface IpLinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  address?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string } };
}

function details(j: IpLinkJson): LinkDetails {
  return {
    name: j.ifname,
    ifindex: j.ifindex,
    mtu: j.mtu,
    address: j.address,
    up: (j.flags ?? []).includes('UP'),
    operstate: j.operstate ?? 'UNKNOWN',
    master: j.master,
    kind: j.linkinfo?.info_kind,
    tunType: j.linkinfo?.info_data?.type,
  };
}

/** One link's details; `LinkNotFoundError` if there is none. */
export function showLink(name: string, opts: LinkOptions = {}): LinkDetails {
  checkLinkName(name);
  const out = JSON.parse(runIp(['-j', '-d', 'link', 'show', 'dev', name], name, opts)) as IpLinkJson[];
  const j = out[0];
  if (j === undefined) throw new LinkNotFoundError(name, opts.netns);
  return details(j);
}

/** Every link in the namespace. */
export function listLinks(opts: LinkOptions = {}): LinkDetails[] {
  return (JSON.parse(runIp(['-j', '-d', 'link', 'show'], undefined, opts)) as IpLinkJson[]).map(details);
}

export function linkExists(name: string, opts: LinkOptions = {}): boolean {
  checkLinkName(name);
  try {
    showLink(name, opts);
    return true;
  } catch (e) {
    if (e instanceof LinkNotFoundError) return false;
    throw e;
  }
}

export interface CreateTapOptions extends LinkOptions {
  /** Let this uid / gid attach (e.g. an unprivileged VMM). */
  readonly owner?: number;
  readonly group?: number;
  /** Queues will be opened with IFF_MULTI_QUEUE; a device is one or the other for its lifetime. */
  readonly multiQueue?: boolean;
}

/**
 * Create a persistent tap, like `ip tuntap add dev NAME mode tap`: it stays
 * (down, no fd attached) until `deleteLink`. `LinkExistsError` if the name
 * is taken.
 */
export function createTap(name: string, opts: CreateTapOptions = {}): void {
  checkLinkName(name);
  const tap = Tap.open({
    name,
    mode: 'create',
    persist: true,
    multiQueue: opts.multiQueue,
    owner: opts.owner,
    group: opts.group,
    netns: opts.netns,
  });
  tap.close();
}

/** Delete any link (tap, veth, bridge). Attached tap fds then fail their reads with EBADFD. */
export function deleteLink(name: string, opts: LinkOptions = {}): void {
  checkLinkName(name);
  runIp(['link', 'del', 'dev', name], name, opts);
}

export function setLinkUp(name: string, up: boolean, opts: LinkOptions = {}): void {
  checkLinkName(name);
  runIp(['link', 'set', 'dev', name, up ? 'up' : 'down'], name, opts);
}

/** Set the MTU; the kernel's per-device limits apply (a tap: 68..65521). */
export function setMtu(name: string, mtu: number, opts: LinkOptions = {}): void {
  checkLinkName(name);
  if (!Number.isInteger(mtu) || mtu < 1 || mtu > 0xffff_ffff) throw new LinkOptionError(`MTU ${mtu} for ${name}`);
  runIp(['link', 'set', 'dev', name, 'mtu', String(mtu)], name, opts);
}

/** Create a Linux bridge (spanning tree off, the default, so ports forward as soon as they are up). */
export function createBridge(name: string, opts: LinkOptions = {}): void {
  checkLinkName(name);
  runIp(['link', 'add', 'name', name, 'type', 'bridge'], name, opts);
}

/** Make `link` a port of `bridge`. */
export function attachToBridge(link: string, bridge: string, opts: LinkOptions = {}): void {
  checkLinkName(link);
  checkLinkName(bridge);
  runIp(['link', 'set', 'dev', link, 'master', bridge], link, opts);
}

export function detachFromBridge(link: string, opts: LinkOptions = {}): void {
  checkLinkName(link);
  runIp(['link', 'set', 'dev', link, 'nomaster'], link, opts);
}

/** Move a link into another namespace (`ip link set dev NAME netns TO`). */
export function moveLink(name: string, toNetns: string, opts: LinkOptions = {}): void {
  checkLinkName(name);
  checkNetnsName(toNetns);
  try {
    runIp(['link', 'set', 'dev', name, 'netns', toNetns], name, opts);
  } catch (e) {
    if (e instanceof LinkCommandError && /Invalid "netns" value/.test(e.stderr)) {
      throw new NetnsNotFoundError(toNetns, { cause: e });
    }
    throw e;
  }
}
