// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// MSI-X and INTx of a PciFunction, driven as a guest driver would: config
// cycles straight into the topology and table accesses through the BAR
// router. Two FakeHosts attached to the same descriptor stand for two
// vCPU threads.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceDescriptor } from '../../device.js';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { PciBuilder } from './builder.js';
import { PciPath } from './path.js';
import { PciTestDevice } from './scaffold.js';
import { PciTopology } from './topology.js';

const BAR1 = 0xfe00_0000;
// Test's own layout constants (PCI 3.0 §6.8.2).
const CAP = 0x40; // first capability
const MSGCTRL = CAP + 2;
const ENABLE = 0x8000;
const FMASK = 0x4000;
const PBA = BAR1 + 0x1000;

interface Thread {
  host: FakeHost;
  dev: PciTestDevice;
  topo: PciTopology;
}

function thread(desc: DeviceDescriptor): Thread {
  const host = new FakeHost();
  const dev = PciTestDevice.attach(desc, host);
  const topo = PciTopology.of(host);
  topo.registerWindows(host, { io: [[0xc000, 0x10000]], mmio: [[0xfe00_0000, 0xfec0_0000]] });
  return { host, dev, topo };
}

function setup(vectors = 4, pin = 0): [Thread, Thread] {
  const b = new PciBuilder({ vendor: 0x1af4, device: 0x1000, class: 2, subclass: 0 }).msix(1, vectors);
  if (pin) b.intxPin(pin);
  const desc = PciTestDevice.describe('nic', new PciPath(0, 3, 0), b);
  const a = thread(desc);
  const c = thread(desc);
  a.topo.cfgWrite(0, 3, 0, 0x14, 4, BAR1);
  a.topo.cfgWrite(0, 3, 0, 0x04, 2, 0x0006);
  return [a, c];
}

function program(t: Thread, v: number, addr: number, data: number): void {
  t.host.mmio.write(BAR1 + 16 * v, 4, addr);
  t.host.mmio.write(BAR1 + 16 * v + 4, 4, 0);
  t.host.mmio.write(BAR1 + 16 * v + 8, 4, data);
}

