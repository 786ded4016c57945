// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Instance spec → PcConfig: the seed's validation rules one by one (each
// refusal names the problem), the mapping of every supported component,
// the refusal of the ones this host lacks, and a machine built from a spec
// booting a test guest on real KVM.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Component, InstanceSpec } from '../../../api-types/src/index.js';
import { BlockBackendError } from '../block/errors.js';
import type { FileBackendDescriptor } from '../block/file.js';
import type { InMemoryBackendDescriptor } from '../block/in-memory.js';
import { guestRom } from '../testing/guests.js';
import {
  cpuidToSpec,
  InstanceSpecError,
  pcConfigFromSpec,
  specKeyId,
  validateInstanceSpec,
  type InstanceSpecErrorCode,
} from './from-spec.js';
import { PcPlatform } from './pc.js';

const dir = mkdtempSync(join(tmpdir(), 'from-spec-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const image = join(dir, 'disk.img');
writeFileSync(image, Buffer.alloc(64 * 1024));

const OPTS = { name: 'vm', uuid: '6a2c4c8e-1f0b-4a43-9c6e-0b7f5a3d2e10', bootrom: new Uint8Array(4096) };

const pci = (device: number, bus = 0, fn = 0): { bus: number; device: number; function: number } => ({
  bus,
  device,
  function: fn,
});

function spec(components: Record<string, Component>, board: Partial<InstanceSpec['board']> = {}): InstanceSpec {
  return {
    board: { cpus: 2, memory_mb: 64, chipset: { type: 'i440_fx', value: { enable_pcie: false } }, ...board },
    components,
  };
}

const fileBackend = (path = image, readonly = false): Component => ({
  type: 'file_storage_backend',
  component: { path, readonly, block_size: 512 },
});
const virtioDisk = (backend: string, device = 4, bus = 0): Component => ({
  type: 'virtio_disk',
  component: { backend_id: backend, pci_path: pci(device, bus) },
});
const nvmeDisk = (backend: string, device: number, serial = 'nvme0'): Component => ({
  type: 'nvme_disk',
  component: {
    backend_id: backend,
    pci_path: pci(device),
    serial_number: Array.from(Buffer.from(serial.padEnd(20, ' '))),
  },
});
const nic = (backend: string, device: number): Component => ({
  type: 'virtio_nic',
  component: { backend_id: backend, interface_id: '00000000-0000-0000-0000-000000000000', pci_path: pci(device) },
});
const netBackend = (vnic: string): Component => ({ type: 'virtio_network_backend', component: { vnic_name: vnic } });

function refuses(s: InstanceSpec, code: InstanceSpecErrorCode, message: RegExp): void {
  assert.throws(
    () => validateInstanceSpec(s),
    (e: unknown) => {
      assert.ok(e instanceof InstanceSpecError, `expected InstanceSpecError, got ${String(e)}`);
      assert.equal(e.code, code);
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('validateInstanceSpec', () => {
  it('accepts a spec with a disk, a NIC, serial ports, pvpanic and boot settings', () => {
    validateInstanceSpec(
      spec({
        disk0: virtioDisk('disk0-backend'),
        'disk0-backend': fileBackend(),
        net0: nic('net0-backend', 5),
        'net0-backend': netBackend('tap0'),
        com1: { type: 'serial_port', component: { num: 'com1' } },
        com2: { type: 'serial_port', component: { num: 'com2' } },
        pvpanic: { type: 'qemu_pvpanic', component: { enable_isa: true } },
        boot: { type: 'boot_settings', component: { order: [{ id: 'disk0' }] } },
      }),
    );
  });

  it('every backend is used by exactly one device', () => {
    refuses(spec({ disk0: virtioDisk('nope') }), 'SPEC_INVALID', /storage backend "nope" not found for device "disk0"/);
    refuses(spec({ net0: nic('nope', 5) }), 'SPEC_INVALID', /network backend "nope" not found for device "net0"/);
    refuses(spec({ b: fileBackend() }), 'SPEC_INVALID', /backend "b" is not used by any device/);
    refuses(
      spec({ d0: virtioDisk('b', 4), d1: virtioDisk('b', 5), b: fileBackend() }),
      'SPEC_INVALID',
      /backend "b" is used by both "d0" and "d1"/,
    );
    refuses(
      spec({ d0: virtioDisk('n', 4), n: netBackend('tap0') }),
      'SPEC_INVALID',
      /names "n" as its storage backend, but that is a virtio_network_backend/,
    );
    refuses(spec({ d0: virtioDisk('d0', 4) }), 'SPEC_INVALID', /device "d0" names itself as its backend/);
  });

  it('keys are unique, a UUID in any spelling being one key', () => {
    const u = '6A2C4C8E-1F0B-4A43-9C6E-0B7F5A3D2E10';
    assert.equal(specKeyId(u), specKeyId(u.toLowerCase()));
    assert.equal(specKeyId(`{${u}}`), specKeyId(u.replace(/-/g, '')));
    assert.notEqual(specKeyId('disk0'), specKeyId('Disk0'));
    refuses(
      spec({ [u]: virtioDisk('b'), [u.toLowerCase()]: fileBackend() }),
      'SPEC_INVALID',
      /component keys .* name the same component/,
    );
    // A backend may be referred to by another spelling of its UUID.
    validateInstanceSpec(spec({ d: virtioDisk(u.toLowerCase()), [u]: fileBackend() }));
  });

  it('PCI paths, NVMe serial numbers and serial ports are unique', () => {
    refuses(
      spec({ d0: virtioDisk('b0', 4), b0: fileBackend(), n0: nic('nb', 4), nb: netBackend('tap0') }),
      'SPEC_INVALID',
      /components "d0" and "n0" are both at PCI path 0\.4\.0/,
    );
    refuses(
      spec({ d0: nvmeDisk('b0', 4, 'same'), b0: fileBackend(), d1: nvmeDisk('b1', 5, 'same'), b1: fileBackend() }),
      'SPEC_INVALID',
      /NVMe disks "d0" and "d1" have the same serial number/,
    );
    refuses(
      spec({
        a: { type: 'serial_port', component: { num: 'com1' } },
        b: { type: 'serial_port', component: { num: 'com1' } },
      }),
      'SPEC_INVALID',
      /serial ports "a" and "b" are both com1/,
    );
    refuses(
      spec({ d0: virtioDisk('b0', 32), b0: fileBackend() }),
      'SPEC_INVALID',
      /component "d0": PCI path 0\.32\.0 is out of range/,
    );
  });

  it('a network backend names a tap device', () => {
    refuses(
      spec({ n0: nic('nb', 5), nb: netBackend('a-name-much-too-long') }),
      'SPEC_INVALID',
      /network backend "nb": invalid link name "a-name-much-too-long": 20 bytes; at most 15/,
    );
    refuses(spec({ n0: nic('nb', 5), nb: netBackend('tap/0') }), 'SPEC_INVALID', /invalid link name "tap\/0"/);
  });

  it('at most one pvpanic and one boot settings component', () => {
    const p: Component = { type: 'qemu_pvpanic', component: { enable_isa: true } };
    refuses(spec({ p1: p, p2: p }), 'SPEC_INVALID', /only one pvpanic device is allowed; found "p1", "p2"/);
    const b: Component = { type: 'boot_settings', component: { order: [] } };
    refuses(spec({ b1: b, b2: b }), 'SPEC_INVALID', /only one boot settings component is allowed/);
  });

  it('boot entries are disks on PCI bus 0', () => {
    const boot = (id: string): Component => ({ type: 'boot_settings', component: { order: [{ id }] } });
    refuses(spec({ boot: boot('nothing') }), 'SPEC_INVALID', /boot order entry "nothing" names no component/);
    refuses(
      spec({ boot: boot('n0'), n0: nic('nb', 5), nb: netBackend('tap0') }),
      'SPEC_INVALID',
      /boot order entry "n0" is a virtio_nic; only disks can be boot devices/,
    );
    refuses(
      spec({ boot: boot('d0'), d0: virtioDisk('b0', 4, 1), b0: fileBackend() }),
      'SPEC_INVALID',
      /boot disk "d0" must be on PCI bus 0 \(it is on bus 1\)/,
    );
  });

  it('CPUID leaves: in range, unique, never both with and without a subleaf', () => {
    const cpuid = (entries: { leaf: number; subleaf?: number }[]): Partial<InstanceSpec['board']> => ({
      cpuid: { vendor: 'intel', entries: entries.map((e) => ({ ...e, eax: 0, ebx: 0, ecx: 0, edx: 0 })) },
    });
    refuses(spec({}, cpuid([{ leaf: 0x4000_0000 }])), 'SPEC_INVALID', /CPUID leaf 0x40000000 is outside the standard/);
    refuses(spec({}, cpuid([{ leaf: 0x1_0000 }])), 'SPEC_INVALID', /outside the standard/);
    refuses(
      spec(
        {},
        cpuid([
          { leaf: 7, subleaf: 0 },
          { leaf: 7, subleaf: 0 },
        ]),
      ),
      'SPEC_INVALID',
      /leaf 0x7 subleaf 0x0 appears more than once/,
    );
    refuses(
      spec({}, cpuid([{ leaf: 7 }, { leaf: 7, subleaf: 1 }])),
      'SPEC_INVALID',
      /leaf 0x7 is given both with and without a subleaf/,
    );
    const v = validateInstanceSpec(spec({}, cpuid([{ leaf: 0 }, { leaf: 7, subleaf: 1 }, { leaf: 0x8000_0001 }])));
    assert.deepEqual(
      v.cpuid?.map((e) => [e.function, e.index, e.flags]),
      [
        [0, 0, 0],
        [7, 1, 1],
        [0x8000_0001, 0, 0],
      ],
    );
  });

  it('board limits', () => {
    refuses(spec({}, { cpus: 0 }), 'SPEC_INVALID', /board\.cpus is 0; a VM has 1 to 32 vCPUs/);
    refuses(spec({}, { cpus: 33 }), 'SPEC_INVALID', /board\.cpus is 33/);
    refuses(spec({}, { memory_mb: 1 }), 'SPEC_INVALID', /board\.memory_mb is 1/);
  });

  it('refuses by name what this host cannot provide', () => {
    refuses(
      spec({
        d: virtioDisk('c'),
        c: { type: 'crucible_storage_backend', component: { request_json: '{}', readonly: false } },
      }),
      'SPEC_UNSUPPORTED',
      /component "c" \(crucible_storage_backend\) is not supported: Crucible is not available on this host/,
    );
    const cases: [Component, RegExp][] = [
      [{ type: 'virtio_socket', component: { guest_cid: 16, pci_path: pci(6) } }, /virtio-socket/],
      [{ type: 'soft_npu_pci_port', component: { pci_path: pci(6) } }, /SoftNPU/],
      [{ type: 'soft_npu_p9', component: { pci_path: pci(6) } }, /SoftNPU/],
      [{ type: 'p9fs', component: { source: '/', target: 't', chunk_size: 65536, pci_path: pci(6) } }, /9p/],
      [{ type: 'pci_pci_bridge', component: { downstream_bus: 1, pci_path: pci(6) } }, /PCI-PCI bridges/],
      [
        { type: 'migration_failure_injector', component: { fail_exports: 1, fail_imports: 0 } },
        /migration failure injector/,
      ],
    ];
    for (const [c, re] of cases) refuses(spec({ x: c }), 'SPEC_UNSUPPORTED', re);
    refuses(
      spec({}, { guest_hv_interface: { type: 'hyper_v', value: { features: [] } } }),
      'SPEC_UNSUPPORTED',
      /hyper_v guest interface is not available/,
    );
    refuses(
      spec({ v: { type: 'virtio_socket', component: { guest_cid: 2, pci_path: pci(6) } } }),
      'SPEC_INVALID',
      /guest_cid 2 must be greater than 2/,
    );
  });
});

describe('pcConfigFromSpec', () => {
  it('maps disks, NICs, boot order, pvpanic, chipset, CPUID and SMBIOS', () => {
    const s: InstanceSpec = {
      ...spec(
        {
          disk0: virtioDisk('disk0-backend', 4),
          'disk0-backend': fileBackend(image, true),
          disk1: nvmeDisk('blob', 5),
          blob: {
            type: 'blob_storage_backend',
            component: { base64: Buffer.alloc(1024, 7).toString('base64'), readonly: false },
          },
          net0: nic('net0-backend', 6),
          'net0-backend': { type: 'dlpi_network_backend', component: { vnic_name: 'tap7' } },
          pvpanic: { type: 'qemu_pvpanic', component: { enable_isa: true } },
          boot: { type: 'boot_settings', component: { order: [{ id: 'disk1' }, { id: 'disk0' }] } },
        },
        {
          cpus: 3,
          memory_mb: 96,
          chipset: { type: 'i440_fx', value: { enable_pcie: true } },
          cpuid: { vendor: 'amd', entries: [{ leaf: 0, eax: 1, ebx: 2, ecx: 3, edx: 4 }] },
        },
      ),
      smbios: { manufacturer: 'M', product_name: 'P', serial_number: 'S', version: 7 },
    };
    const c = pcConfigFromSpec(s, { ...OPTS, bootromVersion: 'v9' });
    assert.equal(c.name, 'vm');
    assert.equal(c.uuid, OPTS.uuid);
    assert.equal(c.cpus, 3);
    assert.equal(c.memoryMiB, 96);
    assert.equal(c.enablePcie, true);
    assert.equal(c.bootromVersion, 'v9');
    assert.deepEqual(c.pvpanic, { enableIsa: true });
    assert.deepEqual(c.bootOrder, ['disk1', 'disk0']);
    assert.deepEqual(c.cpuid, [{ function: 0, index: 0, flags: 0, eax: 1, ebx: 2, ecx: 3, edx: 4 }]);
    assert.deepEqual(c.smbios, { manufacturer: 'M', productName: 'P', serialNumber: 'S', version: 7 });
    assert.deepEqual(
      c.disks?.map((d) => [d.name, d.driver, d.pciPath, d.backend.kind, d.backend.name]),
      [
        ['disk0', 'virtio', '0.4.0', 'file', 'disk0-backend'],
        ['disk1', 'nvme', '0.5.0', 'in-memory', 'blob'],
      ],
    );
    assert.equal(c.disks?.[0]?.serial, undefined, 'virtio disks carry no NVMe serial');
    assert.equal(Buffer.from(c.disks?.[1]?.serial as Uint8Array).toString('latin1'), 'nvme0'.padEnd(20, ' '));
    const file = c.disks?.[0]?.backend as FileBackendDescriptor;
    assert.equal(file.params.path, image);
    assert.equal(file.params.readOnly, true);
    assert.equal(file.params.totalBlocks, 128);
    const blob = c.disks?.[1]?.backend as InMemoryBackendDescriptor;
    assert.equal(blob.params.contents.byteLength, 1024);
    assert.equal(new Uint8Array(blob.params.contents)[1000], 7);
    assert.deepEqual(c.nics, [{ name: 'net0', pciPath: '0.6.0', vnic: 'tap7' }]);
  });

  it('file backends: workers and block size pass through; a missing image is the block layer’s error', () => {
    const s = spec({
      d: virtioDisk('b'),
      b: { type: 'file_storage_backend', component: { path: image, readonly: false, block_size: 4096, workers: 3 } },
    });
    const d = pcConfigFromSpec(s, OPTS).disks?.[0]?.backend as FileBackendDescriptor;
    assert.equal(d.params.blockSize, 4096);
    assert.equal(d.params.workers, 3);
    assert.throws(
      () => pcConfigFromSpec(spec({ d: virtioDisk('b'), b: fileBackend(join(dir, 'absent.img')) }), OPTS),
      (e: unknown) => e instanceof BlockBackendError && e.code === 'BLOCK_NOT_FOUND' && /absent\.img/.test(e.message),
    );
  });

  it('CPUID reads back in the spec’s shape', () => {
    const out = cpuidToSpec([
      { function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
      { function: 7, index: 1, flags: 1, eax: 1, ebx: 2, ecx: 3, edx: 4 },
      { function: 0x4000_0000, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 },
    ]);
    assert.equal(out.vendor, 'amd');
    assert.deepEqual(out.entries, [
      { leaf: 0, subleaf: null, eax: 0xd, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
      { leaf: 7, subleaf: 1, eax: 1, ebx: 2, ecx: 3, edx: 4 },
    ]);
  });

  it('builds a machine that runs a guest (real KVM)', async () => {
    const pc = await PcPlatform.create(
      pcConfigFromSpec(
        spec({ com1: { type: 'serial_port', component: { num: 'com1' } } }, { cpus: 1, memory_mb: 32 }),
        {
          ...OPTS,
          bootrom: guestRom('hello'),
        },
      ),
    );
    try {
      const com1 = pc.com.com1;
      com1.setSinkAttached(true);
      await pc.machine.start();
      let out = '';
      const deadline = Date.now() + 20000;
      while (!/hello from 64-bit mode/.test(out) && Date.now() < deadline) {
        await Promise.race([com1.output.waitReadable(), new Promise((r) => setTimeout(r, 100))]);
        out += Buffer.from(com1.output.drain()).toString('latin1');
        com1.pump();
      }
      assert.match(out, /hello from 64-bit mode/);
    } finally {
      await pc.machine.destroy();
    }
  });
});
