// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The guest-visible interface of QEMU's firmware configuration device
// (fw_cfg), as QEMU's docs/specs/fw_cfg.rst describes it for x86: the I/O
// ports, the well-known selector keys, the DMA control bits and the layout
// of the file directory. Names follow the specification's.
//
// Threading: constants only.

/** Selector register: a 16-bit little-endian write picks an item and rewinds it. */
export const FW_CFG_PORT_SEL = 0x510;
/** Data register: byte reads return the selected item's bytes in order. */
export const FW_CFG_PORT_DATA = 0x511;
/** DMA address register, most significant half (big-endian 32-bit write). */
export const FW_CFG_PORT_DMA_HI = 0x514;
/** DMA address register, least significant half; writing it starts the operation. */
export const FW_CFG_PORT_DMA_LO = 0x518;
/** The DMA address register spans eight ports. */
export const FW_CFG_DMA_PORTS = 8;

/** Well-known selector keys ("legacy" items that predate the file directory). */
export const FwCfgKey = {
  SIGNATURE: 0x0000,
  ID: 0x0001,
  UUID: 0x0002,
  RAM_SIZE: 0x0003,
  NOGRAPHIC: 0x0004,
  NB_CPUS: 0x0005,
  MACHINE_ID: 0x0006,
  KERNEL_ADDR: 0x0007,
  KERNEL_SIZE: 0x0008,
  KERNEL_CMDLINE: 0x0009,
  INITRD_ADDR: 0x000a,
  INITRD_SIZE: 0x000b,
  BOOT_DEVICE: 0x000c,
  NUMA: 0x000d,
  BOOT_MENU: 0x000e,
  MAX_CPUS: 0x000f,
  KERNEL_ENTRY: 0x0010,
  KERNEL_DATA: 0x0011,
  INITRD_DATA: 0x0012,
  CMDLINE_ADDR: 0x0013,
  CMDLINE_SIZE: 0x0014,
  CMDLINE_DATA: 0x0015,
  SETUP_ADDR: 0x0016,
  SETUP_SIZE: 0x0017,
  SETUP_DATA: 0x0018,
  FILE_DIR: 0x0019,
  /** Named items ("files") get keys from here up, in directory order. */
  FILE_FIRST: 0x0020,
} as const;

/**
 * Selector bits above the item index. Bit 14 once meant "write through the
 * data port" (ignored since QEMU 2.4: an item reads the same with or without
 * it); bit 15 selects the architecture-specific key space.
 */
export const FwCfgSelector = {
  WRITE_CHANNEL: 0x4000,
  ARCH_LOCAL: 0x8000,
  /** Index bits within a key space. */
  INDEX_MASK: 0x3fff,
  /** What identifies an item: the index and the key space, not the write bit. */
  KEY_MASK: 0xbfff,
} as const;

/** Interface ID (item 0x0001) feature bits. */
export const FwCfgId = {
  /** The selector/data ports. Always set. */
  TRADITIONAL: 1 << 0,
  /** The DMA interface at 0x514/0x518. */
  DMA: 1 << 1,
} as const;

/** Control word of a DMA access (`FWCfgDmaAccess.control`, big-endian in guest memory). */
export const FwCfgDmaCtl = {
  ERROR: 1 << 0,
  READ: 1 << 1,
  SKIP: 1 << 2,
  /** The item key is in bits 16–31. */
  SELECT: 1 << 3,
  WRITE: 1 << 4,
} as const;

/** A DMA access descriptor: control u32, length u32, address u64, all big-endian. */
export const FW_CFG_DMA_DESC = { size: 16, control: 0, length: 4, address: 8 } as const;

/** Read from the DMA address register when DMA is present: "QEMU CFG" as a big-endian u64. */
export const FW_CFG_DMA_SIGNATURE = 'QEMU CFG';

/** The file directory (item 0x0019): a big-endian u32 count, then one entry per file. */
export const FW_CFG_FILE_DIR = {
  headerSize: 4,
  entrySize: 64,
  /** Within an entry: size u32 BE, select u16 BE, reserved u16, name. */
  size: 0,
  select: 4,
  reserved: 6,
  name: 8,
  /** The name field, NUL-terminated, so a name has at most 55 bytes. */
  nameField: 56,
} as const;

/** E820 address range types as firmware understands them. */
export const E820Type = {
  RAM: 1,
  RESERVED: 2,
  ACPI: 3,
  NVS: 4,
  UNUSABLE: 5,
} as const;

/** One `etc/e820` entry: base u64, length u64, type u32, little-endian. */
export const E820_ENTRY_SIZE = 20;
