// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PIIX3 PCI-to-ISA bridge, PCI 00:01.0 (Propolis's `pci-piix3-lpc`):
// PCI interrupt routing, the POST code latch at port 0x80 and fast A20 at
// port 0x92. (The PIC, PIT, IOAPIC and RTC it embeds in Propolis are the
// kernel's here, or other devices; the ELCR ports 0x4D0/0x4D1 belong to the
// in-kernel PIC and are not claimed.)
//
// Interrupt routing. Bus-0 INTx pins reach four links, PIRQA–D. Device d's
// pin p (1–4 for INTA–INTD) drives link (d + p + 2) mod 4, Propolis's rule
// ("D→A→B→C starting at 0:0.0"); it equals the usual PIIX wiring
// (d − 1 + p − 1) mod 4 that firmware and ACPI _PRT tables assume. A link
// is the wired-OR of the pins on it (a count of asserted pins, kept in
// shared memory). PIRQ Route Control registers 0x60–0x63 map links A–D to
// an ISA IRQ: bits 3:0 the IRQ, bit 7 disables; only IRQs 3–7, 9–12, 14 and
// 15 route (the rest act as disabled). Power-on value 0x80 (disabled), per
// the datasheet. A link drives its IRQ as one source of that platform line
// (`host.irqLine(irq, '<name>/pirqX')`), so links sharing an IRQ and other
// devices on it combine as wired-OR. When the guest rewrites a PIRQ
// register while its link is asserted, the old IRQ is released and the new
// one asserted.
//
// Threading: PIRQ registers are in the function's shared configuration
// space; link counts, the IRQ each link currently drives and the POST code
// are shared words; all guarded by the function's lock. IRQ sources for
// every (link, IRQ) pair are allocated when the device attaches (on the
// main thread first, so vCPU threads find them).

