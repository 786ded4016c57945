// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The API-latency section of `npm run bench`: how promptly propolis-server
// answers while its guest floods the serial port.
//
// One propolis-server process runs guests/out/flood.rom as its bootrom (a
// guest that writes numbered lines to COM1 as fast as the UART takes them,
// two port exits per byte). A serial websocket client stays attached and
// consumes everything, as a console would. The bench, in this process (so
// its own event loop is not the server's), sends GET /instance requests one
// after another with a short random pause between them and times each from
// send to the complete answer, in two phases of the same run:
//   quiet  the instance exists but has not started (nothing on COM1);
//   flood  the guest runs and floods COM1, the websocket client consuming.
// Reported: p50, p99 and max of each phase, the flood's rate (bytes the
// client received per second during the flood phase) and the p99 ratio
// flood/quiet. Nothing here asserts on a time.

import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';

export class ApiBenchError extends Error {
  readonly code = 'API_BENCH';
}

const REQUESTS = 400;
const FLOOD_WARMUP_MS = 1500;
const API_VERSION = '5.0.0';

export interface ApiLatencySection {
  lines: string[];
  json: unknown;
}

interface Server {
  p: ChildProcess;
  port: number;
}

function startServer(root: string, rom: string): Promise<Server> {
  const main = join(root, 'dist', 'bin', 'propolis-server', 'src', 'main.js');
  // The default log level (info: a JSON line per request, as in production); stderr is drained.
  const p = spawn(process.execPath, [main, 'run', rom, '127.0.0.1:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    let listening = false;
    const t = setTimeout(() => reject(new ApiBenchError('propolis-server did not start listening in 20 s')), 20_000);
    p.stderr?.on('data', (d: Buffer) => {
      buf = (buf + d.toString()).slice(-8192);
      if (listening) return;
      const m = /"msg":"propolis-server listening"[^\n]*"port":(\d+)/.exec(buf);
      if (m) {
        listening = true;
        clearTimeout(t);
        resolve({ p, port: Number(m[1]) });
      }
    });
    p.on('exit', (code) => {
      clearTimeout(t);
      reject(new ApiBenchError(`propolis-server exited (${code}) before listening: ${buf.slice(-2000)}`));
    });
  });
}

/** One request; resolves with the status and body once the whole answer is in. */
function call(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          'api-version': API_VERSION,
          ...(data === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function expect(port: number, method: string, path: string, status: number, body?: unknown): Promise<string> {
  const r = await call(port, method, path, body);
  if (r.status !== status) throw new ApiBenchError(`${method} ${path}: ${r.status} ${r.text}`);
  return r.text;
}

/** Latencies (ms) of REQUESTS sequential GET /instance calls. */
async function measure(port: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = performance.now();
    await expect(port, 'GET', '/instance', 200);
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 1 + Math.random() * 4));
  }
  return out;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function summary(ms: number[]): { p50: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] as number };
}

export async function apiLatency(root: string, log: (msg: string) => void): Promise<ApiLatencySection> {
  const rom = join(root, 'guests', 'out', 'flood.rom');
  log(`bench: API latency, ${REQUESTS} GET /instance quiet and under a COM1 flood (about 10 s)\n`);
  const srv = await startServer(root, rom);
  try {
    const port = srv.port;
    await expect(port, 'PUT', '/instance', 201, {
      properties: {
        id: '6f1e1c7a-4c1b-4a55-9d1e-0b5f8a3e2d10',
        name: 'api-bench',
        description: 'API latency under a serial flood',
        metadata: {
          project_id: '00000000-0000-0000-0000-000000000001',
          silo_id: '00000000-0000-0000-0000-000000000002',
          sled_id: '00000000-0000-0000-0000-000000000003',
          sled_model: 'bench',
          sled_revision: 1,
          sled_serial: 'bench',
        },
      },
      init: {
        method: 'Spec',
        value: {
          spec: {
            board: { cpus: 1, memory_mb: 64, chipset: { type: 'i440_fx', value: { enable_pcie: false } } },
            components: { com1: { type: 'serial_port', component: { num: 'com1' } } },
          },
        },
      },
    });
    const quiet = await measure(port);

    let received = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/instance/serial`, { headers: { 'api-version': API_VERSION } });
    ws.on('message', (d: Buffer) => (received += d.length));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await expect(port, 'PUT', '/instance/state', 204, 'Run');
    await new Promise((r) => setTimeout(r, FLOOD_WARMUP_MS));
    const before = received;
    const t0 = performance.now();
    const flood = await measure(port);
    const seconds = (performance.now() - t0) / 1000;
    const floodBytes = received - before;
    ws.close();
    await expect(port, 'PUT', '/instance/state', 204, 'Stop');

    const q = summary(quiet);
    const f = summary(flood);
    const rate = floodBytes / seconds;
    const ms = (x: number): string => `${x.toFixed(2)} ms`.padStart(10);
    const lines = [
      `API latency: GET /instance on propolis-server, ${REQUESTS} sequential requests per phase, same run; ` +
        'quiet = instance created, not running; flood = guests/out/flood.rom writing COM1 flat out, a serial ' +
        'websocket client consuming it',
      `                      p50         p99         max`,
      `    quiet     ${ms(q.p50)}  ${ms(q.p99)}  ${ms(q.max)}`,
      `    flood     ${ms(f.p50)}  ${ms(f.p99)}  ${ms(f.max)}   (${(rate / 1024).toFixed(1)} KiB/s of serial output ` +
        `reached the websocket client meanwhile)`,
      `    p99 under the flood is ${(f.p99 / q.p99).toFixed(2)}x the quiet p99`,
    ];
    if (floodBytes === 0) throw new ApiBenchError('the flood guest produced no serial output');
    return {
      lines,
      json: { requests: REQUESTS, quietMs: quiet, floodMs: flood, quiet: q, flood: f, floodBytesPerS: rate },
    };
  } finally {
    srv.p.kill('SIGTERM');
    await new Promise<void>((r) => {
      if (srv.p.exitCode !== null) r();
      else srv.p.once('exit', () => r());
    });
  }
}

// `node dist/bench/api-latency.js`: this section alone.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = join(import.meta.dirname, '..', '..');
  apiLatency(root, (s) => process.stderr.write(s)).then(
    (r) => {
      process.stdout.write(`${r.lines.join('\n')}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`bench: api: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
