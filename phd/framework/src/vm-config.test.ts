// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// VmConfig → instance spec: the original's defaults and builder methods,
// disks of every kind, boot order, and the guest's host requirements.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validate } from '../../../lib/api-types/src/validate.js';
import { InstanceSpec } from '../../../lib/api-types/src/schemas.js';
import { ArtifactStore } from './artifacts.js';
import { DiskSet } from './disks.js';
import { Framework } from './framework.js';
import { hardwareVirtFrom } from './host.js';
import { DiskBackend, DiskSource, nvmeSerial, VmConfig, type VmDefaults } from './vm-config.js';

const dir = mkdtempSync(join(tmpdir(), 'phd-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
// A guests directory with stand-in images, so these tests need no build.
writeFileSync(join(dir, 'testos.img'), new Uint8Array(4096).fill(7));
writeFileSync(join(dir, 'testos.rom'), new Uint8Array(65536));
const store = new ArtifactStore({ guestsDir: dir });
const defaults: VmDefaults = {
  cpus: 2,
  memoryMib: 512,
  bootrom: 'seabios',
  guest: 'testos',
  bootDiskInterface: 'nvme',
};

describe('VmConfig', () => {
  it('defaults as the original: 2 vCPUs, 512 MiB, an NVMe boot disk at 0.4.0 first in the boot order, COM1-4', () => {
    const c = new VmConfig('vm0', defaults, store);
    const disks = DiskSet.create(c.diskRequests, store, dir, 'vm0');
    try {
      const spec = c.toSpec(disks.material);
      assert.equal(c.bootromArtifact, 'seabios');
      assert.equal(spec.board.cpus, 2);
      assert.equal(spec.board.memory_mb, 512);
      assert.deepEqual(spec.components['boot-disk'], {
        type: 'nvme_disk',
        component: {
          backend_id: 'boot-disk-backend',
          pci_path: { bus: 0, device: 4, function: 0 },
          serial_number: nvmeSerial('boot-disk'),
        },
      });
      const backend = spec.components['boot-disk-backend'];
      assert.equal(backend?.type, 'file_storage_backend');
      const path = backend.type === 'file_storage_backend' ? backend.component.path : '';
      assert.notEqual(path, join(dir, 'testos.img'), 'a copy, never the artifact');
      assert.deepEqual([...readFileSync(path)], [...readFileSync(join(dir, 'testos.img'))]);
      assert.deepEqual(spec.components['boot-settings'], {
        type: 'boot_settings',
        component: { order: [{ id: 'boot-disk' }] },
      });
      for (const n of ['com1', 'com2', 'com3', 'com4']) assert.equal(spec.components[n]?.type, 'serial_port');
      assert.equal(validate(InstanceSpec, spec).ok, true, 'the server would accept it');
      disks.release();
      assert.throws(() => statSync(path), /ENOENT/, 'the copy is deleted when released');
    } finally {
      disks.release();
    }
  });

  it('builds data disks of every source and backend, cpuid, and a custom boot order', () => {
    const c = new VmConfig('vm1', defaults, store)
      .cpus(6)
      .memoryMib(3072)
      .cpuid({ vendor: 'intel', entries: [{ leaf: 0, eax: 1, ebx: 2, ecx: 3, edx: 4 }] })
      .dataDisk('blank', DiskSource.blank(1 << 20), 'virtio', DiskBackend.file(), 5)
      .dataDisk('blob', DiskSource.bytes(new Uint8Array(1024).fill(1), 'ones'), 'nvme', DiskBackend.inMemory(true), 24)
      .bootOrder(['blank', 'boot-disk']);
    const disks = DiskSet.create(c.diskRequests, store, dir, 'vm1');
    try {
      const spec = c.toSpec(disks.material);
      assert.equal(spec.board.cpus, 6);
      assert.equal(spec.board.memory_mb, 3072);
      assert.equal(spec.board.cpuid?.entries.length, 1);
      assert.equal(spec.components['blank']?.type, 'virtio_disk');
      assert.equal(statSync(disks.path('blank')).size, 1 << 20);
      assert.deepEqual(spec.components['blob-backend'], {
        type: 'blob_storage_backend',
        component: { base64: Buffer.from(new Uint8Array(1024).fill(1)).toString('base64'), readonly: true },
      });
      assert.deepEqual(spec.components['boot-settings'], {
        type: 'boot_settings',
        component: { order: [{ id: 'blank' }, { id: 'boot-disk' }] },
      });
      assert.equal(validate(InstanceSpec, spec).ok, true);
    } finally {
      disks.release();
    }
  });

  it('a ROM guest is the bootrom, with no boot disk or boot order', () => {
    const c = new VmConfig('vm2', { ...defaults, guest: 'testos-rom' }, store);
    assert.equal(c.bootromArtifact, 'testos-rom');
    assert.equal(c.diskRequests.length, 0);
    assert.equal(c.toSpec(new Map()).components['boot-settings'], undefined);
    const d = new VmConfig('vm3', defaults, store).bootrom('testos-rom');
    assert.equal(d.guestArtifact.name, 'testos-rom');
    assert.equal(d.diskRequests.length, 0);
    assert.throws(() => new VmConfig('vm4', defaults, store).bootrom('testos'), /not a ROM/);
  });

  it('refuses what the server would refuse, with the name of the problem', () => {
    assert.throws(() => new VmConfig('x', defaults, store).cpus(0), /cpus 0/);
    assert.throws(
      () => new VmConfig('x', defaults, store).bootOrder(['nope']).toSpec(new Map()),
      /not been created|no disk/,
    );
    assert.throws(
      () =>
        new VmConfig('x', defaults, store).dataDisk('d', DiskSource.blank(512), 'virtio', DiskBackend.file(), 4).toSpec(
          new Map([
            ['boot-disk', { type: 'blob', base64: '', readonly: true }],
            ['d', { type: 'blob', base64: '', readonly: true }],
          ]),
        ),
      /two disks at PCI device 4/,
    );
    assert.throws(
      () =>
        DiskSet.create(
          [
            {
              name: 'big',
              source: DiskSource.blank(2 << 20),
              iface: 'virtio',
              backend: DiskBackend.inMemory(true),
              pciDevice: 5,
            },
          ],
          store,
          dir,
          'x',
        ),
      /more than/,
    );
    assert.throws(() => new VmConfig('x', { ...defaults, guest: 'nonesuch' }, store), /unknown artifact "nonesuch"/);
  });
});

describe('host requirements', () => {
  it('reads vmx/svm from /proc/cpuinfo flags', () => {
    assert.equal(hardwareVirtFrom('processor\t: 0\nflags\t\t: fpu vme sse2 vmx ept\n'), 'vmx');
    assert.equal(hardwareVirtFrom('flags\t\t: fpu svm npt\n'), 'svm');
    assert.equal(hardwareVirtFrom('flags\t\t: fpu sse2 hypervisor\n'), undefined);
  });

  it('a Linux guest cannot boot without hardware virtualization; the test OS can', () => {
    const fw = new Framework({ tmpDir: dir, artifacts: store, host: { hardwareVirt: undefined, pvm: true } });
    const ctx = fw.context('m', 't');
    const linux = ctx.vmConfig('l').bootDisk('linux-disk', 'virtio', DiskBackend.file());
    assert.match(
      ctx.unbootableReason(linux) ?? '',
      /^guest linux-disk: this host has no hardware virtualization .*KVM is nested PVM/,
    );
    assert.equal(ctx.unbootableReason(ctx.vmConfig('t')), undefined);
    const capable = new Framework({ tmpDir: dir, artifacts: store, host: { hardwareVirt: 'vmx', pvm: false } });
    const direct = new Framework({
      tmpDir: dir,
      artifacts: store,
      host: { hardwareVirt: 'vmx', pvm: false },
      defaultGuestArtifact: 'linux',
    });
    assert.equal(capable.context('m', 't').unbootableReason(linux), undefined);
    // The server boots kernels directly (--kernel …), so a capable host can run the `linux` guest.
    assert.equal(direct.context('m', 't').unbootableReason(direct.context('m', 't').vmConfig('k')), undefined);
  });
});
