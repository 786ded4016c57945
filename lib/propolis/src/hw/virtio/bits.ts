// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Virtio names and numbers (Virtual I/O Device specification 1.2): feature
// bits, device status, split-virtqueue layout, the PCI transport's register
// layouts (legacy I/O header, modern common configuration, vendor
// capabilities) and the PCI identities the seed gives each device type.
// Datasheet names throughout, so the spec can be read beside the code.
//
// Threading: constants and pure functions only.

import type { PciIdent } from '../pci/builder.js';
import { VENDOR_ID } from '../pci/bits.js';

/** Feature bit numbers shared by every device type (spec §6). */
export const VIRTIO_F = {
  /** Legacy: interrupt when the avail ring runs empty even if suppressed. Never offered. */
  NOTIFY_ON_EMPTY: 24,
  /** Legacy: no assumptions about message framing. */
  ANY_LAYOUT: 27,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  RING_RESET: 40,
} as const;

/** The feature mask of bit `n`. */
export function featureBit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Device status bits (spec §2.1). */
export const STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Every status bit the spec defines (bits 4 and 5 are reserved). */
export const STATUS_DEFINED =
  STATUS.ACKNOWLEDGE |
  STATUS.DRIVER |
  STATUS.DRIVER_OK |
  STATUS.FEATURES_OK |
  STATUS.DEVICE_NEEDS_RESET |
  STATUS.FAILED;

/** ISR status bits (spec §4.1.4.5). */
export const ISR = { QUEUE: 1, CONFIG: 2 } as const;

/** "No MSI-X vector" in the vector registers. */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Virtio device IDs (spec §5). */
export const VIRTIO_ID = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
  BALLOON: 5,
  SCSI: 8,
  NINEP: 9,
  SOCKET: 19,
} as const;

// ---- split virtqueues (spec §2.7) ----

export const VIRTQ_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size; sizes are powers of two. */
export const VIRTQ_MAX_SIZE = 32768;

/** Sizes and alignments of the three parts of a split virtqueue. */
export const VIRTQ = {
  DESC_SIZE: 16,
  DESC_ALIGN: 16,
  AVAIL_ALIGN: 2,
  USED_ALIGN: 4,
  /** flags u16, idx u16, then the ring. */
  RING_HEADER: 4,
  AVAIL_ELEM: 2,
  USED_ELEM: 8,
  /** Descriptor fields. */
  D_ADDR: 0,
  D_LEN: 8,
  D_FLAGS: 12,
  D_NEXT: 14,
  /** Ring header fields. */
  R_FLAGS: 0,
  R_IDX: 2,
} as const;

/** Bytes of each part for `size` entries (the avail/used rings include used_event/avail_event). */
export function virtqPartSizes(size: number): { desc: number; avail: number; used: number } {
  return {
    desc: VIRTQ.DESC_SIZE * size,
    avail: VIRTQ.RING_HEADER + VIRTQ.AVAIL_ELEM * size + 2,
    used: VIRTQ.RING_HEADER + VIRTQ.USED_ELEM * size + 2,
  };
}

/** Legacy layout: Queue Align and the page-frame shift of the Queue Address register. */
export const LEGACY_QUEUE_ALIGN = 4096;
export const LEGACY_PFN_SHIFT = 12;

/** Where the legacy layout puts the three parts for a queue at `base` with `size` entries. */
export function legacyLayout(base: number, size: number): { desc: number; avail: number; used: number } {
  const avail = base + VIRTQ.DESC_SIZE * size;
  const availEnd = avail + VIRTQ.RING_HEADER + VIRTQ.AVAIL_ELEM * size + 2;
  const used = Math.ceil(availEnd / LEGACY_QUEUE_ALIGN) * LEGACY_QUEUE_ALIGN;
  return { desc: base, avail, used };
}

// ---- PCI transport (spec §4.1) ----

/** Which interfaces a PCI function offers; the numbers are the seed's `Mode` (state payloads carry them). */
export enum VirtioMode {
  /** Pre-1.0 only: the I/O BAR0 header. */
  Legacy = 0,
  /** 1.x only: vendor capabilities into the memory BAR2. */
  Modern = 1,
  /** Both. */
  Transitional = 2,
}

export function hasLegacy(m: VirtioMode): boolean {
  return m === VirtioMode.Legacy || m === VirtioMode.Transitional;
}

export function hasModern(m: VirtioMode): boolean {
  return m === VirtioMode.Modern || m === VirtioMode.Transitional;
}

/** BAR numbers, as the seed lays the function out. */
export const VIRTIO_BAR = { LEGACY: 0, MSIX: 1, MODERN: 2 } as const;
/** The seed sizes the legacy I/O BAR at 0x200 whatever the device configuration needs. */
export const LEGACY_BAR_SIZE = 0x200;

