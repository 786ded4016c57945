// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENDPOINTS } from './endpoints.js';
import {
  InstanceEnsureRequest,
  InstanceSpec,
  InstanceStateMonitorRequest,
  InstanceStateRequested,
  VolumeStatus,
  type Component,
} from './schemas.js';
import { formatPath, validate, validateQuery } from './validate.js';

const INSTANCE_ID = '5e1e3a9c-2f4b-4c2e-9d4f-0a1b2c3d4e5f';

/** A request the CLI would send: disk on a file, NIC, COM1, boot order, pvpanic, CPUID. */
function ensureRequest(): Record<string, any> {
  return {
    properties: {
      id: INSTANCE_ID,
      name: 'vm0',
      description: 'a test VM',
      metadata: {
        silo_id: '00000000-0000-0000-0000-000000000001',
        project_id: '00000000-0000-0000-0000-000000000002',
        sled_id: '00000000-0000-0000-0000-000000000003',
        sled_serial: 'fake-serial',
        sled_revision: 1,
        sled_model: 'fake-gimlet',
      },
    },
    init: {
      method: 'Spec',
      value: {
        spec: {
          board: {
            cpus: 4,
            memory_mb: 1024,
            chipset: { type: 'i440_fx', value: { enable_pcie: false } },
            cpuid: {
              vendor: 'amd',
              entries: [
                { leaf: 0, eax: 0x10, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 },
                { leaf: 7, subleaf: 0, eax: 0, ebx: 0x219c91a9, ecx: 0, edx: 0 },
                { leaf: 0x8000_0001, subleaf: null, eax: 0xa00f11, ebx: 0, ecx: 0x75c237ff, edx: 0x2fd3fbff },
              ],
            },
            guest_hv_interface: { type: 'hyper_v', value: { features: ['reference_tsc'] } },
          },
          components: {
            disk0: {
              type: 'virtio_disk',
              component: { backend_id: 'disk0-backend', pci_path: { bus: 0, device: 4, function: 0 } },
            },
            'disk0-backend': {
              type: 'file_storage_backend',
              component: { path: '/var/tmp/disk0.img', readonly: false, block_size: 512, workers: 4 },
            },
            net0: {
              type: 'virtio_nic',
              component: {
                backend_id: 'net0-backend',
                interface_id: '6f5d9a1e-0c1b-4a3e-8f2d-1e2f3a4b5c6d',
                pci_path: { bus: 0, device: 8, function: 0 },
              },
            },
            'net0-backend': { type: 'virtio_network_backend', component: { vnic_name: 'tap0' } },
            com1: { type: 'serial_port', component: { num: 'com1' } },
            boot: { type: 'boot_settings', component: { order: [{ id: 'disk0' }] } },
            pvpanic: { type: 'qemu_pvpanic', component: { enable_isa: true } },
          },
          smbios: { manufacturer: 'Oxide', product_name: 'OxVM', serial_number: INSTANCE_ID, version: 0 },
        },
      },
    },
  };
}

function problem(schema: Parameters<typeof validate>[0], value: unknown): string {
  const r = validate(schema, value);
  assert.equal(r.ok, false, 'expected the value to be refused');
  return (r as { message: string }).message;
}

function edited(edit: (r: Record<string, any>) => void): Record<string, any> {
  const r = ensureRequest();
  edit(r);
  return r;
}

test('a realistic ensure request validates, and comes back as the same object', () => {
  const body = ensureRequest();
  const r = validate(InstanceEnsureRequest, body);
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.equal(r.value, body);
  if (r.value.init.method === 'Spec') assert.equal(r.value.init.value.spec.board.cpus, 4);
});

test('a migration-target ensure request validates', () => {
  const body = {
    properties: ensureRequest().properties,
    init: {
      method: 'MigrationTarget',
      value: {
        migration_id: '1a2b3c4d-0000-4000-8000-000000000000',
        src_addr: '[fd00::1]:12400',
        replace_components: {
          'net0-backend': { component: 'VirtioNetworkBackend', spec: { vnic_name: 'tap1' } },
        },
      },
    },
  };
  assert.deepEqual(validate(InstanceEnsureRequest, body).ok, true);
});

