// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Writes the server's OpenAPI document, generated from lib/api-types, to
// openapi/propolis-server.json (`npm run openapi`). The file is committed;
// lib/api-types/src/openapi.test.ts fails when it and the generator disagree.
//
// The JSON is laid out by Prettier with the repository's settings (two-space
// indent, trailing newline), so `prettier --check` accepts the file as written.

import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { buildOpenApi } from '../lib/api-types/src/index.js';

const root = join(import.meta.dirname, '..', '..');
const out = join(root, 'openapi', 'propolis-server.json');

const config = (await resolveConfig(out)) ?? {};
const text = await format(`${JSON.stringify(buildOpenApi(), null, 2)}\n`, { ...config, filepath: out });
writeFileSync(out, text);
console.log(`wrote ${relative(root, out)}`);
