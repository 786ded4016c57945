// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The named schemas by `$id`: what `#/components/schemas/<Name>` points at.
// The OpenAPI generator emits them as components and references to them; the
// validator resolves the one self-reference (VolumeInfo) through it.
//
// Threading: none; built once at import time.

import type { TSchema } from '@sinclair/typebox';
import * as schemas from './schemas.js';

function collect(): ReadonlyMap<string, TSchema> {
  const out = new Map<string, TSchema>();
  for (const [name, schema] of Object.entries(schemas) as [string, TSchema][]) {
    // schemas.ts exports only named schemas, each under its own `$id`; a
    // mismatch would emit references to a component that does not exist.
    if (schema.$id !== name) throw new TypeError(`schema ${name} has $id ${String(schema.$id)}; they must agree`);
    out.set(name, schema);
  }
  return out;
}

/** Every schema of schemas.ts, keyed by its name (= `$id`), in name order. */
export const COMPONENTS: ReadonlyMap<string, TSchema> = new Map(
  [...collect()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
);
