// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The ACPI tables of a machine, packaged for QEMU-style firmware (SeaBIOS,
// OVMF) through fw_cfg:
//
//   etc/acpi/tables   FACS, DSDT, FADT, MADT, [MCFG], XSDT, concatenated
//   etc/acpi/rsdp     the RSDP (ACPI 2.0+, 36 bytes)
//   etc/table-loader  the commands that place both files in guest memory,
//                     patch the pointers between tables and fix checksums
//
// Pointer fields in the files hold offsets into their target file; the
// loader's ADD_POINTER adds the target's address (see table-loader.ts).
// Checksum fields in the files are zero: the loader computes each after the
// pointers inside its table are patched, and OVMF computes a checksum over
// the range *including* the checksum byte and stores the result, which is
// right only when that byte starts at zero (SeaBIOS subtracts instead, and
// works either way). QEMU keeps them zero for the same reason.
//
// Table formats are from the ACPI 6.0 specification (chapter 5.2):
// revisions RSDP 2, XSDT 1, FADT 6.0 (276 bytes), FACS 2, MADT 4, MCFG 1,
// DSDT 2 (64-bit AML integers).
//
// OEM identification is ours ("OXIDE " / "PROPOLIS"), not the EDK2 strings
// Propolis's byte-compatible V0 tables carry: these tables are not
// byte-compatible with those anyway.
//
// Pure byte generation.

import assert from 'node:assert/strict';
import { ByteWriter } from '../bytes.js';
import { dsdtBody } from './dsdt.js';
import {
  type AcpiMachine,
  IOAPIC_BASE,
  IOAPIC_ID,
  LAPIC_BASE,
  PCIE_ECAM_BASE,
  type PciHoles,
  PM,
  validateMachine,
} from './machine.js';
import { encodeTableLoader, type LoaderEntry, runTableLoader } from './table-loader.js';

export const OEM_ID = 'OXIDE ';
export const OEM_TABLE_ID = 'PROPOLIS';
export const OEM_REVISION = 1;
export const CREATOR_ID = 'OXDE';
export const CREATOR_REVISION = 1;

export const ACPI_TABLES_FILE = 'etc/acpi/tables';
export const ACPI_RSDP_FILE = 'etc/acpi/rsdp';
export const TABLE_LOADER_FILE = 'etc/table-loader';

/** System description table header (ACPI 5.2.6), 36 bytes. */
export const HEADER_SIZE = 36;
export const Header = {
  signature: 0,
  length: 4,
  revision: 8,
  checksum: 9,
  oemId: 10,
  oemTableId: 16,
  oemRevision: 24,
  creatorId: 28,
  creatorRevision: 32,
} as const;

/** FADT field offsets this module fills in (ACPI 5.2.9, table 5-34). */
export const Fadt = {
  FIRMWARE_CTRL: 36,
  DSDT: 40,
  SCI_INT: 46,
  SMI_CMD: 48,
  PM1a_EVT_BLK: 56,
  PM1a_CNT_BLK: 64,
  PM_TMR_BLK: 76,
  GPE0_BLK: 80,
  IAPC_BOOT_ARCH: 109,
  Flags: 112,
  RESET_REG: 116,
  RESET_VALUE: 128,
  X_FIRMWARE_CTRL: 132,
  X_DSDT: 140,
  LENGTH: 276,
} as const;

/** FADT feature flags (table 5-35). */
export const FadtFlag = {
  WBINVD: 1 << 0,
  PROC_C1: 1 << 2,
  PWR_BUTTON: 1 << 4,
  SLP_BUTTON: 1 << 5,
  RTC_S4: 1 << 7,
  TMR_VAL_EXT: 1 << 8,
  RESET_REG_SUP: 1 << 10,
} as const;

/** IA-PC boot architecture flags (table 5-36). */
export const BootArch = { LEGACY_DEVICES: 1 << 0, I8042: 1 << 1 } as const;

