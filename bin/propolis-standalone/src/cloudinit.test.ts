// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// `[cloudinit]` in propolis-standalone: the table's rules, the instance
// spec it produces (the `cloud-init` virtio disk at 0.24.0 over a read-only
// blob, or the seed's `type = "cloudinit"` block_dev), the volume inside
// the blob read back with Debian's mtools, the disk the machine gets, and
// a real run in which Debian's SeaBIOS finds the disk.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Component } from '../../../lib/api-types/src/index.js';
import { buildCloudInitVolume } from '../../../lib/propolis/src/block/cidata.js';
import type { InMemoryBackendDescriptor } from '../../../lib/propolis/src/block/in-memory.js';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { mtool } from '../../../lib/propolis/src/testing/mtools.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { ConfigError, parseConfig } from './config.js';
import { standalonePcConfig, standaloneSpec } from './spec.js';

const MAIN = join(REPO_ROOT, 'dist', 'bin', 'propolis-standalone', 'src', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'standalone-cloudinit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const MAIN_TABLE = '[main]\nname = "ci"\ncpus = 1\nmemory = 64\nbootrom = "bios.bin"\n';
const cfgOf = (text: string): ReturnType<typeof parseConfig> => parseConfig(MAIN_TABLE + text, 'ci.toml');

/** The blob of a spec backend, decoded. */
function blobOf(c: Component | undefined): Uint8Array {
  assert.ok(c && c.type === 'blob_storage_backend', `a blob backend, not ${JSON.stringify(c)}`);
  assert.equal(c.component.readonly, true);
  return new Uint8Array(Buffer.from(c.component.base64, 'base64'));
}

/** A file of the volume as mtools reads it. */
function mtype(image: Uint8Array, name: string): Buffer {
  const img = join(dir, `vol-${process.hrtime.bigint()}.img`);
  writeFileSync(img, image);
  return mtool('mtype', ['-i', img, `::${name}`]);
}

function refused(text: string, code: ConfigError['code'], re: RegExp): void {
  assert.throws(
    () => standaloneSpec(cfgOf(text)),
    (e: unknown) => e instanceof ConfigError && e.code === code && re.test(e.message),
    `expected ${code} ${re}`,
  );
}

describe('[cloudinit] → instance spec', () => {
  const USER = '#cloud-config\nhostname: ci\n';
  const META = 'instance-id: 5d4f7a12-1111-4222-8333-944455556666\n';

  it('adds the read-only blob "cloud-init-backend" and the virtio disk "cloud-init" at 0.24.0', () => {
    const { spec } = standaloneSpec(
      cfgOf(`[cloudinit]\nuser-data = """\n${USER}"""\nmeta-data = ${JSON.stringify(META)}\n`),
    );
    assert.deepEqual(spec.components['cloud-init'], {
      type: 'virtio_disk',
      component: { backend_id: 'cloud-init-backend', pci_path: { bus: 0, device: 24, function: 0 } },
    });
    const image = blobOf(spec.components['cloud-init-backend']);
    assert.deepEqual(image, buildCloudInitVolume({ userData: enc(USER), metaData: enc(META) }));
    assert.equal(mtype(image, 'user-data').toString(), USER);
    assert.equal(mtype(image, 'meta-data').toString(), META);
  });

  it('reads *-path files relative to the current directory, byte for byte', () => {
    const net = join(dir, 'net.yaml');
    const user = join(dir, 'user.bin');
    const userBytes = Uint8Array.from({ length: 3000 }, (_, i) => (i * 13) & 0xff);
    writeFileSync(net, 'version: 2\n');
    writeFileSync(user, userBytes);
    const { spec } = standaloneSpec(
      cfgOf(
        `[cloudinit]\nuser-data-path = "${relative(process.cwd(), user)}"\nnetwork-config-path = "${net}"\n` +
          `meta-data = "m"\n`,
      ),
    );
    const image = blobOf(spec.components['cloud-init-backend']);
    assert.deepEqual(new Uint8Array(mtype(image, 'user-data')), userBytes);
    assert.equal(mtype(image, 'network-config').toString(), 'version: 2\n');
    assert.equal(mtype(image, 'meta-data').toString(), 'm');
  });

  it('the machine gets the disk: virtio at 0.24.0 over an in-memory, read-only copy of the volume', () => {
    const cfg = cfgOf('[cloudinit]\nuser-data = "u"\n');
    const image = blobOf(standaloneSpec(cfg).spec.components['cloud-init-backend']);
    const pc = standalonePcConfig(cfg, new Map(), { bootrom: new Uint8Array(65536), kvmPath: '/dev/kvm' });
    const disk = pc.disks?.find((d) => d.name === 'cloud-init');
    assert.ok(disk, JSON.stringify(pc.disks?.map((d) => d.name)));
    assert.equal(disk.driver, 'virtio');
    assert.equal(disk.pciPath, '0.24.0');
    const backend = disk.backend as InMemoryBackendDescriptor;
    assert.equal(backend.kind, 'in-memory');
    assert.equal(backend.params.readOnly, true);
    assert.equal(backend.params.blockSize, 512);
    assert.deepEqual(new Uint8Array(backend.params.contents), image);
  });

  it('the seed\'s form: [block_dev.<n>] type = "cloudinit" is the volume for the disk that names it', () => {
    const { spec, specBootOrder } = standaloneSpec(
      cfgOf(
        'boot_order = ["seed"]\n[cloudinit]\nuser-data = "u"\n[block_dev.ci]\ntype = "cloudinit"\nread_only = true\n' +
          '[dev.seed]\ndriver = "pci-nvme"\nblock_dev = "ci"\npci-path = "0.5.0"\n',
      ),
    );
    assert.equal(spec.components['cloud-init'], undefined, 'no second, automatic disk');
    assert.equal(spec.components['seed']?.type, 'nvme_disk');
    assert.equal(mtype(blobOf(spec.components['ci']), 'user-data').toString(), 'u');
    assert.ok(specBootOrder);
  });

  it('no [cloudinit], no disk', () => {
    const { spec } = standaloneSpec(cfgOf(''));
    assert.equal(spec.components['cloud-init'], undefined);
    assert.equal(spec.components['cloud-init-backend'], undefined);
  });

  it('refuses both forms of one file, unknown keys, unreadable files and too much data', () => {
    refused(
      '[cloudinit]\nuser-data = "a"\nuser-data-path = "b"\n',
      'CONFIG_VALUE',
      /user-data and user-data-path both/,
    );
    refused('[cloudinit]\nvendor-data = "a"\n', 'CONFIG_KEY', /\[cloudinit\] vendor-data: unknown key/);
    refused('[cloudinit]\nmeta-data = 3\n', 'CONFIG_VALUE', /\[cloudinit\] meta-data must be a string/);
    refused(
      '[cloudinit]\nmeta-data-path = "/no/such/meta"\n',
      'CONFIG_VALUE',
      /meta-data-path: cannot read \/no\/such\/meta: no such file/,
    );
    refused(
      `[cloudinit]\nuser-data = "${'x'.repeat(513 * 512)}"\n`,
      'CONFIG_VALUE',
      /\[cloudinit\]: cloud-init data needs 513 sectors .* at most 512/,
    );
  });

  it('refuses a configuration that already uses PCI 0.24.0 or the names', () => {
    const mem = '[block_dev.m]\ntype = "mem-async"\nsize = 1048576\n';
    refused(
      `[cloudinit]\n${mem}[dev.d]\ndriver = "pci-virtio-block"\nblock_dev = "m"\npci-path = "0.24.0"\n`,
      'CONFIG_VALUE',
      /adds the disk "cloud-init" at PCI 0\.24\.0, which \[dev\.d\] uses/,
    );
    refused(
      `[cloudinit]\n${mem}[dev.cloud-init]\ndriver = "pci-virtio-block"\nblock_dev = "m"\npci-path = "0.5.0"\n`,
      'CONFIG_VALUE',
      /already names something "cloud-init"/,
    );
    refused(
      `[cloudinit]\n[dev.cloud-init]\ndriver = "pci-virtio-viona"\nvnic = "tap0"\npci-path = "0.6.0"\n`,
      'CONFIG_VALUE',
      /already names something "cloud-init"/,
    );
  });

  it('refuses a cloudinit block_dev without [cloudinit], or one said to be writable', () => {
    const dev = '[dev.s]\ndriver = "pci-virtio-block"\nblock_dev = "ci"\npci-path = "0.5.0"\n';
    refused(`[block_dev.ci]\ntype = "cloudinit"\n${dev}`, 'CONFIG_KEY', /needs a \[cloudinit\] table/);
    refused(
      `[cloudinit]\n[block_dev.ci]\ntype = "cloudinit"\nread_only = false\n${dev}`,
      'CONFIG_VALUE',
      /always read-only with 512-byte blocks/,
    );
  });
});

describe('[cloudinit] in a real run', () => {
  it("SeaBIOS finds the cloud-init virtio disk at 00:18.0 with the volume's size", async () => {
    const bios = debianFile('seabios', 'usr/share/seabios/bios-256k.bin');
    // A relative *-path: read from the standalone's working directory.
    writeFileSync(join(dir, 'user-data.yaml'), '#cloud-config\nhostname: seabios\n');
    const cfg = join(dir, 'ci.toml');
    writeFileSync(
      cfg,
      `[main]\nname = "ci"\ncpus = 1\nmemory = 128\nbootrom = "${bios}"\nexit_on_halt = 3\n` +
        `[cloudinit]\nuser-data-path = "user-data.yaml"\nmeta-data = "instance-id: seabios\\n"\n`,
    );
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const p = spawn(process.execPath, [MAIN, cfg, '--serial-stdout'], { cwd: dir });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (/No bootable device/.test(out)) p.kill('SIGINT');
      });
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const t = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error(`timed out; stdout=${out} stderr=${err}`));
      }, 90000);
      p.on('close', (c) => {
        clearTimeout(t);
        resolve({ code: c, stderr: err });
      });
    });
    assert.equal(code, 3, stderr);
    const log = readFileSync(join(dir, 'debug.out'), 'latin1');
    assert.match(log, /PCI: init bdf=00:18\.0 id=1af4:1001/, 'a virtio-block function at 0.24.0');
    assert.match(log, /found virtio-blk at 00:18\.0/);
    const image = buildCloudInitVolume({
      userData: enc('#cloud-config\nhostname: seabios\n'),
      metaData: enc('instance-id: seabios\n'),
    });
    // SeaBIOS's drive line ends with the capacity it read from the device, in sectors.
    assert.match(log, new RegExp(`drive 0x[0-9a-f]+: .* s=${image.length / 512}\\n`));
  });
});
