// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-cli end to end: the real propolis-server (Debian's SeaBIOS as
// bootrom) on 127.0.0.1, driven by the CLI binary alone. A config TOML puts
// the project's boot-sector guest (guests/out/diskread-small.img) on a
// read-only virtio disk first in the boot order; SeaBIOS boots it and it
// prints "diskread: ok" on COM1. The instance is created, run, watched on
// the serial console (piped, and on a pseudo-terminal through script(1) to
// check raw mode and that the terminal is given back), rebooted (the marker
// twice in the history), stopped, and `monitor` sees Destroyed.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';

const SERVER = join(REPO_ROOT, 'dist', 'bin', 'propolis-server', 'src', 'main.js');
const CLI = join(REPO_ROOT, 'dist', 'bin', 'propolis-cli', 'src', 'main.js');
const DISK = join(REPO_ROOT, 'guests', 'out', 'diskread-small.img');
/** What the guest prints once it has read its disk (global: for counting). */
// A whole line: output arrives in chunks, and a marker cut in two must not end a read early.
const MARKER = /diskread: ok [^\n]*\n/g;
const SEEN_MARKER = /diskread: ok/;

const dir = mkdtempSync(join(tmpdir(), 'propolis-cli-e2e-'));
let server: ChildProcess | undefined;
let serverLog = '';
let port = 0;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cliArgs(args: string[]): string[] {
  return [CLI, '-s', '127.0.0.1', '-p', String(port), ...args];
}

/** Run the CLI to completion (stdin closed). */
function cli(args: string[], timeoutMs = 30_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, cliArgs(args), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`propolis-cli ${args.join(' ')} timed out; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function count(text: string, re: RegExp): number {
  return [...text.matchAll(re)].length;
}

/**
 * `serial -b 0` with a piped stdin (no TTY) until the output holds `times`
 * markers; then SIGTERM. What it printed, and how it ended.
 */
function serialUntil(times: number, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, cliArgs(['serial', '-b', '0']), { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let done = false;
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('latin1');
      if (!done && count(stdout, MARKER) >= times) {
        done = true;
        p.kill('SIGTERM');
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`no ${times}x ${MARKER} on the console; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      if (!done) reject(new Error(`serial ended early (${code ?? signal}); stdout=${stdout} stderr=${stderr}`));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function state(): Promise<string> {
  const r = await cli(['--json', 'get']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { instance: { state: string } }).instance.state;
}

before(async () => {
  const bios = debianFile('seabios', 'usr/share/seabios/bios-256k.bin');
  const p = spawn(process.execPath, [SERVER, 'run', bios, '127.0.0.1:0'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server = p;
  port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`propolis-server did not start: ${serverLog}`)), 30_000);
    p.on('exit', (code) => reject(new Error(`propolis-server exited (${code}): ${serverLog}`)));
    p.stderr!.on('data', (d: Buffer) => {
      serverLog += d.toString();
      for (const line of serverLog.split('\n')) {
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === 'propolis-server listening' && rec.port !== undefined) {
            clearTimeout(t);
            resolve(rec.port);
          }
        } catch {
          // a partial line
        }
      }
    });
  });
  writeFileSync(
    join(dir, 'vm.toml'),
    [
      '[main]',
      'boot_order = ["disk0"]',
      '',
      '[block_dev.boot]',
      'type = "file"',
      `path = ${JSON.stringify(DISK)}`,
      'readonly = true',
      '',
      '[dev.disk0]',
      'driver = "pci-virtio-block"',
      'block_dev = "boot"',
      'pci-path = "0.4.0"',
      '',
    ].join('\n'),
  );
});

