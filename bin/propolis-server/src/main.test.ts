// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The propolis-server command: arguments (one line and exit 2 when they
// are wrong), JSON log lines on stderr, the metrics listener, and SIGTERM
// stopping a running VM in order before the process exits 0.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { guestRomPath, REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { call, ensureBody, spec, waitForState, type Reply } from './testing.js';

const MAIN = join(REPO_ROOT, 'dist', 'bin', 'propolis-server', 'src', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], timeoutMs = 15000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`timed out; stderr=${stderr}`));
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Server {
  p: ChildProcess;
  port: number;
  metricsPort: number | undefined;
  records: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Start the server on free ports; resolves once its "listening" record names them. */
function start(args: string[]): Promise<Server> {
  const p = spawn(process.execPath, [MAIN, 'run', ...args]);
  const records: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        const rec = JSON.parse(line) as Record<string, unknown>;
        records.push(rec);
        if (rec['msg'] === 'propolis-server listening') {
          resolve({
            p,
            port: rec['port'] as number,
            metricsPort: rec['metrics_port'] as number | undefined,
            records,
            exited,
          });
        }
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening: ${JSON.stringify(records)}`)));
  });
}

/** A port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

describe('propolis-server command line', () => {
  it('--help prints the usage and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: propolis-server run <BOOTROM> <IP:PORT> \[<VNC_IP:PORT>\]/);
    assert.match(r.stdout, /--metric-addr/);
  });

  it('bad arguments: one line naming the problem, exit 2', async () => {
    const hello = guestRomPath('hello');
    const cases: [string[], RegExp][] = [
      [[], /missing command/],
      [['serve'], /unknown command "serve"/],
      [['run', hello], /run needs <BOOTROM> and <IP:PORT>/],
      [['run', hello, 'localhost:1'], /API address "localhost:1" is not an IP:PORT address/],
      [['run', hello, '127.0.0.1:99999'], /is not an IP:PORT address/],
      [['run', hello, '::1:80'], /is not an IP:PORT address/],
      [['run', '/nonexistent.rom', '127.0.0.1:0'], /bootrom \/nonexistent\.rom does not exist/],
      [['run', MAIN, '127.0.0.1:0'], /must be a non-empty multiple of 4 KiB/],
      [['run', hello, '127.0.0.1:0', '--log-level', 'loud'], /unknown log level "loud"/],
      [['run', hello, '127.0.0.1:0', '--metric-addr', 'dns'], /--metric-addr dns .* is not available/],
      [['run', hello, '127.0.0.1:0', '--metric-addr', 'nowhere'], /--metric-addr "nowhere" is not an IP:PORT/],
      [['run', hello, '127.0.0.1:0', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['run', hello, '127.0.0.1:0', '127.0.0.1:0', 'extra'], /unexpected argument "extra"/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^propolis-server: error: [^\n]*\(see propolis-server --help\)\n$/);
      assert.match(r.stderr, re);
    }
  });

  it('serves the API and metrics, logs JSON lines, and stops the VM in order on SIGTERM', async () => {
    const s = await start([guestRomPath('hello'), '127.0.0.1:0', '127.0.0.1:0', '--metric-addr', '127.0.0.1:0']);
    try {
      assert.ok(s.records.some((r) => r['level'] === 'warn' && /VNC is not available/.test(String(r['msg']))));
      assert.ok(s.metricsPort !== undefined && s.metricsPort > 0);
      let r = await call(s.port, 'PUT', '/instance', { body: ensureBody(spec()) });
      assert.equal(r.status, 201, r.text);
      r = await call(s.port, 'PUT', '/instance/state', { body: 'Run' });
      assert.equal(r.status, 204);
      await waitForState(s.port, 'Running');
      r = await call(s.metricsPort, 'GET', '/metrics', { version: null });
      assert.equal(r.status, 200);
      assert.match(r.text, /propolis_instance_state\{state="Running"\} 1/);
      assert.match(r.text, /propolis_http_requests_total\{operation="instance_ensure",status="201"\} 1/);

      s.p.kill('SIGTERM');
      assert.equal(await s.exited, 0);
      const states = s.records.filter((x) => x['msg'] === 'instance state published').map((x) => x['state']);
      assert.deepEqual(states.slice(-3), ['Stopping', 'Stopped', 'Destroyed']);
      for (const rec of s.records) {
        assert.equal(typeof rec['time'], 'string');
        assert.ok(['trace', 'debug', 'info', 'warn', 'error'].includes(rec['level'] as string));
        assert.equal(typeof rec['component'], 'string');
      }
      const req = s.records.find((x) => x['msg'] === 'request completed' && x['operation'] === 'instance_ensure');
      assert.match(String(req?.['request_id']), /^[0-9a-f-]{36}$/);
    } finally {
      s.p.kill('SIGKILL');
    }
  });

  it('--kernel/--initrd/--cmdline boot a kernel directly through SeaBIOS and linuxboot_dma.bin', async () => {
    // fakelinux.bzimage: a bzImage whose real-mode setup prints its command line and powers off (guests/src).
    const initrd = join(tmpdir(), `phd-initrd-${process.pid}`);
    writeFileSync(initrd, Buffer.alloc(8192, 0x5a));
    const s = await start([
      debianFile('seabios', 'usr/share/seabios/bios-256k.bin'),
      '127.0.0.1:0',
      '--kernel',
      join(REPO_ROOT, 'guests', 'out', 'fakelinux.bzimage'),
      '--initrd',
      initrd,
      '--cmdline',
      'console=ttyS0 via=server',
      '--linuxboot-rom',
      debianFile('qemu-system-data', 'usr/share/qemu/linuxboot_dma.bin'),
    ]);
    try {
      assert.equal((await call(s.port, 'PUT', '/instance', { body: ensureBody(spec()) })).status, 201);
      assert.equal((await call(s.port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
      const deadline = Date.now() + 30_000;
      let text = '';
      while (Date.now() < deadline && !/cmdline "console=ttyS0 via=server"/.test(text)) {
        const r = await call(s.port, 'GET', '/instance/serial/history?from_start=0');
        text = Buffer.from((r.json as { data: number[] }).data).toString('latin1');
        await new Promise((res) => setTimeout(res, 200));
      }
      assert.match(text, /fakelinux: setup entered/);
      assert.match(text, /fakelinux: cmdline "console=ttyS0 via=server"/);
      assert.match(text, /fakelinux: initrd [0-9a-f]{8} 00002000 /, 'the 8 KiB initrd was placed');
    } finally {
      s.p.kill('SIGKILL');
      rmSync(initrd, { force: true });
    }
  });

  it('--log-level warn filters info records', async () => {
    const port = await freePort();
    const p = spawn(process.execPath, [MAIN, 'run', guestRomPath('hello'), `127.0.0.1:${port}`, '--log-level', 'warn']);
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
    try {
      let r: Reply | undefined;
      for (let i = 0; i < 100 && r === undefined; i++) {
        r = await call(port, 'GET', '/instance').catch(() => undefined);
        if (r === undefined) await new Promise((res) => setTimeout(res, 50));
      }
      assert.equal(r?.status, 424);
      p.kill('SIGINT');
      assert.equal(await exited, 0);
      assert.equal(stderr, '', 'nothing at warn or above happened');
    } finally {
      p.kill('SIGKILL');
    }
  });
});
