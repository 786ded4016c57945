// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PCI configuration-space layout and bit names (PCI Local Bus Specification
// 3.0, PCI-to-PCI Bridge Architecture Specification 1.2), plus the vendor
// and class codes this VMM uses.
//
// Threading: constants only.

/** Size of a conventional function's configuration space (no ECAM extended space). */
export const PCI_CFG_SIZE = 256;
/** First byte after the predefined header; capabilities and device registers live above it. */
export const PCI_CFG_HEADER_END = 0x40;

export const PCI_MAX_BUSES = 256;
export const PCI_MAX_DEVICES = 32;
export const PCI_MAX_FUNCTIONS = 8;

/** Header registers common to type 0 and type 1. */
export const CFG = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BAR0: 0x10,
  CAP_PTR: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** Type 0 (endpoint) header registers. */
export const CFG0 = {
  CARDBUS_CIS: 0x28,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  MIN_GNT: 0x3e,
  MAX_LAT: 0x3f,
  BARS: 6,
} as const;

/** Type 1 (PCI-to-PCI bridge) header registers. */
export const CFG1 = {
  PRIMARY_BUS: 0x18,
  SECONDARY_BUS: 0x19,
  SUBORDINATE_BUS: 0x1a,
  SEC_LATENCY_TIMER: 0x1b,
  IO_BASE: 0x1c,
  IO_LIMIT: 0x1d,
  SEC_STATUS: 0x1e,
  MEMORY_BASE: 0x20,
  MEMORY_LIMIT: 0x22,
  PREF_MEMORY_BASE: 0x24,
  PREF_MEMORY_LIMIT: 0x26,
  PREF_BASE_UPPER32: 0x28,
  PREF_LIMIT_UPPER32: 0x2c,
  IO_BASE_UPPER16: 0x30,
  IO_LIMIT_UPPER16: 0x32,
  ROM_ADDRESS1: 0x38,
  BRIDGE_CONTROL: 0x3e,
  BARS: 2,
} as const;

export const COMMAND = {
  IO_SPACE: 0x0001,
  MEMORY_SPACE: 0x0002,
  BUS_MASTER: 0x0004,
  PARITY_ERROR_RESPONSE: 0x0040,
  SERR_ENABLE: 0x0100,
  INTX_DISABLE: 0x0400,
} as const;

/** Command bits a guest can change on every function here. */
export const COMMAND_WRITABLE =
  COMMAND.IO_SPACE |
  COMMAND.MEMORY_SPACE |
  COMMAND.BUS_MASTER |
  COMMAND.PARITY_ERROR_RESPONSE |
  COMMAND.SERR_ENABLE |
  COMMAND.INTX_DISABLE;

export const STATUS = {
  INTERRUPT: 0x0008,
  CAP_LIST: 0x0010,
  MASTER_DATA_PARITY_ERROR: 0x0100,
  SIGNALED_TARGET_ABORT: 0x0800,
  RECEIVED_TARGET_ABORT: 0x1000,
  RECEIVED_MASTER_ABORT: 0x2000,
  SIGNALED_SYSTEM_ERROR: 0x4000,
  DETECTED_PARITY_ERROR: 0x8000,
} as const;

/** Status bits that are write-1-to-clear (the error bits). */
export const STATUS_W1C =
  STATUS.MASTER_DATA_PARITY_ERROR |
  STATUS.SIGNALED_TARGET_ABORT |
  STATUS.RECEIVED_TARGET_ABORT |
  STATUS.RECEIVED_MASTER_ABORT |
  STATUS.SIGNALED_SYSTEM_ERROR |
  STATUS.DETECTED_PARITY_ERROR;

/** Low bits of a BAR that describe it rather than its address. */
export const BAR_BITS = {
  SPACE_IO: 0x1,
  MEM_TYPE_64: 0x4,
  MEM_PREFETCH: 0x8,
  IO_FLAGS_MASK: 0x3,
  MEM_FLAGS_MASK: 0xf,
} as const;

export const HEADER_TYPE = {
  NORMAL: 0x00,
  BRIDGE: 0x01,
  MULTI_FUNCTION: 0x80,
} as const;

export const BRIDGE_CONTROL_WRITABLE = 0x006f; // parity, SERR, ISA, VGA, master abort mode, secondary reset

export const CAP_ID = {
  VENDOR: 0x09,
  MSIX: 0x11,
} as const;

/** MSI-X capability layout and table-entry layout (PCI 3.0 §6.8.2). */
export const MSIX = {
  CAP_LEN: 12,
  CTRL: 2,
  TABLE: 4,
  PBA: 8,
  CTRL_TABLE_SIZE: 0x07ff,
  CTRL_FUNCTION_MASK: 0x4000,
  CTRL_ENABLE: 0x8000,
  BIR_MASK: 0x7,
  ENTRY_SIZE: 16,
  ENTRY_ADDR_LO: 0,
  ENTRY_ADDR_HI: 4,
  ENTRY_DATA: 8,
  ENTRY_VECTOR_CTRL: 12,
  VECTOR_CTRL_MASK: 0x1,
  MAX_VECTORS: 2048,
} as const;

/** INTx pins as the Interrupt Pin register encodes them (0 = none). */
export const INTX_PIN = { NONE: 0, INTA: 1, INTB: 2, INTC: 3, INTD: 4 } as const;

export const VENDOR_ID = {
  INTEL: 0x8086,
  OXIDE: 0x01de,
  VIRTIO: 0x1af4,
} as const;

export const CLASS_CODE = {
  BRIDGE: 0x06,
} as const;

export const BRIDGE_SUBCLASS = {
  HOST: 0x00,
  ISA: 0x01,
  PCI: 0x04,
  OTHER: 0x80,
} as const;
