// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Every deliberate difference between this server's API and the original's
// (propolis-server, API 5.0.0), in one place. Each says where, what and why.
//
// Entries that change the OpenAPI document itself also list those changes
// (`document`), and the compatibility test (openapi.test.ts) allows exactly
// them: a structural difference from the original document that no entry
// lists fails the test, and so does a listed change that no longer occurs.
//
// Threading: none; constant data.

/** A kind of structural change to the document the compatibility test can allow. */
export type DocumentChange =
  /** `additionalProperties: false` where the original leaves the object open. */
  | 'closed'
  /** A `maximum` the original lacks, equal to the largest value of the integer's format (kinds.ts). */
  | 'maximum-by-format';

export interface Difference {
  readonly where: string;
  readonly what: string;
  readonly why: string;
  /**
   * The document changes this difference accounts for: `at` is a schema
   * name, optionally followed by a path inside it (`Name.oneOf[0].properties.value`),
   * or `*` for anywhere.
   */
  readonly document?: readonly { readonly at: string; readonly change: DocumentChange }[];
}

/** Request schemas that serde leaves open in the original and that are closed here. */
const OPENED_UPSTREAM = [
  'InstanceEnsureRequest',
  'InstanceProperties',
  'InstanceMetadata',
  'InstanceInitializationMethod.oneOf[0]',
  'InstanceInitializationMethod.oneOf[0].properties.value',
  'InstanceInitializationMethod.oneOf[1]',
  'InstanceInitializationMethod.oneOf[1].properties.value',
  'InstanceSpec',
  'BootOrderEntry',
  'PciPath',
  'InstanceStateMonitorRequest',
  'InstanceVCRReplace',
] as const;