/** MADT interrupt controller structure types (table 5-45). */
export const MadtType = { LocalApic: 0, IoApic: 1, InterruptSourceOverride: 2, LocalApicNmi: 4 } as const;

/** MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3. */
export const MpsInti = { ActiveHigh: 0x1, ActiveLow: 0x3, Edge: 0x4, Level: 0xc } as const;

/** Generic Address Structure address spaces and access sizes. */
const GasSpace = { SystemIO: 1 } as const;
const GasAccess = { Byte: 1, Word: 2, DWord: 3 } as const;

/** A table and the pointers inside it, before assembly. */
interface Table {
  signature: string;
  bytes: Uint8Array;
  /** Pointer fields: `size` bytes at `offset` hold the address of table `target`. */
  pointers: { offset: number; size: 4 | 8; target: string }[];
  /** FACS has no checksum. */
  checksummed: boolean;
}

function header(w: ByteWriter, signature: string, revision: number, oemTableId = OEM_TABLE_ID): void {
  w.ascii(signature, 4)
    .u32(0) // length, set by finishTable
    .u8(revision)
    .u8(0) // checksum: computed by the loader
    .ascii(OEM_ID, 6)
    .ascii(oemTableId, 8)
    .u32(OEM_REVISION)
    .ascii(CREATOR_ID, 4)
    .u32(CREATOR_REVISION);
}

function finishTable(w: ByteWriter, signature: string, pointers: Table['pointers'] = []): Table {
  const bytes = w.finish();
  new DataView(bytes.buffer).setUint32(Header.length, bytes.length, true);
  return { signature, bytes, pointers, checksummed: true };
}

function gas(w: ByteWriter, space: number, bits: number, access: number, address: number): void {
  w.u8(space).u8(bits).u8(0).u8(access).u64(address);
}

const noGas = (w: ByteWriter): void => void w.zeros(12);

/** FACS (5.2.10): 64 bytes, 64-byte aligned; no header checksum. */
function facs(): Table {
  const w = new ByteWriter()
    .ascii('FACS', 4)
    .u32(64)
    .u32(0) // hardware signature
    .u32(0) // firmware waking vector
    .u32(0) // global lock
    .u32(0) // flags: no S4BIOS, no 64-bit wake
    .u64(0) // X firmware waking vector
    .u8(2) // version
    .zeros(3)
    .u32(0) // OSPM flags
    .zeros(24);
  assert.equal(w.length, 64);
  return { signature: 'FACS', bytes: w.finish(), pointers: [], checksummed: false };
}

function dsdt(m: AcpiMachine, holes: PciHoles): Table {
  const w = new ByteWriter();
  header(w, 'DSDT', 2);
  w.bytes(dsdtBody(m, holes));
  return finishTable(w, 'DSDT');
}

