// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The HTTP API (node:http, websockets through `ws`). Requests are routed
// from the API types' route table, ENDPOINTS, and every path parameter,
// query string and body is checked against that table's schemas before a
// handler sees it; the same table generates the OpenAPI document served at
// GET /openapi.json. Besides the API: GET /metrics (Prometheus text).
//
// Every response carries `x-request-id`; errors have the seed's body
// `{request_id, error_code?, message}`. Order of checks: route (404, 405),
// `api-version` header (400), path, query, body (400; bodies over 1 MiB
// are refused and the connection closed), then the handler.
//
// No request may take the server down: handler exceptions become 500s,
// a client that goes away mid-request is forgotten (its state-monitor wait
// is withdrawn), and websocket clients are handled by the serial console's
// own bounded buffering.
//
// Threading: main thread.

import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import {
  API_VERSION_HEADER,
  InstanceStateMonitorRequest,
  buildOpenApi,
  ENDPOINTS,
  parseApiVersion,
  validate,
  validateQuery,
  type Endpoint,
} from '../../../lib/api-types/src/index.js';
import { ApiError, errors } from './errors.js';
import type { Logger } from './log.js';
import { PROMETHEUS_CONTENT_TYPE, type Metrics } from './metrics.js';
import type { Vm } from './vm/vm.js';

/** Request bodies larger than this are refused (the seed's Dropshot limit). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** A refused body is read and dropped up to this size before the answer; beyond it the connection is cut. */
const DRAIN_LIMIT_BYTES = 16 * 1024 * 1024;
/** Websocket messages from clients larger than this close the connection. */
const MAX_WS_MESSAGE_BYTES = 64 * 1024;

type AnyEndpoint = (typeof ENDPOINTS)[number];
type OperationId = AnyEndpoint['operationId'];

interface Routed {
  endpoint: AnyEndpoint;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: unknown;
  log: Logger;
  requestId: string;
}

export interface ApiServerOptions {
  vm: Vm;
  metrics: Metrics;
  log: Logger;
}

/** A route lookup: the endpoint, or why there is none (404 / 405). */
function route(method: string, pathname: string): { ep: AnyEndpoint; params: Record<string, string> } | ApiError {
  let pathMatched = false;
  for (const ep of ENDPOINTS) {
    const params = ep.match(pathname);
    if (params === undefined) continue;
    pathMatched = true;
    if (ep.method === method) return { ep, params };
  }
  return pathMatched ? errors.methodNotAllowed() : errors.notFound();
}

function checkVersion(req: IncomingMessage): void {
  const header = req.headers[API_VERSION_HEADER];
  const v = parseApiVersion(Array.isArray(header) ? header[0] : header);
  if (!v.ok) throw errors.badRequest(v.message);
}

function checkParams(ep: Endpoint, raw: Record<string, string>): Record<string, unknown> {
  if (!ep.params) return {};
  const v = validate(ep.params, raw);
  if (!v.ok) throw errors.badRequest(`bad parameter in URL path: ${v.message}`);
  return v.value as Record<string, unknown>;
}

function checkQuery(ep: Endpoint, search: URLSearchParams): Record<string, unknown> {
  if (!ep.query) {
    // Endpoints without query parameters ignore a query string, as Dropshot does.
    return {};
  }
  const v = validateQuery(ep.query, search);
  if (!v.ok) throw errors.badRequest(`unable to parse query string: ${v.message}`);
  return v.value as Record<string, unknown>;
}

/**
 * Read a request body of at most MAX_BODY_BYTES. A larger one is refused;
 * up to DRAIN_LIMIT_BYTES of it is read and dropped first, so the client
 * is done sending when the 400 arrives and sees it (a client still writing
 * into a closed connection sees a reset instead of the answer).
 */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooBig = (): ApiError => errors.badRequest(`request body exceeded maximum size of ${MAX_BODY_BYTES} bytes`);
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) {
      reject(tooBig());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      f();
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > DRAIN_LIMIT_BYTES) finish(() => reject(tooBig()));
      else if (size <= MAX_BODY_BYTES) chunks.push(c);
      else chunks.length = 0;
    });
    req.on('end', () => finish(() => (size > MAX_BODY_BYTES ? reject(tooBig()) : resolve(Buffer.concat(chunks)))));
    req.on('error', (e) => finish(() => reject(errors.badRequest(`reading the request body failed: ${e.message}`))));
    req.on('close', () =>
      finish(() => reject(errors.badRequest('the client closed the connection before sending its body'))),
    );
  });
}

