// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PIIX4 power-management function, PCI 00:01.3 (Propolis's
// `pci-piix3-pm`, 8086:7113 rev 3): the ACPI fixed hardware the FADT
// declares — PM1 event and control registers and the PM timer in the block
// at 0xB000, GPE0 at 0xAFE0 — and the SCI on IRQ 9.
//
// PM block (0xB000, 64 bytes; PIIX4 datasheet layout):
//   0x00 PM1_STS  W1C: TMR_STS (bit 0), PWRBTN_STS (bit 8)
//   0x02 PM1_EN   TMR_EN, GBL_EN, PWRBTN_EN, RTC_EN (stored; only TMR and
//                 PWRBTN have events)
//   0x04 PM1_CNT  SCI_EN (0), BM_RLD (1), SLP_TYP (12:10); GBL_RLS (2) and
//                 SLP_EN (13) are write-only. SLP_EN with SLP_TYP 0 (the
//                 DSDT's \_S5) powers off: host.events.halt('ACPI S5
//                 power-off'). Other sleep types are ignored.
//   0x08 PM_TMR   the ACPI PM timer (pm-timer.ts)
//   everything else reads 0 and ignores writes, as in Propolis.
// GPE0 (0xAFE0, 4 bytes): GPE0_STS (W1C, 16 bits), GPE0_EN (16 bits).
// SCI (IRQ 9, level): asserted while SCI_EN is set and an enabled status
// bit is set (PM1_STS & PM1_EN, or GPE0_STS & GPE0_EN). With SCI_EN clear
// events stay pending; there is no SMI.
// APM (optional, on by default): the FADT's SMI_CMD port 0xB2 takes the
// ACPI enable/disable commands (0xF1 sets SCI_EN, 0xF0 clears it) as
// firmware's SMI handler would; 0xB3 is the APM status scratch byte. So the
// PIIX4's DEVACTB reports APMC_EN. That is the one departure from
// Propolis's configuration reads; it also makes SeaBIOS builds with SMM
// skip their SMM set-up, which needs a real SMI.
// TMR_STS is derived when read, not signalled: with TMR_EN and SCI_EN set,
// the SCI rises when the guest next touches the PM registers after the
// timer's top bit flips, not at the flip itself.
//
// Configuration space (reads per Propolis, all writes to 0x40–0xFF
// ignored): PMBA 0xB001, DEVACTB APMC_EN (see above), DEVRESA/B/C claiming
// the keyboard controller, floppy, COM1 and COM2 decodes, PMREGMISC 1
// (I/O enabled), SMBBA 0xB101. The function reports INTA (the bus-0 rule)
// but the SCI does not travel over INTx; firmware writes 9 into Interrupt
// Line.
//
// Threading: registers are words in shared memory and the timer is
// shared-clock based; every access takes the function's lock. The
// power-off event is raised after the lock is released.