describe('MSI-X', () => {
  it('powers on disabled with every vector masked and nothing pending', () => {
    const [a] = setup();
    for (let v = 0; v < 4; v++) {
      assert.equal(a.host.mmio.read(BAR1 + 16 * v + 12, 4), 1, `vector ${v} masked`);
      assert.equal(a.host.mmio.read(BAR1 + 16 * v, 4), 0);
    }
    assert.equal(a.host.mmio.read(PBA, 8), 0n);
    assert.equal(a.topo.cfgRead(0, 3, 0, MSGCTRL, 2), 3, 'table size N-1, disabled, unmasked');
    assert.equal(a.dev.pci.notify(0), 'disabled');
    assert.deepEqual(a.host.msis, []);
  });

  it('holds a masked vector pending and delivers it when unmasked, on whichever thread unmasks', () => {
    const [a, b] = setup();
    program(a, 0, 0xfee0_0000, 0x41);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE);
    assert.equal(b.dev.pci.notify(0), 'pending');
    assert.equal(a.host.mmio.read(PBA, 4), 1, 'PBA bit 0, seen from the other thread');
    assert.deepEqual([...a.host.msis, ...b.host.msis], []);
    b.host.mmio.write(BAR1 + 12, 4, 0); // unmask on thread b
    assert.deepEqual(b.host.msis, [{ address: 0xfee0_0000n, data: 0x41 }]);
    assert.equal(a.host.mmio.read(PBA, 4), 0, 'pending bit cleared on delivery');
    assert.equal(a.dev.pci.notify(0), 'sent');
    assert.deepEqual(a.host.msis, [{ address: 0xfee0_0000n, data: 0x41 }], 'delivered by the notifying thread');
  });

  it('honours the function mask and releases pending vectors when it clears', () => {
    const [a, b] = setup();
    program(a, 1, 0xfee0_1000, 0x51);
    program(a, 2, 0xfee0_2000, 0x52);
    a.host.mmio.write(BAR1 + 16 + 12, 4, 0);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE | FMASK);
    assert.equal(a.dev.pci.notify(1), 'pending');
    assert.equal(a.dev.pci.notify(2), 'pending');
    assert.equal(a.host.mmio.read(PBA, 1), 0b110);
    b.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE);
    assert.deepEqual(b.host.msis, [{ address: 0xfee0_1000n, data: 0x51 }], 'vector 2 is still masked itself');
    assert.equal(a.host.mmio.read(PBA, 1), 0b100);
    // Disabling keeps the pending bit; enabling with the vector unmasked delivers it.
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, 0);
    a.host.mmio.write(BAR1 + 32 + 12, 4, 0);
    assert.equal(a.host.mmio.read(PBA, 1), 0b100);
    assert.deepEqual(a.host.msis, []);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE);
    assert.deepEqual(a.host.msis, [{ address: 0xfee0_2000n, data: 0x52 }]);
  });

  it('keeps table fields to their defined bits and the PBA read-only', () => {
    const [a] = setup(3);
    a.host.mmio.write(BAR1, 8, 0x0000_0001_fee0_0003n);
    assert.equal(a.host.mmio.read(BAR1, 8), 0x0000_0001_fee0_0000n, 'low address bits read 0');
    a.host.mmio.write(BAR1 + 8, 8, 0xffff_fffe_1234_5678n);
    assert.equal(a.host.mmio.read(BAR1 + 8, 4), 0x1234_5678);
    assert.equal(a.host.mmio.read(BAR1 + 12, 4), 0, 'only the mask bit of vector control');
    a.host.mmio.write(PBA, 8, 0xffn);
    assert.equal(a.host.mmio.read(PBA, 8), 0n);
    assert.equal(a.host.mmio.read(BAR1 + 0x800, 4), 0, 'BAR space outside table and PBA reads 0');
    assert.equal(a.dev.pci.notify(3), 'invalid');
    assert.equal(a.dev.pci.notify(-1), 'invalid');
  });

  it('takes over from INTx while enabled', () => {
    const [a] = setup(2, 1);
    const seen: [number, number, boolean][] = [];
    a.topo.setIntxRouter({ setIntx: (d, p, l) => void seen.push([d, p, l]) });
    a.dev.pci.setIntx(true);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, 0);
    a.dev.pci.setIntx(false);
    assert.deepEqual(seen, [
      [3, 2, true],
      [3, 2, false],
      [3, 2, true],
      [3, 2, false],
    ]);
  });

  it('round-trips its table through export/import and resets to power-on state', () => {
    const [a] = setup();
    program(a, 0, 0xfee0_0000, 0x41);
    a.topo.cfgWrite(0, 3, 0, MSGCTRL, 2, ENABLE);
    a.dev.pci.notify(0);
    const state = JSON.parse(JSON.stringify(a.dev.pci.exportState())) as Payload;
    const [c] = setup();
    c.dev.pci.importState(new PayloadOffers([state]));
    assert.equal(c.host.mmio.read(PBA, 4), 1);
    assert.equal(c.host.mmio.read(BAR1 + 8, 4), 0x41);
    c.dev.reset();
    assert.equal(c.topo.cfgRead(0, 3, 0, 0x14, 4), 0);
    assert.equal(c.host.mmio.read(BAR1 + 8, 4), 0xffff_ffff, 'BAR unassigned after reset');
    c.topo.cfgWrite(0, 3, 0, 0x14, 4, BAR1);
    c.topo.cfgWrite(0, 3, 0, 0x04, 2, 0x0002);
    assert.equal(c.host.mmio.read(BAR1 + 12, 4), 1, 'masked again');
    assert.equal(c.host.mmio.read(PBA, 4), 0);
  });
});
