// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The chipset end to end through its ports, the way firmware drives it:
// configuration mechanism #1, reset control, BAR placement and routing
// across threads, a bridge, INTx through the PIIX3 PIRQ registers, hostile
// accesses, and state export/import. Each "thread" is a ScaffoldHost with
// its own buses and device instances over the same shared state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MachineDevice } from '../../device.js';
import { MigrateError, PayloadOffers, type Payload } from '../../migrate.js';
import { PciPciBridge } from '../pci/bridge.js';
import { PciBuilder } from '../pci/builder.js';
import { PciPath } from '../pci/path.js';
import { cfg1Read, cfg1SizeBar, cfg1Write, cfgAddress, PciTestDevice, ScaffoldHost } from '../pci/scaffold.js';
import { PciTopology } from '../pci/topology.js';
import { describeChipset, type DeviceToAdd } from './chipset.js';
import { I440FxHostBridge } from './i440fx.js';
import { Piix3Lpc } from './piix3-lpc.js';

const testIdent = { vendor: 0x1af4, device: 0x10f0, class: 0xff, subclass: 0 };

interface World {
  main: ScaffoldHost;
  cpus: ScaffoldHost[];
  devs: MachineDevice[];
}

/** The chipset plus `extra` devices, attached on the main thread and then on two vCPU threads. */
function world(extra: DeviceToAdd[] = [], enablePcie = false): World {
  const all = [...describeChipset({ enablePcie }), ...extra];
  const main = new ScaffoldHost();
  const devs = all.map((d) => d.cls.attach(d.desc, main));
  const cpus = [main.sibling(0), main.sibling(1)];
  for (const h of cpus) for (const d of all) d.cls.attach(d.desc, h);
  return { main, cpus, devs };
}

function testDevice(name: string, path: string, b: PciBuilder): DeviceToAdd {
  return { cls: PciTestDevice, desc: PciTestDevice.describe(name, PciPath.parse(path), b) };
}

function bridge(name: string, path: string, downstream: number): DeviceToAdd {
  return { cls: PciPciBridge, desc: PciPciBridge.describe(name, PciPath.parse(path), downstream) };
}

