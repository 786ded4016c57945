// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The DSDT's contents: the namespace of our i440FX/PIIX machine.
//
//   \_SB.PCI0            host bridge (PNP0A03): windows, INTx routing (_PRT)
//   \_SB.PCI0.LPC_       PIIX3 ISA bridge at 00:01.0, its PIRQ registers
//     PIC_ TMR_ RTC_ KBD_ MOU_ COMn   the legacy ISA devices
//   \_SB.PCI0.FWCF       fw_cfg (QEMU0002), for Linux's qemu_fw_cfg
//   \_SB.PCI0.MRES       motherboard resources (PNP0C02): PM/GPE ports, ECAM
//   \_SB.LNKA..LNKD      PCI interrupt links (PNP0C0F) over PIRQA..D
//   \_SB.Cnnn            processors (ACPI0007), _UID = MADT processor UID
//   \_S0_, \_S5_         sleep type values for PIIX4 PM1_CNT.SLP_TYP
//
// Written from the ACPI specification's device and object definitions; the
// layout (names, which devices exist) is our own.
//
// Pure byte generation.

import { concat } from '../bytes.js';
import {
  type Aml,
  and,
  argN,
  call,
  derefOf,
  device,
  eisaId,
  field,
  FieldAccess,
  ifThen,
  index,
  lEqual,
  local,
  method,
  name,
  operationRegion,
  or,
  pkg,
  ref,
  RegionSpace,
  ret,
  scope,
  store,
  string,
  Zero,
} from './aml.js';
import {
  type AcpiMachine,
  FW_CFG_PORT,
  FW_CFG_PORT_LEN,
  PCIE_ECAM_BASE,
  PCIE_ECAM_SIZE,
  type PciHoles,
  PM,
  SERIAL_PORTS,
  SLP_TYP,
} from './machine.js';
import {
  dwordMemory,
  interrupt,
  type InterruptMode,
  io,
  irqNoFlags,
  memory32Fixed,
  qwordMemory,
  resourceTemplate,
  wordBusNumber,
  wordIo,
} from './resources.js';

/** Link devices, index 0..3 ↔ PIRQA..PIRQD ↔ PIIX3 config registers 0x60..0x63. */
export const PCI_LINKS = ['LNKA', 'LNKB', 'LNKC', 'LNKD'] as const;
/** First PIRQ route control register in the PIIX3's PCI config space. */
export const PIIX_PIRQRC = 0x60;
/**
 * ISA IRQs a link may be routed to. The MADT marks exactly these (and the
 * SCI, 9) level-triggered active-high, as PCI INTx lines are in this
 * machine; firmware (SeaBIOS, OVMF) programs the links to 10 and 11.
 */
export const LINK_IRQS = [5, 10, 11] as const;
/** Level, active-high, shared: how PCI INTx reaches the IOAPIC in this machine. */
const LINK_MODE: InterruptMode = { edge: false, activeLow: false, shared: true };

/**
 * INTx routing of bus-0 devices, the rule of Propolis (reference §7) and of
 * SeaBIOS's PIIX support:
 *
 *   link = (slot + pin + 3) mod 4,   pin 0 = INTA .. 3 = INTD, link 0 = LNKA
 *
 * which is Propolis's "(device + pin(A=1..D=4) + 2) mod 4" with the pin
 * counted from 0: slot 1 INTA → LNKA, slot 2 INTA → LNKB, slot 1 INTB → LNKB.
 * The PCI model must raise PIRQ[link] for (slot, pin) by the same rule.
 */
export function intxLink(slot: number, pin: number): number {
  return (slot + pin + 3) % 4;
}

const PIRQ_FIELDS = ['PRQA', 'PRQB', 'PRQC', 'PRQD'] as const;
const LPC_PATH = '\\_SB.PCI0.LPC_';
/** PIRQ register bit 7: routing disabled; bits 0-3: the ISA IRQ. */
const PIRQ_DISABLE = 0x80;
const PIRQ_IRQ_MASK = 0x0f;
/**
 * Byte offset of the (first) interrupt number in an extended interrupt
 * descriptor: tag, 16-bit length, flags, count. ISA IRQs fit its low byte.
 */
const IRQ_NUMBER_OFFSET = 5;

/** Name(_HID, EisaId(id)) */
const hid = (id: string): Aml => name('_HID', eisaId(id));

function hostBridgeCrs(holes: PciHoles): Aml {
  const windows: Aml[] = [
    wordBusNumber(0x00, 0xff),
    // The configuration mechanism #1 ports are the bridge's own.
    io(0x0cf8, 0x0cf8, 1, 8),
    wordIo(0x0000, 0x0cf7),
    wordIo(0x0d00, 0xffff),
    ...holes.mmio32.map((h) => dwordMemory(h.base, h.base + h.size - 1)),
  ];
  if (holes.mmio64) windows.push(qwordMemory(holes.mmio64.base, holes.mmio64.base + holes.mmio64.size - 1n));
  return resourceTemplate(...windows);
}

/** _PRT: one entry per (slot 1..31, pin INTA..INTD) of bus 0. */
function routingTable(): Aml {
  const entries: Aml[] = [];
  for (let slot = 1; slot < 32; slot++) {
    for (let pin = 0; pin < 4; pin++) {
      // Address: device in the high word, 0xFFFF = any function.
      entries.push(pkg((slot << 16) | 0xffff, pin, ref(`\\_SB.${PCI_LINKS[intxLink(slot, pin)]}`), 0));
    }
  }
  return name('_PRT', pkg(...entries));
}

