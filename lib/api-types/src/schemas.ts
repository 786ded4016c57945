// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The schemas of propolis-server's API (version 5.0.0), one per entry of the
// original document's `components.schemas`, under the same names, with the
// same property names, required lists, enums, formats and serde tagging.
// Each name is both a value (the TypeBox schema: validator input and OpenAPI
// source) and a type (what the schema accepts):
//
//   export const InstanceState = strings([...]);
//   export type InstanceState = Static<typeof InstanceState>;
//
// Every schema's `$id` is its name; openapi.ts emits a `$ref` to
// `#/components/schemas/<$id>` wherever a named schema is used inside another.
// This module exports nothing but these schemas (index.ts re-exports it
// whole); helpers live in kinds.ts.
//
// Schemas that a request can carry are closed (unknown properties refused),
// where the original's serde types ignore unknown fields in some of them; see
// DIFFERENCES. Response-only schemas are as open as the original's.
//
// Threading: none; immutable values built at import time.

import { Type, type Static } from '@sinclair/typebox';
import { adjacent, closed, described, option, strings, u32, u64, u8, union, unit, usize, uuid } from './kinds.js';

// ---------------------------------------------------------------------------
// Shared leaves

export const SpecKey = Type.Union([Type.String({ title: 'uuid', format: 'uuid' }), Type.String({ title: 'name' })], {
  $id: 'SpecKey',
  description:
    'The key of a component in an instance spec: a UUID when the string parses as one, otherwise a free-form name.',
});
export type SpecKey = Static<typeof SpecKey>;

export const PciPath = closed(
  { bus: u8(), device: u8(), function: u8() },
  { $id: 'PciPath', description: 'A PCI bus, device and function number.' },
);
export type PciPath = Static<typeof PciPath>;

export const SerialPortNumber = strings(['com1', 'com2', 'com3', 'com4'], {
  $id: 'SerialPortNumber',
  description: 'Which of the four PC serial ports (and so which I/O ports and IRQ) a serial device occupies.',
});
export type SerialPortNumber = Static<typeof SerialPortNumber>;

export const CpuidVendor = strings(['amd', 'intel'], {
  $id: 'CpuidVendor',
  description: 'The CPU vendor whose meaning of the extended CPUID leaves (0x8000_0000 and up) applies.',
});
export type CpuidVendor = Static<typeof CpuidVendor>;

export const HyperVFeatureFlag = strings(['reference_tsc'], {
  $id: 'HyperVFeatureFlag',
  description: 'A Hyper-V enlightenment that needs no settings of its own.',
});
export type HyperVFeatureFlag = Static<typeof HyperVFeatureFlag>;

export const InstanceState = strings(
  [
    'Creating',
    'Starting',
    'Running',
    'Stopping',
    'Stopped',
    'Rebooting',
    'Migrating',
    'Repairing',
    'Failed',
    'Destroyed',
  ],
  { $id: 'InstanceState', description: 'The published state of the instance.' },
);
export type InstanceState = Static<typeof InstanceState>;

export const InstanceStateRequested = strings(['Run', 'Stop', 'Reboot'], { $id: 'InstanceStateRequested' });
export type InstanceStateRequested = Static<typeof InstanceStateRequested>;

export const MigrationState = strings(
  ['Sync', 'RamPush', 'Pause', 'RamPushDirty', 'Device', 'Resume', 'RamPull', 'Server', 'Finish', 'Error'],
  { $id: 'MigrationState' },
);
export type MigrationState = Static<typeof MigrationState>;

export const ReplaceResult = strings(['started', 'started_already', 'completed_already', 'missing', 'vcr_matches'], {
  $id: 'ReplaceResult',
});
export type ReplaceResult = Static<typeof ReplaceResult>;

// ---------------------------------------------------------------------------
// The board

export const I440Fx = closed(
  {
    enable_pcie: Type.Boolean({
      description: 'Whether configuration space is also reachable through the PCIe enhanced (memory-mapped) mechanism.',
    }),
  },
  { $id: 'I440Fx', description: 'An i440FX-compatible chipset.' },
);
export type I440Fx = Static<typeof I440Fx>;

export const Chipset = union([adjacent('type', 'i440_fx', 'value', I440Fx)], {
  $id: 'Chipset',
  description: 'The virtual chipset.',
});
export type Chipset = Static<typeof Chipset>;

