// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// config-toml: the original's `propolis-config-toml`. A config TOML
// (devices, block devices, bridges, chipset, CPUID profiles, boot order)
// becomes instance-spec components (spec-config.ts) and, with a board, the
// whole spec `propolis-cli new` sends (instance-spec.ts).

export * from './error.js';
export * from './pci-path.js';
export * from './spec-config.js';
export * from './instance-spec.js';
export * from './read.js';