/** FADT (5.2.9), revision 6.0; values from the PIIX4 PM block (reference §7.3). */
function fadt(): Table {
  const w = new ByteWriter();
  header(w, 'FACP', 6);
  w.u32(0) // FIRMWARE_CTRL → FACS
    .u32(0) // DSDT → DSDT
    .u8(0) // reserved (INT_MODEL in ACPI 1.0)
    .u8(0) // preferred PM profile: unspecified
    .u16(PM.SCI_IRQ)
    .u32(PM.SMI_CMD)
    .u8(PM.ACPI_ENABLE)
    .u8(PM.ACPI_DISABLE)
    .u8(0) // S4BIOS_REQ
    .u8(0) // PSTATE_CNT
    .u32(PM.PM1A_EVT)
    .u32(0) // PM1b_EVT_BLK
    .u32(PM.PM1A_CNT)
    .u32(0) // PM1b_CNT_BLK
    .u32(0) // PM2_CNT_BLK
    .u32(PM.PM_TMR)
    .u32(PM.GPE0)
    .u32(0) // GPE1_BLK
    .u8(PM.PM1_EVT_LEN)
    .u8(PM.PM1_CNT_LEN)
    .u8(0) // PM2_CNT_LEN
    .u8(PM.PM_TMR_LEN)
    .u8(PM.GPE0_LEN)
    .u8(0) // GPE1_BLK_LEN
    .u8(0) // GPE1_BASE
    .u8(0) // CST_CNT
    .u16(101) // P_LVL2_LAT > 100: C2 not supported
    .u16(1001) // P_LVL3_LAT > 1000: C3 not supported
    .u16(0) // FLUSH_SIZE
    .u16(0) // FLUSH_STRIDE
    .u8(0) // DUTY_OFFSET
    .u8(0) // DUTY_WIDTH
    .u8(0) // DAY_ALRM
    .u8(0) // MON_ALRM
    .u8(0) // CENTURY: no RTC century register is promised
    // Propolis leaves these flags empty; we have an 8042 and ISA devices,
    // and Linux trusts the 8042 flag from FADT revision 3 on.
    .u16(BootArch.LEGACY_DEVICES | BootArch.I8042)
    .u8(0) // reserved
    .u32(
      FadtFlag.WBINVD |
        FadtFlag.PROC_C1 |
        FadtFlag.SLP_BUTTON |
        FadtFlag.RTC_S4 |
        FadtFlag.TMR_VAL_EXT |
        FadtFlag.RESET_REG_SUP,
    );
  gas(w, GasSpace.SystemIO, 8, GasAccess.Byte, PM.RESET_PORT);
  w.u8(PM.RESET_VALUE)
    .u16(0) // ARM_BOOT_ARCH
    .u8(0) // FADT minor version: 6.0
    // X_FIRMWARE_CTRL stays zero: the FACS is below 4 GiB and the
    // specification requires one of the two FACS fields to be zero.
    .u64(0)
    .u64(0); // X_DSDT → DSDT
  gas(w, GasSpace.SystemIO, 8 * PM.PM1_EVT_LEN, GasAccess.Word, PM.PM1A_EVT);
  noGas(w); // X_PM1b_EVT_BLK
  gas(w, GasSpace.SystemIO, 8 * PM.PM1_CNT_LEN, GasAccess.Word, PM.PM1A_CNT);
  noGas(w); // X_PM1b_CNT_BLK
  noGas(w); // X_PM2_CNT_BLK
  gas(w, GasSpace.SystemIO, 8 * PM.PM_TMR_LEN, GasAccess.DWord, PM.PM_TMR);
  gas(w, GasSpace.SystemIO, 8 * PM.GPE0_LEN, GasAccess.Byte, PM.GPE0);
  noGas(w); // X_GPE1_BLK
  noGas(w); // SLEEP_CONTROL_REG (hardware-reduced only)
  noGas(w); // SLEEP_STATUS_REG
  w.u64(0); // hypervisor vendor identity
  assert.equal(w.length, Fadt.LENGTH);
  return finishTable(w, 'FACP', [
    { offset: Fadt.FIRMWARE_CTRL, size: 4, target: 'FACS' },
    { offset: Fadt.DSDT, size: 4, target: 'DSDT' },
    { offset: Fadt.X_DSDT, size: 8, target: 'DSDT' },
  ]);
}

/** ISA IRQs whose IOAPIC pins are level-triggered, active-high: PCI links and the SCI. */
export const LEVEL_ISA_IRQS = [5, 9, 10, 11] as const;

