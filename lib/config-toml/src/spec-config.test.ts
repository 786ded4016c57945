// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Config TOML → spec components: a realistic file gives exactly the
// components the original's keys call for, and every bad file is refused
// with an error naming the file, the table and the key.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InstanceSpec, validate } from '../../api-types/src/index.js';
import {
  buildInstanceSpec,
  ConfigTomlError,
  formatPciPath,
  nvmeSerialFromString,
  parsePciPath,
  parseSpecConfig,
  readSpecConfig,
  type ConfigTomlErrorCode,
} from './index.js';

const FILE = 'vm.toml';

const REALISTIC = `
[main]
boot_order = ["disk0", "nvme0"]

[chipset]
enable-pcie = true

[[pci_bridge]]
pci-path = "0.6.0"
downstream-bus = 1

[block_dev.img]
type = "file"
path = "/var/lib/propolis/ubuntu.raw"
readonly = "true"
block_size = 4096
workers = 4

[block_dev.data]
type = "file"
path = "data.raw"

[dev.disk0]
driver = "pci-virtio-block"
block_dev = "img"
pci-path = "0.4.0"

[dev.nvme0]
driver = "pci-nvme"
block_dev = "data"
pci-path = "1.0.0"

[dev.net0]
driver = "pci-virtio-viona"
vnic = "tap0"
pci-path = "0.5.0"

[cpuid.epyc]
vendor = "amd"
"0" = [0x10, 0x68747541, 0x444d4163, 0x69746e65]
"7-0" = [0, 0x219c91a9, 0, 0]
80000000 = [0x80000021, 0x68747541, 0x444d4163, 0x69746e65]
`;

// "nvme0" padded with spaces to 20 bytes.
const NVME0_SERIAL = [0x6e, 0x76, 0x6d, 0x65, 0x30, ...Array<number>(15).fill(0x20)];