export const CpuidEntry = closed(
  {
    eax: u32({ description: 'The value returned in eax.' }),
    ebx: u32({ description: 'The value returned in ebx.' }),
    ecx: u32({ description: 'The value returned in ecx.' }),
    edx: u32({ description: 'The value returned in edx.' }),
    leaf: u32({ description: 'The leaf (eax on input).' }),
    subleaf: option(u32(), { description: 'The subleaf (ecx on input), for leaves that have them.' }),
  },
  { $id: 'CpuidEntry', description: 'The values one CPUID leaf (and subleaf) returns.' },
);
export type CpuidEntry = Static<typeof CpuidEntry>;

export const Cpuid = closed(
  {
    entries: Type.Array(CpuidEntry, {
      description:
        'The leaves to expose. Leaves must be unique and lie in the standard (0..=0xFFFF) or extended ' +
        '(0x8000_0000..=0x8000_FFFF) range.',
    }),
    vendor: described(CpuidVendor, 'The vendor whose semantics apply to the extended leaves.'),
  },
  { $id: 'Cpuid', description: 'The CPUID values the guest sees.' },
);
export type Cpuid = Static<typeof Cpuid>;

export const GuestHypervisorInterface = Type.Union(
  [
    unit('type', 'bhyve', {
      additionalProperties: false,
      description: 'A bhyve-style interface: the bhyve hypervisor ID and no further leaves.',
    }),
    adjacent('type', 'hyper_v', 'value', closed({ features: Type.Array(HyperVFeatureFlag, { uniqueItems: true }) }), {
      description: 'A Hyper-V-compatible interface with the listed enlightenments.',
    }),
  ],
  { $id: 'GuestHypervisorInterface', description: 'The hypervisor interface the guest sees.' },
);
export type GuestHypervisorInterface = Static<typeof GuestHypervisorInterface>;

export const Board = closed(
  {
    chipset: described(Chipset, 'The chipset the guest sees.'),
    cpuid: option(Cpuid, {
      description: 'The CPUID values to expose; when absent, defaults are derived from the host.',
    }),
    cpus: u8({ description: 'The number of vCPUs.' }),
    guest_hv_interface: Type.Optional(
      described(
        GuestHypervisorInterface,
        'The hypervisor interface to expose; bhyve-style when absent (and then omitted when read back).',
      ),
    ),
    memory_mb: u64({ description: 'Guest RAM in MiB.' }),
  },
  { $id: 'Board', description: "The VM's mainboard: processors, memory, chipset." },
);
export type Board = Static<typeof Board>;

export const SmbiosType1Input = closed(
  { manufacturer: Type.String(), product_name: Type.String(), serial_number: Type.String(), version: u64() },
  { $id: 'SmbiosType1Input' },
);
export type SmbiosType1Input = Static<typeof SmbiosType1Input>;

// ---------------------------------------------------------------------------
// Components: devices

export const VirtioDisk = closed(
  {
    backend_id: described(SpecKey, "The key of the disk's storage backend component."),
    pci_path: described(PciPath, 'Where the disk sits on the PCI bus.'),
  },
  { $id: 'VirtioDisk', description: 'A virtio-block disk.' },
);
export type VirtioDisk = Static<typeof VirtioDisk>;

export const NvmeDisk = closed(
  {
    backend_id: described(SpecKey, "The key of the disk's storage backend component."),
    pci_path: described(PciPath, 'Where the disk sits on the PCI bus.'),
    serial_number: Type.Array(u8(), {
      minItems: 20,
      maxItems: 20,
      description: 'The serial number the controller reports (Identify Controller), 20 bytes.',
    }),
  },
  { $id: 'NvmeDisk', description: 'An NVMe disk.' },
);
export type NvmeDisk = Static<typeof NvmeDisk>;

export const VirtioNic = closed(
  {
    backend_id: described(SpecKey, "The key of the NIC's network backend component."),
    interface_id: uuid({ description: "The caller's identifier for this interface, used to label its metrics." }),
    pci_path: described(PciPath, 'Where the NIC sits on the PCI bus.'),
  },
  { $id: 'VirtioNic', description: 'A virtio-net network card.' },
);
export type VirtioNic = Static<typeof VirtioNic>;

