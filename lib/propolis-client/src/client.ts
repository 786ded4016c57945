// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-client: a typed client for propolis-server's REST API (the
// original's `propolis-client`), one method per operation of the OpenAPI
// document (lib/api-types), named after its operationId, plus helpers for
// the state monitor and the serial console.
//
// It runs in browsers and in Node.js alike: it needs a `fetch` (global in
// both) and, for the serial console, a WebSocket class (global in browsers;
// in Node.js 20 pass `ws`'s). It imports nothing from the VMM, nor Node.js
// built-ins; the API types are imported as types only.
//
// Every request carries the `api-version` header. Non-2xx answers become a
// `PropolisApiError` carrying the status, the server's `error_code`,
// message and request id. The state monitor is a long poll; the original
// sends its generation as a JSON body on a GET, which browsers' fetch cannot
// do, so this client sends it as the `gen` query parameter, which the
// server accepts as well (a listed difference).

import type {
  InstanceEnsureRequest,
  InstanceEnsureResponse,
  InstanceGetResponse,
  InstanceMigrateStatusResponse,
  InstanceSerialConsoleHistoryResponse,
  InstanceSpecGetResponse,
  InstanceState,
  InstanceStateMonitorResponse,
  InstanceStateRequested,
  InstanceVCRReplace,
  ReplaceResult,
  VolumeStatus,
} from '../../api-types/src/index.js';
import { SerialConsole, type SerialOffset, type WebSocketClass } from './serial.js';

/** The API version this client speaks (the `api-version` header it sends). */
export const CLIENT_API_VERSION = '5.0.0';

export interface ClientOptions {
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** For `serialConsole`; defaults to the global `WebSocket` (browsers). */
  WebSocket?: WebSocketClass;
  /** Per-request timeout in ms (not applied to the state monitor's long poll); default 30 s. */
  timeoutMs?: number;
}

/** An answer other than 2xx, or no answer. */
export class PropolisApiError extends Error {
  constructor(
    /** HTTP status; 0 when the server could not be reached or did not answer in time. */
    readonly status: number,
    message: string,
    readonly errorCode: string | undefined,
    readonly requestId: string | undefined,
    readonly operation: string,
  ) {
    super(message);
    this.name = 'PropolisApiError';
  }
}

export type SerialHistoryQuery = SerialOffset & { maxBytes?: number };

export interface WatchOptions {
  /** The first generation wanted (default 0: the current state at once). */
  fromGen?: number;
  signal?: AbortSignal;
}

/** States after which nothing more happens to an instance. */
export const TERMINAL_STATES: readonly InstanceState[] = ['Destroyed', 'Failed'];

