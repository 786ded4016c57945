// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// API versioning, as the original server does it: every request names the
// API version it speaks in the `api-version` header, as a semantic version.
// A missing or unparsable header, or a version newer than this server's, is
// refused (400). Any version from 1.0.0 up is served with the behaviour of
// the newest published version not newer than it (4.2.0 behaves as 4.0.0).
//
// Threading: none; pure functions.

/** The version this server implements, and the `info.version` of its document. */
export const API_VERSION = '5.0.0';

/** The header a client names its API version in. */
export const API_VERSION_HEADER = 'api-version';

/**
 * The published versions and what each changed. Their strings have one
 * shape, so `effective < API_VERSIONS.ADD_VSOCK` compares correctly.
 */
export const API_VERSIONS = {
  /** The first version. Specs are wrapped as `{ version: 'V0', spec }` when read back. */
  INITIAL: '1.0.0',
  /** The spec's `smbios` field. */
  PROGRAMMABLE_SMBIOS: '2.0.0',
  /** The `virtio_socket` component; older versions never see one. */
  ADD_VSOCK: '3.0.0',
  /** A Dropshot upgrade changed websocket handling. */
  DROPSHOT_BUMP_WEBSOCKET: '4.0.0',
  /** Disk status answers `{ volume_info }` (before: `{ active }`). */
  CRUCIBLE_VOLUME_INFO: '5.0.0',
} as const;

export type PublishedApiVersion = (typeof API_VERSIONS)[keyof typeof API_VERSIONS];

const PUBLISHED: readonly PublishedApiVersion[] = Object.values(API_VERSIONS);

export type ApiVersionParse =
  | {
      ok: true;
      /** The version the client asked for, as it wrote it. */
      version: string;
      /** The published version whose behaviour applies: the newest one not newer than `version`. */
      effective: PublishedApiVersion;
    }
  | { ok: false; message: string };

// Semantic Versioning 2.0.0: no leading zeros, optional pre-release and build.
const IDENT = '(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)';
const SEMVER = new RegExp(
  `^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)` +
    `(?:-(${IDENT}(?:\\.${IDENT})*))?(?:\\+([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$`,
);

interface SemVer {
  core: [bigint, bigint, bigint];
  pre: string[];
  build: string[];
}

function parse(text: string): SemVer | undefined {
  const m = SEMVER.exec(text);
  if (m === null) return undefined;
  return {
    core: [BigInt(m[1]!), BigInt(m[2]!), BigInt(m[3]!)],
    pre: m[4] === undefined ? [] : m[4].split('.'),
    build: m[5] === undefined ? [] : m[5].split('.'),
  };
}

function compareIdents(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    const xn = /^[0-9]+$/.test(x);
    const yn = /^[0-9]+$/.test(y);
    if (xn && yn) return BigInt(x) < BigInt(y) ? -1 : 1;
    if (xn !== yn) return xn ? -1 : 1; // numeric identifiers sort first
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * Orders versions as the original's `semver` crate does: by core, then a
 * pre-release below the release, then build metadata (none first) — so
 * `5.0.0+abc` counts as newer than `5.0.0`, as it does upstream.
 */
function compare(a: SemVer, b: SemVer): number {
  for (let i = 0; i < 3; i++) if (a.core[i] !== b.core[i]) return a.core[i]! < b.core[i]! ? -1 : 1;
  if (a.pre.length === 0 || b.pre.length === 0) {
    if (a.pre.length !== b.pre.length) return a.pre.length === 0 ? 1 : -1;
  } else {
    const c = compareIdents(a.pre, b.pre);
    if (c !== 0) return c;
  }
  if (a.build.length === 0 || b.build.length === 0) return b.build.length === 0 ? (a.build.length === 0 ? 0 : 1) : -1;
  return compareIdents(a.build, b.build);
}

/** Reads the `api-version` header of a request. */
export function parseApiVersion(header: string | undefined): ApiVersionParse {
  if (header === undefined) return { ok: false, message: `missing expected header "${API_VERSION_HEADER}"` };
  const requested = parse(header);
  if (requested === undefined) {
    return {
      ok: false,
      message: `bad value for header "${API_VERSION_HEADER}": expected a version like ${API_VERSION}, got ${JSON.stringify(header)}`,
    };
  }
  if (compare(requested, parse(API_VERSION)!) > 0) {
    return {
      ok: false,
      message: `server does not support this API version: ${header} (the newest it supports is ${API_VERSION})`,
    };
  }
  let effective: PublishedApiVersion | undefined;
  for (const v of PUBLISHED) if (compare(parse(v)!, requested) <= 0) effective = v;
  if (effective === undefined) {
    return {
      ok: false,
      message: `server does not support this API version: ${header} (the oldest it supports is ${PUBLISHED[0]})`,
    };
  }
  return { ok: true, version: header, effective };
}
