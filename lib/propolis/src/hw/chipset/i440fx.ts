// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The i440FX host bridge, PCI 00:00.0 (Propolis's `pci-i440fx-hb`): the
// configuration mechanism #1 ports, the PIIX reset control register, the
// optional ECAM window, and the PCI windows the BAR router answers on.
//
// Ports 0xCF8–0xCFF:
//  - a 32-bit access at 0xCF8 is CONFIG_ADDRESS: enable (bit 31), bus
//    (23:16), device (15:11), function (10:8), register (7:2); the other
//    bits read 0. Other accesses at 0xCF8–0xCFB are not configuration
//    cycles and are ignored (reads all-ones) — except:
//  - a byte access at 0xCF9 is the PIIX Reset Control register: writing
//    RCPU (bit 2) requests a reset (SRST, bit 1, chooses hard over soft; we
//    have only one kind: the whole machine resets, as QEMU does). Only SRST
//    is kept; RCPU reads back 0.
//  - 0xCFC–0xCFF is CONFIG_DATA: 1-, 2- or 4-byte accesses that stay inside
//    the dword reach register (CONFIG_ADDRESS.register + port − 0xCFC) of
//    the addressed function if the enable bit is set; otherwise (or with no
//    function there) reads are all-ones and writes are dropped.
//
// PAM0–6 (0x59–0x5F) and SMRAM (0x72) are stored and read back only: guest
// RAM already holds the firmware below 1 MiB (the Machine copies the
// bootrom's tail there), so opening or closing the shadow ranges needs no
// remapping, and there is no SMM.
//
// ECAM (with `enablePcie`): 0xE000_0000 + (bus << 20 | device << 15 |
// function << 12 | register), 256 buses; register 0x100 and up reads
// all-ones (no extended capabilities).
//
// Threading: CONFIG_ADDRESS and the reset control register are words in
// shared memory, written atomically (two vCPUs interleaving config cycles
// race as on hardware; guests serialise them). Configuration space is the
// PCI function's (function.ts). This device registers the BAR router's
// windows on each thread's buses when it attaches.

