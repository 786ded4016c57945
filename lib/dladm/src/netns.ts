// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Throw-away network namespaces for tests and PHD: every packet a test sends
// stays inside namespaces it made, never on the host's own links.
//
// `NetNs.create()` makes a namespace with a unique name
// (`<prefix>-<pid>-<n>`), loopback up. Links are made directly inside it
// (veth pairs are created with both ends already in their namespaces), so
// nothing is left in the root namespace even if the process dies between two
// steps. `destroy()` kills the processes started in it, deletes its links
// and the namespace, synchronously, and is idempotent; namespaces still
// alive at process exit are destroyed by an exit hook, and those of a
// process that was killed are swept by the next `NetNs.create()` (their pid
// is in the name).
//
// Threading: main thread (child processes and the exit hook live there).
// Commands are synchronous except `spawn`.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { isIP } from 'node:net';

import { LinkCommandError, LinkNotFoundError, LinkOptionError, NetnsNotFoundError } from './errors.js';
import { checkLinkName, checkNetnsName } from './names.js';
import { IP_BINARY, listLinks, runIp } from './link.js';
import { inNetns } from './sys.js';

/** Prefix of namespaces made here unless a test chooses another. */
export const DEFAULT_NETNS_PREFIX = 'ptsns';

const live = new Set<NetNs>();
let counter = 0;
let exitHookInstalled = false;
const swept = new Set<string>();