after(async () => {
  const p = server;
  if (p && p.exitCode === null && p.signalCode === null) {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
    clearTimeout(timer);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('propolis-cli against propolis-server', () => {
  let monitor: Promise<Result> | undefined;

  it('get before new: the server answers 424 NoInstance (exit 1)', async () => {
    const r = await cli(['get']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^propolis-cli: instance_get: the server answered 424 .*\(NoInstance\).*\[request id \S+\]\n$/,
    );
  });

  it('new -t: the instance is created from the config TOML', async () => {
    const r = await cli(['--json', 'new', 'cli-e2e', '-t', 'vm.toml', '-c', '1', '-m', '256']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { id: string; name: string; migrate: unknown };
    assert.equal(doc.name, 'cli-e2e');
    assert.match(doc.id, /^[0-9a-f-]{36}$/);
    assert.equal(doc.migrate, null);
    assert.equal(await state(), 'Creating');
    const again = await cli(['--json', 'new', 'other', '-t', 'vm.toml']);
    assert.equal(again.code, 1);
    const e = (JSON.parse(again.stderr) as { error: Record<string, unknown> }).error;
    assert.equal(e['status'], 409);
    assert.equal(e['error_code'], 'AlreadyInitialized');
    assert.equal(typeof e['request_id'], 'string');
  });

  it('monitor (started now) and state run: Starting, then Running', async () => {
    monitor = cli(['--json', 'monitor'], 180_000);
    const r = await cli(['state', 'run']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
    await waitFor('Running', async () => ((await state()) === 'Running' ? true : undefined));
  });

  it('serial (no TTY): SeaBIOS boots the disk and the guest reports on COM1', async () => {
    const r = await serialUntil(1);
    assert.match(r.stdout, /SeaBIOS/);
    assert.match(r.stdout, /diskread: ok 1 MiB/);
  });

  it('inject-nmi', async () => {
    const r = await cli(['--json', 'inject-nmi']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true });
  });

  it('serial on a terminal: raw mode, Ctrl-C leaves, and the terminal comes back as it was', async () => {
    // In script(1)'s pseudo-terminal: save the settings, run the console,
    // save them again. The console is left with Ctrl-A Ctrl-C (sent to the
    // guest) and then a bare Ctrl-C.
    const sh = [
      'tty > ttyname',
      'stty -g > before',
      `sh -c 'echo $$ > pid; exec "$0" "$@"' ${[process.execPath, ...cliArgs(['serial', '-b', '0'])].map((a) => `'${a}'`).join(' ')}`,
      'echo $? > rc',
      'stty -g > after',
    ].join('; ');
    writeFileSync(join(dir, 'pty.sh'), `${sh}\n`);
    for (const how of ['ctrl-c', 'sigterm'] as const) {
      for (const f of ['rc', 'before', 'after', 'pid', 'ttyname', 'raw']) rmSync(join(dir, f), { force: true });
      const p = spawn('script', ['-qfec', 'sh pty.sh', '/dev/null'], {
        cwd: dir,
        env: { ...process.env, SHELL: '/bin/sh' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
      const closed = new Promise<number | null>((r) => p.on('close', r));
      await waitFor('the console on the terminal', async () => (SEEN_MARKER.test(out) ? true : undefined), 30_000);
      // While the console runs: its terminal is raw, output processing included.
      const tty = readFileSync(join(dir, 'ttyname'), 'utf8').trim();
      const settings = spawnSync('stty', ['-F', tty, '-a'], { encoding: 'utf8' }).stdout;
      for (const flag of ['-icanon', '-echo', '-isig', '-opost'])
        assert.match(settings, new RegExp(`(^|\\s)${flag}(\\s|$)`), flag);
      if (how === 'ctrl-c') {
        p.stdin.write('\x01\x03');
        p.stdin.write('\x03');
      } else {
        process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGTERM');
      }
      await waitFor('the shell after the console', async () => {
        try {
          return readFileSync(join(dir, 'after'), 'utf8');
        } catch {
          return undefined;
        }
      });
      p.stdin.end();
      await closed;
      assert.equal(readFileSync(join(dir, 'rc'), 'utf8').trim(), how === 'ctrl-c' ? '0' : '143', `${how}: ${out}`);
      assert.equal(readFileSync(join(dir, 'after'), 'utf8'), readFileSync(join(dir, 'before'), 'utf8'), how);
    }
  });

  it('state reboot: the guest boots again and reports a second time', async () => {
    const r = await cli(['state', 'reboot']);
    assert.equal(r.code, 0, r.stderr);
    const s = await serialUntil(2);
    assert.ok(count(s.stdout, MARKER) >= 2, s.stdout);
    assert.equal(await state(), 'Running');
  });

  it('state stop: monitor sees Destroyed and exits 0', async () => {
    const r = await cli(['--json', 'state', 'stop']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, requested: 'Stop' });
    const m = await monitor!;
    assert.equal(m.code, 0, m.stderr);
    const docs = m.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { gen: number; state: string });
    const states = docs.map((d) => d.state);
    assert.equal(states.at(-1), 'Destroyed');
    // The long poll answers with the latest state, so short-lived ones
    // (Starting, Rebooting, Stopping) may be skipped.
    assert.ok(states.includes('Running'), states.join(' '));
    for (let i = 1; i < docs.length; i++) assert.ok(docs[i]!.gen > docs[i - 1]!.gen);
    // A monitor started afterwards sees the final state at once.
    const late = await cli(['monitor']);
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stdout, /^gen \d+: Destroyed\n$/);
  });
});
