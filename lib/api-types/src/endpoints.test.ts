// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { ENDPOINTS, type Endpoint } from './endpoints.js';

const all: readonly Endpoint[] = ENDPOINTS;
const byId = (id: string): Endpoint => all.find((e) => e.operationId === id)!;

test('one entry per operation: 13, unique by operation ID and by method and path', () => {
  assert.equal(all.length, 13);
  assert.equal(new Set(all.map((e) => e.operationId)).size, 13);
  assert.equal(new Set(all.map((e) => `${e.method} ${e.path}`)).size, 13);
});

test('path parameters: the template and the schema name the same ones, in order', () => {
  for (const e of all) {
    const inPath = [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    assert.deepEqual(Object.keys(e.params?.properties ?? {}), inPath, e.operationId);
    if (e.params !== undefined) assert.equal(e.params.additionalProperties, false);
  }
});

test('query schemas are closed objects of optional properties', () => {
  for (const e of all) {
    if (e.query === undefined) continue;
    assert.equal(e.query.additionalProperties, false, e.operationId);
    assert.deepEqual(e.query.required ?? [], [], e.operationId);
  }
  assert.deepEqual(Object.keys(byId('instance_serial_history_get').query!.properties), [
    'from_start',
    'max_bytes',
    'most_recent',
  ]);
  assert.deepEqual(Object.keys(byId('instance_serial').query!.properties), ['from_start', 'most_recent']);
});

test('success statuses and bodies agree', () => {
  for (const e of all) {
    const { status, schema } = e.success;
    if (e.websocket) assert.equal(status, 101, e.operationId);
    if (status === 101 || status === 204) assert.equal(schema, undefined, e.operationId);
    else assert.ok((schema as TSchema | undefined) !== undefined, e.operationId);
    if (e.websocket) assert.equal(e.body, undefined, e.operationId);
  }
  assert.equal(byId('instance_ensure').success.status, 201);
  assert.equal(byId('instance_state_put').success.status, 204);
  assert.deepEqual(
    all.filter((e) => e.websocket).map((e) => e.operationId),
    ['instance_serial', 'instance_migrate_start'],
  );
});

test('every endpoint can answer 400 and 500, and only error statuses', () => {
  for (const e of all) {
    assert.ok(e.errors.includes(400) && e.errors.includes(500), e.operationId);
    for (const s of e.errors) assert.ok(s >= 400 && s <= 599, `${e.operationId}: ${s}`);
    assert.deepEqual([...e.errors].sort(), [...e.errors], `${e.operationId}: sorted`);
  }
  // Everything but ensure needs an instance (424 without one).
  for (const e of all) assert.equal(e.errors.includes(424), e.operationId !== 'instance_ensure', e.operationId);
  assert.ok(byId('instance_ensure').errors.includes(409));
  assert.ok(byId('instance_state_monitor').errors.includes(410));
  assert.ok(byId('instance_state_put').errors.includes(403));
});

test('match() takes exactly the template, decoding parameters', () => {
  const status = byId('disk_volume_status');
  assert.deepEqual(status.match('/instance/disk/disk0/status'), { id: 'disk0' });
  assert.deepEqual(status.match('/instance/disk/my%20disk/status'), { id: 'my disk' });
  assert.deepEqual(status.match('/instance/disk/a%2Fb/status'), { id: 'a/b' });
  assert.equal(status.match('/instance/disk/%E0%A4%A/status'), undefined);
  assert.equal(status.match('/instance/disk//status'), undefined);
  assert.equal(status.match('/instance/disk/a/b/status'), undefined);
  assert.equal(status.match('/instance/disk/disk0/status/'), undefined);
  assert.deepEqual(byId('instance_get').match('/instance'), {});
  assert.equal(byId('instance_get').match('/instance/'), undefined);
  assert.equal(byId('instance_get').match('/instancex'), undefined);
  // `-` and `.` are literal.
  assert.deepEqual(byId('instance_state_monitor').match('/instance/state-monitor'), {});
  assert.deepEqual(byId('instance_issue_crucible_snapshot_request').match('/instance/disk/d/snapshot/s'), {
    id: 'd',
    snapshot_id: 's',
  });
});

test('each request path matches exactly one endpoint per method', () => {
  const paths = ['/instance', '/instance/spec', '/instance/serial', '/instance/serial/history', '/instance/disk/x/vcr'];
  for (const p of paths) {
    for (const method of ['GET', 'PUT', 'POST'] as const) {
      assert.ok(all.filter((e) => e.method === method && e.match(p) !== undefined).length <= 1, `${method} ${p}`);
    }
  }
});
