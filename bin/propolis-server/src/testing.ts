// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Helpers for the server's tests: a raw HTTP client (the state monitor is a
// GET with a body, which fetch refuses), ensure requests, state and serial
// waits, and a websocket serial client.
//
// Threading: main thread of the test process.

import { request, type IncomingHttpHeaders } from 'node:http';
import { WebSocket } from 'ws';
import type { Component, InstanceEnsureRequest, InstanceSpec } from '../../../lib/api-types/src/index.js';
import { Logger } from './log.js';

export const VERSION = '5.0.0';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

export interface CallOptions {
  /** A JSON body. */
  body?: unknown;
  /** A body sent as is (overrides `body`). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** The api-version header; null sends none. Default VERSION. */
  version?: string | null;
  signal?: AbortSignal;
}

export function call(port: number, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  const payload =
    opts.raw !== undefined ? opts.raw : opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.version !== null) headers['api-version'] ??= opts.version ?? VERSION;
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, signal: opts.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export const UUID = '3b5e8d50-8c6b-4d5e-9a42-5a1f0d6c7e21';

export function properties(id = UUID): InstanceEnsureRequest['properties'] {
  return {
    id,
    name: 'test-vm',
    description: 'a test instance',
    metadata: {
      project_id: '00000000-0000-0000-0000-000000000001',
      silo_id: '00000000-0000-0000-0000-000000000002',
      sled_id: '00000000-0000-0000-0000-000000000003',
      sled_model: 'test',
      sled_revision: 1,
      sled_serial: 'test-sled',
    },
  };
}

export function spec(components: Record<string, Component> = {}, memoryMb = 32): InstanceSpec {
  return {
    board: { cpus: 1, memory_mb: memoryMb, chipset: { type: 'i440_fx', value: { enable_pcie: false } } },
    components: { com1: { type: 'serial_port', component: { num: 'com1' } }, ...components },
  };
}

/** A spec booting SeaBIOS from a virtio disk over a read-only image file. */
export function diskSpec(image: string): InstanceSpec {
  return spec(
    {
      disk0: {
        type: 'virtio_disk',
        component: { backend_id: 'disk0-backend', pci_path: { bus: 0, device: 4, function: 0 } },
      },
      'disk0-backend': { type: 'file_storage_backend', component: { path: image, readonly: true, block_size: 512 } },
      boot: { type: 'boot_settings', component: { order: [{ id: 'disk0' }] } },
    },
    64,
  );
}

export function ensureBody(s: InstanceSpec, id = UUID): InstanceEnsureRequest {
  return { properties: properties(id), init: { method: 'Spec', value: { spec: s } } };
}

/**
 * Long-poll the state monitor until it shows `state`; every state seen, in
 * order (a state that lasted shorter than one poll can be missed).
 */
export async function waitForState(
  port: number,
  state: string,
  opts: { fromGen?: number; seen?: { gen: number; state: string }[]; timeoutMs?: number } = {},
): Promise<{ gen: number; state: string }[]> {
  const seen = opts.seen ?? [];
  let gen = opts.fromGen ?? 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 30000);
  for (;;) {
    const r = await call(port, 'GET', '/instance/state-monitor', {
      body: { gen },
      signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
    });
    if (r.status !== 200) throw new Error(`state monitor answered ${r.status}: ${r.text}`);
    const s = r.json as { gen: number; state: string };
    if (seen.at(-1)?.gen !== s.gen) seen.push({ gen: s.gen, state: s.state });
    if (s.state === state) return seen;
    if (s.state === 'Destroyed' || s.state === 'Failed') {
      throw new Error(`the instance reached ${s.state} without ${state}: ${JSON.stringify(seen)}`);
    }
    gen = s.gen + 1;
  }
}

/** Poll the serial history until `re` matches all of it (from offset 0); the text. */
export async function waitForSerial(port: number, re: RegExp, timeoutMs = 30000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    const r = await call(port, 'GET', `/instance/serial/history?from_start=0&max_bytes=1000000`);
    if (r.status !== 200) throw new Error(`serial history answered ${r.status}: ${r.text}`);
    text = Buffer.from(r.json.data as number[]).toString('latin1');
    if (re.test(text)) return text;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`serial output never matched ${re}; it is ${JSON.stringify(text)}`);
}

export interface SerialClient {
  ws: WebSocket;
  text(): string;
  frames: Buffer[];
  /** Resolves with the close code and reason. */
  closed: Promise<[number, string]>;
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Open the serial websocket (rejects with the HTTP status if the upgrade is refused). */
export function openSerial(port: number, query = '', headers: Record<string, string> = {}): Promise<SerialClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/instance/serial${query}`, {
    headers: { 'api-version': VERSION, ...headers },
  });
  const frames: Buffer[] = [];
  let text = '';
  ws.on('message', (d, isBinary) => {
    if (!isBinary) return;
    frames.push(d as Buffer);
    text += (d as Buffer).toString('latin1');
  });
  const closed = new Promise<[number, string]>((r) => ws.on('close', (code, reason) => r([code, reason.toString()])));
  const client: SerialClient = {
    ws,
    frames,
    text: () => text,
    closed,
    async waitFor(re, timeoutMs = 30000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(text)) {
        if (Date.now() > deadline) throw new Error(`websocket never saw ${re}; it got ${JSON.stringify(text)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return text;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const err = new Error(`upgrade refused: ${res.statusCode}`) as Error & { status?: number; body?: string };
        err.status = res.statusCode;
        err.body = Buffer.concat(chunks).toString();
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

/** A logger for in-process servers: records kept for a failing test to print. */
export function testLogger(level: 'debug' | 'info' | 'warn' = 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: Logger.create({ level, sink: (l) => void lines.push(l) }), lines };
}