describe('configuration mechanism #1', () => {
  it('finds the chipset functions and nothing in empty slots', () => {
    const { cpus } = world();
    const pio = cpus[0]!.pio;
    assert.equal(cfg1Read(pio, 0, 0, 0, 0, 4), 0x1237_8086, '00:00.0 i440FX');
    assert.equal(cfg1Read(pio, 0, 1, 0, 0, 4), 0x7000_8086, '00:01.0 PIIX3');
    assert.equal(cfg1Read(pio, 0, 1, 3, 0, 4), 0x7113_8086, '00:01.3 PIIX4 PM');
    assert.equal(cfg1Read(pio, 0, 0, 0, 0x2c, 4), 0xfffe_01de);
    assert.equal(cfg1Read(pio, 0, 1, 0, 0x2c, 4), 0xfffd_01de);
    assert.equal(cfg1Read(pio, 0, 1, 3, 0x2c, 4), 0xfffc_01de);
    assert.equal(cfg1Read(pio, 0, 0, 0, 0x08, 4), 0x0600_0000, 'host bridge class');
    assert.equal(cfg1Read(pio, 0, 1, 0, 0x08, 4), 0x0601_0000, 'ISA bridge class');
    assert.equal(cfg1Read(pio, 0, 1, 3, 0x08, 4), 0x0680_0003, 'other bridge, revision 3');
    assert.equal(cfg1Read(pio, 0, 2, 0, 0, 4), 0xffff_ffff, 'empty slot');
    assert.equal(cfg1Read(pio, 0, 1, 1, 0, 4), 0xffff_ffff, 'empty function');
    assert.equal(cfg1Read(pio, 7, 0, 0, 0, 4), 0xffff_ffff, 'unnumbered bus');
    assert.equal(cfg1Read(pio, 0, 0, 0, 0x0e, 1), 0x00, 'single-function host bridge');
    assert.equal(cfg1Read(pio, 0, 1, 0, 0x0e, 1), 0x80, 'PIIX3 is multi-function (it has 00:01.3)');
    assert.equal(cfg1Read(pio, 0, 1, 0, 0x0c, 4) >>> 16, 0x0080, 'multi-function bit in a dword read too');
  });

  it('reads all-ones with CONFIG_ADDRESS disabled and honours byte and word data accesses', () => {
    const { cpus } = world();
    const pio = cpus[0]!.pio;
    pio.write(0xcf8, 4, cfgAddress(0, 0, 0, 0) & 0x7fff_ffff);
    assert.equal(pio.read(0xcfc, 4), 0xffff_ffff);
    assert.equal(pio.read(0xcfe, 2), 0xffff);
    pio.write(0xcf8, 4, cfgAddress(0, 1, 0, 0));
    assert.equal(pio.read(0xcf8, 4), 0x8000_0800, 'CONFIG_ADDRESS reads back');
    assert.equal(pio.read(0xcfc, 1), 0x86);
    assert.equal(pio.read(0xcfd, 1), 0x80);
    assert.equal(pio.read(0xcfe, 2), 0x7000, 'device ID at CFE');
    assert.equal(pio.read(0xcfd, 2), 0x0080, 'misaligned word inside the dword');
    assert.equal(pio.read(0xcfe, 4), 0xffff_ffff, 'a dword at CFE leaves the data window');
    pio.write(0xcf8, 4, cfgAddress(0, 1, 0, 0x60));
    pio.write(0xcfd, 1, 0x0b);
    assert.equal(pio.read(0xcfc, 4), 0x8080_0b80, 'byte write at CFD hit register 0x61');
    // Byte and word accesses to 0xCF8–0xCFB are not CONFIG_ADDRESS.
    pio.write(0xcf8, 1, 0);
    pio.write(0xcfa, 2, 0);
    pio.write(0xcfb, 1, 0x01);
    assert.equal(pio.read(0xcf8, 4), 0x8000_0860);
    assert.equal(pio.read(0xcf8, 2), 0xffff);
    assert.equal(pio.read(0xcfb, 1), 0xff);
    pio.write(0xcf8, 4, 0xffff_ffff);
    assert.equal(pio.read(0xcf8, 4), 0x80ff_fffc, 'reserved bits read 0');
  });

  it('shares CONFIG_ADDRESS between threads, as the one latch on the bus', () => {
    const { cpus } = world();
    cpus[0]!.pio.write(0xcf8, 4, cfgAddress(0, 1, 3, 0x40));
    assert.equal(cpus[1]!.pio.read(0xcfc, 4), 0xb001, 'PMBA, addressed from the other thread');
  });

  it('reaches functions through ECAM when PCIe is enabled', () => {
    const { cpus } = world([], true);
    const mmio = cpus[1]!.mmio;
    assert.equal(mmio.read(0xe000_0000, 4), 0x1237_8086);
    assert.equal(mmio.read(0xe000_0000 + (1 << 15) + (3 << 12), 4), 0x7113_8086);
    assert.equal(mmio.read(0xe000_0000 + (1 << 15) + 2, 2), 0x7000);
    assert.equal(mmio.read(0xe000_0000 + (9 << 15), 4), 0xffff_ffff);
    assert.equal(mmio.read(0xe000_0000 + 0x100, 4), 0xffff_ffff, 'no extended space');
    mmio.write(0xe000_0000 + (1 << 15) + 0x60, 1, 0x0a);
    assert.equal(cfg1Read(cpus[0]!.pio, 0, 1, 0, 0x60, 1), 0x0a);
  });
});

describe('PIIX reset control (0xCF9)', () => {
  it('requests a system reset when RCPU is written, and keeps SRST', () => {
    const { cpus } = world();
    const h = cpus[0]!;
    h.pio.write(0xcf9, 1, 0x02);
    assert.deepEqual(h.resets, []);
    assert.equal(h.pio.read(0xcf9, 1), 0x02);
    h.pio.write(0xcf9, 1, 0x06);
    assert.equal(h.resets.length, 1);
    assert.match(h.resets[0]!, /hard reset/);
    assert.equal(h.pio.read(0xcf9, 1), 0x02, 'RCPU reads back 0');
  });
});