export class PropolisClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(
    /** e.g. `http://127.0.0.1:12400` */
    baseUrl: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    const f = opts.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new Error('propolis-client needs a fetch implementation (pass options.fetch)');
    this.fetchFn = f;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  get baseUrl(): string {
    return this.base;
  }

  // ---- operations (OpenAPI operationIds) ----

  /** PUT /instance: create the instance (not started). */
  instanceEnsure(req: InstanceEnsureRequest): Promise<InstanceEnsureResponse> {
    return this.call('instance_ensure', 'PUT', '/instance', { body: req });
  }

  /** GET /instance */
  instanceGet(): Promise<InstanceGetResponse> {
    return this.call('instance_get', 'GET', '/instance');
  }

  /** GET /instance/spec */
  instanceSpecGet(): Promise<InstanceSpecGetResponse> {
    return this.call('instance_spec_get', 'GET', '/instance/spec');
  }

  /** PUT /instance/state: ask for Run, Stop or Reboot (queued; 204). */
  async instanceStatePut(state: InstanceStateRequested): Promise<void> {
    await this.call('instance_state_put', 'PUT', '/instance/state', { body: state });
  }

  /** GET /instance/state-monitor: the state once its generation is at least `gen` (long poll). */
  instanceStateMonitor(gen: number, signal?: AbortSignal): Promise<InstanceStateMonitorResponse> {
    return this.call('instance_state_monitor', 'GET', '/instance/state-monitor', {
      query: { gen },
      longPoll: true,
      ...(signal ? { signal } : {}),
    });
  }

  /** GET /instance/serial/history: exactly one of `fromStart` / `mostRecent`. */
  instanceSerialHistoryGet(q: SerialHistoryQuery): Promise<InstanceSerialConsoleHistoryResponse> {
    return this.call('instance_serial_history_get', 'GET', '/instance/serial/history', {
      query: { from_start: q.fromStart, most_recent: q.mostRecent, max_bytes: q.maxBytes },
    });
  }

  /** POST /instance/nmi: an NMI to vCPU 0. */
  async instanceIssueNmi(): Promise<void> {
    await this.call('instance_issue_nmi', 'POST', '/instance/nmi');
  }

  /** GET /instance/migration-status */
  instanceMigrateStatus(): Promise<InstanceMigrateStatusResponse> {
    return this.call('instance_migrate_status', 'GET', '/instance/migration-status');
  }

  /** GET /instance/disk/{id}/status */
  diskVolumeStatus(id: string): Promise<VolumeStatus> {
    return this.call('disk_volume_status', 'GET', `/instance/disk/${encodeURIComponent(id)}/status`);
  }

  /** POST /instance/disk/{id}/snapshot/{snapshot_id} */
  async instanceIssueCrucibleSnapshotRequest(id: string, snapshotId: string): Promise<void> {
    await this.call(
      'instance_issue_crucible_snapshot_request',
      'POST',
      `/instance/disk/${encodeURIComponent(id)}/snapshot/${encodeURIComponent(snapshotId)}`,
    );
  }

  /** PUT /instance/disk/{id}/vcr */
  instanceIssueCrucibleVcrRequest(id: string, req: InstanceVCRReplace): Promise<ReplaceResult> {
    return this.call('instance_issue_crucible_vcr_request', 'PUT', `/instance/disk/${encodeURIComponent(id)}/vcr`, {
      body: req,
    });
  }

  /** GET /openapi.json: the server's OpenAPI document. */
  openApi(): Promise<Record<string, unknown>> {
    return this.call('openapi', 'GET', '/openapi.json');
  }

  // ---- helpers ----

  /**
   * Every state change from `fromGen` on, as the server publishes them,
   * ending after a terminal state (Destroyed, Failed) or when `signal`
   * aborts. Generations may be skipped (the monitor reports the latest).
   */
  async *watchState(opts: WatchOptions = {}): AsyncGenerator<InstanceStateMonitorResponse> {
    let gen = opts.fromGen ?? 0;
    for (;;) {
      const r = await this.instanceStateMonitor(gen, opts.signal);
      yield r;
      if (TERMINAL_STATES.includes(r.state)) return;
      gen = r.gen + 1;
    }
  }

  /**
   * Wait until the instance reaches a state `want` accepts; the last state
   * seen. Rejects if a terminal state that `want` does not accept comes
   * first, or after `timeoutMs`.
   */
  async waitForState(
    want: InstanceState | ((s: InstanceState) => boolean),
    opts: { timeoutMs?: number; fromGen?: number } = {},
  ): Promise<InstanceStateMonitorResponse> {
    const ok = typeof want === 'function' ? want : (s: InstanceState): boolean => s === want;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 60_000);
    let last: InstanceStateMonitorResponse | undefined;
    try {
      for await (const r of this.watchState({ fromGen: opts.fromGen ?? 0, signal: ac.signal })) {
        last = r;
        if (ok(r.state)) return r;
      }
    } catch (e) {
      if (ac.signal.aborted) {
        throw new PropolisApiError(
          0,
          `timed out waiting for state (last: ${last?.state})`,
          undefined,
          undefined,
          'wait',
        );
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
    throw new PropolisApiError(0, `instance reached ${last?.state} instead`, undefined, undefined, 'wait');
  }

  /** Open the serial console websocket (GET /instance/serial); replays history from `offset` if given. */
  serialConsole(offset: SerialOffset = {}): SerialConsole {
    const WS = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    if (!WS) throw new Error('propolis-client needs a WebSocket class for the serial console (pass options.WebSocket)');
    const url = new URL(`${this.base}/instance/serial`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (offset.fromStart !== undefined) url.searchParams.set('from_start', String(offset.fromStart));
    if (offset.mostRecent !== undefined) url.searchParams.set('most_recent', String(offset.mostRecent));
    return new SerialConsole(WS, url.toString());
  }

  // ---- plumbing ----

  private async call<T>(
    operation: string,
    method: string,
    path: string,
    o: {
      body?: unknown;
      query?: Record<string, number | string | undefined>;
      longPoll?: boolean;
      signal?: AbortSignal;
    } = {},
  ): Promise<T> {
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { 'api-version': CLIENT_API_VERSION, accept: 'application/json' };
    const init: RequestInit = { method, headers };
    if (o.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(o.body);
    }
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    o.signal?.addEventListener('abort', onAbort);
    const timer = o.longPoll ? undefined : setTimeout(() => ac.abort(), this.timeoutMs);
    init.signal = ac.signal;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(url, init);
      text = await res.text();
    } catch (e) {
      const why = ac.signal.aborted ? (o.signal?.aborted ? 'aborted' : 'timed out') : (e as Error).message;
      throw new PropolisApiError(0, `${method} ${path}: ${why}`, undefined, undefined, operation);
    } finally {
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    }
    const requestId = res.headers.get('x-request-id') ?? undefined;
    if (!res.ok) {
      let code: string | undefined;
      let msg = `${res.status} ${res.statusText}`;
      try {
        const e = JSON.parse(text) as { error_code?: string; message?: string; request_id?: string };
        code = e.error_code ?? undefined;
        if (e.message) msg = e.message;
      } catch {
        if (text) msg = text;
      }
      throw new PropolisApiError(res.status, msg, code, requestId, operation);
    }
    if (res.status === 204 || text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PropolisApiError(res.status, `${method} ${path}: answer is not JSON`, undefined, requestId, operation);
    }
  }
}