/** Legacy header in BAR0 (spec §4.1.4.10); device configuration follows it. */
export const LEGACY = {
  DEVICE_FEATURES: 0x00,
  DRIVER_FEATURES: 0x04,
  QUEUE_ADDRESS: 0x08,
  QUEUE_SIZE: 0x0c,
  QUEUE_SELECT: 0x0e,
  QUEUE_NOTIFY: 0x10,
  DEVICE_STATUS: 0x12,
  ISR_STATUS: 0x13,
  /** Only while MSI-X is enabled. */
  CONFIG_MSIX_VECTOR: 0x14,
  QUEUE_MSIX_VECTOR: 0x16,
  /** Header length without and with MSI-X enabled. */
  HEADER: 0x14,
  HEADER_MSIX: 0x18,
} as const;

/** struct virtio_pci_common_cfg (spec §4.1.4.3). */
export const COMMON = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  QUEUE_NOTIFY_DATA: 0x38,
  QUEUE_RESET: 0x3a,
  SIZE: 0x3c,
} as const;

/**
 * The seed's layout of the modern BAR: one 4 KiB page per structure. The
 * notify multiplier is 0, so every queue notifies at the same address
 * (the value written is the queue index).
 */
export const MODERN = {
  COMMON: 0x0000,
  DEVICE: 0x1000,
  NOTIFY: 0x2000,
  NOTIFY_LEN: 4,
  NOTIFY_MULTIPLIER: 0,
  ISR: 0x3000,
  ISR_LEN: 1,
  PAGE: 0x1000,
  BAR_SIZE: 0x4000,
} as const;

/** cfg_type of the vendor capabilities (spec §4.1.4). */
export const VIRTIO_PCI_CAP = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** struct virtio_pci_cap field offsets (from the capability's start) and lengths. */
export const CAP = {
  LEN: 2,
  CFG_TYPE: 3,
  BAR: 4,
  ID: 5,
  OFFSET: 8,
  LENGTH: 12,
  /** virtio_pci_notify_cap: notify_off_multiplier; virtio_pci_cfg_cap: pci_cfg_data. */
  EXTRA: 16,
  SIZE: 16,
  SIZE_EXTRA: 20,
} as const;

/** Legacy/transitional PCI device IDs the spec lists (and the seed uses), by virtio device ID. */
const TRANSITIONAL_DEVICE_ID: Record<number, number> = {
  [VIRTIO_ID.NET]: 0x1000,
  [VIRTIO_ID.BLOCK]: 0x1001,
  [VIRTIO_ID.BALLOON]: 0x1002,
  [VIRTIO_ID.CONSOLE]: 0x1003,
  [VIRTIO_ID.SCSI]: 0x1004,
  [VIRTIO_ID.ENTROPY]: 0x1005,
  [VIRTIO_ID.NINEP]: 0x1009,
  [VIRTIO_ID.SOCKET]: 0x1012,
};

/** PCI class and subclass per device type (mostly arbitrary; the seed's choices). */
const CLASS: Record<number, [number, number]> = {
  [VIRTIO_ID.NET]: [0x02, 0x00],
  [VIRTIO_ID.BLOCK]: [0x01, 0x00],
  [VIRTIO_ID.NINEP]: [0x01, 0x00],
  [VIRTIO_ID.SOCKET]: [0x00, 0x00],
};

/** Modern PCI device IDs are 0x1040 + the virtio device ID. */
const MODERN_DEVICE_ID_BASE = 0x1040;

/**
 * The PCI identity of a virtio device of `type` in `mode` (spec §4.1.2):
 * legacy and transitional functions use the listed 0x10xx IDs, revision 0
 * and subsystem device = the virtio type; modern ones 0x1040 + type,
 * revision 1, subsystem device = the PCI device ID.
 */
export function virtioPciIdent(type: number, mode: VirtioMode): Required<PciIdent> {
  const cls = CLASS[type];
  if (!cls) throw new RangeError(`virtio device type ${type} has no PCI class`);
  let device: number;
  let subDevice: number;
  if (mode === VirtioMode.Modern) {
    device = MODERN_DEVICE_ID_BASE + type;
    subDevice = device;
  } else {
    const id = TRANSITIONAL_DEVICE_ID[type];
    if (id === undefined) throw new RangeError(`virtio device type ${type} has no transitional PCI device ID`);
    device = id;
    subDevice = type;
  }
  return {
    vendor: VENDOR_ID.VIRTIO,
    device,
    class: cls[0],
    subclass: cls[1],
    progIf: 0,
    revision: mode === VirtioMode.Modern ? 1 : 0,
    subVendor: VENDOR_ID.VIRTIO,
    subDevice,
  };
}
