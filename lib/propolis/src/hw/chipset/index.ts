// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The i440FX/PIIX chipset's public surface, for the machine builder.
//
// Threading: re-exports only.

export { describeChipset, type ChipsetOptions, type DeviceToAdd } from './chipset.js';
export { I440FxHostBridge, defaultPciWindows, type I440FxOptions } from './i440fx.js';
export { Piix3Lpc, pirqLink } from './piix3-lpc.js';
export { Piix4Pm, type Piix4PmOptions } from './piix4-pm.js';
export type { PmTimerBits } from './pm-timer.js';
