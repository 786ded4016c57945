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
    where: 'the document: info, descriptions and summaries',
    what: 'Written anew for this project; no contact block. Paths, operations, parameters and schemas agree.',
    why: 'Descriptions are prose about the implementation, not part of the API contract.',
  },
];
