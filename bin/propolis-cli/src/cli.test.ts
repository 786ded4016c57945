// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// runCli in-process against a scripted fake server (node:http and ws):
// the exit-status contract (0 ok, 1 server error, 2 usage, 3 unreachable,
// 4 unsupported), the human and --json output, the request `new` builds
// from a config TOML, the monitor loop and a non-TTY serial session. The
// real server is driven in e2e.test.ts.

import assert from 'node:assert/strict';

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import type { Component, InstanceEnsureRequest } from '../../../lib/api-types/src/index.js';
import { buildCidata } from '../../../lib/propolis/src/block/cidata.js';
import { mtool } from '../../../lib/propolis/src/testing/mtools.js';
import { runCli } from './cli.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[], stdin = new PassThrough()): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: {
      write: (c: string | Uint8Array) => (stdout += typeof c === 'string' ? c : Buffer.from(c).toString('latin1')),
    },
    stderr: { write: (c: string) => (stderr += c) },
    stdin,
  });
  return { code, stdout, stderr };
}

/** The JSON error document of a --json run. */
function jsonError(r: Run): Record<string, unknown> {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  return (JSON.parse(lines[0]!) as { error: Record<string, unknown> }).error;
}

const dir = mkdtempSync(join(tmpdir(), 'propolis-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
let handler: Handler = (_req, _body, res) => res.writeHead(500).end();
const requests: { method: string; url: string; body: string; version: string | undefined }[] = [];
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    requests.push({
      method: req.method!,
      url: req.url!,
      body,
      version: req.headers['api-version'] as string | undefined,
    });
    handler(req, body, res);
  });
});
const wss = new WebSocketServer({ server, path: '/instance/serial' });
let port = 0;
let S: string[] = [];

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  S = ['-s', '127.0.0.1', '-p', String(port)];
});
after(() => {
  wss.close();
  server.close();
});

function json(res: ServerResponse, status: number, doc: unknown, requestId = 'req-7'): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': requestId }).end(JSON.stringify(doc));
}

const PROPS = {
  id: '0e8b6b47-2b55-4c3e-9c4b-3e1a9f4c8e11',
  name: 'vm0',
  description: 'propolis-cli generated instance',
  metadata: {
    silo_id: '11111111-1111-1111-1111-111111111111',
    project_id: '22222222-2222-2222-2222-222222222222',
    sled_id: '33333333-3333-3333-3333-333333333333',
    sled_model: 'fake-gimlet',
    sled_revision: 1,
    sled_serial: 'fake-serial',
  },
};