export const SerialPort = closed(
  { num: described(SerialPortNumber, 'Which serial port this is.') },
  { $id: 'SerialPort', description: 'A 16550 serial port.' },
);
export type SerialPort = Static<typeof SerialPort>;

export const PciPciBridge = closed(
  {
    downstream_bus: u8({
      description: 'The bus number behind the bridge; other components name it in their PCI paths.',
    }),
    pci_path: described(PciPath, 'Where the bridge sits on the PCI bus.'),
  },
  { $id: 'PciPciBridge', description: 'A PCI-to-PCI bridge.' },
);
export type PciPciBridge = Static<typeof PciPciBridge>;

export const QemuPvpanic = closed(
  { enable_isa: Type.Boolean({ description: 'Whether to expose the ISA pvpanic device (I/O port 0x505).' }) },
  { $id: 'QemuPvpanic' },
);
export type QemuPvpanic = Static<typeof QemuPvpanic>;

export const BootOrderEntry = closed(
  { id: described(SpecKey, 'The key of a disk component to try to boot from.') },
  { $id: 'BootOrderEntry', description: 'One entry of the boot order.' },
);
export type BootOrderEntry = Static<typeof BootOrderEntry>;

export const BootSettings = closed(
  { order: Type.Array(BootOrderEntry, { description: 'The devices to try, first to last.' }) },
  { $id: 'BootSettings', description: "The boot order handed to the guest's firmware." },
);
export type BootSettings = Static<typeof BootSettings>;

export const VirtioSocket = closed(
  {
    guest_cid: u64({ description: "The guest's context ID." }),
    pci_path: described(PciPath, 'Where the device sits on the PCI bus.'),
  },
  { $id: 'VirtioSocket', description: 'A virtio-socket (vsock) device.' },
);
export type VirtioSocket = Static<typeof VirtioSocket>;

export const SoftNpuPciPort = closed(
  { pci_path: described(PciPath, 'Where the port sits on the PCI bus.') },
  { $id: 'SoftNpuPciPort', description: 'A SoftNPU PCI device (the original supports it only in `falcon` builds).' },
);
export type SoftNpuPciPort = Static<typeof SoftNpuPciPort>;

export const SoftNpuPort = closed(
  {
    backend_id: described(SpecKey, "The key of the port's DLPI network backend."),
    link_name: Type.String({ description: "The port's data-link name." }),
  },
  { $id: 'SoftNpuPort', description: 'A port of a SoftNPU ASIC (the original supports it only in `falcon` builds).' },
);
export type SoftNpuPort = Static<typeof SoftNpuPort>;

export const SoftNpuP9 = closed(
  { pci_path: described(PciPath, 'Where the device sits on the PCI bus.') },
  {
    $id: 'SoftNpuP9',
    description: 'A SoftNPU 9P file-sharing device (the original supports it only in `falcon` builds).',
  },
);
export type SoftNpuP9 = Static<typeof SoftNpuP9>;

export const P9fs = closed(
  {
    chunk_size: u32({ description: 'The 9P message chunk size.' }),
    pci_path: described(PciPath, 'Where the device sits on the PCI bus.'),
    source: Type.String({ description: 'The host directory to share.' }),
    target: Type.String({ description: 'The 9P mount tag.' }),
  },
  { $id: 'P9fs', description: 'A 9P shared directory (the original supports it only in `falcon` builds).' },
);
export type P9fs = Static<typeof P9fs>;

export const MigrationFailureInjector = closed(
  {
    fail_exports: u32({ description: 'How many state exports fail before they succeed.' }),
    fail_imports: u32({ description: 'How many state imports fail before they succeed.' }),
  },
  {
    $id: 'MigrationFailureInjector',
    description: 'A test device that makes migrations fail (the original needs its `failure-injection` feature).',
  },
);
export type MigrationFailureInjector = Static<typeof MigrationFailureInjector>;

// ---------------------------------------------------------------------------
// Components: backends

export const CrucibleStorageBackend = closed(
  {
    readonly: Type.Boolean({ description: 'Whether the disk is read-only.' }),
    request_json: Type.String({ description: 'A Crucible volume construction request, serialized as JSON text.' }),
  },
  { $id: 'CrucibleStorageBackend', description: 'A Crucible volume (refused on this host; see DIFFERENCES).' },
);
export type CrucibleStorageBackend = Static<typeof CrucibleStorageBackend>;

