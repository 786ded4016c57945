// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Typed errors of the link layer. These are operator errors in STYLE.md's
// sense (a `vnic` that names no link, a tap someone else holds, a name the
// kernel would refuse): each has a stable `code`, a message naming the link
// and what failed, and the underlying cause where there is one.
//
// Threading: plain classes; usable from any thread.

import { errnoName, strerror } from '../../kvm/src/libc.js';

export type DladmErrorCode =
  | 'LINK_NAME_INVALID'
  | 'NETNS_NAME_INVALID'
  | 'LINK_NOT_FOUND'
  | 'LINK_EXISTS'
  | 'NETNS_NOT_FOUND'
  | 'LINK_COMMAND_FAILED'
  | 'LINK_SYSCALL_FAILED'
  | 'TAP_UNAVAILABLE'
  | 'LINK_OPTION_INVALID'
  | 'DNSMASQ_FAILED';

export abstract class DladmError extends Error {
  abstract readonly code: DladmErrorCode;
}

/** A link name the kernel would refuse or that could be mistaken for an option; never passed on. */
export class LinkNameError extends DladmError {
  readonly code = 'LINK_NAME_INVALID';
  constructor(
    readonly link: string,
    reason: string,
  ) {
    super(`invalid link name ${JSON.stringify(link)}: ${reason}`);
    this.name = 'LinkNameError';
  }
}

export class NetnsNameError extends DladmError {
  readonly code = 'NETNS_NAME_INVALID';
  constructor(
    readonly netns: string,
    reason: string,
  ) {
    super(`invalid network namespace name ${JSON.stringify(netns)}: ${reason}`);
    this.name = 'NetnsNameError';
  }
}

function where(netns: string | undefined): string {
  return netns === undefined ? '' : ` in network namespace ${netns}`;
}

export class LinkNotFoundError extends DladmError {
  readonly code = 'LINK_NOT_FOUND';
  constructor(
    readonly link: string,
    readonly netns?: string,
    options?: ErrorOptions,
  ) {
    super(`no link named ${link}${where(netns)}`, options);
    this.name = 'LinkNotFoundError';
  }
}

export class LinkExistsError extends DladmError {
  readonly code = 'LINK_EXISTS';
  constructor(
    readonly link: string,
    readonly netns?: string,
    options?: ErrorOptions,
  ) {
    super(`a link named ${link} already exists${where(netns)}`, options);
    this.name = 'LinkExistsError';
  }
}

export class NetnsNotFoundError extends DladmError {
  readonly code = 'NETNS_NOT_FOUND';
  constructor(
    readonly netns: string,
    options?: ErrorOptions,
  ) {
    super(`no network namespace named ${netns}`, options);
    this.name = 'NetnsNotFoundError';
  }
}

/** A command (`ip ...`) exited non-zero or could not be started. */
export class LinkCommandError extends DladmError {
  readonly code = 'LINK_COMMAND_FAILED';
  constructor(
    /** The link the command was about, when there is one. */
    readonly link: string | undefined,
    readonly argv: readonly string[],
    readonly status: number | null,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    const what = link === undefined ? '' : ` (link ${link})`;
    const why = stderr.trim() || (status === null ? 'did not run' : `exit status ${status}`);
    super(`\`${argv.join(' ')}\` failed${what}: ${why}`, options);
    this.name = 'LinkCommandError';
  }
}

/** An ioctl or syscall on a tap fd or query socket failed. */
export class LinkSyscallError extends DladmError {
  readonly code = 'LINK_SYSCALL_FAILED';
  constructor(
    /** The ioctl or syscall, e.g. `TUNSETIFF`. */
    readonly op: string,
    readonly link: string | undefined,
    readonly errno: number,
    hint?: string,
  ) {
    const what = link === undefined ? '' : ` on ${link}`;
    super(`${op}${what} failed: ${errnoName(errno)} (${strerror(errno)})${hint ? `: ${hint}` : ''}`);
    this.name = 'LinkSyscallError';
  }

  get errnoName(): string {
    return errnoName(this.errno);
  }
}

/** /dev/net/tun is missing or not usable by this process. */
export class TapUnavailableError extends DladmError {
  readonly code = 'TAP_UNAVAILABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TapUnavailableError';
  }
}

/** An option value or combination that cannot work (TSO without checksum offload, MTU 0, a malformed address). */
export class LinkOptionError extends DladmError {
  readonly code = 'LINK_OPTION_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'LinkOptionError';
  }
}

export class DnsmasqError extends DladmError {
  readonly code = 'DNSMASQ_FAILED';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DnsmasqError';
  }
}