import type { DeviceDescriptor, DeviceHost, GuestEvents, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { MigrateError, schema, t, type Migrate, type Payload, type PayloadOffers } from '../../migrate.js';
import type { AccessSize, MmioHandler, PioHandler } from '../../pio.js';
import { BRIDGE_SUBCLASS, CLASS_CODE, PCI_CFG_SIZE, VENDOR_ID } from '../pci/bits.js';
import { PciBuilder } from '../pci/builder.js';
import { cfgAllOnes } from '../pci/config-space.js';
import { PciFunction, type PciFunctionShared } from '../pci/function.js';
import { PciPath } from '../pci/path.js';
import { PciTopology, type PciWindows } from '../pci/topology.js';

export const I440FX_DEVICE_ID = 0x1237;
export const I440FX_SUB_DEVICE_ID = 0xfffe;
export const I440FX_PATH = new PciPath(0, 0, 0);

export const PORT_PCI_CONFIG_ADDRESS = 0xcf8;
export const PORT_PIIX_RESET_CONTROL = 0xcf9;
export const PORT_PCI_CONFIG_DATA = 0xcfc;

/** CONFIG_ADDRESS bits that hold state; the rest read 0. */
export const CONFIG_ADDRESS_MASK = 0x80ff_fffc;
export const CONFIG_ADDRESS_ENABLE = 0x8000_0000;

/** Reset Control register (PIIX3 datasheet: RC, port 0xCF9). */
export const RESET_CONTROL = { SRST: 0x02, RCPU: 0x04 } as const;

export const ECAM_BASE = 0xe000_0000;
export const ECAM_SIZE = 0x1000_0000;

/** i440FX configuration registers kept here. */
export const I440FX_CFG = { PAM0: 0x59, PAM_COUNT: 7, SMRAM: 0x72 } as const;
const PAM0_WRITABLE = 0x30; // HIENABLE: 0xF0000–0xFFFFF
const PAMN_WRITABLE = 0x33; // two 16 KiB ranges per register
const SMRAM_DEFAULT = 0x02; // C_BASE_SEG fixed at 010b
const SMRAM_WRITABLE = 0x78; // D_OPEN, D_CLS, D_LCK, G_SMRAME

/**
 * Where the BAR router answers. I/O: 0x1000–0x9FFF and 0xC000–0xFFFF,
 * leaving 0xA000–0xBFFF to platform devices (hotplug, GPE0 at 0xAFE0, the
 * PM block at 0xB000), as SeaBIOS assumes when it assigns I/O BARs (from
 * 0xC000, or 0x1000 when they do not fit). MMIO: 0x8000_0000 (SeaBIOS's
 * lowest 32-bit PCI address with ≤ 2 GiB of RAM) up to the IOAPIC at
 * 0xFEC0_0000, minus ECAM when enabled, and 4 GiB up to 2^44 for 64-bit
 * BARs. RAM inside these ranges never exits to userspace, so overlapping it
 * is harmless.
 */
export function defaultPciWindows(enablePcie: boolean): PciWindows {
  const low: [number, number][] = enablePcie
    ? [
        [0x8000_0000, ECAM_BASE],
        [ECAM_BASE + ECAM_SIZE, 0xfec0_0000],
      ]
    : [[0x8000_0000, 0xfec0_0000]];
  return {
    io: [
      [0x1000, 0xa000],
      [0xc000, 0x1_0000],
    ],
    mmio: [...low, [2 ** 32, 2 ** 44]],
  };
}

export const I440FxHbV1 = schema('i440fx-hb', 1, {
  pci_cfg_addr: t.u32,
  pam: t.bytes(I440FX_CFG.PAM_COUNT),
  smram: t.u8,
  reset_control: t.u8,
});

export interface I440FxOptions {
  /** ECAM at 0xE000_0000 (the instance spec's `enable_pcie`). */
  enablePcie?: boolean;
  /** Override the BAR router's windows (default: `defaultPciWindows`). */
  windows?: PciWindows;
}

interface HbShared {
  pci: PciFunctionShared;
  /** [0] CONFIG_ADDRESS, [1] reset control */
  ctl: SharedArrayBuffer;
  enablePcie: boolean;
  windows: PciWindows;
}

const CTL_ADDR = 0;
const CTL_RC = 1;

function hbSpec() {
  const b = new PciBuilder({
    vendor: VENDOR_ID.INTEL,
    device: I440FX_DEVICE_ID,
    class: CLASS_CODE.BRIDGE,
    subclass: BRIDGE_SUBCLASS.HOST,
    subVendor: VENDOR_ID.OXIDE,
    subDevice: I440FX_SUB_DEVICE_ID,
  });
  b.register(I440FX_CFG.PAM0, 1, { writable: PAM0_WRITABLE });
  for (let i = 1; i < I440FX_CFG.PAM_COUNT; i++) b.register(I440FX_CFG.PAM0 + i, 1, { writable: PAMN_WRITABLE });
  b.register(I440FX_CFG.SMRAM, 1, { init: SMRAM_DEFAULT, writable: SMRAM_WRITABLE });
  return b.finish();
}

export class I440FxHostBridge implements MachineDevice, PioHandler, MmioHandler, Lifecycle {
  readonly typeName = 'pci-i440fx-hb';
  readonly pci: PciFunction;
  readonly topology: PciTopology;
  private readonly ctl: Int32Array;
  private readonly events: GuestEvents;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as HbShared;
    this.ctl = new Int32Array(sh.ctl);
    this.events = host.events;
    this.pci = PciFunction.attach(sh.pci, host, { name: descriptor.name });
    this.topology = PciTopology.of(host);
    host.pio.register(PORT_PCI_CONFIG_ADDRESS, 8, this, descriptor.name);
    if (sh.enablePcie) host.mmio.register(ECAM_BASE, ECAM_SIZE, this, `${descriptor.name}-ecam`);
    this.topology.registerWindows(host, sh.windows);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(opts: I440FxOptions = {}): DeviceDescriptor {
    const enablePcie = opts.enablePcie ?? false;
    const shared: HbShared = {
      pci: PciFunction.share(hbSpec(), I440FX_PATH),
      ctl: new SharedArrayBuffer(8),
      enablePcie,
      windows: opts.windows ?? defaultPciWindows(enablePcie),
    };
    return { module: import.meta.url, export: 'I440FxHostBridge', name: 'pci-i440fx-hb', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): I440FxHostBridge {
    return new I440FxHostBridge(desc, host);
  }

  /**
   * For a CONFIG_DATA access: the CONFIG_ADDRESS it uses, or 0 when it is
   * not a configuration cycle (disabled, or not inside the data dword).
   */
  private cycle(port: number, size: number): number {
    const byte = port - PORT_PCI_CONFIG_DATA;
    if (byte < 0 || byte + size > 4) return 0;
    const addr = Atomics.load(this.ctl, CTL_ADDR) >>> 0;
    return (addr & CONFIG_ADDRESS_ENABLE) === 0 ? 0 : addr;
  }

  pioRead(port: number, size: AccessSize): number {
    if (port === PORT_PCI_CONFIG_ADDRESS && size === 4) return Atomics.load(this.ctl, CTL_ADDR) >>> 0;
    if (port === PORT_PIIX_RESET_CONTROL && size === 1) return Atomics.load(this.ctl, CTL_RC);
    const a = this.cycle(port, size);
    if (a === 0) return cfgAllOnes(size);
    const reg = (a & 0xfc) + port - PORT_PCI_CONFIG_DATA;
    return this.topology.cfgRead((a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 0x7, reg, size);
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    if (port === PORT_PCI_CONFIG_ADDRESS && size === 4) {
      Atomics.store(this.ctl, CTL_ADDR, (value & CONFIG_ADDRESS_MASK) | 0);
      return;
    }
    if (port === PORT_PIIX_RESET_CONTROL && size === 1) {
      Atomics.store(this.ctl, CTL_RC, value & RESET_CONTROL.SRST);
      if ((value & RESET_CONTROL.RCPU) !== 0) {
        this.events.reset(`PIIX reset control 0x${(value & 0xff).toString(16)} (${value & 2 ? 'hard' : 'soft'} reset)`);
      }
      return;
    }
    const a = this.cycle(port, size);
    if (a === 0) return;
    const reg = (a & 0xfc) + port - PORT_PCI_CONFIG_DATA;
    this.topology.cfgWrite((a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 0x7, reg, size, value >>> 0);
  }

  // ---- ECAM ----

  mmioRead(addr: number, size: AccessSize): number | bigint {
    const off = addr - ECAM_BASE;
    const reg = off & 0xfff;
    if (size === 8) return 0xffff_ffff_ffff_ffffn;
    if (reg + size > PCI_CFG_SIZE) return cfgAllOnes(size);
    return this.topology.cfgRead((off >>> 20) & 0xff, (off >>> 15) & 0x1f, (off >>> 12) & 0x7, reg, size);
  }

  mmioWrite(addr: number, size: AccessSize, value: number | bigint): void {
    const off = addr - ECAM_BASE;
    const reg = off & 0xfff;
    if (size === 8 || reg + size > PCI_CFG_SIZE) return;
    this.topology.cfgWrite((off >>> 20) & 0xff, (off >>> 15) & 0x1f, (off >>> 12) & 0x7, reg, size, Number(value));
  }

  // ---- lifecycle ----

  reset(): void {
    this.pci.reset();
    Atomics.store(this.ctl, CTL_ADDR, 0);
    Atomics.store(this.ctl, CTL_RC, 0);
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] => {
        const cfg = this.pci.config;
        const own = this.pci.lock.with(() =>
          I440FxHbV1.encode({
            pci_cfg_addr: Atomics.load(this.ctl, CTL_ADDR) >>> 0,
            pam: cfg.bytes.slice(I440FX_CFG.PAM0, I440FX_CFG.PAM0 + I440FX_CFG.PAM_COUNT),
            smram: cfg.u8(I440FX_CFG.SMRAM),
            reset_control: Atomics.load(this.ctl, CTL_RC),
          }),
        );
        return [own, this.pci.exportState()];
      },
      import: (offers: PayloadOffers): void => {
        const s = offers.take(I440FxHbV1);
        const pci = this.pci.takeState(offers);
        offers.finish();
        const bad = (why: string): never => {
          throw new MigrateError('ImportFailed', `${this.name}: ${why}`);
        };
        if ((s.pci_cfg_addr & ~CONFIG_ADDRESS_MASK) !== 0) bad(`pci_cfg_addr 0x${s.pci_cfg_addr.toString(16)}`);
        if (s.pam.length !== I440FX_CFG.PAM_COUNT) bad(`${s.pam.length} PAM registers, expected 7`);
        s.pam.forEach((v, i) => {
          if ((v & ~(i === 0 ? PAM0_WRITABLE : PAMN_WRITABLE)) !== 0) bad(`PAM${i} 0x${v.toString(16)}`);
        });
        if ((s.smram & ~SMRAM_WRITABLE) !== SMRAM_DEFAULT) bad(`SMRAM 0x${s.smram.toString(16)}`);
        if ((s.reset_control & ~RESET_CONTROL.SRST) !== 0) bad(`reset control 0x${s.reset_control.toString(16)}`);
        this.pci.applyState(pci);
        this.pci.lock.with(() => {
          this.pci.config.bytes.set(s.pam, I440FX_CFG.PAM0);
          this.pci.config.bytes[I440FX_CFG.SMRAM] = s.smram;
        });
        Atomics.store(this.ctl, CTL_ADDR, s.pci_cfg_addr | 0);
        Atomics.store(this.ctl, CTL_RC, s.reset_control);
      },
    };
  }
}
