// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-client against a real propolis-server: the whole life of an
// instance through the typed client only — ensure a VM booting Debian's
// SeaBIOS from a virtio disk (the project's boot-sector guest, which prints
// "diskread: ok 1 MiB" on COM1), run it, read the marker through the serial
// websocket and the history endpoint, reboot and see it again, stop it and
// watch Destroyed arrive through the state monitor; the client's errors
// carry the server's status, error code and request id.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { PropolisApiError, PropolisClient, type WebSocketClass } from '../../../lib/propolis-client/src/index.js';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { startPropolisServer, type RunningServer } from './app.js';
import { diskSpec, ensureBody, testLogger } from './testing.js';

const IMAGE = join(REPO_ROOT, 'guests', 'out', 'diskread-small.img');
const MARKER = /diskread: ok 1 MiB\r\n/g;
const count = (s: string): number => s.match(MARKER)?.length ?? 0;

describe('propolis-client drives propolis-server', () => {
  let srv: RunningServer;
  let client: PropolisClient;
  const { log, lines } = testLogger('warn');

  before(async () => {
    const bootrom = new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin')));
    srv = await startPropolisServer({ bootrom, listen: { host: '127.0.0.1', port: 0 }, log });
    client = new PropolisClient(`http://127.0.0.1:${srv.port}`, {
      WebSocket: WebSocket as unknown as WebSocketClass,
    });
  });
  after(async () => {
    await srv.shutdown();
  });

  it('ensure, run, serial (websocket and history), reboot, stop → Destroyed, all through the client', async () => {
    try {
      // No instance yet: a typed error with the server's code and request id.
      const none = await client.instanceGet().then(
        () => assert.fail('instance_get answered without an instance'),
        (e: unknown) => e,
      );
      assert.ok(none instanceof PropolisApiError);
      assert.equal(none.status, 424);
      assert.equal(none.errorCode, 'NoInstance');
      assert.match(none.requestId ?? '', /^[0-9a-f-]{36}$/);

      assert.deepEqual(await client.instanceEnsure(ensureBody(diskSpec(IMAGE))), { migrate: null });
      assert.equal((await client.instanceGet()).instance.state, 'Creating');
      const spec = await client.instanceSpecGet();
      assert.equal(spec.spec.type, 'Present');

      // Attach the console before the guest runs: everything arrives live.
      const serial = client.serialConsole();
      await serial.opened;
      await client.instanceStatePut('Run');
      await client.waitForState('Running', { timeoutMs: 30_000 });
      const first = await serial.readUntil(MARKER, 60_000);
      assert.match(first, /SeaBIOS/);

      const hist = await client.instanceSerialHistoryGet({ fromStart: 0, maxBytes: 64 * 1024 });
      const text = Buffer.from(hist.data).toString('latin1');
      assert.equal(count(text), 1, text);
      assert.equal(hist.last_byte_offset, hist.data.length, 'from the start, the offset is the length');

      // Reboot: Rebooting → Running, and the guest boots and reports again.
      const { gen } = await client.instanceStateMonitor(0);
      await client.instanceStatePut('Reboot');
      // The monitor answers with the latest state, so a quick reboot may show only its end: Running two
      // generations on (Rebooting, then Running).
      const back = await client.waitForState('Running', { fromGen: gen + 2, timeoutMs: 30_000 });
      assert.ok(back.gen >= gen + 2, `generation ${back.gen} after ${gen}`);
      const both = await serial.readUntil(/diskread: ok 1 MiB\r\n[^]*diskread: ok 1 MiB\r\n/, 60_000);
      assert.equal(count(both), 2);
      const tail = await client.instanceSerialHistoryGet({ mostRecent: 4096 });
      assert.ok(count(Buffer.from(tail.data).toString('latin1')) >= 1);

      // Stop: the monitor reports states until Destroyed; the console is closed with 1001.
      await client.instanceStatePut('Stop');
      const seen: string[] = [];
      for await (const s of client.watchState()) seen.push(s.state);
      assert.equal(seen.at(-1), 'Destroyed', seen.join(','));
      assert.deepEqual(await serial.closed, { code: 1001, reason: 'VM stopped' });

      // After rundown the server has no instance to act on: a typed 424.
      const after = await client.instanceStatePut('Run').then(
        () => assert.fail('a state change after rundown was accepted'),
        (e: unknown) => e,
      );
      assert.ok(after instanceof PropolisApiError);
      assert.equal(after.status, 424);
    } catch (e) {
      process.stderr.write(lines.join(''));
      throw e;
    }
  });

  it('reports a server that is not there as status 0, naming the operation', async () => {
    const gone = new PropolisClient('http://127.0.0.1:9', { timeoutMs: 2000 });
    const e = await gone.instanceGet().then(
      () => assert.fail('answered'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof PropolisApiError);
    assert.equal(e.status, 0);
    assert.equal(e.operation, 'instance_get');
  });
});