/** Names of all namespaces `ip netns` knows. */
export function listNetns(): string[] {
  const out = runIp(['-j', 'netns', 'list']).trim();
  if (out === '') return [];
  return (JSON.parse(out) as { name: string }[]).map((n) => n.name);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Destroy namespaces named `<prefix>-<pid>-<n>` whose process is gone (a
 * test run killed before its cleanup ran). Returns the names removed.
 */
export function sweepStaleNetns(prefix: string = DEFAULT_NETNS_PREFIX): string[] {
  checkNetnsName(prefix);
  const re = new RegExp(`^${prefix.replace(/[.]/g, '\\.')}-(\\d+)-\\d+$`);
  const removed: string[] = [];
  for (const name of listNetns()) {
    const m = re.exec(name);
    if (m === null || pidAlive(Number(m[1])) || Number(m[1]) === process.pid) continue;
    NetNs.attach(name).destroy();
    removed.push(name);
  }
  return removed;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  readonly timeoutMs?: number;
  readonly input?: string;
}

function validCidr(cidr: string): boolean {
  const slash = cidr.lastIndexOf('/');
  if (slash < 0) return false;
  const kind = isIP(cidr.slice(0, slash));
  const len = cidr.slice(slash + 1);
  return kind !== 0 && /^\d{1,3}$/.test(len) && Number(len) <= (kind === 4 ? 32 : 128);
}

export class NetNs {
  #destroyed = false;
  readonly #children = new Set<ChildProcess>();

  private constructor(readonly name: string) {}

  /** Make a new namespace with a unique name and loopback up. */
  static create(opts: { prefix?: string } = {}): NetNs {
    const prefix = checkNetnsName(opts.prefix ?? DEFAULT_NETNS_PREFIX);
    if (!swept.has(prefix)) {
      swept.add(prefix);
      sweepStaleNetns(prefix);
    }
    const name = checkNetnsName(`${prefix}-${process.pid}-${++counter}`);
    runIp(['netns', 'add', name]);
    const ns = new NetNs(name);
    live.add(ns);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', destroyAllOnExit);
    }
    try {
      ns.setUp('lo');
    } catch (e) {
      ns.destroy();
      throw e;
    }
    return ns;
  }

  /** Manage an existing namespace (e.g. to destroy a stale one); not destroyed at exit. */
  static attach(name: string): NetNs {
    return new NetNs(checkNetnsName(name));
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** `ip -n NAME ARGS...`; `link` names the link for errors. */
  ip(args: readonly string[], link?: string): string {
    return runIp(args, link, { netns: this.name });
  }

  /** Run a command inside the namespace and wait for it; throws `LinkCommandError` unless it exits 0. */
  exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): ExecResult {
    const argv = ['netns', 'exec', this.name, cmd, ...args];
    const r = spawnSync(IP_BINARY, argv, {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 10_000,
      input: opts.input,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const shown = ['ip', ...argv];
    if (r.error !== undefined) throw new LinkCommandError(undefined, shown, null, r.error.message, { cause: r.error });
    if (r.status !== 0) throw new LinkCommandError(undefined, shown, r.status, r.stderr || `signal ${r.signal}`);
    return { stdout: r.stdout, stderr: r.stderr };
  }

  /** Start a long-running command inside the namespace; it is killed by `destroy`. */
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    this.#checkAlive();
    // `ip netns exec` execs the command in place, so the child's pid is the command's.
    const child = spawn(IP_BINARY, ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Run synchronous `fn` with the calling thread inside this namespace (sockets and taps opened there stay there). */
  enter<T>(fn: () => T): T {
    this.#checkAlive();
    return inNetns(this.name, fn);
  }

  /**
   * Create a veth pair: `name` here, `peer` in `peerNs` (default: here too).
   * Both ends are created in place, never in the root namespace.
   */
  addVeth(name: string, peer: string, peerNs: NetNs = this): void {
    checkLinkName(name);
    checkLinkName(peer);
    this.ip(['link', 'add', 'name', name, 'type', 'veth', 'peer', 'name', peer, 'netns', peerNs.name], name);
  }

  /** Add an address (`10.1.2.3/24`, `fd00::1/64`) to a link here. */
  addAddress(link: string, cidr: string): void {
    checkLinkName(link);
    if (!validCidr(cidr)) throw new LinkOptionError(`${JSON.stringify(cidr)} for ${link} is not an address/prefix`);
    this.ip(['addr', 'add', cidr, 'dev', link], link);
  }

  setUp(link: string, up: boolean = true): void {
    checkLinkName(link);
    this.ip(['link', 'set', 'dev', link, up ? 'up' : 'down'], link);
  }

  /** Move a link into this namespace from `from` (default: this process's namespace). */
  moveIn(link: string, from?: NetNs): void {
    checkLinkName(link);
    runIp(['link', 'set', 'dev', link, 'netns', this.name], link, from === undefined ? {} : { netns: from.name });
  }

  /** Names of the links here (lo included). */
  links(): string[] {
    return listLinks({ netns: this.name }).map((l) => l.name);
  }

  /**
   * Kill the processes started here, delete every link here (a veth takes
   * its peer with it) and the namespace. Idempotent; tries every step and
   * throws one error listing what failed.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    const problems: unknown[] = [];
    for (const c of this.#children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    this.#children.clear();
    let names: string[] = [];
    try {
      names = this.links();
    } catch (e) {
      if (!(e instanceof NetnsNotFoundError)) problems.push(e);
    }
    for (const l of names) {
      if (l === 'lo') continue;
      try {
        this.ip(['link', 'del', 'dev', l], l);
      } catch (e) {
        if (!(e instanceof LinkNotFoundError)) problems.push(e);
      }
    }
    try {
      runIp(['netns', 'del', this.name]);
    } catch (e) {
      // Already gone is what we wanted.
      if (!(e instanceof LinkCommandError && /No such file/.test(e.stderr))) problems.push(e);
    }
    if (problems.length > 0) {
      throw new AggregateError(
        problems,
        `destroying network namespace ${this.name}: ${problems.map(String).join('; ')}`,
      );
    }
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new NetnsNotFoundError(this.name);
  }
}

function destroyAllOnExit(): void {
  for (const ns of [...live]) {
    try {
      ns.destroy();
    } catch (e) {
      process.stderr.write(`dladm: ${String(e)}\n`);
    }
  }
}

/** Run `fn` with a fresh namespace, destroyed afterwards whether `fn` succeeds or throws. */
export async function withNetns<T>(fn: (ns: NetNs) => Promise<T> | T, opts: { prefix?: string } = {}): Promise<T> {
  const ns = NetNs.create(opts);
  try {
    return await fn(ns);
  } finally {
    ns.destroy();
  }
}