/** MADT (5.2.12), revision 4. */
function madt(m: AcpiMachine): Table {
  const w = new ByteWriter();
  header(w, 'APIC', 4);
  w.u32(LAPIC_BASE).u32(1); // flags: PCAT_COMPAT (dual 8259s present)
  for (let i = 0; i < m.cpus; i++) {
    // ACPI processor UID = APIC ID = vCPU index; flags: enabled.
    w.u8(MadtType.LocalApic).u8(8).u8(i).u8(i).u32(1);
  }
  w.u8(MadtType.IoApic).u8(12).u8(IOAPIC_ID).u8(0).u32(IOAPIC_BASE).u32(0);
  // The PIT's IRQ 0 arrives on IOAPIC pin 2; polarity and trigger conform to ISA.
  w.u8(MadtType.InterruptSourceOverride).u8(10).u8(0).u8(0).u32(2).u16(0);
  for (const irq of LEVEL_ISA_IRQS) {
    w.u8(MadtType.InterruptSourceOverride)
      .u8(10)
      .u8(0)
      .u8(irq)
      .u32(irq)
      .u16(MpsInti.ActiveHigh | MpsInti.Level);
  }
  // NMI on LINT1 of every processor (UID 0xFF), bus-conforming polarity/trigger.
  w.u8(MadtType.LocalApicNmi).u8(6).u8(0xff).u16(0).u8(1);
  return finishTable(w, 'APIC');
}

/** MCFG (PCI Firmware Specification 3.0, 4.1.2): one ECAM segment, buses 0-255. */
function mcfg(): Table {
  const w = new ByteWriter();
  header(w, 'MCFG', 1);
  w.zeros(8).u64(PCIE_ECAM_BASE).u16(0).u8(0).u8(255).u32(0);
  return finishTable(w, 'MCFG');
}

function xsdt(entries: string[]): Table {
  const w = new ByteWriter();
  header(w, 'XSDT', 1);
  const pointers = entries.map((target, i) => ({ offset: HEADER_SIZE + 8 * i, size: 8 as const, target }));
  w.zeros(8 * entries.length);
  return finishTable(w, 'XSDT', pointers);
}

/** RSDP (5.2.5.3) field offsets. */
export const Rsdp = {
  checksum: 8,
  revision: 15,
  rsdtAddress: 16,
  length: 20,
  xsdtAddress: 24,
  extendedChecksum: 32,
  LENGTH: 36,
  /** The ACPI 1.0 checksum covers the first 20 bytes. */
  V1_LENGTH: 20,
} as const;

function rsdp(xsdtOffset: number): Uint8Array {
  const w = new ByteWriter()
    .ascii('RSD PTR ', 8)
    .u8(0) // checksum: computed by the loader
    .ascii(OEM_ID, 6)
    .u8(2) // revision: ACPI 2.0+
    .u32(0) // RsdtAddress: no RSDT
    .u32(Rsdp.LENGTH)
    .u64(xsdtOffset) // XsdtAddress → XSDT (offset until the loader patches it)
    .u8(0) // extended checksum: computed by the loader
    .zeros(3);
  return w.finish();
}

/** Where a table sits inside etc/acpi/tables. */
export interface AcpiTableLayout {
  signature: string;
  offset: number;
  length: number;
}

export interface AcpiBuild {
  /** etc/acpi/tables */
  tables: Uint8Array;
  /** etc/acpi/rsdp */
  rsdp: Uint8Array;
  /** etc/table-loader */
  loader: Uint8Array;
  /** The three fw_cfg files, ready to add. */
  files: { name: string; bytes: Uint8Array }[];
  layout: AcpiTableLayout[];
  loaderEntries: LoaderEntry[];
}

/** Alignment of etc/acpi/tables: the FACS at its start needs 64. */
const TABLES_ALIGN = 64;
const RSDP_ALIGN = 16;

/**
 * Builds all tables for `m`. Throws FirmwareConfigError for a description
 * the tables cannot express.
 */