export const FileStorageBackend = closed(
  {
    block_size: u32({ description: 'The block size presented to the guest, in bytes.' }),
    path: Type.String({ description: 'The host file holding the disk.' }),
    readonly: Type.Boolean({ description: 'Whether the disk is read-only.' }),
    workers: option(usize({ minimum: 1 }), { description: 'How many worker threads serve the file (for tests).' }),
  },
  { $id: 'FileStorageBackend', description: 'A disk stored in a host file.' },
);
export type FileStorageBackend = Static<typeof FileStorageBackend>;

export const BlobStorageBackend = closed(
  {
    base64: Type.String({ description: "The disk's initial contents, base64-encoded." }),
    readonly: Type.Boolean({ description: 'Whether the disk is read-only.' }),
  },
  { $id: 'BlobStorageBackend', description: 'A disk whose contents the spec itself carries.' },
);
export type BlobStorageBackend = Static<typeof BlobStorageBackend>;

export const VirtioNetworkBackend = closed(
  { vnic_name: Type.String({ description: 'The host link to attach to (on this host: a Linux tap interface).' }) },
  { $id: 'VirtioNetworkBackend', description: 'A host link for a virtio-net NIC.' },
);
export type VirtioNetworkBackend = Static<typeof VirtioNetworkBackend>;

export const DlpiNetworkBackend = closed(
  { vnic_name: Type.String({ description: 'The host link to attach to (on this host: a Linux tap interface).' }) },
  { $id: 'DlpiNetworkBackend', description: 'A host link reached through DLPI on illumos.' },
);
export type DlpiNetworkBackend = Static<typeof DlpiNetworkBackend>;

export const Component = Type.Union(
  [
    adjacent('type', 'virtio_disk', 'component', VirtioDisk),
    adjacent('type', 'nvme_disk', 'component', NvmeDisk),
    adjacent('type', 'virtio_nic', 'component', VirtioNic),
    adjacent('type', 'serial_port', 'component', SerialPort),
    adjacent('type', 'pci_pci_bridge', 'component', PciPciBridge),
    adjacent('type', 'qemu_pvpanic', 'component', QemuPvpanic),
    adjacent('type', 'boot_settings', 'component', BootSettings),
    adjacent('type', 'virtio_socket', 'component', VirtioSocket),
    adjacent('type', 'soft_npu_pci_port', 'component', SoftNpuPciPort),
    adjacent('type', 'soft_npu_port', 'component', SoftNpuPort),
    adjacent('type', 'soft_npu_p9', 'component', SoftNpuP9),
    adjacent('type', 'p9fs', 'component', P9fs),
    adjacent('type', 'migration_failure_injector', 'component', MigrationFailureInjector),
    adjacent('type', 'crucible_storage_backend', 'component', CrucibleStorageBackend),
    adjacent('type', 'file_storage_backend', 'component', FileStorageBackend),
    adjacent('type', 'blob_storage_backend', 'component', BlobStorageBackend),
    adjacent('type', 'virtio_network_backend', 'component', VirtioNetworkBackend),
    adjacent('type', 'dlpi_network_backend', 'component', DlpiNetworkBackend),
  ],
  { $id: 'Component' },
);
export type Component = Static<typeof Component>;

// ---------------------------------------------------------------------------
// Instance creation

export const InstanceSpec = closed(
  {
    board: Board,
    components: Type.Record(Type.String(), Component),
    smbios: option(SmbiosType1Input),
  },
  { $id: 'InstanceSpec' },
);
export type InstanceSpec = Static<typeof InstanceSpec>;

export const InstanceMetadata = closed(
  {
    project_id: uuid(),
    silo_id: uuid(),
    sled_id: uuid(),
    sled_model: Type.String(),
    sled_revision: u32(),
    sled_serial: Type.String(),
  },
  { $id: 'InstanceMetadata' },
);
export type InstanceMetadata = Static<typeof InstanceMetadata>;

export const InstanceProperties = closed(
  {
    description: Type.String({ description: 'Free-form text about the instance.' }),
    id: uuid({ description: "The instance's unique ID." }),
    metadata: described(InstanceMetadata, 'Labels for the metrics the instance reports.'),
    name: Type.String({ description: "The instance's human-readable name." }),
  },
  { $id: 'InstanceProperties' },
);
export type InstanceProperties = Static<typeof InstanceProperties>;

