// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The route table: one entry per path and method of the original server's
// published API, carrying everything a router, a client and the OpenAPI
// generator need — operation ID, method, path template, schemas of path
// parameters, query and body, the success status and its schema, the error
// statuses the endpoint can answer, and whether it upgrades to a websocket.
//
// The original's unpublished `GET /instance/vnc` (RFB over a websocket) is
// not in its document and not here.
//
// Threading: none; immutable values built at import time.

import { Type, type TObject, type TSchema } from '@sinclair/typebox';
import { u64, uuid } from './kinds.js';
import {
  InstanceEnsureRequest,
  InstanceEnsureResponse,
  InstanceGetResponse,
  InstanceMigrateStatusResponse,
  InstanceSerialConsoleHistoryResponse,
  InstanceSpecGetResponse,
  InstanceStateMonitorRequest,
  InstanceStateMonitorResponse,
  InstanceStateRequested,
  InstanceVCRReplace,
  ReplaceResult,
  VolumeStatus,
} from './schemas.js';

export type HttpMethod = 'GET' | 'PUT' | 'POST';

/**
 * One operation. The type parameters keep each entry's schemas precise, so
 * `Static<E['body']>` etc. give handler types; `Endpoint` alone is any entry.
 */
export interface Endpoint<
  Id extends string = string,
  Params extends TObject | undefined = TObject | undefined,
  Query extends TObject | undefined = TObject | undefined,
  Body extends TSchema | undefined = TSchema | undefined,
  Response extends TSchema | undefined = TSchema | undefined,
> {
  readonly operationId: Id;
  readonly method: HttpMethod;
  /** The path template, parameters in braces: `/instance/disk/{id}/status`. */
  readonly path: string;
  readonly summary?: string;
  readonly description?: string;
  /** Path parameters, in path order; their values are strings (validate the decoded strings). */
  readonly params: Params;
  /** Query parameters, all optional; check with `validateQuery`. Closed: unknown names are refused. */
  readonly query: Query;
  /** The JSON request body, required when present. */
  readonly body: Body;
  readonly success: {
    /** 101 for websocket upgrades, 204 with no body. */
    readonly status: 101 | 200 | 201 | 204;
    readonly description: string;
    /** The JSON response body; undefined for 101 and 204. */
    readonly schema: Response;
  };
  /**
   * The error statuses this endpoint answers, every one with an `Error`
   * body. 400 covers a bad `api-version` header, body, path or query.
   */
  readonly errors: readonly number[];
  /** Whether success is an upgrade to a websocket (Dropshot's `x-dropshot-websocket`). */
  readonly websocket: boolean;
  /**
   * Matches a request's path (without query string, percent-encoded as
   * received) against the template: the decoded parameters, or undefined.
   */
  match(pathname: string): Record<string, string> | undefined;
}

function matcher(template: string): (pathname: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const source = template
    .split('/')
    .map((seg) => {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(seg);
      if (m === null) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1]!);
      return '([^/]+)';
    })
    .join('/');
  const re = new RegExp(`^${source}$`);
  return (pathname) => {
    const m = re.exec(pathname);
    if (m === null) return undefined;
    const out: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) {
      try {
        out[names[i]!] = decodeURIComponent(m[i + 1]!);
      } catch {
        return undefined; // malformed percent-encoding names no resource
      }
    }
    return out;
  };
}

function endpoint<
  const Id extends string,
  Params extends TObject | undefined = undefined,
  Query extends TObject | undefined = undefined,
  Body extends TSchema | undefined = undefined,
  Response extends TSchema | undefined = undefined,
>(
  e: Omit<Endpoint<Id, Params, Query, Body, Response>, 'match' | 'params' | 'query' | 'body' | 'websocket'> & {
    params?: Params;
    query?: Query;
    body?: Body;
    websocket?: boolean;
  },
): Endpoint<Id, Params, Query, Body, Response> {
  return {
    ...e,
    params: e.params as Params,
    query: e.query as Query,
    body: e.body as Body,
    websocket: e.websocket ?? false,
    match: matcher(e.path),
  };
}

const OK = 'successful operation';
const UPGRADE = 'Negotiating protocol upgrade from HTTP/1.1 to WebSocket';

const fromStart = u64({
  description:
    'An absolute offset into the serial output, counted in bytes since the instance started. ' +
    'Give exactly one of `from_start` and `most_recent`.',
});
const mostRecent = u64({
  description: 'An offset counted back from the newest byte of serial output. See `from_start`.',
});

/** The disk endpoints' `{id}`: the key of a Crucible backend component. */
const diskId = Type.String();

