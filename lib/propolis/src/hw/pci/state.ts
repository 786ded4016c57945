// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The `pci-device` v1 payload (Propolis's PciStateV1): command, interrupt
// line, BAR values and MSI-X state of one function. Declared with
// migrate.ts's schema(); the nested records and the optional MSI-X part use
// the two small codecs below (`record`, `nullable`), written against the
// same codec shape as migrate.ts's `t.*`.
//
// Threading: pure.

import { MigrateError, schema, t, type Infer } from '../../migrate.js';

interface Codec<T> {
  decode(v: unknown, path: string): T;
  encode(v: T): unknown;
}

type Fields = Record<string, Codec<any>>;

function fail(path: string, what: string): never {
  throw new MigrateError('DeserializationFailed', `${path}: ${what}`);
}

/** A nested record with exactly these fields. */
export function record<F extends Fields>(fields: F): Codec<Infer<F>> {
  return {
    decode(v, path) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'expected an object');
      const src = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(fields)) {
        if (!(k in src)) fail(`${path}.${k}`, 'missing');
        out[k] = c.decode(src[k], `${path}.${k}`);
      }
      for (const k of Object.keys(src)) if (!(k in fields)) fail(`${path}.${k}`, 'unknown field');
      return out as Infer<F>;
    },
    encode(v) {
      const out: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(fields)) out[k] = c.encode((v as Record<string, unknown>)[k]);
      return out;
    },
  };
}

/** A value or its absence (`undefined` in code, `null` in JSON, which has no undefined). */
export function nullable<T>(of: Codec<T>): Codec<T | undefined> {
  return {
    decode: (v, path) => (v === null ? undefined : of.decode(v, path)),
    encode: (v) => (v === undefined ? null : of.encode(v)),
  };
}

export const MsixEntryV1 = record({ addr: t.u64, data: t.u32, masked: t.bool, pending: t.bool });

export const MsixStateV1 = record({
  count: t.u16,
  enabled: t.bool,
  func_masked: t.bool,
  entries: t.array(MsixEntryV1, 2048),
});

export const PciBarV1 = record({
  /** BAR number (the lower one of a 64-bit pair). */
  index: t.u8,
  /** The register value(s) as the guest reads them, type bits included. */
  value: t.u64,
});

export const PciDeviceV1 = schema('pci-device', 1, {
  command: t.u16,
  intr_line: t.u8,
  bars: t.array(PciBarV1, 6),
  msix: nullable(MsixStateV1),
});

export type PciDeviceState = ReturnType<typeof PciDeviceV1.decode>;
