// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// phd-runner: run (or list) the PHD end-to-end tests against
// propolis-server. `npm run phd [-- OPTIONS]`; see USAGE. Exits 0 when
// every test that ran passed or was skipped, 1 when one failed, 2 on bad
// usage, 130 when interrupted.
//
// Threading: main thread.

import { mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ArtifactStore, Framework, type DiskInterface } from '../../framework/src/index.js';
import { CATALOGUE, NOT_WRITTEN } from '../../tests/src/index.js';
import { formatResult, formatSummary, runTests, selectTests } from './runner.js';

const USAGE = `usage: npm run phd -- [OPTIONS]     (or: node dist/phd/runner/src/main.js [OPTIONS])

Runs the PHD end-to-end tests: each test boots guests, each under its own
propolis-server, and drives them over the API and their serial consoles.

  --list                          list the tests (after filtering) and exit
  --include-filter S              run tests whose module::name contains S (repeatable)
  --exclude-filter S              skip tests whose module::name contains S (repeatable)
  --parallel N                    VMs running at once (default 2: this project's hosts have 2 cores)
  --tmp-directory DIR             logs and disk files (default: a new directory in ${tmpdir()})
  --keep-logs                     keep the logs of tests that passed (a failure's are kept anyway)
  --propolis-server-cmd PATH      the server to test (default: dist/bin/propolis-server/src/main.js)
  --server-log-level L            the servers' --log-level (default info)
  --default-guest-cpus N          default 2
  --default-guest-memory-mib N    default 512
  --default-guest-artifact A      default testos (testos-rom, linux, linux-disk)
  --default-bootrom-artifact A    default seabios
  --default-boot-disk-interface   nvme (default) or virtio
  --linux-disk-image PATH         a Linux disk image with a serial root login (the linux-disk artifact)
  --test-timeout SECONDS          per test (default 180)
  -h, --help
`;

function fail(msg: string): never {
  process.stderr.write(`phd-runner: error: ${msg}\n${USAGE}`);
  process.exit(2);
}

function intArg(v: string | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer, not "${v}"`);
  return n;
}

/** Remove empty directories under and including `dir` (what passing tests left); true if `dir` is gone. */
function pruneEmptyDirs(dir: string): boolean {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return true;
  }
  let left = 0;
  for (const e of entries) {
    if (!e.isDirectory() || !pruneEmptyDirs(join(dir, e.name))) left++;
  }
  if (left > 0) return false;
  rmdirSync(dir);
  return true;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        list: { type: 'boolean', default: false },
        'include-filter': { type: 'string', multiple: true, default: [] },
        'exclude-filter': { type: 'string', multiple: true, default: [] },
        parallel: { type: 'string' },
        'tmp-directory': { type: 'string' },
        'keep-logs': { type: 'boolean', default: false },
        'propolis-server-cmd': { type: 'string' },
        'server-log-level': { type: 'string', default: 'info' },
        'default-guest-cpus': { type: 'string' },
        'default-guest-memory-mib': { type: 'string' },
        'default-guest-artifact': { type: 'string', default: 'testos' },
        'default-bootrom-artifact': { type: 'string', default: 'seabios' },
        'default-boot-disk-interface': { type: 'string', default: 'nvme' },
        'linux-disk-image': { type: 'string' },
        'test-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const tests = selectTests(CATALOGUE, { include: v['include-filter'] ?? [], exclude: v['exclude-filter'] ?? [] });
  if (v.list) {
    for (const t of tests) process.stdout.write(`${t.fullName}\n`);
    return 0;
  }
  if (tests.length === 0) {
    process.stderr.write('phd-runner: no tests match the filters\n');
    return 1;
  }
  const level = v['server-log-level']!;
  if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level)) fail(`unknown log level "${level}"`);
  const iface = v['default-boot-disk-interface']!;
  if (iface !== 'nvme' && iface !== 'virtio') fail(`--default-boot-disk-interface must be nvme or virtio`);
  const serverCmd = v['propolis-server-cmd'];
  const timeoutS = v['test-timeout'] === undefined ? undefined : intArg(v['test-timeout'], '--test-timeout', 180);

  const tmpDir = resolve(v['tmp-directory'] ?? join(tmpdir(), `phd-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  mkdirSync(tmpDir, { recursive: true });
  const artifacts = new ArtifactStore(v['linux-disk-image'] ? { linuxDiskImage: resolve(v['linux-disk-image']) } : {});
  for (const name of [v['default-guest-artifact']!, v['default-bootrom-artifact']!]) {
    try {
      artifacts.get(name);
    } catch (e) {
      fail((e as Error).message);
    }
  }
  const fw = new Framework({
    tmpDir,
    artifacts,
    ...(serverCmd
      ? { serverCommand: serverCmd.endsWith('.js') ? [process.execPath, resolve(serverCmd)] : [resolve(serverCmd)] }
      : {}),
    serverLogLevel: level as 'info',
    defaultGuestCpus: intArg(v['default-guest-cpus'], '--default-guest-cpus', 2),
    defaultGuestMemoryMib: intArg(v['default-guest-memory-mib'], '--default-guest-memory-mib', 512),
    defaultGuestArtifact: v['default-guest-artifact']!,
    defaultBootromArtifact: v['default-bootrom-artifact']!,
    defaultBootDiskInterface: iface as DiskInterface,
  });

  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nphd-runner: interrupted; finishing the running tests (Ctrl-C again to quit now)\n');
  });

  const parallel = intArg(v.parallel, '--parallel', 2);
  process.stdout.write(`PHD: ${tests.length} tests, up to ${parallel} VMs at a time; logs in ${tmpDir}\n`);
  const start = performance.now();
  const selected = timeoutS === undefined ? tests : tests.map((t) => ({ ...t, timeoutMs: timeoutS * 1000 }));
  const results = await runTests(fw, selected, {
    parallel,
    keepLogs: v['keep-logs']!,
    aborted: () => interrupted,
    onResult: (r) => process.stdout.write(`${formatResult(r)}\n`),
  });
  process.stdout.write(`${formatSummary(results, tests.length, performance.now() - start)}\n`);
  process.stdout.write(
    `\nNot in this catalogue yet:\n${NOT_WRITTEN.map((n) => `  ${n.tests}: ${n.why}`).join('\n')}\n`,
  );
  if (!pruneEmptyDirs(tmpDir)) process.stdout.write(`\nlogs: ${tmpDir}\n`);
  if (interrupted) return 130;
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`phd-runner: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