function hasBody(req: IncomingMessage): boolean {
  const n = req.headers['content-length'];
  return (n !== undefined && n !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The state monitor's generation from `?gen=N`, for clients that cannot send
 * a body with a GET (browsers); a listed difference (lib/api-types differences.ts).
 */
function genFromQuery(search: URLSearchParams): unknown {
  const v = validateQuery(InstanceStateMonitorRequest, search);
  if (!v.ok) throw errors.badRequest(`unable to parse query string: ${v.message}`);
  return v.value;
}

async function checkBody(ep: Endpoint, req: IncomingMessage): Promise<unknown> {
  if (!ep.body) return undefined;
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    throw errors.badRequest(`expected content type "application/json", got "${type}"`);
  }
  const bytes = await readBody(req);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw errors.badRequest(
      bytes.length === 0
        ? 'unable to parse JSON body: the body is empty'
        : `unable to parse JSON body: ${(e as Error).message}`,
    );
  }
  const v = validate(ep.body, json);
  if (!v.ok) throw errors.badRequest(`unable to parse JSON body: ${v.message}`);
  return v.value;
}

export class ApiServer {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly openapi: string;
  private readonly log: Logger;

  constructor(private readonly opts: ApiServerOptions) {
    this.log = opts.log.child({ component: 'http' });
    this.openapi = JSON.stringify(buildOpenApi(), null, 2);
    this.server = createServer((req, res) => void this.onRequest(req, res));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    this.wss.on('headers', (headers, req) => {
      const id = req.headers['x-request-id'];
      if (typeof id === 'string') headers.push(`x-request-id: ${id}`);
    });
    this.server.on('clientError', (err, socket) => {
      this.log.debug('malformed request', { err });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Listen; resolves with the port actually bound (0 picks one). */
  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- plain requests ----

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const started = process.hrtime.bigint();
    const log = this.log.child({ request_id: requestId });
    res.setHeader('x-request-id', requestId);
    let operation = 'unknown';
    res.on('finish', () => {
      this.opts.metrics.countRequest(operation, res.statusCode);
      log.info('request completed', {
        method: req.method,
        uri: req.url,
        operation,
        status: res.statusCode,
        latency_us: Number((process.hrtime.bigint() - started) / 1000n),
      });
    });
    res.on('close', () => {
      if (!res.writableFinished)
        log.info('client went away before the answer', { method: req.method, uri: req.url, operation });
    });
    try {
      const url = new URL(req.url ?? '/', 'http://server');
      if (req.method === 'GET' && url.pathname === '/openapi.json') {
        operation = 'openapi';
        res.writeHead(200, { 'content-type': 'application/json' }).end(this.openapi);
        return;
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        operation = 'metrics';
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(this.opts.metrics.render(this.opts.vm));
        return;
      }
      const r = route(req.method ?? '', url.pathname);
      if (r instanceof ApiError) {
        if (r.status === 405) res.setHeader('allow', allowed(url.pathname));
        throw r;
      }
      operation = r.ep.operationId;
      checkVersion(req);
      const params = checkParams(r.ep, r.params);
      const query = checkQuery(r.ep, url.searchParams);
      if (r.ep.websocket) {
        throw errors.badRequest('this endpoint is a websocket: send a GET with "Upgrade: websocket"');
      }
      const body =
        r.ep.operationId === 'instance_state_monitor' && url.searchParams.has('gen') && !hasBody(req)
          ? genFromQuery(url.searchParams)
          : await checkBody(r.ep, req);
      await this.dispatch({ endpoint: r.ep, params, query, body, log, requestId }, res);
    } catch (e) {
      this.fail(res, requestId, e, log);
    }
  }

  private fail(res: ServerResponse, requestId: string, e: unknown, log: Logger): void {
    let err: ApiError;
    if (e instanceof ApiError) {
      err = e;
      if (err.status === 500) log.error('request failed', { err, cause: err.cause });
    } else {
      log.error('request handler failed', { err: e, stack: (e as Error)?.stack });
      err = errors.internal();
    }
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // A body we refused to read leaves the connection mid-request: close it.
    if (err.status === 400 && /exceeded maximum size/.test(err.message)) res.setHeader('connection', 'close');
    res.writeHead(err.status, { 'content-type': 'application/json' }).end(JSON.stringify(err.body(requestId)));
  }

  private async dispatch(r: Routed, res: ServerResponse): Promise<void> {
    const vm = this.opts.vm;
    const json = (status: number, body: unknown): void => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const op: OperationId = r.endpoint.operationId;
    switch (op) {
      case 'instance_ensure':
        json(201, await vm.ensure(r.body as Parameters<Vm['ensure']>[0], r.log));
        return;
      case 'instance_get':
        json(200, vm.get());
        return;
      case 'instance_spec_get':
        json(200, vm.spec());
        return;
      case 'instance_state_monitor': {
        // The wait ends when the client goes away: withdraw it then.
        const gone = new AbortController();
        res.on('close', () => gone.abort());
        const out = await vm.monitor((r.body as { gen: number }).gen, gone.signal);
        if (out !== undefined) json(200, out);
        return;
      }
      case 'instance_state_put':
        vm.requestState(r.body as Parameters<Vm['requestState']>[0]);
        if (!res.destroyed) res.writeHead(204).end();
        return;
      case 'instance_serial_history_get':
        json(200, vm.serialHistory(r.query));
        return;
      case 'instance_migrate_status':
        json(200, vm.migrationStatus());
        return;
      case 'instance_issue_nmi':
        await vm.nmi();
        json(200, null);
        return;
      case 'instance_issue_crucible_snapshot_request':
      case 'disk_volume_status':
      case 'instance_issue_crucible_vcr_request':
        vm.crucibleDisk(r.params['id'] as string);
        return;
      case 'instance_serial':
      case 'instance_migrate_start':
        // Websockets: routed in onUpgrade.
        throw errors.badRequest('this endpoint is a websocket');
    }
  }

  // ---- websocket upgrades ----

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const requestId = randomUUID();
    const log = this.log.child({ request_id: requestId });
    socket.on('error', (e) => log.debug('websocket socket error', { err: e }));
    let operation = 'unknown';
    const reject = (e: unknown): void => {
      const err = e instanceof ApiError ? e : errors.internal();
      if (!(e instanceof ApiError)) log.error('websocket upgrade failed', { err: e });
      this.opts.metrics.countRequest(operation, err.status);
      log.info('request completed', { method: req.method, uri: req.url, operation, status: err.status });
      const body = JSON.stringify(err.body(requestId));
      if (socket.writable) {
        socket.end(
          `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\n` +
            `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
            `x-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
        );
      } else {
        socket.destroy();
      }
    };
    try {
      const url = new URL(req.url ?? '/', 'http://server');
      const r = route(req.method ?? '', url.pathname);
      if (r instanceof ApiError) throw r;
      operation = r.ep.operationId;
      if (!r.ep.websocket) throw errors.badRequest('this endpoint does not upgrade to a websocket');
      // Browsers' WebSocket cannot set headers: no header means the current version (a listed difference).
      if (req.headers[API_VERSION_HEADER] !== undefined) checkVersion(req);
      checkParams(r.ep, r.params);
      const query = checkQuery(r.ep, url.searchParams);
      const vm = this.opts.vm;
      if (r.ep.operationId === 'instance_migrate_start') {
        vm.checkSerial();
        throw errors.migrationNotImplemented();
      }
      vm.checkSerial();
      req.headers['x-request-id'] = requestId;
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.opts.metrics.countRequest(operation, 101);
        log.info('request completed', { method: req.method, uri: req.url, operation, status: 101 });
        ws.on('error', (e) => log.debug('serial websocket error', { err: e }));
        vm.attachSerial(ws, query);
      });
    } catch (e) {
      reject(e);
    }
  }
}

/** The methods a path answers (the Allow header of a 405). */
function allowed(pathname: string): string {
  return ENDPOINTS.filter((e) => e.match(pathname) !== undefined)
    .map((e) => e.method)
    .join(', ');
}
