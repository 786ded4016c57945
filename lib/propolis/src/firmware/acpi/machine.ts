// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The machine as the ACPI tables describe it: what the caller passes in
// (`AcpiMachine`) and the fixed facts of the platform (Propolis's i440FX +
// PIIX3/PIIX4 layout, reference §2 and §7) that the tables repeat.
//
// Pure data and validation.

import { FirmwareConfigError } from '../errors.js';

export type SerialPort = 'com1' | 'com2' | 'com3' | 'com4';

/** A guest-physical address range [base, base + size). */
export interface Range32 {
  base: number;
  size: number;
}
export interface Range64 {
  base: bigint;
  size: bigint;
}

/** Where PCI devices may place BARs (the host bridge's _CRS windows). */
export interface PciHoles {
  /** Windows below 4 GiB; must not cover RAM, ECAM, the IOAPIC, HPET, LAPIC or the bootrom. */
  mmio32: Range32[];
  /** One window above RAM, above 4 GiB. */
  mmio64?: Range64;
}

export interface AcpiMachine {
  /** vCPUs, 1..MAX_CPUS; APIC IDs and ACPI processor UIDs are 0..cpus-1. */
  cpus: number;
  /** End of RAM below 4 GiB, in bytes (RAM is [0, lowmemTop)). */
  lowmemTop: number;
  /** Bytes of RAM above 4 GiB (at [4 GiB, 4 GiB + highmem)). */
  highmem: number;
  /** Defaults to `defaultPciHoles(machine)`. */
  pciHoles?: PciHoles;
  /** ISA serial ports present, each described with its fixed port and IRQ. */
  serialPorts: readonly SerialPort[];
  /** ECAM at PCIE_ECAM_BASE: adds an MCFG table and reserves the window. */
  enablePcie: boolean;
}

/** Propolis supports 1..32 vCPUs; xAPIC MADT entries would allow 255. */
export const MAX_CPUS = 32;

export const GiB = 1024 * 1024 * 1024;
export const FOUR_GIB = 4 * GiB;
/** Low RAM never extends past the 32-bit MMIO region (reference §2). */
export const LOWMEM_MAX = 3 * GiB;

export const IOAPIC_BASE = 0xfec0_0000;
export const IOAPIC_ID = 2;
export const LAPIC_BASE = 0xfee0_0000;
/** First address the 32-bit PCI window may not reach: IOAPIC, HPET, LAPIC and bootrom sit above. */
export const MMIO32_LIMIT = 0xfec0_0000;
/** PCIe ECAM: 256 buses × 32 devices × 8 functions × 4 KiB. */
export const PCIE_ECAM_BASE = 0xe000_0000;
export const PCIE_ECAM_SIZE = 0x1000_0000;
/** End of the 64-bit MMIO region (reference §2: highmem end .. 0x1000_0000_0000). */
export const MMIO64_LIMIT = 0x1000_0000_0000n;

/** PIIX4 PM block and the chipset's fixed ACPI registers (reference §7 and §7.3). */
export const PM = {
  SCI_IRQ: 9,
  SMI_CMD: 0xb2,
  ACPI_ENABLE: 0xf1,
  ACPI_DISABLE: 0xf0,
  PM1A_EVT: 0xb000,
  PM1_EVT_LEN: 4,
  PM1A_CNT: 0xb004,
  PM1_CNT_LEN: 2,
  PM_TMR: 0xb008,
  PM_TMR_LEN: 4,
  GPE0: 0xafe0,
  GPE0_LEN: 4,
  /** The whole PIIX4 PM I/O block. */
  BLOCK_LEN: 0x40,
  RESET_PORT: 0xcf9,
  RESET_VALUE: 6,
} as const;

/** SLP_TYP values of the PIIX4 PM1_CNT register (type 0 powers off). */
export const SLP_TYP = { S0: 5, S5: 0 } as const;

