// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PCI core's public surface, for devices and the machine builder.
//
// Threading: re-exports only.

export * from './bits.js';
export { PciBuilder, PciBuilderError, type BarSpec, type MsixSpec, type PciIdent, type PciSpec } from './builder.js';
export { PciPciBridge } from './bridge.js';
export {
  PciFunction,
  type DecodedBar,
  type PciAttachOptions,
  type PciBarHandler,
  type PciFunctionShared,
} from './function.js';
export type { MsixNotifyResult } from './msix.js';
export { PciPath, PciPathError } from './path.js';
export { PciDeviceV1, type PciDeviceState } from './state.js';
export { PciTopology, PciTopologyError, intxPinFor, swizzle, type IntxRouter, type PciWindows } from './topology.js';