import type { DeviceDescriptor, DeviceHost, IrqLine, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { MigrateError, schema, t, type Migrate, type Payload, type PayloadOffers } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { BRIDGE_SUBCLASS, CLASS_CODE, VENDOR_ID } from '../pci/bits.js';
import { PciBuilder } from '../pci/builder.js';
import { PciConfigSpace } from '../pci/config-space.js';
import { PciFunction, type PciFunctionShared } from '../pci/function.js';
import { PciPath } from '../pci/path.js';
import { PciTopology, type IntxRouter } from '../pci/topology.js';

export const PIIX3_DEVICE_ID = 0x7000;
export const PIIX3_SUB_DEVICE_ID = 0xfffd;
export const PIIX3_PATH = new PciPath(0, 1, 0);

export const PORT_POST_CODE = 0x80;
export const PORT_FAST_A20 = 0x92;
/** Fast A20 reads: A20 always enabled. */
const FAST_A20_VALUE = 0x02;

/** PIRQ Route Control registers, PIRQRC[A–D]. */
export const PIRQRC = { BASE: 0x60, COUNT: 4, DISABLE: 0x80, IRQ_MASK: 0x0f, WRITABLE: 0x8f } as const;
export const PIRQ_IRQS: readonly number[] = [3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15];

/** The link (0–3 = PIRQA–D) bus-0 device `device`'s pin (1–4) drives. */
export function pirqLink(device: number, pin: number): number {
  return (device + pin + 2) % 4;
}

/** The ISA IRQ a PIRQ register routes to, or 0 for none. */
export function pirqIrq(reg: number): number {
  const irq = reg & PIRQRC.IRQ_MASK;
  return (reg & PIRQRC.DISABLE) === 0 && PIRQ_IRQS.includes(irq) ? irq : 0;
}

export const Piix3LpcV1 = schema('piix3-lpc', 1, {
  pir_regs: t.bytes(PIRQRC.COUNT),
  post_code: t.u8,
});

interface LpcShared {
  pci: PciFunctionShared;
  /** [0–3] asserted pins per link, [4–7] IRQ each link drives (0 none), [8] POST code */
  ctl: SharedArrayBuffer;
}

const CTL_COUNT = 0;
const CTL_DRIVEN = 4;
const CTL_POST = 8;
const CTL_WORDS = 9;

function lpcSpec() {
  const b = new PciBuilder({
    vendor: VENDOR_ID.INTEL,
    device: PIIX3_DEVICE_ID,
    class: CLASS_CODE.BRIDGE,
    subclass: BRIDGE_SUBCLASS.ISA,
    subVendor: VENDOR_ID.OXIDE,
    subDevice: PIIX3_SUB_DEVICE_ID,
  });
  for (let i = 0; i < PIRQRC.COUNT; i++) {
    b.register(PIRQRC.BASE + i, 1, { init: PIRQRC.DISABLE, writable: PIRQRC.WRITABLE });
  }
  return b.finish();
}

export class Piix3Lpc implements MachineDevice, PioHandler, IntxRouter, Lifecycle {
  readonly typeName = 'pci-piix3-lpc';
  readonly pci: PciFunction;
  private readonly ctl: Int32Array;
  /** Per link, the source it owns on each routable IRQ. */
  private readonly sources: Map<number, IrqLine>[] = [];

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as LpcShared;
    this.ctl = new Int32Array(sh.ctl);
    for (let link = 0; link < PIRQRC.COUNT; link++) {
      const m = new Map<number, IrqLine>();
      for (const irq of PIRQ_IRQS) m.set(irq, host.irqLine(irq, `${descriptor.name}/pirq${'ABCD'[link]}`));
      this.sources.push(m);
    }
    this.pci = PciFunction.attach(sh.pci, host, {
      name: descriptor.name,
      onConfigWrite: (off, size) => {
        if (PciConfigSpace.overlaps(off, size, PIRQRC.BASE, PIRQRC.COUNT)) this.rerouteAll();
      },
    });
    PciTopology.of(host).setIntxRouter(this);
    host.pio.register(PORT_POST_CODE, 1, this, `${descriptor.name}-post`);
    host.pio.register(PORT_FAST_A20, 1, this, `${descriptor.name}-a20`);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(): DeviceDescriptor {
    const shared: LpcShared = {
      pci: PciFunction.share(lpcSpec(), PIIX3_PATH),
      ctl: new SharedArrayBuffer(4 * CTL_WORDS),
    };
    return { module: import.meta.url, export: 'Piix3Lpc', name: 'pci-piix3-lpc', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): Piix3Lpc {
    return new Piix3Lpc(desc, host);
  }

  // ---- interrupt routing ----

  setIntx(device: number, pin: number, level: boolean): void {
    const link = pirqLink(device, pin);
    this.pci.lock.with(() => {
      const n = Atomics.load(this.ctl, CTL_COUNT + link) + (level ? 1 : -1);
      Atomics.store(this.ctl, CTL_COUNT + link, Math.max(0, n));
      this.route(link);
    });
  }

  /** Current PIRQ Route Control value of a link. */
  pirq(link: number): number {
    return this.pci.config.u8(PIRQRC.BASE + link);
  }

  /** Whether any pin on `link` is asserted. */
  linkAsserted(link: number): boolean {
    return Atomics.load(this.ctl, CTL_COUNT + link) > 0;
  }

  /** With the lock held: make the IRQ `link` drives match its pins and PIRQ register. */
  private route(link: number): void {
    const want = this.linkAsserted(link) ? pirqIrq(this.pirq(link)) : 0;
    const cur = Atomics.load(this.ctl, CTL_DRIVEN + link);
    if (cur === want) return;
    const m = this.sources[link] as Map<number, IrqLine>;
    if (cur !== 0) m.get(cur)?.set(false);
    if (want !== 0) m.get(want)?.set(true);
    Atomics.store(this.ctl, CTL_DRIVEN + link, want);
  }

  private rerouteAll(): void {
    for (let link = 0; link < PIRQRC.COUNT; link++) this.route(link);
  }

  // ---- ports 0x80, 0x92 ----

  pioRead(port: number, size: AccessSize): number {
    const v = port === PORT_POST_CODE ? Atomics.load(this.ctl, CTL_POST) : FAST_A20_VALUE;
    // One-byte registers: the other bytes of a wider read float high.
    return size === 1 ? v : size === 2 ? 0xff00 | v : (0xffff_ff00 | v) >>> 0;
  }

  pioWrite(port: number, _size: AccessSize, value: number): void {
    if (port === PORT_POST_CODE) Atomics.store(this.ctl, CTL_POST, value & 0xff);
    // Fast A20 writes are ignored: A20 stays enabled (and fast init is not offered).
  }

  /** The last POST code the guest wrote. */
  get postCode(): number {
    return Atomics.load(this.ctl, CTL_POST);
  }

  // ---- lifecycle ----

  reset(): void {
    this.pci.reset();
    this.pci.lock.with(() => this.rerouteAll());
    Atomics.store(this.ctl, CTL_POST, 0);
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] => {
        const own = this.pci.lock.with(() =>
          Piix3LpcV1.encode({
            pir_regs: this.pci.config.bytes.slice(PIRQRC.BASE, PIRQRC.BASE + PIRQRC.COUNT),
            post_code: Atomics.load(this.ctl, CTL_POST),
          }),
        );
        return [own, this.pci.exportState()];
      },
      import: (offers: PayloadOffers): void => {
        const s = offers.take(Piix3LpcV1);
        const pci = this.pci.takeState(offers);
        offers.finish();
        if (s.pir_regs.length !== PIRQRC.COUNT) {
          throw new MigrateError('ImportFailed', `${this.name}: ${s.pir_regs.length} PIRQ registers, expected 4`);
        }
        s.pir_regs.forEach((v, i) => {
          if ((v & ~PIRQRC.WRITABLE) !== 0) {
            throw new MigrateError('ImportFailed', `${this.name}: PIRQ${'ABCD'[i]} 0x${v.toString(16)}`);
          }
        });
        this.pci.applyState(pci);
        this.pci.lock.with(() => {
          this.pci.config.bytes.set(s.pir_regs, PIRQRC.BASE);
          this.rerouteAll();
        });
        Atomics.store(this.ctl, CTL_POST, s.post_code);
      },
    };
  }
}
