// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-server's API on real KVM with the project's small test guests
// (they boot in milliseconds): what every endpoint answers without an
// instance, how requests are checked (route, api-version, path, query,
// body, size), the lifecycle's corner cases (stop before start, stop while
// a start is held, reboot when not running, ensure twice, re-ensure after
// Destroyed), guest-initiated power-off and resets, and clients that go
// away mid-request. After each bad request the server must still answer.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { guestRom, REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { startPropolisServer, type RunningServer } from './app.js';
import {
  call,
  ensureBody,
  openSerial,
  spec,
  testLogger,
  UUID,
  waitForSerial,
  waitForState,
  type Reply,
} from './testing.js';

const ROM = (name: string): Uint8Array => new Uint8Array(readFileSync(join(REPO_ROOT, 'guests', 'out', `${name}.rom`)));

function assertError(r: Reply, status: number, message: string | RegExp, errorCode?: string): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.equal(typeof r.json?.request_id, 'string', r.text);
  assert.equal(r.json.request_id, r.headers['x-request-id']);
  if (typeof message === 'string') assert.equal(r.json.message, message);
  else assert.match(r.json.message, message);
  if (errorCode !== undefined) assert.equal(r.json.error_code, errorCode);
}

const NO_INSTANCE = 'Server not initialized (no instance)';

interface Harness {
  srv: RunningServer;
  port: number;
  published: string[];
  lines: string[];
}

/** An in-process server with `bootrom`; `gate` (when set) holds every start until it resolves. */
async function harness(bootrom: Uint8Array, hold?: { gate: Promise<void> | undefined }): Promise<Harness> {
  const { log, lines } = testLogger('info');
  const srv = await startPropolisServer({
    bootrom,
    listen: { host: '127.0.0.1', port: 0 },
    log,
    hooks: { beforeStart: () => hold?.gate ?? Promise.resolve() },
  });
  return { srv, port: srv.port, published: [], lines };
}

/** Ensure an instance and record every state it publishes. */
async function ensure(h: Harness, body = ensureBody(spec())): Promise<void> {
  const r = await call(h.port, 'PUT', '/instance', { body });
  assert.equal(r.status, 201, r.text);
  h.published.length = 0;
  h.srv.vm.publisher?.onChange((s) => h.published.push(s.state));
}