describe('BARs', () => {
  const dev = (): DeviceToAdd =>
    testDevice(
      'dev',
      '0.3.0',
      new PciBuilder(testIdent).barIo(0, 0x20).barMmio32(1, 0x1000).barMmio64(2, 0x4000, { prefetch: true }),
    );

  it('size as firmware expects for I/O, 32-bit and 64-bit BARs', () => {
    const { cpus } = world([dev()]);
    const pio = cpus[0]!.pio;
    assert.equal(cfg1SizeBar(pio, 0, 3, 0, 0), 0xffff_ffe1);
    assert.equal(cfg1SizeBar(pio, 0, 3, 0, 1), 0xffff_f000);
    assert.equal(cfg1SizeBar(pio, 0, 3, 0, 2), 0xffff_c00c);
    assert.equal(cfg1SizeBar(pio, 0, 3, 0, 3), 0xffff_ffff, 'upper half of the 64-bit BAR');
    assert.equal(cfg1SizeBar(pio, 0, 3, 0, 4), 0);
    assert.equal(cfg1Read(pio, 0, 3, 0, 0x10, 4), 0x1, 'restored');
  });

  it('route by the current BAR values and command bits, on every thread', () => {
    const { cpus } = world([dev()]);
    const [a, b] = cpus as [ScaffoldHost, ScaffoldHost];
    cfg1Write(a.pio, 0, 3, 0, 0x10, 4, 0xc040);
    cfg1Write(a.pio, 0, 3, 0, 0x14, 4, 0xfeb0_0000);
    cfg1Write(a.pio, 0, 3, 0, 0x18, 4, 0x0000_8000);
    cfg1Write(a.pio, 0, 3, 0, 0x1c, 4, 0x1);
    // Decoding is off until the command register enables it.
    assert.equal(b.pio.read(0xc040, 4), 0xffff_ffff);
    assert.equal(b.mmio.read(0xfeb0_0000, 4), 0xffff_ffff);
    cfg1Write(a.pio, 0, 3, 0, 0x04, 2, 0x0003);
    b.pio.write(0xc044, 2, 0xbeef);
    assert.equal(a.pio.read(0xc044, 2), 0xbeef, 'I/O BAR, written on one thread, read on the other');
    b.mmio.write(0xfeb0_0010, 4, 0x1234_5678);
    assert.equal(a.mmio.read(0xfeb0_0010, 4), 0x1234_5678);
    a.mmio.write(2 ** 32 + 0x8008, 8, 0x0102_0304_0506_0708n);
    assert.equal(b.mmio.read(2 ** 32 + 0x8008, 8), 0x0102_0304_0506_0708n, '64-bit BAR above 4 GiB');
    assert.equal(b.pio.read(0xc060, 1), 0xff, 'past the I/O BAR');
    // Memory decode off: MMIO BARs vanish, I/O stays.
    cfg1Write(a.pio, 0, 3, 0, 0x04, 2, 0x0001);
    assert.equal(b.mmio.read(0xfeb0_0010, 4), 0xffff_ffff);
    assert.equal(b.pio.read(0xc044, 2), 0xbeef);
    // Move the I/O BAR: the old address is unclaimed, the new one works.
    cfg1Write(b.pio, 0, 3, 0, 0x10, 4, 0xd000);
    assert.equal(a.pio.read(0xc044, 2), 0xffff);
    assert.equal(a.pio.read(0xd004, 2), 0xbeef);
    const topo = PciTopology.of(a);
    assert.deepEqual(
      topo.router.mappings().map((m) => [m.space, m.base, m.size, m.bar]),
      [['io', 0xd000, 0x20, 0]],
    );
    assert.ok(topo.router.unclaimedReads > 0);
  });

  it('leave platform ports outside the PCI windows to other devices', () => {
    const { cpus } = world();
    const pio = cpus[0]!.pio;
    assert.equal(pio.owner(0xc000), 'pci-io-window');
    assert.equal(pio.owner(0x1000), 'pci-io-window');
    assert.equal(pio.owner(0xa000), undefined, '0xA000–0xAFDF stays free (hotplug)');
    assert.equal(pio.owner(0xafe0), 'pci-piix3-pm-gpe0');
    assert.equal(pio.owner(0xb000), 'pci-piix3-pm-pm');
    assert.equal(pio.owner(0x0cf8), 'pci-i440fx-hb');
    assert.equal(pio.owner(0x04d0), undefined, 'ELCR belongs to the in-kernel PIC');
  });
});

