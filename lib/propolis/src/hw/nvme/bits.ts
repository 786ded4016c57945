// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// NVMe constants with the specification's names: controller registers
// (NVMe 1.4 §3.1), queue entry layouts (§4.2, §4.6), opcodes (§5, NVM
// command set §6), status codes (§4.6.1.2) and the Identify data
// structures' offsets (§5.15.2). Also this controller's fixed limits.
//
// Threading: constants only.

/** Controller register offsets in BAR0. */
export const REG = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  /** First doorbell: SQ y tail at DOORBELLS + 8y, CQ y head at DOORBELLS + 8y + 4 (CAP.DSTRD 0). */
  DOORBELLS: 0x1000,
} as const;

/** BAR0: registers and doorbells. */
export const BAR0_SIZE = 0x4000;
/** The MSI-X table and PBA live in BAR4. */
export const MSIX_BAR = 4;
export const MSIX_VECTORS = 1024;

/** Queue ids 0 (admin) to 15: fifteen I/O queue pairs. */
export const MAX_QUEUES = 16;
export const MAX_IO_QUEUES = MAX_QUEUES - 1;
export const MIN_QUEUE_ENTRIES = 2;
export const MAX_ADMIN_QUEUE_ENTRIES = 4096;
export const MAX_IO_QUEUE_ENTRIES = 65536;

/** Submission and completion queue entry sizes (log2: 6 and 4). */
export const SQE_SIZE = 64;
export const CQE_SIZE = 16;
export const SQES_LOG2 = 6;
export const CQES_LOG2 = 4;

/** The only memory page size (CAP.MPSMIN = MPSMAX = 0: 4 KiB). */
export const PAGE_SIZE = 4096;
/** MDTS in units of the minimum page size, as a power of two: 2^8 pages = 1 MiB. */
export const MDTS = 8;
export const MAX_TRANSFER_BYTES = PAGE_SIZE << MDTS;

/** VS: NVMe 1.0 (major 31:16, minor 15:8), as the seed reports. */
export const NVME_VERSION = 0x0001_0000;

/** CAP, split in its 32-bit halves. */
export const CAP = {
  /** MQES (15:0, zero-based) 0xFFFF: 65536 entries; CQR (16): queues must be physically contiguous; TO (31:24) 0. */
  LO: 0x0000_ffff | (1 << 16),
  /** DSTRD (35:32) 0; CSS (44:37) bit 37 = NVM command set; MPSMIN (51:48) = MPSMAX (55:52) = 0. */
  HI: 1 << (37 - 32),
} as const;

/** Controller Configuration fields. */
export const CC = {
  EN: 1 << 0,
  CSS_SHIFT: 4,
  CSS_MASK: 0x7,
  MPS_SHIFT: 7,
  MPS_MASK: 0xf,
  AMS_SHIFT: 11,
  AMS_MASK: 0x7,
  SHN_SHIFT: 14,
  SHN_MASK: 0x3,
  IOSQES_SHIFT: 16,
  IOSQES_MASK: 0xf,
  IOCQES_SHIFT: 20,
  IOCQES_MASK: 0xf,
  /** Every defined bit: EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES. */
  WRITABLE: 0x00ff_fff1,
  /** Fields that may change only while EN is 0. */
  FROZEN_WHILE_ENABLED: (0x7 << 4) | (0xf << 7) | (0x7 << 11),
} as const;

/** Controller Status fields. */
export const CSTS = {
  RDY: 1 << 0,
  CFS: 1 << 1,
  SHST_SHIFT: 2,
  SHST_MASK: 0x3,
  SHST_NORMAL: 0,
  SHST_COMPLETE: 2,
} as const;

/** Admin Queue Attributes: ASQS 11:0, ACQS 27:16, both zero-based. */
export const AQA = {
  ASQS_MASK: 0xfff,
  ACQS_SHIFT: 16,
  WRITABLE: 0x0fff_0fff,
} as const;

/** Admin command opcodes. */
export const ADMIN_OPC = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT_REQUEST: 0x0c,
  DOORBELL_BUFFER_CONFIG: 0x7c,
} as const;

/** NVM command set I/O opcodes. */
export const NVM_OPC = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  DATASET_MANAGEMENT: 0x09,
} as const;

/** Submission queue entry: dword 0 fields. */
export const SQE_DW0 = {
  OPC_MASK: 0xff,
  FUSE_SHIFT: 8,
  FUSE_MASK: 0x3,
  PSDT_SHIFT: 14,
  PSDT_MASK: 0x3,
  CID_SHIFT: 16,
} as const;

/** Dword indices in a submission queue entry. */
export const SQE = {
  CDW0: 0,
  NSID: 1,
  PRP1_LO: 6,
  PRP1_HI: 7,
  PRP2_LO: 8,
  PRP2_HI: 9,
  CDW10: 10,
  CDW11: 11,
  CDW12: 12,
  CDW13: 13,
  CDW14: 14,
  CDW15: 15,
} as const;