describe('propolis-server API', () => {
  const hold: { gate: Promise<void> | undefined } = { gate: undefined };
  let h: Harness;
  let port: number;
  before(async () => {
    h = await harness(guestRom('hello'), hold);
    port = h.port;
  });
  after(async () => {
    await h.srv.shutdown();
  });

  it('answers 424 NoInstance on every instance endpoint before any ensure', async () => {
    const cases: [string, string, unknown?][] = [
      ['GET', '/instance'],
      ['GET', '/instance/spec'],
      ['GET', '/instance/state-monitor', { gen: 0 }],
      ['GET', '/instance/migration-status'],
      ['PUT', '/instance/state', 'Run'],
      ['GET', '/instance/serial/history?from_start=0'],
      ['POST', '/instance/nmi'],
      ['POST', `/instance/disk/d/snapshot/${UUID}`],
      ['GET', '/instance/disk/d/status'],
      ['PUT', '/instance/disk/d/vcr', { vcr_json: '{}' }],
    ];
    for (const [method, path, body] of cases) {
      const r = await call(port, method, path, body === undefined ? {} : { body });
      assertError(r, 424, NO_INSTANCE, 'NoInstance');
    }
    await assert.rejects(openSerial(port), (e: { status?: number; body?: string }) => {
      assert.equal(e.status, 424);
      assert.equal(JSON.parse(e.body ?? '{}').error_code, 'NoInstance');
      return true;
    });
  });

  it('serves its OpenAPI document and metrics without an api-version', async () => {
    let r = await call(port, 'GET', '/openapi.json', { version: null });
    assert.equal(r.status, 200);
    assert.equal(r.json.info.version, '5.0.0');
    assert.ok(r.json.paths['/instance/state-monitor']);
    r = await call(port, 'GET', '/metrics', { version: null });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.text, /propolis_http_requests_total\{operation="instance_get",status="424"\} \d+/);
  });

  it('routes: unknown paths 404, wrong methods 405', async () => {
    assertError(await call(port, 'GET', '/nope'), 404, 'Not Found');
    assertError(await call(port, 'GET', '/instance/nope'), 404, 'Not Found');
    const r = await call(port, 'DELETE', '/instance');
    assertError(r, 405, 'Method Not Allowed');
    assert.equal(r.headers['allow'], 'PUT, GET');
    assertError(await call(port, 'POST', '/instance/state', { body: 'Run' }), 405, 'Method Not Allowed');
  });

  it('api-version: required, a version, not newer than 5.0.0; older ones are served', async () => {
    assertError(await call(port, 'GET', '/instance', { version: null }), 400, 'missing expected header "api-version"');
    assertError(await call(port, 'GET', '/instance', { version: 'five' }), 400, /bad value for header "api-version"/);
    assertError(await call(port, 'GET', '/instance', { version: '6.0.0' }), 400, /does not support this API version/);
    assertError(await call(port, 'GET', '/instance', { version: '1.0.0' }), 424, NO_INSTANCE);
  });

  it('bodies: JSON of the right shape, at most 1 MiB', async () => {
    const put = (opts: Parameters<typeof call>[3]): Promise<Reply> => call(port, 'PUT', '/instance', opts);
    assertError(await put({ raw: '{"properties":' }), 400, /^unable to parse JSON body: /);
    assertError(await put({ raw: '' }), 400, 'unable to parse JSON body: the body is empty');
    assertError(
      await put({ raw: '{}', headers: { 'content-type': 'text/plain' } }),
      400,
      'expected content type "application/json", got "text/plain"',
    );
    const body = ensureBody(spec()) as any;
    body.properties.colour = 'blue';
    assertError(await put({ body }), 400, /unknown field "colour"/);
    const wrong = ensureBody(spec()) as any;
    wrong.init.value.spec.board.cpus = '2';
    assertError(await put({ body: wrong }), 400, /board\.cpus/);
    assertError(await put({ body: {} }), 400, /missing field/);
    // 2 MiB: refused with a message, and the server answers afterwards.
    assertError(
      await put({ raw: Buffer.alloc(2 * 1024 * 1024, 0x20) }),
      400,
      'request body exceeded maximum size of 1048576 bytes',
    );
    assertError(await call(port, 'PUT', '/instance/state', { body: 'Pause' }), 400, /^unable to parse JSON body: /);
    for (const b of [{}, { gen: -1 }, { gen: '1' }, { gen: 1, extra: true }]) {
      assertError(await call(port, 'GET', '/instance/state-monitor', { body: b }), 400, /^unable to parse JSON body: /);
    }
    assertError(await call(port, 'GET', '/instance/state-monitor'), 400, /unable to parse JSON body/);
    // A client that hangs up half-way through its body, and one that sends garbage.
    for (const raw of [
      'PUT /instance HTTP/1.1\r\nhost: x\r\napi-version: 5.0.0\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"prop',
      'BREW /coffee HTCPCP/1.0\r\n\r\n',
    ]) {
      const sock = connect(port, '127.0.0.1');
      await once(sock, 'connect');
      sock.write(raw);
      await new Promise((res) => setTimeout(res, 50));
      sock.destroy();
    }
    assertError(await call(port, 'GET', '/instance'), 424, NO_INSTANCE);
  });

  it('path and query parameters are checked', async () => {
    assertError(await call(port, 'POST', '/instance/disk/d/snapshot/not-a-uuid'), 400, /^bad parameter in URL path: /);
    assertError(
      await call(port, 'GET', '/instance/serial/history?from_start=abc'),
      400,
      /^unable to parse query string: /,
    );
    assertError(await call(port, 'GET', '/instance/serial/history?bogus=1'), 400, /unknown query parameter "bogus"/);
    assertError(
      await call(port, 'GET', '/instance/serial/history?from_start=-1'),
      400,
      /^unable to parse query string: /,
    );
    assertError(await call(port, 'GET', '/instance/serial'), 400, /websocket/);
    assertError(await call(port, 'GET', `/instance/migrate/${UUID}/start`), 400, /websocket/);
    await assert.rejects(openSerial(port, '?from_start=x'), (e: { status?: number }) => e.status === 400);
  });

  it('ensure: spec errors are 400, migration targets 501, creation failures 500 and Failed', async () => {
    const bad = spec({
      disk0: { type: 'virtio_disk', component: { backend_id: 'nope', pci_path: { bus: 0, device: 4, function: 0 } } },
    });
    assertError(
      await call(port, 'PUT', '/instance', { body: ensureBody(bad) }),
      400,
      'failed to generate internal instance spec: storage backend "nope" not found for device "disk0"',
    );
    const crucible = spec({
      d: { type: 'virtio_disk', component: { backend_id: 'c', pci_path: { bus: 0, device: 4, function: 0 } } },
      c: { type: 'crucible_storage_backend', component: { request_json: '{}', readonly: false } },
    });
    assertError(
      await call(port, 'PUT', '/instance', { body: ensureBody(crucible) }),
      400,
      /Crucible is not available on this host/,
    );
    const target = {
      properties: ensureBody(spec()).properties,
      init: {
        method: 'MigrationTarget',
        value: { migration_id: UUID, src_addr: '127.0.0.1:1', replace_components: {} },
      },
    };
    assertError(await call(port, 'PUT', '/instance', { body: target }), 501, 'live migration is not implemented yet');
    assertError(await call(port, 'GET', '/instance'), 424, NO_INSTANCE);

    const missing = spec({
      d: { type: 'virtio_disk', component: { backend_id: 'f', pci_path: { bus: 0, device: 4, function: 0 } } },
      f: {
        type: 'file_storage_backend',
        component: { path: '/nonexistent/disk.img', readonly: true, block_size: 512 },
      },
    });
    const r = await call(port, 'PUT', '/instance', { body: ensureBody(missing) });
    assertError(r, 500, /^failed to create instance: .*\/nonexistent\/disk\.img/, 'CreateFailed');
    const got = await call(port, 'GET', '/instance');
    assert.equal(got.json.instance.state, 'Failed');
    assertError(await call(port, 'PUT', '/instance/state', { body: 'Run' }), 424, NO_INSTANCE);
    assertError(
      await call(port, 'GET', '/instance/state-monitor', { body: { gen: 3 } }),
      410,
      /will never reach generation 3/,
    );
  });

  it('lifecycle: ensure twice, reboot before start, stop before start, re-ensure after Destroyed', async () => {
    await ensure(h);
    assertError(
      await call(port, 'PUT', '/instance', { body: ensureBody(spec()) }),
      409,
      'instance already initialized',
      'AlreadyInitialized',
    );
    assertError(
      await call(port, 'PUT', '/instance/state', { body: 'Reboot' }),
      403,
      'Forbidden',
      'instance state change not allowed: Operation requires an active instance',
    );
    assertError(await call(port, 'POST', '/instance/nmi'), 409, /needs a running instance/, 'InstanceNotRunning');
    assertError(await call(port, 'GET', '/instance/disk/d/status'), 404, 'Not Found', 'no disk with id d!');
    assertError(await call(port, 'PUT', '/instance/disk/d/vcr', { body: { vcr_json: '{}' } }), 404, 'Not Found');
    assertError(
      await call(port, 'PUT', '/instance/disk/d/vcr', { body: { vcr: 1 } }),
      400,
      /unknown field|missing field/,
    );
    let r = await call(port, 'GET', '/instance/migration-status');
    assert.deepEqual(r.json, { migration_in: null, migration_out: null });
    r = await call(port, 'GET', '/instance/serial/history?most_recent=100');
    assert.deepEqual(r.json, { data: [], last_byte_offset: 0 });
    assertError(
      await call(port, 'GET', '/instance/serial/history'),
      400,
      "Exactly one of 'from_start' or 'most_recent' must be specified.",
    );
    assertError(
      await call(port, 'GET', '/instance/serial/history?from_start=0&most_recent=1'),
      400,
      "Exactly one of 'from_start' or 'most_recent' must be specified.",
    );
    await assert.rejects(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/instance/migrate/${UUID}/start`, {
          headers: { 'api-version': '1.0.0' },
        });
        ws.once('open', resolve);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
        ws.once('error', reject);
      }),
      /status 501/,
    );

    r = await call(port, 'PUT', '/instance/state', { body: 'Stop' });
    assert.equal(r.status, 204);
    r = await call(port, 'PUT', '/instance/state', { body: 'Stop' });
    assert.ok(r.status === 204 || r.status === 424, 'a second stop is ignored (or the VM is already gone)');
    await waitForState(port, 'Destroyed');
    assert.deepEqual(h.published, ['Stopping', 'Stopped', 'Destroyed']);
    for (const s of ['Run', 'Stop', 'Reboot']) {
      assertError(await call(port, 'PUT', '/instance/state', { body: s }), 424, NO_INSTANCE);
    }

    await ensure(h);
    r = await call(port, 'GET', '/instance/state-monitor', { body: { gen: 0 } });
    assert.deepEqual([r.json.gen, r.json.state], [1, 'Creating']);
    await call(port, 'PUT', '/instance/state', { body: 'Stop' });
    await waitForState(port, 'Destroyed');
  });

  it('stop while the start is held: Starting → Stopped → Destroyed, nothing paused', async () => {
    let release!: () => void;
    hold.gate = new Promise((r) => (release = r));
    try {
      await ensure(h);
      assert.equal((await call(port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
      await waitForState(port, 'Starting');
      assertError(
        await call(port, 'PUT', '/instance/state', { body: 'Reboot' }),
        403,
        'Forbidden',
        'instance state change not allowed: Instance is currently starting',
      );
      assert.equal(
        (await call(port, 'PUT', '/instance/state', { body: 'Run' })).status,
        204,
        'a second run is ignored',
      );
      assert.equal((await call(port, 'PUT', '/instance/state', { body: 'Stop' })).status, 204);
      await waitForState(port, 'Destroyed');
      assert.deepEqual(h.published, ['Starting', 'Stopped', 'Destroyed']);
    } finally {
      hold.gate = undefined;
      release();
    }
  });

  it('runs a guest: NMI, serial, reboot, stop; clients leaving mid-request do no harm', async () => {
    await ensure(h);
    assert.equal((await call(port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
    await waitForState(port, 'Running');
    await waitForSerial(port, /hello from 64-bit mode/);
    // The test guest sets up no IDT: an NMI sends it through a triple
    // fault into a reset — which shows the NMI arrived.
    const r = await call(port, 'POST', '/instance/nmi');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'null');
    await waitForSerial(port, /hello from 64-bit mode[^]*hello from 64-bit mode/);
    assert.deepEqual(h.published.slice(0, 3), ['Starting', 'Running', 'Rebooting']);
    assert.equal(
      (await call(port, 'PUT', '/instance/state', { body: 'Run' })).status,
      204,
      'run when running: ignored',
    );

    // A state-monitor client that goes away mid-wait leaves no waiter behind.
    const gen = (await call(port, 'GET', '/instance/state-monitor', { body: { gen: 0 } })).json.gen;
    const abort = new AbortController();
    const waiting = call(port, 'GET', '/instance/state-monitor', { body: { gen: gen + 100 }, signal: abort.signal });
    await new Promise((res) => setTimeout(res, 100));
    const waiters = (): number | undefined => h.srv.vm.publisher?.waiting;
    assert.equal(waiters(), 1);
    abort.abort();
    await assert.rejects(waiting);
    const deadline = Date.now() + 5000;
    while (waiters() !== 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    assert.equal(waiters(), 0);

    // A websocket client that vanishes mid-stream; another carries on.
    const gone = await openSerial(port, '?from_start=0');
    const stays = await openSerial(port, '?from_start=0');
    await gone.waitFor(/hello/);
    gone.ws.terminate();
    assert.equal((await call(port, 'PUT', '/instance/state', { body: 'Reboot' })).status, 204);
    await stays.waitFor(/(hello from 64-bit mode[^]*){3}/);
    await waitForState(port, 'Running', { fromGen: gen + 1 });

    assert.equal((await call(port, 'PUT', '/instance/state', { body: 'Stop' })).status, 204);
    await waitForState(port, 'Destroyed');
    assert.deepEqual(await stays.closed, [1001, 'VM stopped']);
    assert.deepEqual(h.published, [
      'Starting',
      'Running',
      ...['Rebooting', 'Running'], // the NMI's triple fault
      ...['Rebooting', 'Running'], // the API's reboot
      ...['Stopping', 'Stopped', 'Destroyed'],
    ]);
    assert.equal((await call(port, 'GET', '/instance')).json.instance.state, 'Destroyed');
  });

  it('logged no errors besides the expected creation failure', () => {
    const errs = h.lines
      .map((l) => JSON.parse(l) as { level: string; msg: string; err?: { code?: string } })
      .filter((r) => r.level === 'error');
    assert.deepEqual(
      errs.map((r) => r.msg),
      ['instance creation failed', 'request failed'],
      JSON.stringify(errs),
    );
  });
});

describe('propolis-server guest power events', () => {
  it('a guest power-off: Stopping → Stopped → Destroyed', async () => {
    const h = await harness(ROM('poweroff'));
    try {
      await ensure(h);
      assert.equal((await call(h.port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
      await waitForState(h.port, 'Destroyed');
      assert.deepEqual(h.published, ['Starting', 'Running', 'Stopping', 'Stopped', 'Destroyed']);
      assertError(await call(h.port, 'PUT', '/instance/state', { body: 'Run' }), 424, NO_INSTANCE);
    } catch (e) {
      process.stderr.write(h.lines.join(''));
      throw e;
    } finally {
      await h.srv.shutdown();
    }
  });

  it('guest resets (8042 reset line): Rebooting → Running each time, RAM kept', async () => {
    const h = await harness(ROM('reset-kbd'));
    try {
      await ensure(h);
      assert.equal((await call(h.port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
      const text = await waitForSerial(h.port, /b3\n/, 20000);
      assert.equal(text, 'b1\nb2\nb3\n');
      const deadline = Date.now() + 5000;
      while (h.published.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(h.published, ['Starting', 'Running', 'Rebooting', 'Running', 'Rebooting', 'Running']);
      const m = await call(h.port, 'GET', '/metrics', { version: null });
      assert.match(m.text, /propolis_instance_reboots_total 2/);
    } catch (e) {
      process.stderr.write(h.lines.join(''));
      throw e;
    } finally {
      await h.srv.shutdown();
    }
  });

  it('a guest flooding COM1 does not stop the API answering, and every byte reaches history and clients', async () => {
    const h = await harness(ROM('flood'));
    try {
      await ensure(h);
      const client = await openSerial(h.port);
      assert.equal((await call(h.port, 'PUT', '/instance/state', { body: 'Run' })).status, 204);
      await client.waitFor(/flood 200 /);
      // The API keeps answering while the flood goes on (how fast is measured by `npm run bench`, not here).
      for (let i = 0; i < 20; i++) assert.equal((await call(h.port, 'GET', '/instance')).status, 200);
      assert.equal((await call(h.port, 'PUT', '/instance/state', { body: 'Stop' })).status, 204);
      await waitForState(h.port, 'Destroyed');
      assert.deepEqual(await client.closed, [1001, 'VM stopped']);
      // The client saw exactly what the guest wrote: numbered lines, none missing.
      const lines = client
        .text()
        .split('\r\n')
        .filter((l) => l.startsWith('flood '));
      lines.slice(0, -1).forEach((l, i) => assert.equal(l, `flood ${i + 1} 0123456789abcdefghijklmnopqrstuvwxyz`));
    } catch (e) {
      process.stderr.write(h.lines.join(''));
      throw e;
    } finally {
      await h.srv.shutdown();
    }
  });

  it('shutdown stops a running VM in order', async () => {
    const h = await harness(guestRom('hello'));
    await ensure(h);
    await call(h.port, 'PUT', '/instance/state', { body: 'Run' });
    await waitForState(h.port, 'Running');
    await h.srv.shutdown();
    assert.deepEqual(h.published.slice(-3), ['Stopping', 'Stopped', 'Destroyed']);
  });
});