describe('PCI-to-PCI bridge', () => {
  it('exposes the device on its secondary bus once firmware numbers it', () => {
    const { cpus } = world([bridge('br', '0.5.0', 1), testDevice('behind', '1.2.0', new PciBuilder(testIdent))]);
    const pio = cpus[0]!.pio;
    assert.equal(cfg1Read(pio, 0, 5, 0, 0, 4), 0x0002_01de);
    assert.equal(cfg1Read(pio, 0, 5, 0, 0x08, 4) >>> 16, 0x0604);
    assert.equal(cfg1Read(pio, 0, 5, 0, 0x0e, 1), 0x01, 'header type 1');
    assert.equal(cfg1Read(pio, 1, 2, 0, 0, 4), 0xffff_ffff, 'bus 1 is not numbered yet');
    // As SeaBIOS: secondary 255 / subordinate 0 first, then number the bus.
    cfg1Write(pio, 0, 5, 0, 0x19, 1, 255);
    cfg1Write(pio, 0, 5, 0, 0x1a, 1, 0);
    cfg1Write(pio, 0, 5, 0, 0x18, 1, 0);
    cfg1Write(pio, 0, 5, 0, 0x19, 1, 1);
    cfg1Write(pio, 0, 5, 0, 0x1a, 1, 255);
    assert.equal(cfg1Read(pio, 1, 2, 0, 0, 4), 0x10f0_1af4, 'found behind the bridge');
    cfg1Write(pio, 0, 5, 0, 0x1a, 1, 1);
    assert.equal(cfg1Read(cpus[1]!.pio, 1, 2, 0, 0, 4), 0x10f0_1af4, 'on the other thread too');
    // Renumbering re-routes the logical bus.
    cfg1Write(pio, 0, 5, 0, 0x18, 4, 0x0007_0700);
    assert.equal(cfg1Read(pio, 1, 2, 0, 0, 4), 0xffff_ffff);
    assert.equal(cfg1Read(pio, 7, 2, 0, 0, 4), 0x10f0_1af4);
    assert.equal(cfg1Read(pio, 0, 2, 0, 0, 4), 0xffff_ffff, 'not on bus 0');
  });

  it('forwards through nested bridges by bus range', () => {
    const { cpus } = world([
      bridge('br1', '0.5.0', 1),
      bridge('br2', '1.0.0', 2),
      testDevice('deep', '2.3.0', new PciBuilder(testIdent)),
    ]);
    const pio = cpus[0]!.pio;
    cfg1Write(pio, 0, 5, 0, 0x18, 4, 0x00ff_0100);
    cfg1Write(pio, 1, 0, 0, 0x18, 4, 0x00ff_0201);
    assert.equal(cfg1Read(pio, 2, 3, 0, 0, 4), 0x10f0_1af4);
    cfg1Write(pio, 0, 5, 0, 0x1a, 1, 1); // subordinate 1: bus 2 no longer forwarded
    assert.equal(cfg1Read(pio, 2, 3, 0, 0, 4), 0xffff_ffff);
  });

  it('is not migratable', () => {
    const { devs } = world([bridge('br', '0.5.0', 1)]);
    assert.equal(devs[3]!.migrate(), 'non-migratable');
  });
});