export function buildAcpi(m: AcpiMachine): AcpiBuild {
  const holes = validateMachine(m);
  const described = [fadt(), madt(m), ...(m.enablePcie ? [mcfg()] : [])];
  // FACS first: the allocation's alignment is then the FACS's.
  const all = [facs(), dsdt(m, holes), ...described, xsdt(described.map((t) => t.signature))];

  const layout: AcpiTableLayout[] = [];
  let size = 0;
  for (const t of all) {
    layout.push({ signature: t.signature, offset: size, length: t.bytes.length });
    size += t.bytes.length;
  }
  const offsetOf = (sig: string): number => {
    const l = layout.find((x) => x.signature === sig);
    assert(l, `no ${sig} table`);
    return l.offset;
  };

  const tables = new Uint8Array(size);
  const view = new DataView(tables.buffer);
  const entries: LoaderEntry[] = [
    { command: 'allocate', file: ACPI_TABLES_FILE, align: TABLES_ALIGN, zone: 'high' },
    { command: 'allocate', file: ACPI_RSDP_FILE, align: RSDP_ALIGN, zone: 'fseg' },
  ];
  for (const t of all) {
    const base = offsetOf(t.signature);
    tables.set(t.bytes, base);
    for (const p of t.pointers) {
      const target = offsetOf(p.target);
      if (p.size === 4) view.setUint32(base + p.offset, target, true);
      else view.setBigUint64(base + p.offset, BigInt(target), true);
      entries.push({
        command: 'add-pointer',
        dest: ACPI_TABLES_FILE,
        src: ACPI_TABLES_FILE,
        offset: base + p.offset,
        size: p.size,
      });
    }
    if (t.checksummed) {
      entries.push({
        command: 'add-checksum',
        file: ACPI_TABLES_FILE,
        offset: base + Header.checksum,
        start: base,
        length: t.bytes.length,
      });
    }
  }

  const rsdpBytes = rsdp(offsetOf('XSDT'));
  entries.push(
    { command: 'add-pointer', dest: ACPI_RSDP_FILE, src: ACPI_TABLES_FILE, offset: Rsdp.xsdtAddress, size: 8 },
    { command: 'add-checksum', file: ACPI_RSDP_FILE, offset: Rsdp.checksum, start: 0, length: Rsdp.V1_LENGTH },
    { command: 'add-checksum', file: ACPI_RSDP_FILE, offset: Rsdp.extendedChecksum, start: 0, length: Rsdp.LENGTH },
  );
  const loader = encodeTableLoader(entries);
  return {
    tables,
    rsdp: rsdpBytes,
    loader,
    files: [
      { name: ACPI_TABLES_FILE, bytes: tables },
      { name: ACPI_RSDP_FILE, bytes: rsdpBytes },
      { name: TABLE_LOADER_FILE, bytes: loader },
    ],
    layout,
    loaderEntries: entries,
  };
}

export interface ResolvedAcpi {
  /** etc/acpi/tables as placed at `tablesAt`. */
  tables: Uint8Array;
  /** etc/acpi/rsdp as placed at `rsdpAt`. */
  rsdp: Uint8Array;
  /** Each table by signature ("RSDP" too), pointers resolved, checksums fixed. */
  standalone: Map<string, Uint8Array>;
}

/**
 * Runs the loader as firmware would, with etc/acpi/tables at `tablesAt` and
 * etc/acpi/rsdp at `rsdpAt`: the tables as a guest finds them, e.g. for
 * iasl or for a loader that places tables itself.
 */
export function resolveAcpi(b: AcpiBuild, tablesAt: bigint, rsdpAt: bigint): ResolvedAcpi {
  const files = new Map([
    [ACPI_TABLES_FILE, b.tables],
    [ACPI_RSDP_FILE, b.rsdp],
  ]);
  const placed = runTableLoader(b.loaderEntries, files, (file) => (file === ACPI_TABLES_FILE ? tablesAt : rsdpAt));
  const tables = placed.get(ACPI_TABLES_FILE)!.bytes;
  const rsdpBytes = placed.get(ACPI_RSDP_FILE)!.bytes;
  const standalone = new Map<string, Uint8Array>();
  for (const l of b.layout) standalone.set(l.signature, tables.slice(l.offset, l.offset + l.length));
  standalone.set('RSDP', rsdpBytes.slice());
  return { tables, rsdp: rsdpBytes, standalone };
}