export const DIFFERENCES: readonly Difference[] = [
  {
    where: `request bodies: ${[...new Set(OPENED_UPSTREAM.map((s) => s.split('.')[0]))].join(', ')}`,
    what:
      'Unknown fields are refused with 400 naming the field (`unknown field "x" in properties`); ' +
      'these schemas carry `additionalProperties: false`. (The spec components were already closed upstream.)',
    why:
      'The original silently ignores unknown fields in these types, so a misspelt optional field ' +
      '(`smbios`, `cpuid`, `subleaf`) would be dropped without a word and the VM built differently from the request.',
    document: OPENED_UPSTREAM.map((at) => ({ at, change: 'closed' as const })),
  },
  {
    where: 'query strings of GET /instance/serial and GET /instance/serial/history',
    what: 'A query parameter the endpoint does not define, or one given twice, is refused with 400.',
    why: 'The same reasoning as for request bodies: a misspelt `from_start` would otherwise mean "no offset".',
  },
  {
    where: 'every integer field (formats uint8, uint32, uint64, uint)',
    what:
      'The document states each maximum (255, 4294967295); uint64 and uint values above 2^53 - 1 ' +
      '(9007199254740991) are refused with 400.',
    why:
      'JSON numbers are parsed into doubles, which hold integers exactly only up to 2^53 - 1; refusing larger ' +
      'ones beats silently rounding them. No real value (memory in MiB, offsets, generations) comes near.',
    document: [{ at: '*', change: 'maximum-by-format' }],
  },
  {
    where: 'every integer field',
    what: 'A number with a zero fraction (`4.0`) is taken as the integer; the original refuses it.',
    why: 'JSON.parse yields the same number for `4` and `4.0`, so the difference cannot be seen.',
  },
  {
    where: 'every field with format uuid (and path parameters `migration_id`, `snapshot_id`)',
    what:
      'Only the hyphenated form (8-4-4-4-12 hex digits, any case) is accepted; the original also takes the ' +
      'simple (32 digits), braced and `urn:uuid:` forms.',
    why: "That form is what every client sends and what OpenAPI's `uuid` format means; one form keeps IDs comparable as strings.",
  },
  {
    where: 'GuestHypervisorInterface hyper_v `features`',
    what: 'A repeated feature is refused with 400; the original drops repeats.',
    why: 'The document declares the list `uniqueItems`; the validator enforces what the document says.',
  },
  {
    where: 'crucible_storage_backend components and ReplacementComponent CrucibleStorageBackend',
    what:
      'PUT /instance with a Crucible backend is refused with 400, message "crucible_storage_backend ' +
      'is not supported on this host". No disk can then have a Crucible backend, so the Crucible disk ' +
      'endpoints (snapshot, status, vcr) answer 404 for every id, as the original does for non-Crucible disks.',
    why: 'Crucible is a Rust client library for Oxide storage servers, with no counterpart on this host.',
  },
  {
    where: 'virtio_network_backend and dlpi_network_backend `vnic_name`',
    what:
      'The name of a Linux tap interface (at most 15 bytes), created if absent, instead of an illumos ' +
      'viona VNIC or DLPI link.',
    why: 'Linux has no VNICs, viona or DLPI; a tap device is how a Linux VMM plugs a virtio-net NIC into the host.',
  },
  {
    where: 'soft_npu_pci_port, soft_npu_port, soft_npu_p9 and p9fs components',
    what: 'Refused with 400 ("not supported on this host"), as the original refuses them when built without `falcon`.',
    why: 'They exist for the Falcon network-testing environment on illumos.',
  },
  {
    where: 'the api-version header',
    what:
      'A version older than 1.0.0 is refused with 400 naming the oldest supported version; messages name ' +
      'the supported range.',
    why: 'The original has no handler for such versions; saying so is clearer than a bare routing error.',
  },
  {
    where: 'GET /instance/state-monitor',
    what:
      'The generation may also be given as the query parameter `gen` (`?gen=3`) when the request has no body; ' +
      'the JSON body `{"gen": N}` of the original works as before.',
    why: "Browsers' fetch cannot send a body with a GET, and propolis-client must run in browsers.",
  },
  {
    where: 'websocket upgrades (GET /instance/serial)',
    what: 'A request without the api-version header is taken as the current version; a bad header is still refused.',
    why: "Browsers' WebSocket cannot set request headers.",
  },
  {
    where:
      'PUT /instance with virtio_socket, pci_pci_bridge or migration_failure_injector components, or a hyper_v guest interface',
    what: 'Refused with 400 naming the component ("… is not available on this host").',
    why: 'Not built yet on this VMM (no vsock host side, no bridge device model, no Hyper-V enlightenments).',
  },
  {
    where: 'live migration: init.method = MigrationTarget, GET /instance/migrate/{migration_id}/start',
    what: 'Answered 501 "live migration is not implemented yet"; GET /instance/migration-status answers as the original.',
    why: 'Migration comes in a later issue; a clear refusal beats a hang.',
  },
  {
    where: 'PUT /instance when the VM cannot be created',
    what: '500 with error_code "CreateFailed" and the reason in the message; the instance then reports Failed.',
    why: 'The original hides the reason behind "Internal Server Error"; an operator needs it (a missing image file).',
  },
  {
    where: 'POST /instance/nmi before the VM first started',
    what: '409 with error_code "InstanceNotRunning".',
    why: 'There is no running vCPU to take it; the original would queue it into a VM that has not started.',
  },
  {
    where: 'a guest failure (emulation failure, KVM internal error)',
    what: 'The VM halts to Failed through the usual rundown; the server keeps serving.',
    why: 'The original aborts the server process; one bad guest should not take the API down.',
  },
  {
    where: 'serial ports and the console',
    what:
      'COM1–COM4 always exist on the platform and GET /instance/serial serves COM1 whether or not the spec ' +
      'lists it; firmware debug-port output is logged at trace level instead of written to debug.out.',
    why: 'The original panics without com1; a server process should not write files into its working directory.',
  },
  {
    where: 'api-version 1.0.0 to 4.x',
    what: 'Served with the 5.0.0 shapes (no V0 spec wrapping for v1, vsock kept, disk status as volume_info).',
    why: 'Nothing here needs the older shapes yet: vsock and Crucible are not offered, so they differ in no field.',
  },
  {
    where: 'routing of every request',
    what: 'An unknown path (404) or method (405) is answered before the api-version header is checked.',
    why: 'Naming the real problem first.',
  },
  {
    where: 'serial websocket clients',
    what:
      'A replay that starts in evicted history resumes at the oldest byte still held; a client more than ' +
      '4 MiB behind is closed with 1013; input from one client is capped at 4 KiB in flight.',
    why: 'A slow or stuck client must never stall the guest or the other clients.',
  },
  {
    where: 'metrics and VNC',
    what:
      'Prometheus text at GET /metrics and on --metric-addr IP:PORT (`dns` refused) instead of Oximeter; the VNC ' +
      'address is accepted and logged as unavailable.',
    why: 'Oximeter and the VNC server are Oxide-rack pieces; Prometheus is what a Linux host scrapes.',
  },
  {
    where: 'the document: info, descriptions and summaries',
    what: 'Written anew for this project; no contact block. Paths, operations, parameters and schemas agree.',
    why: 'Descriptions are prose about the implementation, not part of the API contract.',
  },
];