describe('parseSpecConfig: a realistic file', () => {
  const c = parseSpecConfig(REALISTIC, FILE);

  it('makes the components under the original keys', () => {
    assert.deepEqual(c.components, {
      disk0: { type: 'virtio_disk', component: { backend_id: 'img', pci_path: { bus: 0, device: 4, function: 0 } } },
      img: {
        type: 'file_storage_backend',
        component: { path: '/var/lib/propolis/ubuntu.raw', readonly: true, block_size: 4096, workers: 4 },
      },
      nvme0: {
        type: 'nvme_disk',
        component: { backend_id: 'data', pci_path: { bus: 1, device: 0, function: 0 }, serial_number: NVME0_SERIAL },
      },
      data: { type: 'file_storage_backend', component: { path: 'data.raw', readonly: false, block_size: 512 } },
      net0: {
        type: 'virtio_nic',
        component: {
          backend_id: 'net0-backend',
          interface_id: '00000000-0000-0000-0000-000000000000',
          pci_path: { bus: 0, device: 5, function: 0 },
        },
      },
      'net0-backend': { type: 'virtio_network_backend', component: { vnic_name: 'tap0' } },
      'pci-bridge-0.6.0': {
        type: 'pci_pci_bridge',
        component: { downstream_bus: 1, pci_path: { bus: 0, device: 6, function: 0 } },
      },
      'boot-settings': { type: 'boot_settings', component: { order: [{ id: 'disk0' }, { id: 'nvme0' }] } },
    });
  });

  it('reads the chipset, the boot order and the CPUID profile', () => {
    assert.equal(c.enablePcie, true);
    assert.deepEqual(c.bootOrder, ['disk0', 'nvme0']);
    assert.deepEqual(c.cpuidProfiles.get('epyc'), {
      vendor: 'amd',
      entries: [
        { leaf: 0, eax: 0x10, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
        { leaf: 7, subleaf: 0, eax: 0, ebx: 0x219c91a9, ecx: 0, edx: 0 },
        { leaf: 0x8000_0000, eax: 0x80000021, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
      ],
    });
    assert.deepEqual(
      c.devices.map((d) => [d.name, d.driver]),
      [
        ['disk0', 'pci-virtio-block'],
        ['nvme0', 'pci-nvme'],
        ['net0', 'pci-virtio-viona'],
      ],
    );
  });

  it('builds the spec propolis-cli new sends, which the API schema accepts', () => {
    const spec = buildInstanceSpec(c, { cpus: 2, memoryMb: 512, cpuidProfile: 'epyc', hyperV: true });
    assert.deepEqual(spec.board, {
      cpus: 2,
      memory_mb: 512,
      chipset: { type: 'i440_fx', value: { enable_pcie: true } },
      cpuid: c.cpuidProfiles.get('epyc'),
      guest_hv_interface: { type: 'hyper_v', value: { features: ['reference_tsc'] } },
    });
    for (const n of ['com1', 'com2', 'com3', 'com4'] as const) {
      assert.deepEqual(spec.components[n], { type: 'serial_port', component: { num: n } });
    }
    assert.deepEqual(spec.components['pvpanic'], { type: 'qemu_pvpanic', component: { enable_isa: true } });
    assert.equal(Object.keys(spec.components).length, 8 + 5);
    const v = validate(InstanceSpec, spec);
    assert.ok(v.ok, v.ok ? '' : v.message);
  });

  it('without a file: the default board and the generated components only', () => {
    const spec = buildInstanceSpec(undefined);
    assert.deepEqual(spec.board, {
      cpus: 4,
      memory_mb: 1024,
      chipset: { type: 'i440_fx', value: { enable_pcie: false } },
    });
    assert.deepEqual(Object.keys(spec.components), ['com1', 'com2', 'com3', 'com4', 'pvpanic']);
    assert.ok(validate(InstanceSpec, spec).ok);
  });

  it('an empty file is a valid config', () => {
    const e = parseSpecConfig('', FILE);
    assert.deepEqual(e.components, {});
    assert.equal(e.enablePcie, false);
    assert.equal(e.bootOrder, undefined);
  });
});

describe('parseSpecConfig: details', () => {
  it('readonly takes a bool or "true"/"false"; read_only is a synonym', () => {
    const ro = (line: string): unknown => {
      const c = parseSpecConfig(
        `[block_dev.b]\ntype = "file"\npath = "x"\n${line}\n[dev.d]\ndriver = "pci-virtio-block"\nblock_dev = "b"\npci-path = "0.4.0"\n`,
        FILE,
      );
      return (c.components['b'] as { component: { readonly: boolean } }).component.readonly;
    };
    assert.equal(ro('readonly = true'), true);
    assert.equal(ro('readonly = "false"'), false);
    assert.equal(ro('read_only = true'), true);
    assert.equal(ro('readonly = true\nread_only = true'), true);
    assert.equal(ro(''), false);
  });

  it('NVMe serials: UTF-8 bytes of the name, cut at 20, space-padded', () => {
    assert.deepEqual(nvmeSerialFromString('nvme0'), NVME0_SERIAL);
    assert.deepEqual(nvmeSerialFromString('a-very-long-device-name-indeed'), [
      ...new TextEncoder().encode('a-very-long-device-n'),
    ]);
    assert.deepEqual(nvmeSerialFromString('é', 0), [0xc3, 0xa9, ...Array<number>(18).fill(0)]);
  });

  it('PCI paths: bus.device.function with their ranges', () => {
    assert.deepEqual(parsePciPath('255.31.7'), { bus: 255, device: 31, function: 7 });
    assert.equal(formatPciPath({ bus: 0, device: 16, function: 0 }), '0.16.0');
    for (const bad of ['0.32.0', '0.0.8', '256.0.0', '0.4', '0.4.0.0', '0x0.4.0', ' 0.4.0', '']) {
      assert.equal(typeof parsePciPath(bad), 'string', bad);
    }
  });

  it('the migration failure injector is the device named test-migration-failure', () => {
    const c = parseSpecConfig('[dev.test-migration-failure]\ndriver = "x"\nfail_exports = 2\n', FILE);
    assert.deepEqual(c.components, {
      'test-migration-failure': { type: 'migration_failure_injector', component: { fail_exports: 2, fail_imports: 0 } },
    });
  });

  it("callers name the keys and drivers they read themselves (propolis-standalone's)", () => {
    const text =
      '[main]\nname = "vm"\ncpus = 2\nboot_order = ["d"]\n' +
      '[block_dev.b]\ntype = "file"\npath = "x"\nskip_flush = true\n' +
      '[dev.d]\ndriver = "pci-virtio-block"\nblock_dev = "b"\npci-path = "0.4.0"\n' +
      '[dev.exit]\ndriver = "qemu-isa-debug-exit"\niobase = 0x501\n' +
      '[dev.n]\ndriver = "pci-virtio-viona"\nvnic = "tap0"\npci-path = "0.5.0"\nrx-queue-size = 1024\n';
    assert.throws(() => parseSpecConfig(text, FILE), ConfigTomlError);
    const c = parseSpecConfig(text, FILE, {
      mainKeys: ['name', 'cpus'],
      extraDrivers: ['qemu-isa-debug-exit'],
      extraDeviceKeys: { 'qemu-isa-debug-exit': ['iobase'], 'pci-virtio-viona': ['rx-queue-size'] },
      extraBlockDevKeys: ['skip_flush'],
    });
    assert.deepEqual(Object.keys(c.components), ['d', 'b', 'n', 'n-backend', 'boot-settings']);
    assert.equal(c.main['cpus'], 2n);
    assert.equal(c.devices.find((d) => d.name === 'exit')?.table['iobase'], 0x501n);
    assert.equal(c.blockDevs[0]?.table['skip_flush'], true);
  });

  it('readSpecConfig reads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-toml-'));
    try {
      const p = join(dir, 'vm.toml');
      writeFileSync(p, REALISTIC);
      assert.equal(Object.keys(readSpecConfig(p).components).length, 8);
      assert.throws(
        () => readSpecConfig(join(dir, 'missing.toml')),
        (e: unknown) => e instanceof ConfigTomlError && e.code === 'CONFIG_READ' && e.message.includes('missing.toml'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const DISK =
  '[block_dev.b]\ntype = "file"\npath = "x"\n[dev.d]\ndriver = "pci-virtio-block"\nblock_dev = "b"\npci-path = "0.4.0"\n';

/** [toml, code, words the message must contain (besides the file name)] */
const BAD: [string, ConfigTomlErrorCode, string[]][] = [
  ['a = [', 'CONFIG_SYNTAX', ['line 1']],
  ['[foo]\n', 'CONFIG_KEY', ['foo', 'unknown']],
  ['[cloudinit]\n', 'CONFIG_KEY', ['cloudinit', 'propolis-standalone']],
  ['main = 1\n', 'CONFIG_KEY', ['main', '[main] table']],
  ['[main]\ncpus = 4\n', 'CONFIG_KEY', ['[main] cpus', 'propolis-cli new -c']],
  ['[main]\nboot_order = "d"\n', 'CONFIG_VALUE', ['[main] boot_order', 'array']],
  [DISK + '[main]\nboot_order = ["nope"]\n', 'CONFIG_VALUE', ['[main] boot_order', '"nope"']],
  [DISK + '[main]\nboot_order = ["d", "d"]\n', 'CONFIG_VALUE', ['[main] boot_order', 'twice']],
  ['[chipset]\nenable-pcie = "true"\n', 'CONFIG_VALUE', ['[chipset] enable-pcie', 'true or false']],
  ['[chipset]\npcie = true\n', 'CONFIG_KEY', ['[chipset] pcie', 'unknown key']],
  [
    '[dev.v]\ndriver = "pci-virtio-socket"\nguest_cid = "3"\npci-path = "0.8.0"\n',
    'CONFIG_UNSUPPORTED',
    ['[dev.v] driver', 'pci-virtio-socket'],
  ],
  ['[dev.p9]\ndriver = "pci-virtio-9p"\n', 'CONFIG_UNSUPPORTED', ['[dev.p9] driver', 'pci-virtio-9p']],
  [
    '[dev.sn]\ndriver = "softnpu-port"\nvnic = "x"\n',
    'CONFIG_UNSUPPORTED',
    ['[dev.sn] driver', 'softnpu-port', 'SoftNPU'],
  ],
  ['[dev.sn]\ndriver = "softnpu-pci-port"\n', 'CONFIG_UNSUPPORTED', ['[dev.sn] driver', 'softnpu-pci-port']],
  ['[dev.sn]\ndriver = "softnpu-p9"\n', 'CONFIG_UNSUPPORTED', ['[dev.sn] driver', 'softnpu-p9']],
  ['[dev.pp]\ndriver = "qemu-pvpanic"\n', 'CONFIG_VALUE', ['[dev.pp] driver', 'always has pvpanic']],
  ['[dev.f]\ndriver = "floppy"\n', 'CONFIG_VALUE', ['[dev.f] driver', 'unknown driver "floppy"']],
  ['[dev.f]\npci-path = "0.4.0"\n', 'CONFIG_KEY', ['[dev.f] driver', 'required']],
  [
    '[dev.d]\ndriver = "pci-nvme"\nblock_dev = "b"\npci-path = "0.4.0"\n',
    'CONFIG_VALUE',
    ['[dev.d] block_dev', 'no [block_dev.b]'],
  ],
  ['[dev.d]\ndriver = "pci-nvme"\npci-path = "0.4.0"\n', 'CONFIG_KEY', ['[dev.d] block_dev', 'required']],
  [
    DISK + '[dev.e]\ndriver = "pci-nvme"\nblock_dev = "b"\npci-path = "0.5.0"\n',
    'CONFIG_VALUE',
    ['[dev.e] block_dev', 'already the backend of [dev.d]'],
  ],
  [DISK + '[block_dev.spare]\ntype = "file"\npath = "y"\n', 'CONFIG_VALUE', ['[block_dev.spare]', 'not the block_dev']],
  [DISK.replace('0.4.0', '0.32.0'), 'CONFIG_VALUE', ['[dev.d] pci-path', 'device 32']],
  [DISK.replace('"0.4.0"', '4'), 'CONFIG_VALUE', ['[dev.d] pci-path', 'string']],
  [
    DISK + '[dev.n]\ndriver = "pci-virtio-viona"\nvnic = "t"\npci-path = "0.4.0"\n',
    'CONFIG_VALUE',
    ['[dev.n] pci-path', 'also used by [dev.d]'],
  ],
  [
    DISK + '[[pci_bridge]]\npci-path = "0.4.0"\ndownstream-bus = 1\n',
    'CONFIG_VALUE',
    ['[[pci_bridge]] #1 pci-path', '[dev.d]'],
  ],
  [
    '[[pci_bridge]]\npci-path = "0.6.0"\ndownstream-bus = 256\n',
    'CONFIG_VALUE',
    ['[[pci_bridge]] #1 downstream-bus', 'out of range'],
  ],
  ['[[pci_bridge]]\npci-path = "0.6.0"\n', 'CONFIG_KEY', ['[[pci_bridge]] #1 downstream-bus', 'required']],
  [DISK + 'bogus = 1\n', 'CONFIG_KEY', ['[dev.d] bogus', 'unknown key']],
  [DISK + 'has_write_cache = "true"\n', 'CONFIG_KEY', ['[dev.d] has_write_cache', 'API 5.0.0']],
  [DISK.replace('path = "x"', 'path = "x"\nreadonly = "yes"'), 'CONFIG_VALUE', ['[block_dev.b] readonly', '"yes"']],
  [
    DISK.replace('path = "x"', 'path = "x"\nreadonly = true\nread_only = false'),
    'CONFIG_VALUE',
    ['[block_dev.b] read_only', 'contradicts'],
  ],
  [
    DISK.replace('path = "x"', 'path = "x"\nblock_size = 1000'),
    'CONFIG_VALUE',
    ['[block_dev.b] block_size', 'power of two'],
  ],
  [
    DISK.replace('path = "x"', 'path = "x"\nblock_size = 512.0'),
    'CONFIG_VALUE',
    ['[block_dev.b] block_size', 'integer'],
  ],
  [DISK.replace('path = "x"', 'path = "x"\nworkers = 0'), 'CONFIG_VALUE', ['[block_dev.b] workers', 'out of range']],
  [
    DISK.replace('path = "x"', 'path = "x"\nskip_flush = true'),
    'CONFIG_KEY',
    ['[block_dev.b] skip_flush', 'propolis-standalone'],
  ],
  [DISK.replace('path = "x"\n', ''), 'CONFIG_KEY', ['[block_dev.b] path', 'required']],
  [DISK.replace('type = "file"', 'type = "crucible"'), 'CONFIG_UNSUPPORTED', ['[block_dev.b] type', 'Crucible']],
  [DISK.replace('type = "file"', 'type = "mem-async"'), 'CONFIG_VALUE', ['[block_dev.b] type', 'propolis-standalone']],
  [DISK.replace('type = "file"', 'type = "tape"'), 'CONFIG_VALUE', ['[block_dev.b] type', '"tape"']],
  [DISK.replace('[dev.d]', '[dev.b]'), 'CONFIG_VALUE', ['[block_dev.b]', 'spec key "b"', '[dev.b]']],
  [
    '[dev.n]\ndriver = "pci-virtio-viona"\nvnic = "t"\npci-path = "0.5.0"\n[dev.n-backend]\ndriver = "pci-virtio-viona"\nvnic = "u"\npci-path = "0.6.0"\n',
    'CONFIG_VALUE',
    ['[dev.n-backend]', 'spec key "n-backend"', '[dev.n]'],
  ],
  ['[cpuid.x]\n"0" = [0, 0, 0, 0]\n', 'CONFIG_KEY', ['[cpuid.x] vendor', 'required']],
  ['[cpuid.x]\nvendor = "via"\n', 'CONFIG_VALUE', ['[cpuid.x] vendor', '"via"']],
  ['[cpuid.x]\nvendor = "intel"\nleaf7 = [0, 0, 0, 0]\n', 'CONFIG_KEY', ['[cpuid.x] leaf7', 'hex leaf']],
  ['[cpuid.x]\nvendor = "intel"\n"10000" = [0, 0, 0, 0]\n', 'CONFIG_KEY', ['[cpuid.x] 10000', 'outside']],
  [
    '[cpuid.x]\nvendor = "intel"\n"7" = [0, 0, 0, 0]\n"7-0" = [0, 0, 0, 0]\n',
    'CONFIG_KEY',
    ['[cpuid.x] 7-0', 'both with and without'],
  ],
  ['[cpuid.x]\nvendor = "intel"\n"7" = [0, 0, 0, 0]\n"07" = [0, 0, 0, 0]\n', 'CONFIG_KEY', ['[cpuid.x] 07', 'twice']],
  ['[cpuid.x]\nvendor = "intel"\n"1" = [0, 0, 0]\n', 'CONFIG_VALUE', ['[cpuid.x] 1', '[eax, ebx, ecx, edx]']],
  ['[cpuid.x]\nvendor = "intel"\n"1" = [0, 0, 0, 0x100000000]\n', 'CONFIG_VALUE', ['[cpuid.x] 1', '0xffffffff']],
  ['[cpuid.x]\nvendor = "intel"\n"1" = [0, 0, 0, "a"]\n', 'CONFIG_VALUE', ['[cpuid.x] 1', 'integers']],
];

describe('parseSpecConfig: bad files are refused by file, table and key', () => {
  for (const [toml, code, words] of BAD) {
    it(`${code}: ${words.join(' / ')}`, () => {
      assert.throws(
        () => parseSpecConfig(toml, FILE),
        (e: unknown) => {
          assert.ok(e instanceof ConfigTomlError, String(e));
          assert.equal(e.code, code, e.message);
          assert.ok(e.message.startsWith(`${FILE}: `), e.message);
          for (const w of words) assert.ok(e.message.includes(w), `${JSON.stringify(w)} not in: ${e.message}`);
          return true;
        },
      );
    });
  }

  it('a generated key is reserved', () => {
    const c = parseSpecConfig(DISK.replace('[dev.d]', '[dev.com1]'), FILE);
    assert.throws(
      () => buildInstanceSpec(c),
      (e: unknown) => e instanceof ConfigTomlError && /\[dev\.com1\].*reserved/.test(e.message),
    );
  });

  it('a CPUID profile that the file does not define', () => {
    assert.throws(
      () => buildInstanceSpec(parseSpecConfig('', FILE), { cpuidProfile: 'epyc' }),
      (e: unknown) =>
        e instanceof ConfigTomlError && e.message === 'vm.toml: [cpuid.epyc]: CPUID profile "epyc" is not defined',
    );
  });
});
