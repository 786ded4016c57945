// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A DHCP server for test networks: dnsmasq, run inside a test namespace on
// one interface (typically the tap a guest is behind), DNS off, leases in a
// temporary directory, logging to its stderr, which is kept in `log`.
//
// The binary is the system's if installed (Debian: dnsmasq-base). Otherwise
// it is unpacked from Debian's packages with `debianPackage` together with
// the shared libraries a minimal system lacks, and run with
// LD_LIBRARY_PATH pointing at them; nothing is installed system-wide. If
// that still leaves a library missing, the error says to
// `apt-get install -y dnsmasq-base`.
//
// Threading: main thread (a child process and its output streams).

import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { debianPackage } from '../../propolis/src/testing/debian.js';
import { DnsmasqError } from './errors.js';
import { checkLinkName } from './names.js';
import type { NetNs } from './netns.js';

/** How to run dnsmasq on this machine. */
export interface DnsmasqBinary {
  readonly path: string;
  /** Directories of unpacked libraries, for LD_LIBRARY_PATH; empty for the system's binary. */
  readonly libraryDirs: readonly string[];
}

/** Debian packages holding dnsmasq and the libraries it needs that a minimal Debian 12 lacks. */
const UNPACKED_PACKAGES = ['dnsmasq-base', 'libnetfilter-conntrack3', 'libnfnetlink0', 'libnftables1', 'libnftnl11'];
const INSTALL_HINT = 'install it with `apt-get install -y dnsmasq-base`';

let cached: DnsmasqBinary | undefined;

export function dnsmasqBinary(): DnsmasqBinary {
  if (cached !== undefined) return cached;
  for (const p of ['/usr/sbin/dnsmasq', '/sbin/dnsmasq', '/usr/bin/dnsmasq']) {
    if (existsSync(p)) return (cached = { path: p, libraryDirs: [] });
  }
  let roots: string[];
  try {
    roots = UNPACKED_PACKAGES.map((p) => debianPackage(p));
  } catch (e) {
    throw new DnsmasqError(
      `dnsmasq is not installed and could not be unpacked from Debian's packages; ${INSTALL_HINT}`,
      {
        cause: e,
      },
    );
  }
  const path = join(roots[0] as string, 'usr', 'sbin', 'dnsmasq');
  const libraryDirs = roots
    .flatMap((r) => [join(r, 'usr', 'lib', 'x86_64-linux-gnu'), join(r, 'lib', 'x86_64-linux-gnu')])
    .filter((d) => existsSync(d));
  const ldd = spawnSync('ldd', [path], {
    encoding: 'utf8',
    env: { ...process.env, LD_LIBRARY_PATH: libraryDirs.join(':') },
  });
  const missing = (ldd.stdout ?? '').split('\n').filter((l) => l.includes('not found'));
  if (ldd.status !== 0 || missing.length > 0) {
    throw new DnsmasqError(
      `the unpacked dnsmasq cannot run here (${missing.map((l) => l.trim()).join(', ') || ldd.stderr}); ${INSTALL_HINT}`,
    );
  }
  return (cached = { path, libraryDirs });
}

export interface DnsmasqOptions {
  /** Interface in the namespace to serve; it must be up and have an address in the range's subnet. */
  readonly iface: string;
  /** First and last address handed out, e.g. 10.0.2.100 and 10.0.2.199. */
  readonly rangeStart: string;
  readonly rangeEnd: string;
  readonly netmask?: string;
  /** dnsmasq lease time syntax: seconds, `10m`, `1h`, `infinite`. Default 1h. */
  readonly leaseTime?: string;
  /** Default gateway to offer (option 3); none by default. */
  readonly router?: string;
  /** More dnsmasq options, e.g. `--dhcp-host=52:54:00:12:34:56,10.0.2.15`. */
  readonly extraArgs?: readonly string[];
  /**
   * Ping an address before offering it (dnsmasq's default), which delays
   * every first offer by 3 s. Default off: a test network has no other hosts.
   */
  readonly pingCheck?: boolean;
  /** How long to wait for dnsmasq to report its DHCP range. Default 5 s. */
  readonly readyTimeoutMs?: number;
}

export class Dnsmasq {
  /** Every line dnsmasq logged, in order. */
  readonly log: string[] = [];
  #stopped = false;
  readonly #waiters = new Set<{ re: RegExp; resolve: (line: string) => void }>();

  constructor(
    readonly child: ChildProcess,
    readonly dir: string,
  ) {}