export const ENDPOINTS = [
  endpoint({
    operationId: 'instance_ensure',
    method: 'PUT',
    path: '/instance',
    description: 'Creates the instance, from a spec or as a migration target. Not idempotent.',
    body: InstanceEnsureRequest,
    success: { status: 201, description: 'successful creation', schema: InstanceEnsureResponse },
    errors: [400, 409, 500],
  }),
  endpoint({
    operationId: 'instance_get',
    method: 'GET',
    path: '/instance',
    success: { status: 200, description: OK, schema: InstanceGetResponse },
    errors: [400, 424, 500],
  }),
  endpoint({
    operationId: 'instance_spec_get',
    method: 'GET',
    path: '/instance/spec',
    success: { status: 200, description: OK, schema: InstanceSpecGetResponse },
    errors: [400, 424, 500],
  }),
  endpoint({
    operationId: 'instance_state_monitor',
    method: 'GET',
    path: '/instance/state-monitor',
    description:
      'Waits until the state generation reaches `gen`, then answers the current state. ' +
      '410 if the instance goes away first.',
    body: InstanceStateMonitorRequest,
    success: { status: 200, description: OK, schema: InstanceStateMonitorResponse },
    errors: [400, 410, 424, 500],
  }),
  endpoint({
    operationId: 'instance_state_put',
    method: 'PUT',
    path: '/instance/state',
    description: 'Queues a state change; 403 when the current state does not allow it.',
    body: InstanceStateRequested,
    success: { status: 204, description: 'resource updated', schema: undefined },
    errors: [400, 403, 424, 500],
  }),
  endpoint({
    operationId: 'instance_serial_history_get',
    method: 'GET',
    path: '/instance/serial/history',
    query: Type.Object(
      {
        from_start: Type.Optional(fromStart),
        max_bytes: Type.Optional(
          u64({ description: 'The most bytes to return (fewer when the history ends sooner). Default 16 KiB.' }),
        ),
        most_recent: Type.Optional(mostRecent),
      },
      { additionalProperties: false },
    ),
    success: { status: 200, description: OK, schema: InstanceSerialConsoleHistoryResponse },
    errors: [400, 424, 500],
  }),
  endpoint({
    operationId: 'instance_serial',
    method: 'GET',
    path: '/instance/serial',
    description: 'The serial console (COM1) as a websocket; with an offset, history is replayed first.',
    query: Type.Object(
      { from_start: Type.Optional(fromStart), most_recent: Type.Optional(mostRecent) },
      { additionalProperties: false },
    ),
    success: { status: 101, description: UPGRADE, schema: undefined },
    errors: [400, 424, 500],
    websocket: true,
  }),
  endpoint({
    operationId: 'instance_migrate_start',
    method: 'GET',
    path: '/instance/migrate/{migration_id}/start',
    summary: 'For propolis-server only: the migration source end of a live migration.',
    description:
      'A migration target calls this on the source server and upgrades the connection to carry the migration. ' +
      'It is in the document so that its shape is checked, not for other clients.',
    params: Type.Object({ migration_id: uuid() }, { additionalProperties: false }),
    success: { status: 101, description: UPGRADE, schema: undefined },
    errors: [400, 424, 500],
    websocket: true,
  }),
  endpoint({
    operationId: 'instance_migrate_status',
    method: 'GET',
    path: '/instance/migration-status',
    success: { status: 200, description: OK, schema: InstanceMigrateStatusResponse },
    errors: [400, 424, 500],
  }),
  endpoint({
    operationId: 'instance_issue_nmi',
    method: 'POST',
    path: '/instance/nmi',
    summary: 'Sends an NMI to the instance (to vCPU 0).',
    success: { status: 200, description: OK, schema: Type.Null() },
    errors: [400, 424, 500],
  }),
  endpoint({
    operationId: 'instance_issue_crucible_snapshot_request',
    method: 'POST',
    path: '/instance/disk/{id}/snapshot/{snapshot_id}',
    summary: 'Asks a Crucible backend to take a snapshot.',
    params: Type.Object({ id: diskId, snapshot_id: uuid() }, { additionalProperties: false }),
    success: { status: 200, description: OK, schema: Type.Null() },
    errors: [400, 404, 424, 500],
  }),
  endpoint({
    operationId: 'disk_volume_status',
    method: 'GET',
    path: '/instance/disk/{id}/status',
    summary: 'Reports the status of the Crucible volume behind a disk.',
    params: Type.Object({ id: diskId }, { additionalProperties: false }),
    success: { status: 200, description: OK, schema: VolumeStatus },
    errors: [400, 404, 424, 500],
  }),
  endpoint({
    operationId: 'instance_issue_crucible_vcr_request',
    method: 'PUT',
    path: '/instance/disk/{id}/vcr',
    summary: "Replaces a Crucible backend's volume construction request.",
    params: Type.Object({ id: diskId }, { additionalProperties: false }),
    body: InstanceVCRReplace,
    success: { status: 200, description: OK, schema: ReplaceResult },
    errors: [400, 403, 404, 410, 424, 500],
  }),
] as const satisfies readonly Endpoint[];
