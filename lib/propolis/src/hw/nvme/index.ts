// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The NVMe controller's public surface, for the machine builder.
//
// Threading: re-exports only.

export { doorbellOffset, MAX_QUEUES as NVME_MAX_QUEUES } from './bits.js';
export { NvmeController, type NvmeEnv } from './controller.js';
export {
  nvmeBootPath,
  PciNvme,
  PciNvmeConfigError,
  setNvmeBackendOpener,
  type BackendOpener,
  type BlockTargetFactory,
  type NvmeDoorbell,
  type NvmeThreadInfo,
  type PciNvmeConfig,
} from './pci-nvme.js';
export { NvmeCtrlV1, type NvmeCtrlState } from './state.js';