function lpcBridge(m: AcpiMachine): Aml {
  const isa: Aml[] = [
    device(
      'PIC',
      hid('PNP0000'),
      name('_CRS', resourceTemplate(io(0x20, 0x20, 1, 2), io(0xa0, 0xa0, 1, 2), io(0x4d0, 0x4d0, 1, 2), irqNoFlags(2))),
    ),
    device('TMR', hid('PNP0100'), name('_CRS', resourceTemplate(io(0x40, 0x40, 1, 4), irqNoFlags(0)))),
    device('RTC', hid('PNP0B00'), name('_CRS', resourceTemplate(io(0x70, 0x70, 1, 2), irqNoFlags(8)))),
    device(
      'KBD',
      hid('PNP0303'),
      name('_CRS', resourceTemplate(io(0x60, 0x60, 1, 1), io(0x64, 0x64, 1, 1), irqNoFlags(1))),
    ),
    device('MOU', hid('PNP0F13'), name('_CRS', resourceTemplate(irqNoFlags(12)))),
  ];
  for (const p of m.serialPorts) {
    const s = SERIAL_PORTS[p];
    isa.push(
      device(
        `COM${s.uid}`,
        hid('PNP0501'),
        name('_UID', s.uid),
        name('_CRS', resourceTemplate(io(s.port, s.port, 1, 8), irqNoFlags(s.irq))),
      ),
    );
  }
  return device(
    'LPC',
    name('_ADR', 0x0001_0000), // device 1, function 0
    operationRegion('PIRQ', RegionSpace.PciConfig, PIIX_PIRQRC, 4),
    field(
      'PIRQ',
      { access: FieldAccess.Byte },
      PIRQ_FIELDS.map((n) => ({ name: n, bits: 8 })),
    ),
    ...isa,
  );
}

/**
 * Helpers shared by the links, taking a PIRQ register value:
 * IQST → _STA (present+functioning, enabled unless bit 7 is set);
 * IQCR → _CRS (the routed IRQ, or 0 when disabled).
 */
function linkHelpers(): Aml[] {
  return [
    method('IQST', { args: 1 }, ifThen(and(argN(0), PIRQ_DISABLE), ret(0x09)), ret(0x0b)),
    method(
      'IQCR',
      { args: 1 },
      // A fresh buffer per call; no named objects, so no serialization needed.
      store(resourceTemplate(interrupt(LINK_MODE, 0)), local(0)),
      ifThen(
        lEqual(and(argN(0), PIRQ_DISABLE), Zero),
        store(and(argN(0), PIRQ_IRQ_MASK), index(local(0), IRQ_NUMBER_OFFSET)),
      ),
      ret(local(0)),
    ),
  ];
}

function link(i: number): Aml {
  const reg = ref(`${LPC_PATH}.${PIRQ_FIELDS[i]}`);
  return device(
    PCI_LINKS[i]!,
    hid('PNP0C0F'),
    name('_UID', i + 1),
    name('_PRS', resourceTemplate(interrupt(LINK_MODE, ...LINK_IRQS))),
    method('_STA', {}, ret(call('IQST', reg))),
    method('_DIS', {}, or(reg, PIRQ_DISABLE, reg)),
    method('_CRS', {}, ret(call('IQCR', reg))),
    // Arg0 is a template shaped like _PRS: one extended interrupt descriptor.
    method('_SRS', { args: 1 }, store(derefOf(index(argN(0), IRQ_NUMBER_OFFSET)), reg)),
  );
}

function motherboardResources(m: AcpiMachine): Aml {
  const res: Aml[] = [io(PM.PM1A_EVT, PM.PM1A_EVT, 1, PM.BLOCK_LEN), io(PM.GPE0, PM.GPE0, 1, PM.GPE0_LEN)];
  if (m.enablePcie) res.push(memory32Fixed(true, PCIE_ECAM_BASE, PCIE_ECAM_SIZE));
  return device('MRES', hid('PNP0C02'), name('_UID', 0), name('_CRS', resourceTemplate(...res)));
}

function processors(m: AcpiMachine): Aml[] {
  const out: Aml[] = [];
  for (let i = 0; i < m.cpus; i++) {
    const seg = `C${i.toString(16).toUpperCase().padStart(3, '0')}`;
    out.push(device(seg, name('_HID', string('ACPI0007')), name('_UID', i)));
  }
  return out;
}

/** The DSDT's term list (the definition block body after the header). */
export function dsdtBody(m: AcpiMachine, holes: PciHoles): Aml {
  const pci0 = device(
    'PCI0',
    hid('PNP0A03'),
    // No _ADR: a device has a _HID or an _ADR, not both (ACPI 6.1, device identification objects).
    name('_UID', 0),
    name('_BBN', 0),
    name('_CRS', hostBridgeCrs(holes)),
    routingTable(),
    lpcBridge(m),
    device(
      'FWCF',
      name('_HID', string('QEMU0002')),
      name('_STA', 0x0b),
      name('_CRS', resourceTemplate(io(FW_CFG_PORT, FW_CFG_PORT, 1, FW_CFG_PORT_LEN))),
    ),
    motherboardResources(m),
  );
  const sb = scope('\\_SB', pci0, ...linkHelpers(), ...PCI_LINKS.map((_, i) => link(i)), ...processors(m));
  // Package {SLP_TYPa, SLP_TYPb, reserved, reserved}; there is no PM1b block.
  return concat([
    sb,
    name('\\_S0', pkg(SLP_TYP.S0, SLP_TYP.S0, 0, 0)),
    name('\\_S5', pkg(SLP_TYP.S5, SLP_TYP.S5, 0, 0)),
  ]);
}