/** Completion entry dword 3: CID 15:0, phase 16, status field 31:17. */
export const CQE_DW3 = {
  PHASE_SHIFT: 16,
  STATUS_SHIFT: 17,
} as const;

/** Status code types. */
export const SCT = {
  GENERIC: 0,
  COMMAND_SPECIFIC: 1,
  MEDIA: 2,
} as const;

/** The 15-bit Status Field: SC 7:0, SCT 10:8, (CRD 12:11, M 13,) DNR 14. */
export const DNR = 1 << 14;
const st = (sct: number, sc: number): number => (sct << 8) | sc;

export const STATUS = {
  SUCCESS: 0,
  // Generic
  INVALID_OPCODE: st(SCT.GENERIC, 0x01),
  INVALID_FIELD: st(SCT.GENERIC, 0x02),
  COMMAND_ID_CONFLICT: st(SCT.GENERIC, 0x03),
  DATA_TRANSFER_ERROR: st(SCT.GENERIC, 0x04),
  INTERNAL_ERROR: st(SCT.GENERIC, 0x06),
  INVALID_NAMESPACE: st(SCT.GENERIC, 0x0b),
  PRP_OFFSET_INVALID: st(SCT.GENERIC, 0x13),
  LBA_OUT_OF_RANGE: st(SCT.GENERIC, 0x80),
  // Command specific
  COMPLETION_QUEUE_INVALID: st(SCT.COMMAND_SPECIFIC, 0x00),
  INVALID_QUEUE_ID: st(SCT.COMMAND_SPECIFIC, 0x01),
  INVALID_QUEUE_SIZE: st(SCT.COMMAND_SPECIFIC, 0x02),
  INVALID_INTERRUPT_VECTOR: st(SCT.COMMAND_SPECIFIC, 0x08),
  INVALID_QUEUE_DELETION: st(SCT.COMMAND_SPECIFIC, 0x0c),
  FEATURE_NOT_SAVEABLE: st(SCT.COMMAND_SPECIFIC, 0x0d),
  WRITE_TO_READ_ONLY_RANGE: st(SCT.COMMAND_SPECIFIC, 0x82),
  // Media and data integrity
  WRITE_FAULT: st(SCT.MEDIA, 0x80),
  UNRECOVERED_READ_ERROR: st(SCT.MEDIA, 0x81),
} as const;

/** Feature identifiers. */
export const FEATURE = {
  VOLATILE_WRITE_CACHE: 0x06,
  NUMBER_OF_QUEUES: 0x07,
  /** Oxide vendor-specific, read-only: bit 0 = the namespace is read-only. */
  OXIDE_DEVICE: 0xf0,
} as const;

/** Identify CNS values (CDW10 7:0). */
export const CNS = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
} as const;

/** Byte offsets in the Identify Controller data structure. */
export const ID_CTRL = {
  VID: 0,
  SSVID: 2,
  SN: 4,
  SN_LEN: 20,
  MN: 24,
  MN_LEN: 40,
  FR: 64,
  FR_LEN: 8,
  IEEE: 73,
  MDTS: 77,
  OACS: 256,
  SQES: 512,
  CQES: 513,
  NN: 516,
  ONCS: 520,
  VWC: 525,
} as const;

/** OACS bit 8: Doorbell Buffer Config. */
export const OACS_DBBUF = 1 << 8;
/** ONCS bit 2: Dataset Management. */
export const ONCS_DSM = 1 << 2;

/** Byte offsets in the Identify Namespace data structure. */
export const ID_NS = {
  NSZE: 0,
  NCAP: 8,
  NUSE: 16,
  NLBAF: 25,
  FLBAS: 26,
  /** LBA Format 0: MS 15:0, LBADS 23:16, RP 25:24. */
  LBAF0: 128,
  LBADS_SHIFT: 16,
} as const;

export const IDENTIFY_BYTES = 4096;

/** Oxide's IEEE OUI A8-40-25, stored least significant byte first as the field is defined. */
export const OXIDE_OUI_LE = [0x25, 0x40, 0xa8] as const;

/** PCI identity: Oxide vendor 0x01DE, device 0; mass storage / NVM / NVMe (enterprise) interface. */
export const PCI_IDENT = {
  vendor: 0x01de,
  device: 0x0000,
  subVendor: 0x01de,
  subDevice: 0x0000,
  class: 0x01,
  subclass: 0x08,
  progIf: 0x02,
} as const;

/** Dataset Management: CDW11 bit 2 Attribute – Deallocate; each range is 16 bytes. */
export const DSM = {
  AD: 1 << 2,
  RANGE_BYTES: 16,
  MAX_RANGES: 256,
} as const;

/** Write/Read CDW12 bit 30: Force Unit Access. */
export const RW_FUA = 1 << 30;

/** Byte offset in BAR0 of a queue's doorbell (CAP.DSTRD 0). */
export function doorbellOffset(qid: number, kind: 'sq' | 'cq'): number {
  return REG.DOORBELLS + 8 * qid + (kind === 'cq' ? 4 : 0);
}