import type { DeviceDescriptor, DeviceHost, GuestEvents, IrqLine, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { MigrateError, schema, t, type Migrate, type Payload, type PayloadOffers } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { BRIDGE_SUBCLASS, CLASS_CODE, INTX_PIN, VENDOR_ID } from '../pci/bits.js';
import { PciBuilder } from '../pci/builder.js';
import { PciFunction, type PciFunctionShared } from '../pci/function.js';
import { PciPath } from '../pci/path.js';
import { AcpiPmTimer, PM_TIMER_STATE_BYTES, monotonicNs, type Clock, type PmTimerBits } from './pm-timer.js';
import { RegBlock, type Reg } from './regs.js';

export const PIIX4_PM_DEVICE_ID = 0x7113;
export const PIIX4_PM_SUB_DEVICE_ID = 0xfffc;
export const PIIX4_PM_REVISION = 3; // Linux calls earlier PM timers unreliable
export const PIIX4_PM_PATH = new PciPath(0, 1, 3);

export const PM_BASE = 0xb000;
export const PM_LEN = 0x40;
export const GPE0_BASE = 0xafe0;
export const GPE0_LEN = 4;
export const PORT_APM_CNT = 0xb2;
export const PORT_APM_STS = 0xb3;
export const SMB_BASE = 0xb100;
export const SCI_IRQ = 9;

/** Offsets in the PM block. */
export const PM = { PM1_STS: 0x00, PM1_EN: 0x02, PM1_CNT: 0x04, PM_TMR: 0x08 } as const;

export const PM1_STS = { TMR_STS: 1 << 0, PWRBTN_STS: 1 << 8 } as const;
export const PM1_EN = { TMR_EN: 1 << 0, GBL_EN: 1 << 5, PWRBTN_EN: 1 << 8, RTC_EN: 1 << 10 } as const;
export const PM1_CNT = {
  SCI_EN: 1 << 0,
  BM_RLD: 1 << 1,
  GBL_RLS: 1 << 2,
  SLP_TYP_SHIFT: 10,
  SLP_TYP_MASK: 0x7 << 10,
  SLP_EN: 1 << 13,
} as const;

const STS_BITS = PM1_STS.TMR_STS | PM1_STS.PWRBTN_STS;
const EN_BITS = PM1_EN.TMR_EN | PM1_EN.GBL_EN | PM1_EN.PWRBTN_EN | PM1_EN.RTC_EN;
const CNT_BITS = PM1_CNT.SCI_EN | PM1_CNT.BM_RLD | PM1_CNT.SLP_TYP_MASK;
/** SLP_TYP value of \_S5 in the DSDT. */
export const SLP_TYP_S5 = 0;

export const APM_ACPI_ENABLE = 0xf1;
export const APM_ACPI_DISABLE = 0xf0;

/** PIIX4 function 3 configuration registers. */
export const PM_CFG = {
  PMBA: 0x40,
  DEVACTB: 0x58,
  DEVRESA: 0x5c,
  DEVRESB: 0x60,
  DEVRESC: 0x64,
  PMREGMISC: 0x80,
  SMBBA: 0x90,
} as const;
const DEVACTB_APMC_EN = 1 << 25;
const DEVRESA_KBC_EN_DEV11 = 1 << 28;
const DEVRESB_KBC_EIO_EN = 1 << 30;
const DEVRESB_EIO_EN_DEV5 = 1 << 29;
const DEVRESC_EIO_EN_DEV7 = 1 << 31;
const DEVRESC_COMB_DEC_SEL_COM2 = 1 << 28;
const DEVRESC_EIO_EN_DEV6 = 1 << 27;
const PMIOSE = 1; // PMREGMISC: PM I/O space enabled

export const Piix3PmV1 = schema('piix3-pm', 1, {
  pm_base: t.u16,
  status: t.u16,
  enable: t.u16,
  control: t.u16,
  gpe0_status: t.u16,
  gpe0_enable: t.u16,
  apm_control: t.u8,
  apm_status: t.u8,
});

export const AcpiPmTimerV1 = schema('acpi-pm-timer', 1, { counter: t.u32 });

export interface Piix4PmOptions {
  /** PM timer width: 24 (default) or 32 bits; 32 must go with the FADT's TMR_VAL_EXT flag. */
  pmTimerBits?: PmTimerBits;
  /** Claim the APM ports 0xB2/0xB3 (ACPI enable through SMI_CMD). Default true. */
  apm?: boolean;
}

interface PmShared {
  pci: PciFunctionShared;
  /** Register words (see W_*) */
  regs: SharedArrayBuffer;
  timer: SharedArrayBuffer;
  pmTimerBits: PmTimerBits;
  apm: boolean;
}

const W_STS = 0;
const W_EN = 1;
const W_CNT = 2;
const W_GPE_STS = 3;
const W_GPE_EN = 4;
const W_APM_CNT = 5;
const W_APM_STS = 6;
const W_SCI = 7; // level last driven on the SCI line
const W_WORDS = 8;

function pmSpec(apm: boolean) {
  const b = new PciBuilder({
    vendor: VENDOR_ID.INTEL,
    device: PIIX4_PM_DEVICE_ID,
    class: CLASS_CODE.BRIDGE,
    subclass: BRIDGE_SUBCLASS.OTHER,
    revision: PIIX4_PM_REVISION,
    subVendor: VENDOR_ID.OXIDE,
    subDevice: PIIX4_PM_SUB_DEVICE_ID,
  }).intxPin(INTX_PIN.INTA);
  const ro = (off: number, init: number): void => void b.register(off, 4, { init: init >>> 0 });
  ro(PM_CFG.PMBA, PM_BASE | 1); // bit 0 hardwired: I/O space
  ro(PM_CFG.DEVACTB, apm ? DEVACTB_APMC_EN : 0);
  ro(PM_CFG.DEVRESA, DEVRESA_KBC_EN_DEV11);
  ro(PM_CFG.DEVRESB, DEVRESB_KBC_EIO_EN | DEVRESB_EIO_EN_DEV5);
  ro(PM_CFG.DEVRESC, DEVRESC_EIO_EN_DEV7 | DEVRESC_COMB_DEC_SEL_COM2 | DEVRESC_EIO_EN_DEV6);
  b.register(PM_CFG.PMREGMISC, 1, { init: PMIOSE });
  ro(PM_CFG.SMBBA, SMB_BASE | 1);
  return b.finish();
}

export class Piix4Pm implements MachineDevice, PioHandler, Lifecycle {
  readonly typeName = 'pci-piix3-pm';
  readonly pci: PciFunction;
  readonly timer: AcpiPmTimer;
  private readonly w: Int32Array;
  private readonly sci: IrqLine;
  private readonly events: GuestEvents;
  private readonly pm: RegBlock;
  private readonly gpe: RegBlock;
  private readonly apm: RegBlock;
  /** Set by a PM1_CNT write that asks for S5; acted on after the lock is released. */
  private powerOff = false;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
    clock: Clock,
  ) {
    const sh = descriptor.shared as PmShared;
    this.w = new Int32Array(sh.regs);
    this.timer = new AcpiPmTimer(sh.timer, sh.pmTimerBits, clock);
    this.events = host.events;
    this.sci = host.irqLine(SCI_IRQ, `${descriptor.name}/sci`);
    this.pci = PciFunction.attach(sh.pci, host, { name: descriptor.name });
    const w = this.w;
    const get = (i: number) => () => w[i] as number;
    const pmRegs: Reg[] = [
      {
        off: PM.PM1_STS,
        size: 2,
        read: () => (w[W_STS] as number) | (this.timer.overflowed ? PM1_STS.TMR_STS : 0),
        write: (v, m) => {
          const clear = v & m & STS_BITS;
          if (clear & PM1_STS.TMR_STS) this.timer.ack();
          w[W_STS] = (w[W_STS] as number) & ~clear;
        },
      },
      { off: PM.PM1_EN, size: 2, read: get(W_EN), write: (v, m) => void (w[W_EN] = merge(w[W_EN]!, v, m, EN_BITS)) },
      {
        off: PM.PM1_CNT,
        size: 2,
        read: get(W_CNT),
        write: (v, m) => {
          const cnt = merge(w[W_CNT]!, v, m, CNT_BITS);
          w[W_CNT] = cnt;
          if (v & m & PM1_CNT.SLP_EN) {
            const typ = (cnt & PM1_CNT.SLP_TYP_MASK) >> PM1_CNT.SLP_TYP_SHIFT;
            if (typ === SLP_TYP_S5) this.powerOff = true;
          }
        },
      },
      { off: PM.PM_TMR, size: 4, read: () => this.timer.read() },
    ];
    this.pm = new RegBlock(PM_LEN, pmRegs);
    this.gpe = new RegBlock(GPE0_LEN, [
      { off: 0, size: 2, read: get(W_GPE_STS), write: (v, m) => void (w[W_GPE_STS] = w[W_GPE_STS]! & ~(v & m)) },
      { off: 2, size: 2, read: get(W_GPE_EN), write: (v, m) => void (w[W_GPE_EN] = merge(w[W_GPE_EN]!, v, m, 0xffff)) },
    ]);
    this.apm = new RegBlock(2, [
      {
        off: 0,
        size: 1,
        read: get(W_APM_CNT),
        write: (v) => {
          w[W_APM_CNT] = v;
          if (v === APM_ACPI_ENABLE) w[W_CNT] = w[W_CNT]! | PM1_CNT.SCI_EN;
          if (v === APM_ACPI_DISABLE) w[W_CNT] = w[W_CNT]! & ~PM1_CNT.SCI_EN;
        },
      },
      { off: 1, size: 1, read: get(W_APM_STS), write: (v) => void (w[W_APM_STS] = v) },
    ]);
    host.pio.register(PM_BASE, PM_LEN, this, `${descriptor.name}-pm`);
    host.pio.register(GPE0_BASE, GPE0_LEN, this, `${descriptor.name}-gpe0`);
    if (sh.apm) host.pio.register(PORT_APM_CNT, 2, this, `${descriptor.name}-apm`);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(opts: Piix4PmOptions = {}): DeviceDescriptor {
    const pmTimerBits = opts.pmTimerBits ?? 24;
    if (pmTimerBits !== 24 && pmTimerBits !== 32) throw new RangeError(`PM timer width ${String(pmTimerBits)}`);
    const apm = opts.apm ?? true;
    const shared: PmShared = {
      pci: PciFunction.share(pmSpec(apm), PIIX4_PM_PATH),
      regs: new SharedArrayBuffer(4 * W_WORDS),
      timer: new SharedArrayBuffer(PM_TIMER_STATE_BYTES),
      pmTimerBits,
      apm,
    };
    new AcpiPmTimer(shared.timer, pmTimerBits).set(0);
    return { module: import.meta.url, export: 'Piix4Pm', name: 'pci-piix3-pm', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): Piix4Pm {
    return new Piix4Pm(desc, host, monotonicNs);
  }

  /** For tests: an instance whose PM timer runs on `clock` (ns). */
  static attachWithClock(desc: DeviceDescriptor, host: DeviceHost, clock: Clock): Piix4Pm {
    return new Piix4Pm(desc, host, clock);
  }

  // Guest accesses allocate nothing (the PM timer is read in tight loops).

  private block(port: number): RegBlock {
    if (port >= PM_BASE && port < PM_BASE + PM_LEN) return this.pm;
    return port >= GPE0_BASE && port < GPE0_BASE + GPE0_LEN ? this.gpe : this.apm;
  }

  private static base(port: number): number {
    if (port >= PM_BASE && port < PM_BASE + PM_LEN) return PM_BASE;
    return port >= GPE0_BASE && port < GPE0_BASE + GPE0_LEN ? GPE0_BASE : PORT_APM_CNT;
  }

  pioRead(port: number, size: AccessSize): number {
    this.pci.lock.lock();
    try {
      return this.block(port).read(port - Piix4Pm.base(port), size);
    } finally {
      this.leave();
    }
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    this.pci.lock.lock();
    try {
      this.block(port).write(port - Piix4Pm.base(port), size, value);
    } finally {
      this.leave();
    }
  }

  /** With the lock held: update the SCI, unlock, then raise a power-off the access asked for. */
  private leave(): void {
    this.updateSci();
    const off = this.powerOff;
    this.powerOff = false;
    this.pci.lock.unlock();
    if (off) this.events.halt('ACPI S5 power-off');
  }

  /** Host-side and lifecycle changes: `fn` under the lock, then as after a guest access. */
  private locked(fn: () => void): void {
    this.pci.lock.lock();
    try {
      fn();
    } finally {
      this.leave();
    }
  }

  /** The SCI's level from the current registers. */
  get sciLevel(): boolean {
    const w = this.w;
    if (((w[W_CNT] as number) & PM1_CNT.SCI_EN) === 0) return false;
    const sts = (w[W_STS] as number) | (this.timer.overflowed ? PM1_STS.TMR_STS : 0);
    return ((sts & (w[W_EN] as number)) | ((w[W_GPE_STS] as number) & (w[W_GPE_EN] as number))) !== 0;
  }

  /** With the lock held: drive the SCI to match the registers. */
  private updateSci(): void {
    const level = this.sciLevel ? 1 : 0;
    if (Atomics.load(this.w, W_SCI) !== level) {
      Atomics.store(this.w, W_SCI, level);
      this.sci.set(level === 1);
    }
  }

  // ---- host side ----

  /** The power button was pressed: PWRBTN_STS, and the SCI if the guest enabled it. */
  pressPowerButton(): void {
    this.locked(() => void (this.w[W_STS] = (this.w[W_STS] as number) | PM1_STS.PWRBTN_STS));
  }

  /** Set general-purpose event `bit` (0–15) in GPE0_STS. */
  raiseGpe(bit: number): void {
    if (!Number.isInteger(bit) || bit < 0 || bit > 15) throw new RangeError(`GPE0 bit ${bit}`);
    this.locked(() => void (this.w[W_GPE_STS] = (this.w[W_GPE_STS] as number) | (1 << bit)));
  }

  // ---- lifecycle ----

  reset(): void {
    this.pci.reset();
    this.locked(() => {
      for (let i = 0; i < W_SCI; i++) this.w[i] = 0;
      this.timer.set(0);
    });
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] => {
        const w = this.w;
        const own = this.pci.lock.with(() => [
          Piix3PmV1.encode({
            pm_base: PM_BASE,
            status: (w[W_STS] as number) | (this.timer.overflowed ? PM1_STS.TMR_STS : 0),
            enable: w[W_EN] as number,
            control: w[W_CNT] as number,
            gpe0_status: w[W_GPE_STS] as number,
            gpe0_enable: w[W_GPE_EN] as number,
            apm_control: w[W_APM_CNT] as number,
            apm_status: w[W_APM_STS] as number,
          }),
          AcpiPmTimerV1.encode({ counter: this.timer.read() }),
        ]);
        return [...own, this.pci.exportState()];
      },
      import: (offers: PayloadOffers): void => {
        const s = offers.take(Piix3PmV1);
        const tm = offers.take(AcpiPmTimerV1);
        const pci = this.pci.takeState(offers);
        offers.finish();
        const bad = (why: string): never => {
          throw new MigrateError('ImportFailed', `${this.name}: ${why}`);
        };
        const hex = (v: number): string => `0x${v.toString(16)}`;
        if (s.pm_base !== PM_BASE) bad(`pm_base ${hex(s.pm_base)}: the PM block is fixed at ${hex(PM_BASE)}`);
        if ((s.status & ~STS_BITS) !== 0) bad(`PM1_STS ${hex(s.status)} has unknown bits`);
        if ((s.enable & ~EN_BITS) !== 0) bad(`PM1_EN ${hex(s.enable)} has unknown bits`);
        if ((s.control & ~CNT_BITS) !== 0) bad(`PM1_CNT ${hex(s.control)} has unknown or write-only bits`);
        if (this.timer.bits === 24 && tm.counter >= 2 ** 24) bad(`PM timer ${hex(tm.counter)} exceeds 24 bits`);
        this.pci.applyState(pci);
        this.locked(() => {
          const w = this.w;
          w[W_STS] = s.status & ~PM1_STS.TMR_STS;
          w[W_EN] = s.enable;
          w[W_CNT] = s.control;
          w[W_GPE_STS] = s.gpe0_status;
          w[W_GPE_EN] = s.gpe0_enable;
          w[W_APM_CNT] = s.apm_control;
          w[W_APM_STS] = s.apm_status;
          this.timer.set(tm.counter);
          if (s.status & PM1_STS.TMR_STS) this.timer.markOverflowed();
        });
      },
    };
  }
}

/** Replace the written bytes (`m`) of a register, keeping only `bits`. */
function merge(old: number, v: number, m: number, bits: number): number {
  return ((old & ~m) | (v & m)) & bits;
}