describe('INTx through the PIIX3', () => {
  const intx = (name: string, path: string, pin = 1): DeviceToAdd =>
    testDevice(name, path, new PciBuilder(testIdent).intxPin(pin));

  it('reports the chipset-chosen pin on bus 0 and routes it via PIRQ to an ISA IRQ', () => {
    const { main, cpus, devs } = world([intx('d4', '0.4.0', 1)]);
    const [a, b] = cpus as [ScaffoldHost, ScaffoldHost];
    const d = devs[3] as PciTestDevice;
    assert.equal(cfg1Read(a.pio, 0, 4, 0, 0x3d, 1), 2, 'function 0 reports INTB (Propolis quirk)');
    assert.equal(cfg1Read(a.pio, 0, 1, 0, 0x60, 4), 0x8080_8080, 'PIRQs power on disabled');
    d.pci.setIntx(true);
    assert.equal(cfg1Read(a.pio, 0, 4, 0, 0x06, 2) & 0x08, 0x08, 'Interrupt Status');
    for (let irq = 0; irq < 16; irq++) assert.equal(main.level(irq), false, `no IRQ while PIRQ disabled (${irq})`);
    // Device 4, INTB: link (4 + 2 + 2) mod 4 = 0 = PIRQA.
    cfg1Write(a.pio, 0, 1, 0, 0x60, 1, 10);
    assert.equal(main.level(10), true, 'routing an asserted link raises its IRQ at once');
    d.pci.setIntx(false);
    assert.equal(main.level(10), false);
    d.pci.setIntx(true);
    assert.equal(main.level(10), true);
    // Re-route while asserted: IRQ 10 released, IRQ 11 raised; then disable.
    cfg1Write(b.pio, 0, 1, 0, 0x60, 1, 11);
    assert.equal(main.level(10), false);
    assert.equal(main.level(11), true);
    cfg1Write(b.pio, 0, 1, 0, 0x60, 1, 0x8b);
    assert.equal(main.level(11), false);
    cfg1Write(b.pio, 0, 1, 0, 0x60, 1, 13);
    assert.equal(main.level(13), false, 'IRQ 13 is not routable');
    cfg1Write(b.pio, 0, 1, 0, 0x60, 1, 11);
    assert.equal(main.level(11), true);
    // INTx Disable gates the pin; Interrupt Status still shows the request.
    cfg1Write(a.pio, 0, 4, 0, 0x04, 2, 0x0400);
    assert.equal(main.level(11), false);
    assert.equal(cfg1Read(a.pio, 0, 4, 0, 0x06, 2) & 0x08, 0x08);
    cfg1Write(a.pio, 0, 4, 0, 0x04, 2, 0);
    assert.equal(main.level(11), true);
    d.pci.setIntx(false);
    assert.equal(main.level(11), false);
  });

  it('shares an IRQ between links and between devices on one link', () => {
    // 0.4.0 (INTB) → PIRQA; 0.6.0 (INTB) → (6+2+2)%4 = 2 → PIRQC; 0.4.1 (INTC) → (4+3+2)%4 = 1 → PIRQB;
    // 0.8.0 (INTB) → (8+2+2)%4 = 0 → PIRQA, shared with 0.4.0.
    const { main, cpus, devs } = world([
      intx('a', '0.4.0'),
      intx('b', '0.6.0'),
      intx('c', '0.4.1'),
      intx('e', '0.8.0'),
    ]);
    const pio = cpus[0]!.pio;
    const [a, b, c, e] = devs.slice(3) as PciTestDevice[];
    assert.equal(cfg1Read(pio, 0, 4, 1, 0x3d, 1), 3, 'function 1 reports INTC');
    cfg1Write(pio, 0, 1, 0, 0x60, 4, 0x0b0a_0b0b); // A→11, B→11, C→10, D→11
    a!.pci.setIntx(true);
    b!.pci.setIntx(true);
    assert.equal(main.level(11), true);
    assert.equal(main.level(10), true);
    c!.pci.setIntx(true);
    a!.pci.setIntx(false);
    assert.equal(main.level(11), true, 'PIRQB still holds IRQ 11');
    c!.pci.setIntx(false);
    assert.equal(main.level(11), false);
    a!.pci.setIntx(true);
    e!.pci.setIntx(true);
    a!.pci.setIntx(false);
    assert.equal(main.level(11), true, '0.8.0 still holds PIRQA');
    e!.pci.setIntx(false);
    assert.equal(main.level(11), false);
    b!.pci.setIntx(false);
    assert.equal(main.level(10), false);
  });

  it('swizzles pins of devices behind a bridge onto the bridge slot', () => {
    const { main, cpus, devs } = world([bridge('br', '0.5.0', 1), intx('behind', '1.1.0', 1)]);
    const pio = cpus[0]!.pio;
    cfg1Write(pio, 0, 5, 0, 0x18, 4, 0x0001_0100);
    assert.equal(cfg1Read(pio, 1, 1, 0, 0x3d, 1), 1, 'keeps its own pin behind a bridge');
    // INTA of device 1 → bridge INTB; bridge device 5, INTB → link (5+2+2)%4 = 1 → PIRQB.
    cfg1Write(pio, 0, 1, 0, 0x61, 1, 5);
    (devs[4] as PciTestDevice).pci.setIntx(true);
    assert.equal(main.level(5), true);
    (devs[4] as PciTestDevice).pci.setIntx(false);
    assert.equal(main.level(5), false);
  });

  it('releases asserted pins on reset', () => {
    const { main, cpus, devs } = world([intx('a', '0.4.0')]);
    cfg1Write(cpus[0]!.pio, 0, 1, 0, 0x60, 1, 10);
    (devs[3] as PciTestDevice).pci.setIntx(true);
    assert.equal(main.level(10), true);
    for (const d of devs) d.reset?.();
    assert.equal(main.level(10), false);
    assert.equal(cfg1Read(cpus[0]!.pio, 0, 1, 0, 0x60, 1), 0x80);
    cfg1Write(cpus[0]!.pio, 0, 1, 0, 0x60, 1, 10);
    assert.equal(main.level(10), false, 'the link count was released too');
  });
});