describe('without a server', () => {
  it('--help: exit 0, the help on stdout', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^propolis-cli: /);
    assert.equal(r.stderr, '');
    assert.match((await cli(['new', '--help'])).stdout, /--config-toml <FILE>/);
    assert.match((await cli(['help', 'monitor'])).stdout, /^propolis-cli monitor: /);
  });

  it('bad usage: exit 2 and one line naming the problem and the help', async () => {
    const r = await cli([...S, 'new', 'vm', '--vcpu', '2']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, "propolis-cli: unknown option '--vcpu' for 'new'; see 'propolis-cli new --help'\n");
    const g = await cli(['get']);
    assert.equal(
      g.stderr,
      "propolis-cli: missing required option -s/--server <HOST> (before the command); see 'propolis-cli --help'\n",
    );
    const j = await cli(['--json', ...S, 'frob']);
    assert.equal(j.code, 2);
    assert.deepEqual(jsonError(j), {
      kind: 'usage',
      message: "unknown command 'frob'",
      hint: "see 'propolis-cli --help'",
      exit_code: 2,
    });
  });

  it('unreachable server: exit 3', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const p = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await cli(['-s', '127.0.0.1', '-p', String(p), 'get']);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      /^propolis-cli: cannot reach propolis-server: GET \/instance: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/,
    );
    const j = await cli(['--json', '-s', '127.0.0.1', '-p', String(p), 'state', 'run']);
    assert.equal(j.code, 3);
    assert.equal(jsonError(j)['kind'], 'unreachable');
    assert.equal(jsonError(j)['exit_code'], 3);
  });

  it('unsupported operations: exit 4 before contacting the server', async () => {
    for (const argv of [
      ['migrate', '10.0.0.2'],
      ['vcr', '-d', 'disk0', '--vcr-replace', 'x.json'],
      ['new', 'vm', '--crucible-disks', 'disks.json'],
    ]) {
      const r = await cli(['-s', '127.0.0.1', '-p', '1', ...argv]);
      assert.equal(r.code, 4, argv.join(' '));
      assert.match(r.stderr, /^propolis-cli: .*not (supported|implemented)/, argv.join(' '));
    }
    assert.match((await cli([...S, 'migrate', 'x'])).stderr, /live migration is not implemented/);
    const j = await cli(['--json', ...S, 'vcr', '-d', 'd', '--vcr-replace', 'v']);
    assert.deepEqual(Object.keys(jsonError(j)), ['kind', 'message', 'exit_code']);
    assert.equal(jsonError(j)['kind'], 'unsupported');
  });

  it('config TOML problems: 2 for bad files, 4 for devices this VMM cannot run', async () => {
    const bad = join(dir, 'bad.toml');
    writeFileSync(bad, '[dev.disk0]\ndriver = "pci-virtio-block"\nblock_dev = "nope"\npci-path = "0.4.0"\n');
    const r = await cli([...S, 'new', 'vm', '-t', bad]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `propolis-cli: ${bad}: [dev.disk0] block_dev: "nope" has no [block_dev.nope] table\n`);
    const vsock = join(dir, 'vsock.toml');
    writeFileSync(vsock, '[dev.vsock0]\ndriver = "pci-virtio-socket"\nguest_cid = "3"\npci-path = "0.8.0"\n');
    const u = await cli(['--json', ...S, 'new', 'vm', '-t', vsock]);
    assert.equal(u.code, 4);
    const e = jsonError(u);
    assert.equal(e['kind'], 'unsupported');
    assert.equal(e['table'], 'dev.vsock0');
    assert.equal(e['key'], 'driver');
    assert.match(String(e['message']), /pci-virtio-socket/);
    const missing = await cli([...S, 'new', 'vm', '-t', join(dir, 'missing.toml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing\.toml: cannot read the config file \(ENOENT\)/);
  });

  it('spec JSON problems: exit 2 naming the file and the field', async () => {
    const f = join(dir, 'spec.json');
    writeFileSync(
      f,
      JSON.stringify({
        board: { cpus: 300, memory_mb: 1, chipset: { type: 'i440_fx', value: { enable_pcie: false } } },
        components: {},
      }),
    );
    const r = await cli([...S, 'new', 'vm', '-s', f]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^propolis-cli: ${f}: not an instance spec: board\\.cpus: .*255`));
    writeFileSync(f, '{');
    assert.match((await cli([...S, 'new', 'vm', '-s', f])).stderr, /not valid JSON/);
  });
});

describe('against a fake server', () => {
  it('a server error: exit 1 with status, error_code, message and request id', async () => {
    handler = (_q, _b, res) =>
      json(
        res,
        424,
        { request_id: 'req-9', error_code: 'NoInstance', message: 'Server not initialized (no instance)' },
        'req-9',
      );
    const r = await cli([...S, 'get']);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'propolis-cli: instance_get: the server answered 424 Failed Dependency (NoInstance): Server not initialized (no instance) [request id req-9]\n',
    );
    const j = await cli(['--json', ...S, 'inject-nmi']);
    assert.equal(j.code, 1);
    assert.deepEqual(jsonError(j), {
      kind: 'api',
      operation: 'instance_issue_nmi',
      status: 424,
      error_code: 'NoInstance',
      message: 'Server not initialized (no instance)',
      request_id: 'req-9',
      exit_code: 1,
    });
  });

  it('new -t: the ensure request carries the spec built from the file', async () => {
    const toml = join(dir, 'vm.toml');
    writeFileSync(
      toml,
      '[main]\nboot_order = ["disk0"]\n[block_dev.img]\ntype = "file"\npath = "/tmp/disk.img"\nreadonly = true\n' +
        '[dev.disk0]\ndriver = "pci-virtio-block"\nblock_dev = "img"\npci-path = "0.4.0"\n',
    );
    requests.length = 0;
    handler = (_q, _b, res) => json(res, 201, { migrate: null });
    const r = await cli(['--json', ...S, 'new', 'vm0', '-t', toml, '-c', '2', '-m', '256', '-u', PROPS.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { id: PROPS.id, name: 'vm0', migrate: null });
    assert.equal(requests.length, 1);
    const q = requests[0]!;
    assert.equal(q.method, 'PUT');
    assert.equal(q.url, '/instance');
    assert.equal(q.version, '5.0.0');
    const body = JSON.parse(q.body) as InstanceEnsureRequest;
    assert.equal(body.properties.name, 'vm0');
    assert.equal(body.properties.id, PROPS.id);
    assert.equal(body.properties.description, 'propolis-cli generated instance');
    assert.equal(body.properties.metadata.sled_model, 'fake-gimlet');
    assert.ok(body.init.method === 'Spec');
    const spec = body.init.value.spec;
    assert.deepEqual(spec.board, {
      cpus: 2,
      memory_mb: 256,
      chipset: { type: 'i440_fx', value: { enable_pcie: false } },
    });
    assert.deepEqual(Object.keys(spec.components).sort(), [
      'boot-settings',
      'com1',
      'com2',
      'com3',
      'com4',
      'disk0',
      'img',
      'pvpanic',
    ]);
    assert.deepEqual(spec.components['img'], {
      type: 'file_storage_backend',
      component: { path: '/tmp/disk.img', readonly: true, block_size: 512 },
    });
    const human = await cli([...S, 'new', 'vm0', '-t', toml, '-u', PROPS.id]);
    assert.equal(human.stdout, `created instance "vm0" (id ${PROPS.id})\n`);
  });

  describe('new --cloud-init', () => {
    /** The spec of the one ensure request the fake server saw. */
    async function ensured(argv: string[]): Promise<Record<string, Component>> {
      requests.length = 0;
      handler = (_q, _b, res) => json(res, 201, { migrate: null });
      const r = await cli([...S, 'new', ...argv]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(requests.length, 1);
      const body = JSON.parse(requests[0]!.body) as InstanceEnsureRequest;
      assert.ok(body.init.method === 'Spec');
      return body.init.value.spec.components;
    }

    /** The blob behind the `cloud-init` disk, written to a file for mtools. */
    function volumeOf(components: Record<string, Component>): { image: Uint8Array; file: string } {
      assert.deepEqual(components['cloud-init'], {
        type: 'virtio_disk',
        component: { backend_id: 'cloud-init-backend', pci_path: { bus: 0, device: 24, function: 0 } },
      });
      const b = components['cloud-init-backend'];
      assert.ok(b?.type === 'blob_storage_backend', JSON.stringify(b));
      assert.equal(b.component.readonly, true);
      const image = new Uint8Array(Buffer.from(b.component.base64, 'base64'));
      const file = join(dir, `ci-${requests.length}-${Date.now()}.img`);
      writeFileSync(file, image);
      return { image, file };
    }

    const USER = '#cloud-config\npackages: [htop]\nruncmd:\n  - echo hello > /run/hi\n';

    it('makes a CIDATA volume of the file as user-data and meta-data naming the instance', async () => {
      const user = join(dir, 'user-data.yaml');
      writeFileSync(user, USER);
      const { file } = volumeOf(await ensured(['vm0', '-u', PROPS.id, '--cloud-init', user]));
      const listing = mtool('mdir', ['-i', file, '::']).toString('latin1');
      assert.match(listing, /Volume in drive : is CIDATA/);
      assert.match(listing, / user-data$/m);
      assert.match(listing, / meta-data$/m);
      assert.doesNotMatch(listing, /network-config/);
      assert.equal(mtool('mtype', ['-i', file, '::user-data']).toString(), USER);
      assert.equal(
        mtool('mtype', ['-i', file, '::meta-data']).toString(),
        `instance-id: ${PROPS.id}\nlocal-hostname: vm0\n`,
      );
    });

    it('joins the spec built from a config TOML; a name YAML could misread is quoted', async () => {
      const user = join(dir, 'user-data.sh');
      writeFileSync(user, '#!/bin/sh\necho hi\n');
      const toml = join(dir, 'ci-vm.toml');
      writeFileSync(
        toml,
        '[block_dev.img]\ntype = "file"\npath = "/tmp/disk.img"\n[dev.disk0]\ndriver = "pci-virtio-block"\n' +
          'block_dev = "img"\npci-path = "0.4.0"\n',
      );
      const components = await ensured(['web: #1', '-t', toml, '-u', PROPS.id, '--cloud-init', user]);
      assert.deepEqual(Object.keys(components).sort(), [
        'cloud-init',
        'cloud-init-backend',
        'com1',
        'com2',
        'com3',
        'com4',
        'disk0',
        'img',
        'pvpanic',
      ]);
      const { file } = volumeOf(components);
      assert.equal(
        mtool('mtype', ['-i', file, '::meta-data']).toString(),
        `instance-id: ${PROPS.id}\nlocal-hostname: "web: #1"\n`,
      );
    });

    it('sends a file that already is a volume as it is, as the original does', async () => {
      const seed = buildCidata([{ name: 'user-data', data: new TextEncoder().encode('#cloud-config\n') }]);
      const path = join(dir, 'seed.img');
      writeFileSync(path, seed);
      assert.deepEqual(volumeOf(await ensured(['vm0', '--cloud-init', path])).image, seed);
      // ISO 9660 (what cloud-localds makes by default): "CD001" in the volume descriptor at 32 KiB.
      const iso = new Uint8Array(36 * 1024);
      iso.set(new TextEncoder().encode('\x01CD001\x01'), 0x8000);
      writeFileSync(path, iso);
      assert.deepEqual(volumeOf(await ensured(['vm0', '--cloud-init', path])).image, iso);
    });

    it('refuses -s with it, an unreadable file, too much data and a device at 0.24.0 (exit 2)', async () => {
      const spec = join(dir, 'ci-spec.json');
      writeFileSync(spec, '{}');
      const user = join(dir, 'u.yaml');
      writeFileSync(user, 'x');
      requests.length = 0;
      const withSpec = await cli([...S, 'new', 'vm', '-s', spec, '--cloud-init', user]);
      assert.equal(withSpec.code, 2);
      assert.match(withSpec.stderr, /--cloud-init cannot be used with -s\/--spec/);
      const missing = await cli([...S, 'new', 'vm', '--cloud-init', join(dir, 'nope.yaml')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /nope\.yaml: cannot read the cloud-init file \(ENOENT\)/);
      const big = join(dir, 'big.yaml');
      writeFileSync(big, 'x'.repeat(600 * 512));
      const tooBig = await cli([...S, 'new', 'vm', '--cloud-init', big]);
      assert.equal(tooBig.code, 2);
      assert.match(tooBig.stderr, /big\.yaml: cloud-init data needs 601 sectors .*at most 512/);
      const toml = join(dir, 'slot24.toml');
      writeFileSync(
        toml,
        '[block_dev.img]\ntype = "file"\npath = "/tmp/d.img"\n[dev.d24]\ndriver = "pci-nvme"\nblock_dev = "img"\n' +
          'pci-path = "0.24.0"\n',
      );
      const taken = await cli([...S, 'new', 'vm', '-t', toml, '--cloud-init', user]);
      assert.equal(taken.code, 2);
      assert.match(taken.stderr, /component "d24" is at PCI 0\.24\.0, where --cloud-init attaches its disk/);
      assert.equal(requests.length, 0, 'nothing reached the server');
    });
  });

  it('get and state: human and JSON output', async () => {
    handler = (q, _b, res) => {
      if (q.url === '/instance') json(res, 200, { instance: { properties: PROPS, state: 'Running' } });
      else res.writeHead(204).end();
    };
    const g = await cli([...S, 'get']);
    assert.equal(g.code, 0);
    assert.match(g.stdout, /^name: +vm0\nid: +0e8b6b47-2b55-4c3e-9c4b-3e1a9f4c8e11\nstate: +Running\n/);
    const gj = await cli(['--json', ...S, 'get']);
    assert.deepEqual(JSON.parse(gj.stdout), { instance: { properties: PROPS, state: 'Running' } });
    requests.length = 0;
    const s = await cli([...S, 'state', 'reboot']);
    assert.deepEqual([s.code, s.stdout, s.stderr], [0, '', '']);
    assert.deepEqual(
      [requests[0]?.method, requests[0]?.url, requests[0]?.body],
      ['PUT', '/instance/state', '"Reboot"'],
    );
    const sj = await cli(['--json', ...S, 'state', 'run']);
    assert.deepEqual(JSON.parse(sj.stdout), { ok: true, requested: 'Run' });
  });

  it('monitor: one line per state from gen 0; exit 0 at Destroyed, 1 at Failed', async () => {
    const states = ['Creating', 'Running', 'Stopping', 'Stopped', 'Destroyed'];
    let last = 'Destroyed';
    handler = (q, _b, res) => {
      const gen = Number(new URL(q.url!, 'http://x').searchParams.get('gen'));
      const g = Math.max(gen, 1);
      const state = g <= states.length - 1 ? states[g - 1] : last;
      json(res, 200, { gen: g, state, migration: { migration_in: null, migration_out: null } });
    };
    const r = await cli([...S, 'monitor']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'gen 1: Creating\ngen 2: Running\ngen 3: Stopping\ngen 4: Stopped\ngen 5: Destroyed\n');
    const j = await cli(['--json', ...S, 'monitor']);
    const docs = j.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { gen: number; state: string });
    assert.deepEqual(
      docs.map((d) => d.state),
      states,
    );
    last = 'Failed';
    const f = await cli([...S, 'monitor']);
    assert.equal(f.code, 1);
    assert.match(f.stdout, /gen 5: Failed\n$/);
    assert.equal(f.stderr, 'propolis-cli: the instance Failed\n');
  });

  it('serial without a TTY: history, output and stdin piped; exit 0 when the server closes', async () => {
    handler = (_q, _b, res) => json(res, 200, { instance: { properties: PROPS, state: 'Running' } });
    let query = '';
    let version: string | string[] | undefined;
    const typed: string[] = [];
    wss.once('connection', (ws, req) => {
      query = req.url!;
      version = req.headers['api-version'];
      ws.send(Buffer.from('boot: ok\r\n'));
      ws.on('message', (m: Buffer) => {
        typed.push(m.toString());
        ws.send(Buffer.from(`echo ${m.toString()}`));
        ws.close(1001, 'VM stopped');
      });
    });
    const stdin = new PassThrough();
    const running = cli([...S, 'serial', '-b', '0'], stdin);
    await new Promise((r) => setTimeout(r, 300));
    stdin.write('hi\x03\x01');
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(query, '/instance/serial?from_start=0');
    assert.equal(version, '5.0.0');
    assert.deepEqual(typed, ['hi\x03\x01']);
    assert.equal(r.stdout, 'boot: ok\r\necho hi\x03\x01');
    assert.equal(r.stderr, '\npropolis-cli: serial console closed by the server (1001 VM stopped)\n');
  });
});