export const ReplacementComponent = Type.Union(
  [
    adjacent('component', 'MigrationFailureInjector', 'spec', MigrationFailureInjector),
    adjacent('component', 'CrucibleStorageBackend', 'spec', CrucibleStorageBackend),
    adjacent('component', 'VirtioNetworkBackend', 'spec', VirtioNetworkBackend),
  ],
  {
    $id: 'ReplacementComponent',
    description: "A component of the migration source's spec to replace on the target (same key, same kind).",
  },
);
export type ReplacementComponent = Static<typeof ReplacementComponent>;

export const InstanceInitializationMethod = Type.Union(
  [
    adjacent('method', 'Spec', 'value', closed({ spec: InstanceSpec })),
    adjacent(
      'method',
      'MigrationTarget',
      'value',
      closed({
        migration_id: uuid(),
        replace_components: Type.Record(Type.String(), ReplacementComponent),
        src_addr: Type.String(),
      }),
    ),
  ],
  { $id: 'InstanceInitializationMethod' },
);
export type InstanceInitializationMethod = Static<typeof InstanceInitializationMethod>;

export const InstanceEnsureRequest = closed(
  { init: InstanceInitializationMethod, properties: InstanceProperties },
  { $id: 'InstanceEnsureRequest' },
);
export type InstanceEnsureRequest = Static<typeof InstanceEnsureRequest>;

export const InstanceMigrateInitiateResponse = Type.Object(
  { migration_id: uuid() },
  { $id: 'InstanceMigrateInitiateResponse' },
);
export type InstanceMigrateInitiateResponse = Static<typeof InstanceMigrateInitiateResponse>;

export const InstanceEnsureResponse = Type.Object(
  { migrate: option(InstanceMigrateInitiateResponse) },
  { $id: 'InstanceEnsureResponse' },
);
export type InstanceEnsureResponse = Static<typeof InstanceEnsureResponse>;

// ---------------------------------------------------------------------------
// Instance status

export const Instance = Type.Object({ properties: InstanceProperties, state: InstanceState }, { $id: 'Instance' });
export type Instance = Static<typeof Instance>;

export const InstanceGetResponse = Type.Object({ instance: Instance }, { $id: 'InstanceGetResponse' });
export type InstanceGetResponse = Static<typeof InstanceGetResponse>;

export const InstanceSpecStatus = Type.Union(
  [unit('type', 'WaitingForMigrationSource'), adjacent('type', 'Present', 'value', InstanceSpec, { open: true })],
  { $id: 'InstanceSpecStatus' },
);
export type InstanceSpecStatus = Static<typeof InstanceSpecStatus>;

export const InstanceSpecGetResponse = Type.Object(
  { properties: InstanceProperties, spec: InstanceSpecStatus, state: InstanceState },
  { $id: 'InstanceSpecGetResponse' },
);
export type InstanceSpecGetResponse = Static<typeof InstanceSpecGetResponse>;

export const InstanceMigrationStatus = Type.Object(
  {
    id: uuid({ description: 'The migration ID (chosen by whoever asked for the migration).' }),
    state: described(MigrationState, 'The phase the migration is in.'),
  },
  { $id: 'InstanceMigrationStatus', description: 'The status of one live migration.' },
);
export type InstanceMigrationStatus = Static<typeof InstanceMigrationStatus>;

export const InstanceMigrateStatusResponse = Type.Object(
  {
    migration_in: option(InstanceMigrationStatus, {
      description: 'The latest migration into this server, if the instance was created as a migration target.',
    }),
    migration_out: option(InstanceMigrationStatus, {
      description: 'The latest migration out of this server, if one was attempted.',
    }),
  },
  {
    $id: 'InstanceMigrateStatusResponse',
    description:
      'The latest migration attempt in each direction; a new attempt replaces the previous one of its direction.',
  },
);
export type InstanceMigrateStatusResponse = Static<typeof InstanceMigrateStatusResponse>;

export const InstanceStateMonitorRequest = closed({ gen: u64() }, { $id: 'InstanceStateMonitorRequest' });
export type InstanceStateMonitorRequest = Static<typeof InstanceStateMonitorRequest>;