describe('PIIX3 ports', () => {
  it('latches POST codes and reports A20 enabled', () => {
    const { cpus, devs } = world();
    cpus[0]!.pio.write(0x80, 1, 0x55);
    assert.equal(cpus[1]!.pio.read(0x80, 1), 0x55);
    assert.equal((devs[1] as Piix3Lpc).postCode, 0x55);
    assert.equal(cpus[1]!.pio.read(0x92, 1), 0x02);
    cpus[1]!.pio.write(0x92, 1, 0x00);
    assert.equal(cpus[1]!.pio.read(0x92, 1), 0x02, 'writes ignored');
    devs[1]!.reset?.();
    assert.equal(cpus[1]!.pio.read(0x80, 1), 0);
  });
});

describe('hostile accesses', () => {
  it('never throw, at any offset and size, with random values', () => {
    const { cpus } = world(
      [
        bridge('br', '0.5.0', 1),
        testDevice('dev', '0.3.0', new PciBuilder(testIdent).barIo(0, 0x20).barMmio64(2, 0x1000).msix(4, 5).intxPin(1)),
      ],
      true,
    );
    const h = cpus[0]!;
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1664525 + 1013904223) >>> 0);
    const ports = [
      [0xcf8, 8],
      [0x80, 1],
      [0x92, 1],
      [0xb2, 2],
      [0xafe0, 4],
      [0xb000, 0x40],
      [0xc000, 0x40],
    ] as const;
    for (let round = 0; round < 3; round++) {
      for (const [base, len] of ports) {
        for (let p = base - 3; p < base + len + 3; p++) {
          for (const size of [1, 2, 4] as const) {
            const v = h.pio.read(p, size);
            assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** (8 * size), `read 0x${p.toString(16)}/${size}`);
            h.pio.write(p, size, rnd() % 2 ** (8 * size));
          }
        }
      }
      // Every register of every function, through CF8/CFC.
      for (const [bus, dev, fn] of [
        [0, 0, 0],
        [0, 1, 0],
        [0, 1, 3],
        [0, 3, 0],
        [0, 5, 0],
      ] as const) {
        for (let off = 0; off < 256; off++) {
          for (const size of [1, 2, 4] as const) {
            h.pio.write(0xcf8, 4, cfgAddress(bus, dev, fn, off));
            const port = 0xcfc + (off & 3);
            h.pio.read(port, size);
            // Keep the bridge's bus numbers and the device IDs meaningful for the checks below.
            if (!(bus === 0 && dev === 5 && off >= 0x18 && off < 0x1c)) h.pio.write(port, size, rnd());
          }
        }
      }
      for (let i = 0; i < 2000; i++) {
        const addr = 0xe000_0000 + (rnd() % 0x1000_0000);
        const size = ([1, 2, 4, 8] as const)[rnd() % 4]!;
        h.mmio.read(addr, size);
        h.mmio.write(addr, size, size === 8 ? BigInt(rnd()) : rnd() % 2 ** (8 * size));
      }
      for (let i = 0; i < 2000; i++) {
        const addr = 0x8000_0000 + (rnd() % 0x7ec0_0000);
        h.mmio.read(addr, 4);
        h.mmio.write(addr, 4, rnd());
      }
    }
    // Identities survive; the machine may have been asked to reset or power off, nothing more.
    const pio = cpus[1]!.pio;
    assert.equal(cfg1Read(pio, 0, 0, 0, 0, 4), 0x1237_8086);
    assert.equal(cfg1Read(pio, 0, 1, 0, 0, 4), 0x7000_8086);
    assert.equal(cfg1Read(pio, 0, 1, 3, 0, 4), 0x7113_8086);
    assert.equal(cfg1Read(pio, 0, 3, 0, 0, 4), 0x10f0_1af4);
  });
});