  get leaseFile(): string {
    return join(this.dir, 'leases');
  }

  /** Current leases as `{ mac, ip, hostname }`, from the lease file. */
  leases(): { mac: string; ip: string; hostname: string }[] {
    if (!existsSync(this.leaseFile)) return [];
    return readFileSync(this.leaseFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const [, mac = '', ip = '', hostname = ''] = l.split(' ');
        return { mac, ip, hostname };
      });
  }

  /** Record one line of dnsmasq's output (called by `startDnsmasq` as output arrives). */
  addLogLine(line: string): void {
    this.log.push(line);
    for (const w of this.#waiters) {
      if (w.re.test(line)) {
        this.#waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  /**
   * The first log line matching `re`, already logged or yet to come (e.g.
   * /DHCPACK/ once a guest has its address). Rejects after `timeoutMs`.
   */
  async waitForLog(re: RegExp, timeoutMs = 5000): Promise<string> {
    const seen = this.log.find((l) => re.test(l));
    if (seen !== undefined) return seen;
    let timer: NodeJS.Timeout | undefined;
    let waiter: { re: RegExp; resolve: (line: string) => void } | undefined;
    try {
      return await new Promise<string>((resolve, reject) => {
        waiter = { re, resolve };
        this.#waiters.add(waiter);
        timer = setTimeout(
          () => reject(new DnsmasqError(`dnsmasq logged nothing matching ${re} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      if (waiter !== undefined) this.#waiters.delete(waiter);
    }
  }

  /** Terminate dnsmasq and remove its directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start dnsmasq serving DHCP on `opts.iface` inside `ns`; resolves once it is listening. */
export async function startDnsmasq(ns: NetNs, opts: DnsmasqOptions): Promise<Dnsmasq> {
  checkLinkName(opts.iface);
  for (const [k, v] of Object.entries({
    rangeStart: opts.rangeStart,
    rangeEnd: opts.rangeEnd,
    netmask: opts.netmask,
    router: opts.router,
  })) {
    if (v !== undefined && !isIPv4(v))
      throw new DnsmasqError(`dnsmasq ${k} ${JSON.stringify(v)} is not an IPv4 address`);
  }
  const leaseTime = opts.leaseTime ?? '1h';
  if (!/^(\d+[smhdw]?|infinite)$/.test(leaseTime)) throw new DnsmasqError(`dnsmasq lease time ${leaseTime}`);
  const bin = dnsmasqBinary();
  const dir = mkdtempSync(join(tmpdir(), 'dladm-dnsmasq-'));
  const range = [opts.rangeStart, opts.rangeEnd, ...(opts.netmask ? [opts.netmask] : []), leaseTime].join(',');
  const args = [
    '--keep-in-foreground',
    '--log-facility=-',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--port=0',
    '--user=root',
    '--group=root',
    '--pid-file',
    `--interface=${opts.iface}`,
    '--bind-interfaces',
    '--except-interface=lo',
    `--dhcp-range=${range}`,
    `--dhcp-leasefile=${join(dir, 'leases')}`,
    '--dhcp-authoritative',
    '--log-dhcp',
    ...(opts.pingCheck === true ? [] : ['--no-ping']),
    ...(opts.router ? [`--dhcp-option=option:router,${opts.router}`] : []),
    ...(opts.extraArgs ?? []),
  ];
  // `env` sets the library path for dnsmasq alone (not for `ip`) and execs it in place.
  const cmd =
    bin.libraryDirs.length > 0 ? ['env', `LD_LIBRARY_PATH=${bin.libraryDirs.join(':')}`, bin.path] : [bin.path];
  const child = ns.spawn(cmd[0] as string, [...cmd.slice(1), ...args]);
  const d = new Dnsmasq(child, dir);

  const ready = new Promise<void>((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        d.addLogLine(line);
        if (/DHCP, IP range/.test(line)) resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', (e) => reject(new DnsmasqError(`could not start dnsmasq: ${e.message}`, { cause: e })));
    child.once('exit', (code, sig) =>
      reject(
        new DnsmasqError(
          `dnsmasq in ${ns.name} exited (${sig ?? `status ${code}`}) before serving: ${[...d.log, buf].join('\n').trim()}`,
        ),
      ),
    );
  });
  const timeoutMs = opts.readyTimeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DnsmasqError(`dnsmasq in ${ns.name} did not report its DHCP range within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (e) {
    await d.stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return d;
}
