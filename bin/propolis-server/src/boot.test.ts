// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-server end to end with real firmware on real KVM: Debian's
// SeaBIOS boots the project's boot-sector guest (guests/out/diskread-small.img,
// which prints "diskread: ok 1 MiB" on COM1) from a virtio disk over a file
// backend. Through the API: ensure, run, the marker in the serial history
// and on the websocket (replayed and live), reboot and the marker again,
// stop and Stopping → Stopped → Destroyed through the state monitor, and a
// fresh VM after that.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { startPropolisServer, type RunningServer } from './app.js';
import {
  call,
  diskSpec,
  ensureBody,
  openSerial,
  testLogger,
  waitForSerial,
  waitForState,
  type SerialClient,
} from './testing.js';

const IMAGE = join(REPO_ROOT, 'guests', 'out', 'diskread-small.img');
// The whole line: the guest prints nothing after it (it halts), so a
// history read that matches it is the guest's complete output.
const MARKER = /diskread: ok 1 MiB\r\n/;
const TWICE = /diskread: ok 1 MiB\r\n[^]*diskread: ok 1 MiB\r\n/;
const count = (text: string): number => text.match(new RegExp(MARKER.source, 'g'))?.length ?? 0;

describe('propolis-server booting SeaBIOS from a virtio disk', () => {
  let srv: RunningServer;
  let port: number;
  const { log, lines } = testLogger('info');

  before(async () => {
    const bootrom = new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin')));
    srv = await startPropolisServer({ bootrom, listen: { host: '127.0.0.1', port: 0 }, log });
    port = srv.port;
  });
  after(async () => {
    await srv.shutdown();
  });

  it('ensure, run, serial output, reboot, stop, and a fresh VM after', async () => {
    try {
      await flow();
    } catch (e) {
      process.stderr.write(lines.join(''));
      throw e;
    }
  });

  async function flow(): Promise<void> {
    const published: string[] = [];

    let r = await call(port, 'PUT', '/instance', { body: ensureBody(diskSpec(IMAGE)) });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.json, { migrate: null });
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    srv.vm.publisher?.onChange((s) => published.push(s.state));

    r = await call(port, 'GET', '/instance');
    assert.equal(r.json.instance.state, 'Creating');
    assert.equal(r.json.instance.properties.name, 'test-vm');
    r = await call(port, 'GET', '/instance/spec');
    assert.equal(r.status, 200);
    assert.equal(r.json.spec.type, 'Present');
    const board = r.json.spec.value.board;
    assert.ok(board.cpuid.entries.length > 10, 'host CPUID is filled in');
    assert.ok(['intel', 'amd'].includes(board.cpuid.vendor));
    assert.equal(r.json.spec.value.components['disk0-backend'].component.path, IMAGE);

    const live: SerialClient = await openSerial(port);
    r = await call(port, 'PUT', '/instance/state', { body: 'Run' });
    assert.equal(r.status, 204, r.text);
    await waitForState(port, 'Running');
    assert.deepEqual(published, ['Starting', 'Running']);

    let history = await waitForSerial(port, MARKER, 60000);
    assert.match(history, /SeaBIOS/);
    await live.waitFor(MARKER);

    // A late client replays the history, then gets live output.
    const replay = await openSerial(port, '?from_start=0');
    await replay.waitFor(MARKER);
    assert.ok(replay.text().startsWith(history.slice(0, 20)));
    const tail = await openSerial(port, '?most_recent=8');
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(tail.text(), history.slice(-8));

    // Reboot: Rebooting → Running, and the guest boots again.
    const before = await call(port, 'GET', '/instance/state-monitor', { body: { gen: 0 } });
    r = await call(port, 'PUT', '/instance/state', { body: 'Reboot' });
    assert.equal(r.status, 204);
    await waitForState(port, 'Running', { fromGen: before.json.gen + 1 });
    history = await waitForSerial(port, TWICE, 60000);
    assert.equal(count(history), 2);
    await live.waitFor(TWICE);
    await replay.waitFor(TWICE);
    assert.equal(live.text(), history, 'the live client saw every byte once');
    assert.ok(live.frames.every((f) => f.length <= 1024));

    // History reads: offsets and limits.
    r = await call(port, 'GET', '/instance/serial/history?most_recent=10&max_bytes=4');
    assert.equal(r.status, 200);
    assert.equal(Buffer.from(r.json.data).toString('latin1'), history.slice(-10, -6));
    assert.equal(r.json.last_byte_offset, history.length - 6);

    r = await call(port, 'GET', '/metrics', { version: null });
    assert.equal(r.status, 200);
    assert.match(r.text, /propolis_instance_state\{state="Running"\} 1/);
    assert.match(r.text, /propolis_instance_reboots_total 1/);
    const blk = /propolis_block_requests_total\{device="disk0"\} (\d+)/.exec(r.text);
    assert.ok(blk && Number(blk[1]) > 0, 'virtio-block requests counted');
    // The guest read its 1 MiB twice (two boots), plus SeaBIOS's own reads of the boot sector.
    const bytes = /propolis_block_bytes_total\{device="disk0",op="read"\} (\d+)/.exec(r.text);
    assert.ok(bytes && Number(bytes[1]) >= 2 * 1024 * 1024, `bytes read counted: ${bytes?.[1]}`);
    // The text format: every family's samples follow its own HELP/TYPE lines, each family once.
    const types = [...r.text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    assert.equal(new Set(types).size, types.length, 'each family declared once');
    let family = '';
    for (const line of r.text.trim().split('\n')) {
      if (line.startsWith('# TYPE ')) family = line.split(' ')[2]!;
      else if (!line.startsWith('#')) assert.ok(line.startsWith(family), `${line} outside its family ${family}`);
    }
    const io = /propolis_vcpu_exits_total\{vcpu="0",kind="io"\} (\d+)/.exec(r.text);
    assert.ok(io && Number(io[1]) > 0, 'port I/O exits counted');

    // Stop: Stopping → Stopped → Destroyed, websocket clients closed.
    const stopFrom = (await call(port, 'GET', '/instance/state-monitor', { body: { gen: 0 } })).json.gen;
    r = await call(port, 'PUT', '/instance/state', { body: 'Stop' });
    assert.equal(r.status, 204);
    const seen = await waitForState(port, 'Destroyed', { fromGen: stopFrom + 1 });
    assert.equal(seen.at(-1)?.gen, stopFrom + 3);
    assert.deepEqual(published.slice(-3), ['Stopping', 'Stopped', 'Destroyed']);
    assert.deepEqual(await live.closed, [1001, 'VM stopped']);
    assert.deepEqual(await replay.closed, [1001, 'VM stopped']);

    // Gone: the latest state stays readable, state changes need a VM.
    r = await call(port, 'GET', '/instance');
    assert.equal(r.json.instance.state, 'Destroyed');
    r = await call(port, 'PUT', '/instance/state', { body: 'Run' });
    assert.equal(r.status, 424);
    assert.equal(r.json.error_code, 'NoInstance');
    r = await call(port, 'GET', '/instance/state-monitor', { body: { gen: stopFrom + 4 } });
    assert.equal(r.status, 410);
    assert.equal(r.json.message, `No instance present; will never reach generation ${stopFrom + 4}`);

    // A new ensure makes a fresh VM: generation 1, Creating.
    r = await call(port, 'PUT', '/instance', { body: ensureBody(diskSpec(IMAGE)) });
    assert.equal(r.status, 201, r.text);
    r = await call(port, 'GET', '/instance/state-monitor', { body: { gen: 0 } });
    assert.deepEqual([r.json.gen, r.json.state], [1, 'Creating']);
  }
});
