// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// From an instance spec (the API's `InstanceSpec`) to a PcConfig: the one
// path from a spec to a machine, for propolis-server and (through a spec
// built from its TOML) propolis-standalone.
//
// Two steps. `validateInstanceSpec` applies the seed's rules for a spec to
// make sense — every backend used by exactly one device, unique keys, PCI
// paths and serial numbers, at most one of the singleton components, boot
// entries naming disks on PCI bus 0, CPUID leaves in range — and refuses,
// by name, the components this host cannot provide (Crucible, SoftNPU, 9p,
// vsock, PCI bridges, the migration failure injector, Hyper-V). It touches
// nothing outside the spec. `pcConfigFromSpec` then describes the block
// backends, which opens the image files: those failures (a missing file)
// are the block layer's own typed errors, raised as the VM is created.
//
// Threading: main thread; pure apart from the backends' file checks.

import type { Component, InstanceSpec } from '../../../api-types/src/index.js';
import { LinkNameError } from '../../../dladm/src/errors.js';
import { checkLinkName } from '../../../dladm/src/names.js';
import type { CpuidEntry } from '../../../kvm/src/index.js';
import { FileBackend } from '../block/file.js';
import { InMemoryBackend } from '../block/in-memory.js';
import type { BackendDescriptor } from '../block/types.js';
import { PciPath, PciPathError } from '../hw/pci/path.js';
import { COM_PORTS, type ComPort } from '../hw/uart/lpc-uart.js';
import { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from '../vmm/cpuid.js';
import { MAX_VCPUS } from '../vmm/machine.js';
import type { PcConfig, PcDisk, PcNic } from './pc.js';

export type InstanceSpecErrorCode =
  /** The spec contradicts itself or the seed's rules. */
  | 'SPEC_INVALID'
  /** The spec asks for something this build or host does not provide. */
  | 'SPEC_UNSUPPORTED';

export class InstanceSpecError extends Error {
  constructor(
    readonly code: InstanceSpecErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'InstanceSpecError';
  }
}

const invalid = (msg: string, cause?: unknown): InstanceSpecError =>
  new InstanceSpecError('SPEC_INVALID', msg, cause === undefined ? undefined : { cause });
const unsupported = (msg: string): InstanceSpecError => new InstanceSpecError('SPEC_UNSUPPORTED', msg);

const UUID_FORMS = [
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/i,
  /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^[0-9a-f]{32}$/i,
];

/**
 * The identity of a spec key. As in the seed, a key that parses as a UUID
 * (any of the forms the `uuid` crate takes) is that UUID, so two spellings
 * of one UUID are the same key; any other string is a name, compared as is.
 */
export function specKeyId(key: string): string {
  if (!UUID_FORMS.some((re) => re.test(key))) return `name:${key}`;
  const hex = key
    .replace(/^urn:uuid:/i, '')
    .replace(/[{}-]/g, '')
    .toLowerCase();
  return `uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

type ComponentType = Component['type'];
type ComponentOf<T extends ComponentType> = Extract<Component, { type: T }>['component'];

const STORAGE_BACKENDS = new Set<ComponentType>([
  'file_storage_backend',
  'blob_storage_backend',
  'crucible_storage_backend',
]);
const NETWORK_BACKENDS = new Set<ComponentType>(['virtio_network_backend', 'dlpi_network_backend']);

/** What the host lacks for a component kind, when it lacks it. */
const UNSUPPORTED: Partial<Record<ComponentType, string>> = {
  crucible_storage_backend: 'Crucible is not available on this host',
  virtio_socket: 'virtio-socket (vsock) devices are not available on this host',
  pci_pci_bridge: 'PCI-PCI bridges are not available on this host yet',
  soft_npu_pci_port: 'SoftNPU is not available in this build',
  soft_npu_port: 'SoftNPU is not available in this build',
  soft_npu_p9: 'SoftNPU is not available in this build',
  p9fs: 'virtio-9p file sharing is not available in this build',
  migration_failure_injector: 'the migration failure injector is only in failure-injection builds',
};

interface Entry {
  key: string;
  id: string;
  c: Component;
}

/** A spec that passed validation, indexed for building. */
export interface ValidatedSpec {
  readonly spec: InstanceSpec;
  /** Components by key identity. */
  readonly byId: ReadonlyMap<string, Entry>;
  readonly cpuid: CpuidEntry[] | undefined;
}

function pciPathOf(key: string, p: { bus: number; device: number; function: number }): PciPath {
  try {
    return new PciPath(p.bus, p.device, p.function);
  } catch (e) {
    if (e instanceof PciPathError) throw invalid(`component "${key}": ${e.message}`, e);
    throw e;
  }
}

/** The PCI path a device component occupies, if it occupies one. */
function pciPathField(c: Component): { bus: number; device: number; function: number } | undefined {
  const body = c.component as { pci_path?: { bus: number; device: number; function: number } };
  return body.pci_path;
}

/**
 * Check a spec against the seed's rules; throws InstanceSpecError naming
 * the first problem found.
 */
export function validateInstanceSpec(spec: InstanceSpec): ValidatedSpec {
  const board = spec.board;
  if (!Number.isInteger(board.cpus) || board.cpus < 1 || board.cpus > MAX_VCPUS) {
    throw invalid(`board.cpus is ${board.cpus}; a VM has 1 to ${MAX_VCPUS} vCPUs`);
  }
  if (!Number.isInteger(board.memory_mb) || board.memory_mb < 2) {
    throw invalid(`board.memory_mb is ${board.memory_mb}; a VM needs at least 2 MiB of RAM`);
  }
  const hv = board.guest_hv_interface;
  if (hv && hv.type !== 'bhyve') {
    throw unsupported(`board.guest_hv_interface: the ${hv.type} guest interface is not available on this host`);
  }
  const cpuid = board.cpuid ? cpuidEntries(board.cpuid.entries) : undefined;

  // Keys: unique by identity (a UUID in two spellings is one key).
  const byId = new Map<string, Entry>();
  for (const [key, c] of Object.entries(spec.components)) {
    const id = specKeyId(key);
    const prev = byId.get(id);
    if (prev) throw invalid(`component keys "${prev.key}" and "${key}" name the same component`);
    byId.set(id, { key, id, c });
  }
  const entries = [...byId.values()];

  // At most one of each singleton component.
  const singletons: [ComponentType, string][] = [
    ['qemu_pvpanic', 'pvpanic device'],
    ['virtio_socket', 'vsock device'],
    ['boot_settings', 'boot settings component'],
    ['migration_failure_injector', 'migration failure injector'],
  ];
  for (const [type, what] of singletons) {
    const found = entries.filter((e) => e.c.type === type);
    if (found.length > 1) {
      throw invalid(`only one ${what} is allowed; found ${found.map((e) => `"${e.key}"`).join(', ')}`);
    }
  }

  // Devices and their backends: every backend used by exactly one device.
  const usedBy = new Map<string, string>();
  for (const e of entries) {
    let backendId: string;
    let wanted: Set<ComponentType>;
    let kind: string;
    switch (e.c.type) {
      case 'virtio_disk':
      case 'nvme_disk':
        backendId = e.c.component.backend_id;
        wanted = STORAGE_BACKENDS;
        kind = 'storage';
        break;
      case 'virtio_nic':
      case 'soft_npu_port':
        backendId = e.c.component.backend_id;
        wanted = NETWORK_BACKENDS;
        kind = 'network';
        break;
      default:
        continue;
    }
    const bid = specKeyId(backendId);
    if (bid === e.id) throw invalid(`device "${e.key}" names itself as its backend`);
    const backend = byId.get(bid);
    if (!backend || !wanted.has(backend.c.type)) {
      throw invalid(
        backend
          ? `device "${e.key}" names "${backendId}" as its ${kind} backend, but that is a ${backend.c.type}`
          : `${kind} backend "${backendId}" not found for device "${e.key}"`,
      );
    }
    const other = usedBy.get(bid);
    if (other !== undefined) {
      throw invalid(`backend "${backend.key}" is used by both "${other}" and "${e.key}"; a backend serves one device`);
    }
    usedBy.set(bid, e.key);
  }
  for (const e of entries) {
    if ((STORAGE_BACKENDS.has(e.c.type) || NETWORK_BACKENDS.has(e.c.type)) && !usedBy.has(e.id)) {
      throw invalid(`backend "${e.key}" is not used by any device`);
    }
  }

  // PCI paths, NVMe serial numbers and serial ports: each at most once.
  const paths = new Map<string, string>();
  const serials = new Map<string, string>();
  const ports = new Map<string, string>();
  for (const e of entries) {
    const p = pciPathField(e.c);
    if (p) {
      const path = pciPathOf(e.key, p).toString();
      const other = paths.get(path);
      if (other !== undefined) throw invalid(`components "${other}" and "${e.key}" are both at PCI path ${path}`);
      paths.set(path, e.key);
    }
    if (e.c.type === 'nvme_disk') {
      const sn = e.c.component.serial_number;
      const text = Buffer.from(sn).toString('latin1');
      const other = serials.get(text);
      if (other !== undefined) throw invalid(`NVMe disks "${other}" and "${e.key}" have the same serial number`);
      serials.set(text, e.key);
    }
    if (e.c.type === 'serial_port') {
      const num = e.c.component.num;
      if (!(num in COM_PORTS)) throw invalid(`serial port "${e.key}": no port ${num}`);
      const other = ports.get(num);
      if (other !== undefined) throw invalid(`serial ports "${other}" and "${e.key}" are both ${num}`);
      ports.set(num, e.key);
    }
    if (e.c.type === 'virtio_network_backend' || e.c.type === 'dlpi_network_backend') {
      // Here a vnic is a Linux tap device (created if absent).
      try {
        checkLinkName(e.c.component.vnic_name);
      } catch (err) {
        if (err instanceof LinkNameError) throw invalid(`network backend "${e.key}": ${err.message}`, err);
        throw err;
      }
    }
    if (e.c.type === 'virtio_socket') {
      const cid = e.c.component.guest_cid;
      if (!(cid > 2 && cid < 2 ** 32)) {
        throw invalid(`vsock device "${e.key}": guest_cid ${cid} must be greater than 2 and less than 2^32`);
      }
    }
  }

  // Boot order: disks on bus 0 (the firmware finds nothing behind a bridge).
  for (const e of entries) {
    if (e.c.type !== 'boot_settings') continue;
    const seen = new Set<string>();
    for (const item of e.c.component.order) {
      const target = byId.get(specKeyId(item.id));
      if (!target) throw invalid(`boot order entry "${item.id}" names no component`);
      if (target.c.type !== 'virtio_disk' && target.c.type !== 'nvme_disk') {
        throw invalid(`boot order entry "${item.id}" is a ${target.c.type}; only disks can be boot devices`);
      }
      if (target.c.component.pci_path.bus !== 0) {
        throw invalid(`boot disk "${item.id}" must be on PCI bus 0 (it is on bus ${target.c.component.pci_path.bus})`);
      }
      if (seen.has(target.id)) throw invalid(`boot order names "${item.id}" twice`);
      seen.add(target.id);
    }
  }

  // Finally what this host cannot do, by name.
  for (const e of entries) {
    const why = UNSUPPORTED[e.c.type];
    if (why !== undefined) throw unsupported(`component "${e.key}" (${e.c.type}) is not supported: ${why}`);
  }
  return { spec, byId, cpuid };
}

function inCpuidRange(leaf: number): boolean {
  return (leaf >= 0 && leaf <= 0xffff) || (leaf >= 0x8000_0000 && leaf <= 0x8000_ffff);
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The spec's CPUID entries as the kernel takes them, checked as the seed checks them. */
function cpuidEntries(
  entries: { leaf: number; subleaf?: number | null; eax: number; ebx: number; ecx: number; edx: number }[],
): CpuidEntry[] {
  const seen = new Set<string>();
  const plain = new Set<number>();
  const indexed = new Set<number>();
  const out: CpuidEntry[] = [];
  for (const e of entries) {
    const sub = e.subleaf ?? undefined;
    const name = sub === undefined ? `CPUID leaf ${hex(e.leaf)}` : `CPUID leaf ${hex(e.leaf)} subleaf ${hex(sub)}`;
    if (!inCpuidRange(e.leaf)) {
      throw invalid(`${name} is outside the standard (0..0xffff) and extended (0x80000000..0x8000ffff) ranges`);
    }
    const k = `${e.leaf}/${sub ?? '-'}`;
    if (seen.has(k)) throw invalid(`${name} appears more than once`);
    seen.add(k);
    (sub === undefined ? plain : indexed).add(e.leaf);
    if (plain.has(e.leaf) && indexed.has(e.leaf)) {
      throw invalid(`CPUID leaf ${hex(e.leaf)} is given both with and without a subleaf`);
    }
    out.push({
      function: e.leaf >>> 0,
      index: sub ?? 0,
      flags: sub === undefined ? 0 : KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
      eax: e.eax >>> 0,
      ebx: e.ebx >>> 0,
      ecx: e.ecx >>> 0,
      edx: e.edx >>> 0,
    });
  }
  return out;
}

export interface FromSpecOptions {
  /** The kernel VM's name (the seed names it after the instance UUID). */
  name: string;
  /** Instance UUID (SMBIOS type 1). */
  uuid: string;
  bootrom: Uint8Array;
  bootromVersion?: string;
  kvmPath?: string;
}

function storageBackend(key: string, c: Component): BackendDescriptor {
  switch (c.type) {
    case 'file_storage_backend': {
      const b: ComponentOf<'file_storage_backend'> = c.component;
      return FileBackend.describe(key, {
        path: b.path,
        readOnly: b.readonly,
        blockSize: b.block_size,
        // The seed's rule: absent means 8, and more than 32 means 8 too.
        ...(b.workers === undefined || b.workers === null ? {} : { workers: b.workers }),
      });
    }
    case 'blob_storage_backend': {
      const b: ComponentOf<'blob_storage_backend'> = c.component;
      return InMemoryBackend.describe(key, { seed: { base64: b.base64 }, readOnly: b.readonly, blockSize: 512 });
    }
    default:
      // validateInstanceSpec let no other kind through.
      throw new Error(`component "${key}" (${c.type}) is not a storage backend`);
  }
}

/**
 * The machine a spec describes. Validates first (InstanceSpecError), then
 * describes the backends (BlockBackendError for images that cannot be used).
 */
export function pcConfigFromSpec(spec: InstanceSpec, opts: FromSpecOptions): PcConfig {
  const v = validateInstanceSpec(spec);
  const entries = [...v.byId.values()];
  const disks: PcDisk[] = [];
  const nics: PcNic[] = [];
  let pvpanic: PcConfig['pvpanic'];
  let bootOrder: string[] | undefined;
  for (const e of entries) {
    switch (e.c.type) {
      case 'virtio_disk':
      case 'nvme_disk': {
        const backend = v.byId.get(specKeyId(e.c.component.backend_id)) as Entry;
        disks.push({
          name: e.key,
          driver: e.c.type === 'nvme_disk' ? 'nvme' : 'virtio',
          pciPath: pciPathOf(e.key, e.c.component.pci_path).toString(),
          backend: storageBackend(backend.key, backend.c),
          ...(e.c.type === 'nvme_disk' ? { serial: Uint8Array.from(e.c.component.serial_number) } : {}),
        });
        break;
      }
      case 'virtio_nic': {
        const backend = v.byId.get(specKeyId(e.c.component.backend_id)) as Entry;
        const b = backend.c.component as ComponentOf<'virtio_network_backend'>;
        nics.push({ name: e.key, pciPath: pciPathOf(e.key, e.c.component.pci_path).toString(), vnic: b.vnic_name });
        break;
      }
      case 'qemu_pvpanic':
        pvpanic = { enableIsa: e.c.component.enable_isa };
        break;
      case 'boot_settings':
        // Disk keys as the spec spells them on the disks (PcPlatform maps
        // them to firmware device paths).
        bootOrder = e.c.component.order.map((item) => (v.byId.get(specKeyId(item.id)) as Entry).key);
        break;
      default:
        break;
    }
  }
  const smbios = spec.smbios ?? undefined;
  return {
    name: opts.name,
    uuid: opts.uuid,
    cpus: spec.board.cpus,
    memoryMiB: spec.board.memory_mb,
    bootrom: opts.bootrom,
    ...(opts.bootromVersion === undefined ? {} : { bootromVersion: opts.bootromVersion }),
    ...(opts.kvmPath === undefined ? {} : { kvmPath: opts.kvmPath }),
    ...(v.cpuid === undefined ? {} : { cpuid: v.cpuid }),
    enablePcie: spec.board.chipset.value.enable_pcie,
    ...(pvpanic === undefined ? {} : { pvpanic }),
    ...(bootOrder === undefined ? {} : { bootOrder }),
    ...(smbios === undefined
      ? {}
      : {
          smbios: {
            manufacturer: smbios.manufacturer,
            productName: smbios.product_name,
            serialNumber: smbios.serial_number,
            version: smbios.version,
          },
        }),
    disks,
    nics,
  };
}

/** The serial ports a spec declares (COM1–COM4 exist on the platform either way). */
export function specSerialPorts(spec: InstanceSpec): ComPort[] {
  const out: ComPort[] = [];
  for (const c of Object.values(spec.components)) if (c.type === 'serial_port') out.push(c.component.num);
  return out;
}

/** CPUID entries as the spec's `board.cpuid` writes them (leaves in the spec's ranges only). */
export function cpuidToSpec(entries: readonly CpuidEntry[]): {
  entries: { leaf: number; subleaf: number | null; eax: number; ebx: number; ecx: number; edx: number }[];
  vendor: 'amd' | 'intel';
} {
  const l0 = entries.find((e) => e.function === 0);
  let vendor: 'amd' | 'intel' = 'intel';
  if (l0) {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(l0.ebx >>> 0, 0);
    b.writeUInt32LE(l0.edx >>> 0, 4);
    b.writeUInt32LE(l0.ecx >>> 0, 8);
    const s = b.toString('latin1');
    if (s === 'AuthenticAMD' || s === 'HygonGenuine') vendor = 'amd';
  }
  return {
    entries: entries
      .filter((e) => inCpuidRange(e.function))
      .map((e) => ({
        leaf: e.function,
        subleaf: (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) !== 0 ? e.index : null,
        eax: e.eax >>> 0,
        ebx: e.ebx >>> 0,
        ecx: e.ecx >>> 0,
        edx: e.edx >>> 0,
      })),
    vendor,
  };
}