describe('state export/import', () => {
  const extras = (): DeviceToAdd[] => [
    testDevice('dev', '0.3.0', new PciBuilder(testIdent).barIo(0, 0x20).barMmio64(2, 0x1000).msix(4, 3).intxPin(1)),
  ];

  function exportAll(devs: MachineDevice[]): Payload[][] {
    return devs.map((d) => {
      const m = d.migrate();
      assert.ok(typeof m === 'object');
      return JSON.parse(JSON.stringify(m.export())) as Payload[];
    });
  }

  it('round-trips every chipset device and a PCI device', () => {
    const src = world(extras());
    const pio = src.cpus[0]!.pio;
    cfg1Write(pio, 0, 0, 0, 0x58, 4, 0x3030_3000); // PAM0..2 as SeaBIOS writes them
    cfg1Write(pio, 0, 0, 0, 0x72, 1, 0x4a);
    pio.write(0xcf9, 1, 0x02);
    cfg1Write(pio, 0, 1, 0, 0x60, 4, 0x0b0a_0b0a);
    pio.write(0x80, 1, 0x3c);
    cfg1Write(pio, 0, 3, 0, 0x10, 4, 0xc100);
    cfg1Write(pio, 0, 3, 0, 0x18, 4, 0xfe00_0000);
    cfg1Write(pio, 0, 3, 0, 0x20, 4, 0xfd00_0000);
    cfg1Write(pio, 0, 3, 0, 0x3c, 1, 11);
    cfg1Write(pio, 0, 3, 0, 0x04, 2, 0x0007);
    src.cpus[0]!.mmio.write(0xfd00_0010, 4, 0xfee0_1000);
    src.cpus[0]!.mmio.write(0xfd00_0018, 4, 0x41);
    src.cpus[0]!.mmio.write(0xfd00_001c, 4, 0);
    cfg1Write(pio, 0, 1, 3, 0x3c, 1, 9);
    pio.write(0xb002, 2, 0x0100);
    pio.write(0xb004, 2, 0x0001);
    pio.write(0xafe2, 2, 0x0004);
    pio.write(0xcf8, 4, cfgAddress(0, 3, 0, 0x10));
    const out = exportAll(src.devs);
    assert.deepEqual(
      out.map((ps) => ps.map((p) => `${p.kind}/${p.version}`)),
      [
        ['i440fx-hb/1', 'pci-device/1'],
        ['piix3-lpc/1', 'pci-device/1'],
        ['piix3-pm/1', 'acpi-pm-timer/1', 'pci-device/1'],
        ['pci-device/1'],
      ],
    );
    const dst = world(extras());
    dst.devs.forEach((d, i) => (d.migrate() as { import(o: PayloadOffers): void }).import(new PayloadOffers(out[i]!)));
    const back = exportAll(dst.devs);
    // The PM timer runs on; compare everything else.
    const strip = (x: Payload[][]) => JSON.stringify(x.map((ps) => ps.filter((p) => p.kind !== 'acpi-pm-timer')));
    assert.equal(strip(back), strip(out));
    const dpio = dst.cpus[1]!.pio;
    assert.equal(dpio.read(0xcf8, 4), cfgAddress(0, 3, 0, 0x10));
    assert.equal(dpio.read(0xcfc, 4), 0xc101);
    assert.equal(dpio.read(0x80, 1), 0x3c);
    assert.equal(cfg1Read(dpio, 0, 0, 0, 0x59, 2), 0x3030);
    assert.equal(cfg1Read(dpio, 0, 0, 0, 0x72, 1), 0x4a);
    assert.equal(dpio.read(0xcf9, 1), 0x02);
    assert.equal(dpio.read(0xb004, 2), 0x0001);
    assert.equal(dst.cpus[1]!.mmio.read(0xfd00_0010, 4), 0xfee0_1000, 'MSI-X table restored');
    dpio.write(0xc104, 2, 0x1234);
    assert.equal(dpio.read(0xc104, 2), 0x1234, 'BAR decodes where it was');
  });

  it('refuses bad payloads and leftovers', () => {
    const src = world(extras());
    const out = exportAll(src.devs);
    const dst = world(extras());
    const imp = (i: number, ps: Payload[]): void =>
      (dst.devs[i]!.migrate() as { import(o: PayloadOffers): void }).import(new PayloadOffers(ps));
    const patch = (i: number, kind: string, f: (d: Record<string, unknown>) => void): Payload[] => {
      const ps = JSON.parse(JSON.stringify(out[i])) as Payload[];
      f(ps.find((p) => p.kind === kind)!.data as Record<string, unknown>);
      return ps;
    };
    const refused = (i: number, ps: Payload[], code: MigrateError['code']): void =>
      assert.throws(
        () => imp(i, ps),
        (e: unknown) => e instanceof MigrateError && e.code === code,
      );
    refused(0, out[0]!.slice(1), 'DataMissing');
    refused(0, [...out[0]!, out[3]![0]!], 'UnexpectedPayload');
    refused(
      0,
      patch(0, 'i440fx-hb', (d) => (d.pci_cfg_addr = 3)),
      'ImportFailed',
    );
    refused(
      0,
      patch(0, 'i440fx-hb', (d) => (d.smram = 0)),
      'ImportFailed',
    );
    refused(
      0,
      patch(0, 'i440fx-hb', (d) => (d.pam = [0, 0])),
      'ImportFailed',
    );
    refused(
      0,
      patch(0, 'i440fx-hb', (d) => (d.extra = 1)),
      'DeserializationFailed',
    );
    refused(
      1,
      patch(1, 'piix3-lpc', (d) => (d.pir_regs = [0x70, 0, 0, 0])),
      'ImportFailed',
    );
    refused(
      1,
      patch(1, 'piix3-lpc', (d) => (d.post_code = 256)),
      'DeserializationFailed',
    );
    refused(
      2,
      patch(2, 'piix3-pm', (d) => (d.pm_base = 0x600)),
      'ImportFailed',
    );
    refused(
      2,
      patch(2, 'piix3-pm', (d) => (d.status = 0x8000)),
      'ImportFailed',
    );
    refused(
      2,
      patch(2, 'piix3-pm', (d) => (d.control = 0x2000)),
      'ImportFailed',
    );
    refused(
      2,
      patch(2, 'acpi-pm-timer', (d) => (d.counter = 2 ** 24)),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => (d.command = 0x8000)),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => ((d.bars as { value: string }[])[0]!.value = '3')),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => ((d.bars as unknown[]).length = 1)),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => (d.msix = null)),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => ((d.msix as { count: number }).count = 4)),
      'ImportFailed',
    );
    refused(
      3,
      patch(3, 'pci-device', (d) => ((d.msix as { entries: { addr: string }[] }).entries[0]!.addr = '1')),
      'ImportFailed',
    );
    refused(
      3,
      patch(0, 'pci-device', () => {}),
      'ImportFailed',
    ); // another function's BARs
    // Nothing was applied by a refused import.
    assert.equal(cfg1Read(dst.cpus[0]!.pio, 0, 1, 0, 0x60, 4), 0x8080_8080);
  });
});

describe('I440FxHostBridge.describe', () => {
  it('names the devices as Propolis keys them', () => {
    const [hb, lpc, pm] = describeChipset();
    assert.deepEqual(
      [hb!.desc.name, lpc!.desc.name, pm!.desc.name],
      ['pci-i440fx-hb', 'pci-piix3-lpc', 'pci-piix3-pm'],
    );
    const main = new ScaffoldHost();
    const dev = I440FxHostBridge.attach(hb!.desc, main);
    assert.equal(dev.typeName, 'pci-i440fx-hb');
  });
});
