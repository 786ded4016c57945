// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Reading a config file from disk (Node.js only; the rest of the package
// is pure).

import { readFileSync } from 'node:fs';
import { ConfigTomlError } from './error.js';
import { parseSpecConfig, type SpecConfig, type SpecConfigOptions } from './spec-config.js';

/** Read and parse a config TOML; errors name `path` as given. */
export function readSpecConfig(path: string, options: SpecConfigOptions = {}): SpecConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ConfigTomlError('CONFIG_READ', { file: path }, `cannot read the config file (${why})`, { cause: e });
  }
  return parseSpecConfig(text, path, options);
}
