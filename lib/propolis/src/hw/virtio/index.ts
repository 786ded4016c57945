// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Virtio's public surface, for the machine builder and future device
// types: the PCI transport and its device interface, the split virtqueue,
// and virtio-block.
//
// Threading: re-exports only.

export * from './bits.js';
export {
  PciVirtioBlock,
  PciVirtioBlockLoader,
  VirtioBlockConfigError,
  loadBlockOpener,
  type BlockBackendRef,
  type BlockOpener,
  type VirtioBlockOptions,
} from './block.js';
export {
  PciVirtioV1,
  VirtioPciTransport,
  virtioPciSpec,
  type NotifyBinding,
  type QueueInterruptRoute,
  type VirtioDevice,
  type VirtioDeviceSpec,
  type VirtioPciShared,
} from './pci.js';
export { Chain, SplitQueue, VirtQueueV1 } from './queue.js';
