// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// One propolis-server process per test VM, as the original PHD runs them:
// `propolis-server run <bootrom> 127.0.0.1:0`, a free port chosen by the
// server (its "propolis-server listening" log record names it), its
// stdout and stderr (JSON log lines) kept in a file in the test's log
// directory.
//
// Teardown is the framework's job (test-vm.ts: Stop, wait for Destroyed,
// then `kill`); a process still alive when the runner exits is killed by
// the exit hook below, so an aborted run leaves no servers behind.
//
// Threading: main thread.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';

/** The server built by `npm run build`, run with this Node.js. */
export const DEFAULT_SERVER_COMMAND: readonly string[] = [
  process.execPath,
  join(REPO_ROOT, 'dist', 'bin', 'propolis-server', 'src', 'main.js'),
];

export interface ServerLaunch {
  /** Program and leading arguments; `run <bootrom> <addr>` and options are appended. */
  command?: readonly string[];
  bootrom: string;
  /** Where the server's output goes (appended). */
  logPath: string;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** How long to wait for the listening record. */
  startTimeoutMs?: number;
  /** Boot a kernel directly (the server's --kernel/--initrd/--cmdline/--linuxboot-rom). */
  directBoot?: { kernel: string; initrd: string; cmdline: string; linuxbootRom: string };
}

export class ServerStartError extends Error {
  readonly code = 'SERVER_START';
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

/** How many server processes this process has running (for tests of teardown). */
export function liveServerCount(): number {
  return live.size;
}

export class ServerProcess {
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly recent: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly logPath: string,
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
    recent: string[],
  ) {
    this.exited = exited;
    this.recent = recent;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The server's last log lines (up to 40), for error messages. */
  recentLog(): string[] {
    return [...this.recent];
  }

  static async start(opts: ServerLaunch): Promise<ServerProcess> {
    installExitHook();
    const [cmd, ...pre] = opts.command ?? DEFAULT_SERVER_COMMAND;
    if (cmd === undefined) throw new ServerStartError('empty server command');
    const args = [...pre, 'run', opts.bootrom, '127.0.0.1:0', '--log-level', opts.logLevel ?? 'info'];
    const d = opts.directBoot;
    if (d) {
      args.push('--kernel', d.kernel, '--initrd', d.initrd, '--cmdline', d.cmdline, '--linuxboot-rom', d.linuxbootRom);
    }
    const log = createWriteStream(opts.logPath, { flags: 'a' });
    log.on('error', () => {});
    log.write(`# ${[cmd, ...args].join(' ')}\n`);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    const recent: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
      child.once('error', () => {
        live.delete(child);
        resolve({ code: null, signal: null });
      });
    });
    void exited.then(() => log.end());

    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));
    child.stdout!.on('data', (d: Buffer) => log.write(d));
    let partial = '';
    let resolvePort: (port: number) => void = () => {};
    const portSeen = new Promise<number>((r) => (resolvePort = r));
    child.stderr!.on('data', (d: Buffer) => {
      log.write(d);
      partial += d.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        recent.push(line);
        if (recent.length > 40) recent.shift();
        if (!line.startsWith('{')) continue;
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'propolis-server listening' && typeof rec.port === 'number') resolvePort(rec.port);
        } catch {
          // not a log record
        }
      }
    });

    const timeoutMs = opts.startTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      portSeen.then((port) => ({ port })),
      exited.then((x) => ({ exit: x })),
      new Promise<{ timeout: true }>((r) => (timer = setTimeout(() => r({ timeout: true }), timeoutMs))),
    ]);
    clearTimeout(timer);
    if ('port' in outcome) return new ServerProcess(child, outcome.port, opts.logPath, exited, recent);
    child.kill('SIGKILL');
    await exited;
    const why =
      'timeout' in outcome
        ? `did not report a listening port within ${timeoutMs / 1000} s`
        : spawnError
          ? `could not be started: ${spawnError.message}`
          : `exited (${outcome.exit.code ?? outcome.exit.signal}) before listening`;
    throw new ServerStartError(
      `propolis-server ${why}; log ${opts.logPath}${recent.length ? `, last lines:\n${recent.slice(-10).join('\n')}` : ''}`,
    );
  }

  /**
   * End the process: SIGTERM (the server stops its VM in order), then
   * SIGKILL if it has not exited within `graceMs`.
   */
  async kill(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