test('wrong type', () => {
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.properties.name = 42)),
    ),
    'properties.name: expected a string, got 42',
  );
  assert.equal(problem(InstanceEnsureRequest, []), 'expected an object, got an array');
  assert.equal(problem(InstanceStateMonitorRequest, { gen: '1' }), 'gen: expected an integer, got "1"');
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.chipset.value.enable_pcie = 'yes')),
    ),
    'init.value.spec.board.chipset.value.enable_pcie: expected a boolean, got "yes"',
  );
});

test('unknown fields are refused, wherever they are', () => {
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.properties.foo = 1)),
    ),
    'unknown field "foo" in properties',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.extra = true)),
    ),
    'unknown field "extra"',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.smbois = {})),
    ),
    'unknown field "smbois" in init.value.spec',
  );
  const polluted = JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(ensureRequest()).slice(1)}`) as unknown;
  assert.equal(problem(InstanceEnsureRequest, polluted), 'unknown field "__proto__"');
  // A misspelt field is reported as unknown, not as the required one it stands for.
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => {
        r.properties.nmae = r.properties.name;
        delete r.properties.name;
      }),
    ),
    'unknown field "nmae" in properties',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.components.disk0.extra = 1)),
    ),
    'unknown field "extra" in init.value.spec.components.disk0',
  );
});

test('missing required fields', () => {
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => delete r.properties.id),
    ),
    'missing field "id" in properties',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => delete r.init),
    ),
    'missing field "init"',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => delete r.init.value.spec.components.disk0.component.pci_path),
    ),
    'missing field "pci_path" in init.value.spec.components.disk0.component',
  );
  // Optional fields may be left out (cpuid, subleaf, guest_hv_interface, smbios, workers).
  const minimal = edited((r) => {
    delete r.init.value.spec.board.cpuid;
    delete r.init.value.spec.board.guest_hv_interface;
    delete r.init.value.spec.smbios;
    delete r.init.value.spec.components['disk0-backend'].component.workers;
  });
  assert.equal(validate(InstanceEnsureRequest, minimal).ok, true);
});

test('integers out of range', () => {
  const board = (edit: (b: Record<string, any>) => void): Record<string, any> =>
    edited((r) => edit(r.init.value.spec.board));
  assert.equal(
    problem(
      InstanceEnsureRequest,
      board((b) => (b.cpus = 300)),
    ),
    'init.value.spec.board.cpus: 300 is more than 255',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      board((b) => (b.memory_mb = -1)),
    ),
    'init.value.spec.board.memory_mb: -1 is less than 0',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      board((b) => (b.cpus = 1.5)),
    ),
    'init.value.spec.board.cpus: expected an integer, got 1.5',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      board((b) => (b.cpuid.entries[1].eax = 2 ** 32)),
    ),
    'init.value.spec.board.cpuid.entries[1].eax: 4294967296 is more than 4294967295',
  );
  assert.match(
    problem(
      InstanceEnsureRequest,
      board((b) => (b.memory_mb = 2 ** 60)),
    ),
    /^init\.value\.spec\.board\.memory_mb: 1152921504606846976 is more than 9007199254740991 \(larger integers/,
  );
  assert.equal(
    validate(
      InstanceEnsureRequest,
      board((b) => (b.memory_mb = Number.MAX_SAFE_INTEGER)),
    ).ok,
    true,
  );
});

test('bad enum values and tags', () => {
  assert.equal(problem(InstanceStateRequested, 'Go'), 'expected one of "Run", "Stop", "Reboot", got "Go"');
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.components.com1.component.num = 'com5')),
    ),
    'init.value.spec.components.com1.component.num: expected one of "com1", "com2", "com3", "com4", got "com5"',
  );
  const tag = problem(
    InstanceEnsureRequest,
    edited((r) => (r.init.value.spec.components.disk0.type = 'floppy')),
  );
  assert.match(tag, /^init\.value\.spec\.components\.disk0\.type: expected one of "virtio_disk", "nvme_disk", /);
  assert.match(tag, /"dlpi_network_backend", got "floppy"$/);
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => delete r.init.value.spec.components.disk0.type),
    ),
    'missing field "type" in init.value.spec.components.disk0',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.method = 'Clone')),
    ),
    'init.method: expected one of "Spec", "MigrationTarget", got "Clone"',
  );
  // The right tag with the wrong content explains the chosen variant.
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.components.disk0.type = 'nvme_disk')),
    ),
    'missing field "serial_number" in init.value.spec.components.disk0.component',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.cpuid.vendor = 'via')),
    ),
    'init.value.spec.board.cpuid.vendor: expected one of "amd", "intel", got "via"',
  );
});

test('bad UUIDs', () => {
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.properties.id = 'not-a-uuid')),
    ),
    'properties.id: expected a UUID, got "not-a-uuid"',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.properties.metadata.sled_id = 7)),
    ),
    'properties.metadata.sled_id: expected a UUID string, got 7',
  );
  // Only the hyphenated form (see DIFFERENCES); any case.
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.properties.id = INSTANCE_ID.replaceAll('-', ''))),
    ),
    'properties.id: expected a UUID, got "5e1e3a9c2f4b4c2e9d4f0a1b2c3d4e5f"',
  );
  assert.equal(
    validate(
      InstanceEnsureRequest,
      edited((r) => (r.properties.id = INSTANCE_ID.toUpperCase())),
    ).ok,
    true,
  );
});

test('nullable fields, arrays and unique items', () => {
  assert.equal(
    validate(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.cpuid = null)),
    ).ok,
    true,
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.cpuid = 5)),
    ),
    'init.value.spec.board.cpuid: expected an object or null, got 5',
  );
  // guest_hv_interface is optional but not nullable, as upstream.
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.guest_hv_interface = null)),
    ),
    'init.value.spec.board.guest_hv_interface: expected an object, got null',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.components.boot.component.order = [{ id: 5 }])),
    ),
    'init.value.spec.components.boot.component.order[0].id: expected a string, got 5',
  );
  assert.equal(
    problem(
      InstanceEnsureRequest,
      edited((r) => (r.init.value.spec.board.guest_hv_interface.value.features = ['reference_tsc', 'reference_tsc'])),
    ),
    'init.value.spec.board.guest_hv_interface.value.features: items must be unique, but "reference_tsc" appears more than once',
  );
  const nvme = (serial: number[]): Record<string, any> =>
    edited((r) => {
      r.init.value.spec.components.disk0 = {
        type: 'nvme_disk',
        component: { backend_id: 'disk0-backend', pci_path: { bus: 0, device: 4, function: 0 }, serial_number: serial },
      };
    });
  assert.equal(validate(InstanceEnsureRequest, nvme(new Array<number>(20).fill(0x20))).ok, true);
  assert.equal(
    problem(InstanceEnsureRequest, nvme([1, 2, 3])),
    'init.value.spec.components.disk0.component.serial_number: expected 20 items, got 3',
  );
});

test('paths quote keys that are not plain words', () => {
  assert.equal(formatPath(['components', 'my disk', 'component']), 'components["my disk"].component');
  assert.equal(formatPath(['order', 0, 'id']), 'order[0].id');
  assert.equal(formatPath([]), '');
  const spec = ensureRequest().init.value.spec;
  spec.components['my disk'] = { type: 'serial_port', component: { num: 'com9' } };
  assert.equal(
    problem(InstanceSpec, spec),
    'components["my disk"].component.num: expected one of "com1", "com2", "com3", "com4", got "com9"',
  );
});

test('recursive schemas (VolumeInfo) validate and explain', () => {
  const upstairs = {
    upstairs: {
      encrypted: true,
      generation: 3,
      live_repair_in_progress: false,
      read_only: false,
      reconcile_in_progress: false,
      session_id: INSTANCE_ID,
      state: 'active',
      targets: [{ state: { type: 'connecting', mode: 'new', state: 'negotiating' }, target_addr: '[fd00::2]:19000' }],
      upstairs_id: INSTANCE_ID,
    },
  };
  const status = { volume_info: { volume: { sub_volumes: [upstairs], read_only_parent: null } } };
  assert.equal(validate(VolumeStatus, status).ok, true);
  upstairs.upstairs.targets[0]!.state.mode = 'lost';
  assert.equal(
    problem(VolumeStatus, status),
    'volume_info.volume.sub_volumes[0].upstairs.targets[0].state.mode: ' +
      'expected one of "new", "offline", "faulted", "replaced", got "lost"',
  );
});

test('query strings: integers converted, unknown and repeated names refused', () => {
  const history = ENDPOINTS.find((e) => e.operationId === 'instance_serial_history_get')!.query;
  const ok = validateQuery(history, new URLSearchParams('from_start=10&max_bytes=4096'));
  assert.deepEqual(ok, { ok: true, value: { from_start: 10, max_bytes: 4096 } });
  assert.deepEqual(validateQuery(history, new URLSearchParams('')), { ok: true, value: {} });
  assert.deepEqual(validateQuery(history, new URLSearchParams('most_recent=abc')), {
    ok: false,
    message: 'most_recent: expected an integer, got "abc"',
  });
  assert.deepEqual(validateQuery(history, new URLSearchParams('from_start=-1')), {
    ok: false,
    message: 'from_start: -1 is less than 0',
  });
  assert.deepEqual(validateQuery(history, new URLSearchParams('from_start=1.5')), {
    ok: false,
    message: 'from_start: expected an integer, got 1.5',
  });
  assert.deepEqual(validateQuery(history, new URLSearchParams('fromstart=1')), {
    ok: false,
    message: 'unknown query parameter "fromstart"',
  });
  assert.deepEqual(validateQuery(history, new URLSearchParams('__proto__=1')), {
    ok: false,
    message: 'unknown query parameter "__proto__"',
  });
  assert.deepEqual(validateQuery(history, new URLSearchParams('from_start=1&from_start=2')), {
    ok: false,
    message: 'query parameter "from_start" is given more than once',
  });
});

test('path parameters validate as strings', () => {
  const snapshot = ENDPOINTS.find((e) => e.operationId === 'instance_issue_crucible_snapshot_request')!;
  const params = snapshot.match('/instance/disk/disk0/snapshot/not-a-uuid')!;
  assert.equal(problem(snapshot.params, params), 'snapshot_id: expected a UUID, got "not-a-uuid"');
  assert.equal(validate(snapshot.params, snapshot.match(`/instance/disk/disk0/snapshot/${INSTANCE_ID}`)).ok, true);
});

/** Every place in a JSON value, as a path of keys. */
function places(v: unknown, path: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [path];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...places(x, [...path, i])));
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) out.push(...places(x, [...path, k]));
  }
  return out;
}

test('every refusal of a mutated request is explained in words (never the fallback)', () => {
  const replacements: unknown[] = [42, -1, 1.5, 'x', '', null, true, [], {}, 2 ** 64];
  let refusals = 0;
  for (const path of places(ensureRequest())) {
    const mutations: ((parent: any, key: string | number) => void)[] = [
      (p, k) => (Array.isArray(p) ? p.splice(Number(k), 1) : delete p[k]),
      ...replacements.map((x) => (p: any, k: string | number) => (p[k] = structuredClone(x))),
      (p) => !Array.isArray(p) && typeof p === 'object' && (p.zz_unknown = 1),
    ];
    if (path.length === 0) continue;
    for (const mutate of mutations) {
      const r = ensureRequest();
      const parent = path.slice(0, -1).reduce((o: any, k) => o[k], r);
      mutate(parent, path[path.length - 1]!);
      const result = validate(InstanceEnsureRequest, r);
      if (result.ok) continue;
      refusals++;
      assert.doesNotMatch(result.message, /^\/|invalid value/, `${formatPath(path)}: ${result.message}`);
    }
  }
  assert.ok(refusals > 500, `only ${refusals} refusals`);
});

test('tagged unions are discriminated unions in TypeScript', () => {
  const c: Component = { type: 'serial_port', component: { num: 'com2' } };
  // @ts-expect-error the tag selects the content type
  const wrong: Component = { type: 'serial_port', component: { vnic_name: 'tap0' } };
  void wrong;
  const describe = (x: Component): string => {
    switch (x.type) {
      case 'serial_port':
        return x.component.num;
      case 'virtio_disk':
        return String(x.component.pci_path.device);
      default:
        return x.type;
    }
  };
  assert.equal(describe(c), 'com2');
});