export const InstanceStateMonitorResponse = Type.Object(
  { gen: u64(), migration: InstanceMigrateStatusResponse, state: InstanceState },
  { $id: 'InstanceStateMonitorResponse' },
);
export type InstanceStateMonitorResponse = Static<typeof InstanceStateMonitorResponse>;

export const InstanceSerialConsoleHistoryResponse = Type.Object(
  {
    data: Type.Array(u8(), {
      description: 'The requested bytes (an array of numbers, since serial output need not be UTF-8).',
    }),
    last_byte_offset: u64({ description: 'The offset, counted from boot, just past the last byte of `data`.' }),
  },
  { $id: 'InstanceSerialConsoleHistoryResponse', description: 'A range of the serial console history (COM1).' },
);
export type InstanceSerialConsoleHistoryResponse = Static<typeof InstanceSerialConsoleHistoryResponse>;

export const InstanceVCRReplace = closed({ vcr_json: Type.String() }, { $id: 'InstanceVCRReplace' });
export type InstanceVCRReplace = Static<typeof InstanceVCRReplace>;

/** The body of every error response. (This name shadows the global `Error` where imported unqualified.) */
export const Error = Type.Object(
  { error_code: Type.Optional(Type.String()), message: Type.String(), request_id: Type.String() },
  { $id: 'Error', description: 'What went wrong with a request.' },
);
export type Error = Static<typeof Error>;

// ---------------------------------------------------------------------------
// Crucible volume status (GET /instance/disk/{id}/status)

export const UpstairsInfoStatus = strings(['initializing', 'go_active', 'active', 'deactivating', 'disabled'], {
  $id: 'UpstairsInfoStatus',
});
export type UpstairsInfoStatus = Static<typeof UpstairsInfoStatus>;

export const DownstairsInfoConnectionMode = strings(['new', 'offline', 'faulted', 'replaced'], {
  $id: 'DownstairsInfoConnectionMode',
});
export type DownstairsInfoConnectionMode = Static<typeof DownstairsInfoConnectionMode>;

export const DownstairsInfoNegotiationStatus = strings(
  ['wait_connect', 'negotiating', 'wait_quorum', 'reconcile', 'live_repair_ready'],
  { $id: 'DownstairsInfoNegotiationStatus' },
);
export type DownstairsInfoNegotiationStatus = Static<typeof DownstairsInfoNegotiationStatus>;

export const DownstairsInfoStatus = Type.Union(
  [
    Type.Object({
      mode: DownstairsInfoConnectionMode,
      state: DownstairsInfoNegotiationStatus,
      type: Type.Literal('connecting'),
    }),
    unit('type', 'active'),
    unit('type', 'live_repair'),
    unit('type', 'stopping'),
  ],
  { $id: 'DownstairsInfoStatus' },
);
export type DownstairsInfoStatus = Static<typeof DownstairsInfoStatus>;

export const DownstairsInfo = Type.Object(
  {
    region_id: option(uuid()),
    repair_addr: option(Type.String()),
    state: DownstairsInfoStatus,
    target_addr: option(Type.String()),
  },
  { $id: 'DownstairsInfo' },
);
export type DownstairsInfo = Static<typeof DownstairsInfo>;

export const VolumeInfo = Type.Recursive(
  (This) =>
    Type.Union([
      closed({
        volume: Type.Object({ read_only_parent: option(This), sub_volumes: Type.Array(This) }),
      }),
      closed({
        upstairs: Type.Object({
          block_size: option(u64()),
          encrypted: Type.Boolean(),
          generation: u64(),
          live_repair_in_progress: Type.Boolean(),
          read_only: Type.Boolean(),
          reconcile_in_progress: Type.Boolean(),
          session_id: uuid(),
          state: UpstairsInfoStatus,
          targets: Type.Array(DownstairsInfo),
          upstairs_id: uuid(),
        }),
      }),
    ]),
  { $id: 'VolumeInfo', description: 'The parts of a Crucible volume and their status, as a tree.' },
);
export type VolumeInfo = Static<typeof VolumeInfo>;

export const VolumeStatus = Type.Object({ volume_info: VolumeInfo }, { $id: 'VolumeStatus' });
export type VolumeStatus = Static<typeof VolumeStatus>;