export const SERIAL_PORTS: Record<SerialPort, { port: number; irq: number; uid: number }> = {
  com1: { port: 0x3f8, irq: 4, uid: 1 },
  com2: { port: 0x2f8, irq: 3, uid: 2 },
  com3: { port: 0x3e8, irq: 4, uid: 3 },
  com4: { port: 0x2e8, irq: 3, uid: 4 },
};

/** fw_cfg I/O ports: selector 0x510, data 0x511, DMA address 0x514..0x51B. */
export const FW_CFG_PORT = 0x510;
export const FW_CFG_PORT_LEN = 0x0c;

/**
 * Default PCI windows: everything between the end of low RAM and the
 * IOAPIC (minus ECAM when it is enabled), and from the end of high RAM to
 * MMIO64_LIMIT.
 */
export function defaultPciHoles(m: Pick<AcpiMachine, 'lowmemTop' | 'highmem' | 'enablePcie'>): PciHoles {
  const mmio32: Range32[] = [];
  const add = (base: number, end: number): void => {
    if (end > base) mmio32.push({ base, size: end - base });
  };
  if (m.enablePcie) {
    add(m.lowmemTop, Math.min(PCIE_ECAM_BASE, MMIO32_LIMIT));
    add(Math.max(m.lowmemTop, PCIE_ECAM_BASE + PCIE_ECAM_SIZE), MMIO32_LIMIT);
  } else {
    add(m.lowmemTop, MMIO32_LIMIT);
  }
  const base64 = BigInt(FOUR_GIB) + BigInt(m.highmem);
  return { mmio32, mmio64: base64 < MMIO64_LIMIT ? { base: base64, size: MMIO64_LIMIT - base64 } : undefined };
}

const fail = (msg: string): never => {
  throw new FirmwareConfigError(`ACPI tables: ${msg}`);
};

/** Checks a description; returns the PCI holes to use. */
export function validateMachine(m: AcpiMachine): PciHoles {
  if (!Number.isInteger(m.cpus) || m.cpus < 1 || m.cpus > MAX_CPUS)
    fail(`vCPU count ${m.cpus} is not in 1..${MAX_CPUS}`);
  if (!Number.isSafeInteger(m.lowmemTop) || m.lowmemTop < 0x10_0000 || m.lowmemTop > LOWMEM_MAX)
    fail(`low memory top 0x${m.lowmemTop.toString(16)} is not in 1 MiB..3 GiB`);
  if (!Number.isSafeInteger(m.highmem) || m.highmem < 0) fail(`high memory size ${m.highmem} is invalid`);
  for (const p of m.serialPorts) if (!(p in SERIAL_PORTS)) fail(`unknown serial port ${String(p)}`);
  if (new Set(m.serialPorts).size !== m.serialPorts.length) fail('a serial port is listed twice');
  const holes = m.pciHoles ?? defaultPciHoles(m);
  for (const h of holes.mmio32) {
    const end = h.base + h.size;
    if (!Number.isSafeInteger(h.base) || !Number.isSafeInteger(h.size) || h.size <= 0)
      fail(`bad 32-bit PCI window ${h.base}+${h.size}`);
    if (h.base < m.lowmemTop || end > MMIO32_LIMIT)
      fail(`32-bit PCI window 0x${h.base.toString(16)}+0x${h.size.toString(16)} overlaps RAM or the APIC/ROM area`);
    if (m.enablePcie && h.base < PCIE_ECAM_BASE + PCIE_ECAM_SIZE && PCIE_ECAM_BASE < end)
      fail('a 32-bit PCI window overlaps ECAM');
  }
  const w = holes.mmio64;
  if (w && (w.size <= 0n || w.base < BigInt(FOUR_GIB) + BigInt(m.highmem) || w.base + w.size > 1n << 64n))
    fail(`64-bit PCI window 0x${w.base.toString(16)}+0x${w.size.toString(16)} overlaps RAM or is invalid`);
  return holes;
}
