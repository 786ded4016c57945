// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The virtio PCI transport, with a small echo device behind it (it copies
// each chain's readable bytes into its writable part), driven as a guest
// would: configuration cycles into the topology, register accesses
// through the BAR router, rings in guest memory. Several hosts over one
// guest memory stand for several vCPU threads.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadOffers, type Payload } from '../../migrate.js';
import type { GuestMemory } from '../../vmm/memory.js';
import { PciPath } from '../pci/path.js';
import type { PciTopology } from '../pci/topology.js';
import { VIRTIO_ID, VirtioMode } from './bits.js';
import {
  BAR0_IO,
  BAR2_MODERN,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  FakeCfg,
  FakeDriverQueue,
  LegacyDriver,
  MemoryWatch,
  ModernDriver,
  RAM_SIZE,
  STATUS_ACK,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  STATUS_NEEDS_RESET,
  VirtioTestHost,
  pciWindows,
  testMemory,
} from './driver-fake.js';
import { VirtioPciTransport, type VirtioDevice, type VirtioPciShared } from './pci.js';
import type { SplitQueue } from './queue.js';

// The test's own numbers.
const F_ECHO = 1n << 0n;
const F_REFUSED = 1n << 5n; // offered, but the device refuses it at FEATURES_OK
const NO_VECTOR = 0xffff;
const DEV = 4;
const MSI_ADDR = 0xfee0_0000;

class EchoDevice implements VirtioDevice {
  readonly transport: VirtioPciTransport;
  readonly config = Uint8Array.of(0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17);
  /** Called once per processing pass (to act as another thread meanwhile). */
  during: (() => void) | undefined;
  passes = 0;
  resets = 0;
  throwNext = false;

  constructor(sh: VirtioPciShared, host: VirtioTestHost) {
    this.transport = VirtioPciTransport.attach(sh, host, this, 'echo');
  }

  configRead(off: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (this.config[off + i] ?? 0);
    return v;
  }

  configWrite(off: number, _size: 1 | 2 | 4, value: number): void {
    this.config[off] = value & 0xff;
  }

  acceptFeatures(f: bigint): boolean {
    return (f & F_REFUSED) === 0n;
  }

  onQueueNotify(q: SplitQueue, mem: GuestMemory): void {
    this.passes++;
    if (this.throwNext) {
      this.throwNext = false;
      throw new Error('injected device bug');
    }
    const hook = this.during;
    this.during = undefined;
    hook?.();
    let c;
    while ((c = q.popAvail(mem)) !== undefined) {
      const n = Math.min(c.readBytes, c.writeBytes);
      const buf = new Uint8Array(n);
      const ok = c.read(mem, 0, buf) && c.write(mem, 0, buf);
      q.pushUsed(mem, c.head, ok ? n : 0);
    }
  }

  onReset(): void {
    this.resets++;
  }
}

function share(mode: VirtioMode, opts: { eventIdx?: boolean } = {}): VirtioPciShared {
  return VirtioPciTransport.share(
    {
      type: VIRTIO_ID.NET,
      mode,
      features: F_ECHO | F_REFUSED,
      queueSizes: [16, 8],
      configSize: 8,
      ...(opts.eventIdx === undefined ? {} : { eventIdx: opts.eventIdx }),
    },
    new PciPath(0, DEV, 0),
  );
}

interface Thread {
  host: VirtioTestHost;
  dev: EchoDevice;
  topo: PciTopology;
  cfg: FakeCfg;
  intx: boolean[];
}

function thread(sh: VirtioPciShared, mem: GuestMemory): Thread {
  const host = new VirtioTestHost(mem);
  const dev = new EchoDevice(sh, host);
  const topo = pciWindows(host);
  const intx: boolean[] = [];
  topo.setIntxRouter({ setIntx: (_d, _p, level) => void intx.push(level) });
  return { host, dev, topo, cfg: new FakeCfg(topo, 0, DEV, 0), intx };
}

function setup(mode: VirtioMode, opts: { eventIdx?: boolean } = {}) {
  const m = testMemory();
  const sh = share(mode, opts);
  const a = thread(sh, m.mem);
  a.cfg.enable({ io: mode !== VirtioMode.Modern, modern: mode !== VirtioMode.Legacy });
  return { ...m, sh, a };
}

/** Put `n` echo chains in `q` (readable 4 bytes from 0x8000+, writable 4 bytes at 0x9000+). */
function echoChains(q: FakeDriverQueue, ram: Uint8Array, n: number, base = 0): number[] {
  const heads = [];
  for (let i = 0; i < n; i++) {
    const k = base + i;
    ram.set([k, k + 1, k + 2, k + 3], 0x8000 + 16 * k);
    heads.push(
      q.addChain([
        { addr: 0x8000 + 16 * k, len: 4 },
        { addr: 0x9000 + 16 * k, len: 4, write: true },
      ]),
    );
  }
  heads.forEach((h) => q.publish(h));
  return heads;
}

function modernReady(s: ReturnType<typeof setup>, features = F_VERSION_1 | F_ECHO): ModernDriver {
  const d = new ModernDriver(s.a.host, s.a.cfg);
  assert.ok(d.negotiate(features));
  return d;
}

describe('virtio PCI transport: identity and layout', () => {
  it('legacy: transitional IDs, I/O BAR0 of 0x200, MSI-X in BAR1, no modern BAR or vendor capabilities', () => {
    const { a } = setup(VirtioMode.Legacy);
    const c = a.cfg;
    assert.equal(c.read(0x00, 4), 0x1000_1af4);
    assert.equal(c.read(0x08, 1), 0, 'revision 0');
    assert.equal(c.read(0x0b, 1), 0x02, 'class: network (the echo device borrows the NET type)');
    assert.equal(c.read(0x2c, 4), 0x0001_1af4, 'subsystem: vendor 1AF4, device = virtio type');
    c.write(0x04, 2, 0);
    c.write(0x10, 4, 0xffff_ffff);
    assert.equal(c.read(0x10, 4), 0xffff_fe01, 'BAR0: 512 bytes of I/O');
    assert.equal(c.read(0x18, 4), 0, 'no BAR2');
    assert.deepEqual(
      c.caps().map(([id]) => id),
      [0x11],
    );
    const msix = c.caps()[0]![1];
    assert.equal(c.read(msix + 2, 2) & 0x7ff, 2, 'three vectors: configuration + two queues');
    assert.notEqual(c.read(0x3d, 1), 0, 'an INTx pin');
  });

  it('transitional: adds BAR2 of 16 KiB and the five vendor capabilities the seed presents', () => {
    const { a } = setup(VirtioMode.Transitional);
    const c = a.cfg;
    assert.equal(c.read(0x00, 4), 0x1000_1af4);
    assert.equal(c.read(0x08, 1), 0);
    c.write(0x04, 2, 0);
    c.write(0x18, 4, 0xffff_ffff);
    assert.equal(c.read(0x18, 4), 0xffff_c000, 'BAR2: 16 KiB of 32-bit memory');
    const caps = c.virtioCaps();
    assert.deepEqual([...caps.keys()], [1, 2, 3, 4, 5]);
    const pick = (t: number) => {
      const x = caps.get(t)!;
      return [x.bar, x.offset, x.length, x.extra];
    };
    assert.deepEqual(pick(1), [2, 0x0000, 0x3c, 0]);
    assert.deepEqual(pick(2), [2, 0x2000, 4, 0], 'notify multiplier 0');
    assert.deepEqual(pick(3), [2, 0x3000, 1, 0]);
    assert.deepEqual(pick(4), [2, 0x1000, 8, 0]);
    // The PCI configuration access capability: window registers writable, data reads 0.
    const pcicfg = caps.get(5)!.at;
    c.write(pcicfg + 8, 4, 0x1234);
    assert.equal(c.read(pcicfg + 8, 4), 0x1234);
    c.write(pcicfg + 16, 4, 0xdead_beef);
    assert.equal(c.read(pcicfg + 16, 4), 0);
  });

  it('modern: 0x1040 + type, revision 1, no I/O BAR', () => {
    const { a } = setup(VirtioMode.Modern);
    assert.equal(a.cfg.read(0x00, 4), 0x1041_1af4);
    assert.equal(a.cfg.read(0x08, 1), 1);
    assert.equal(a.cfg.read(0x2e, 2), 0x1041);
    assert.equal(a.cfg.read(0x10, 4), 0, 'no BAR0');
  });
});

describe('virtio PCI transport: feature negotiation', () => {
  it('offers the device’s features plus INDIRECT_DESC, EVENT_IDX and VERSION_1, and keeps what the driver accepts', () => {
    const s = setup(VirtioMode.Transitional);
    const d = new ModernDriver(s.a.host, s.a.cfg);
    assert.equal(d.deviceFeatures(), F_ECHO | F_REFUSED | F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1);
    d.w(0x00, 4, 7);
    assert.equal(d.r(0x04, 4), 0, 'words past the second read 0');
    assert.ok(d.negotiate(F_VERSION_1 | F_ECHO | F_EVENT_IDX));
    assert.equal(s.a.dev.transport.driverFeatures, F_VERSION_1 | F_ECHO | F_EVENT_IDX);
    // Frozen after FEATURES_OK.
    d.writeDriverFeatures(F_VERSION_1);
    assert.equal(s.a.dev.transport.driverFeatures, F_VERSION_1 | F_ECHO | F_EVENT_IDX);
    assert.equal(d.status, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
  });

  it('leaves FEATURES_OK clear for bits not offered, without VERSION_1, or when the device refuses', () => {
    const s = setup(VirtioMode.Transitional);
    const d = new ModernDriver(s.a.host, s.a.cfg);
    assert.equal(d.negotiate(F_VERSION_1 | (1n << 7n)), false, 'bit 7 is not offered');
    assert.equal(d.negotiate(F_VERSION_1 | (1n << 40n)), false, 'RING_RESET is not offered');
    assert.equal(d.negotiate(F_ECHO), false, 'no VERSION_1');
    assert.equal(d.negotiate(F_VERSION_1 | F_REFUSED), false, 'the device refuses');
    assert.equal(d.status & STATUS_NEEDS_RESET, 0, 'a refusal is not an error');
    assert.equal(d.negotiate(F_VERSION_1), true, 'and a fresh attempt works');
  });

  it('shows legacy drivers the low 32 bits and applies what they write, masked to the offer', () => {
    const s = setup(VirtioMode.Transitional);
    const d = new LegacyDriver(s.a.host);
    assert.equal(d.r(0x00, 4), Number((F_ECHO | F_REFUSED | F_INDIRECT_DESC | F_EVENT_IDX) & 0xffff_ffffn));
    assert.equal(d.negotiate(0xffff_ffff), Number(F_ECHO | F_REFUSED | F_INDIRECT_DESC | F_EVENT_IDX));
    assert.equal(s.a.dev.transport.driverFeatures, F_ECHO | F_REFUSED | F_INDIRECT_DESC | F_EVENT_IDX);
  });

  it('can leave EVENT_IDX out of the offer', () => {
    const s = setup(VirtioMode.Modern, { eventIdx: false });
    assert.equal(new ModernDriver(s.a.host, s.a.cfg).deviceFeatures() & F_EVENT_IDX, 0n);
  });
});

describe('virtio PCI transport: queues and interrupts', () => {
  it('sets queues up through the modern interface and delivers MSI-X per queue', () => {
    const s = setup(VirtioMode.Transitional);
    const d = modernReady(s);
    assert.equal(d.r(0x12, 2), 2, 'num_queues');
    d.w(0x16, 2, 1);
    assert.equal(d.r(0x18, 2), 8, 'queue 1 max size');
    assert.equal(d.r(0x38, 2), 1, 'notify data: the queue index');
    assert.equal(d.r(0x1e, 2), 0, 'notify offset 0 for every queue');
    d.w(0x16, 2, 2);
    assert.equal(d.r(0x18, 2), 0, 'no queue 2');
    s.a.cfg.msixVector(s.a.host, 0, MSI_ADDR, 0x30);
    s.a.cfg.msixVector(s.a.host, 1, MSI_ADDR, 0x31);
    s.a.cfg.msixVector(s.a.host, 2, MSI_ADDR, 0x32);
    s.a.cfg.msixEnable(true);
    d.w(0x10, 2, 0);
    assert.equal(d.r(0x10, 2), 0, 'config vector 0');
    d.w(0x10, 2, 9);
    assert.equal(d.r(0x10, 2), NO_VECTOR, 'a vector the table lacks reads back as NO_VECTOR');
    d.w(0x10, 2, 0);
    const q0 = FakeDriverQueue.at(s.mem, 8, 0x1000);
    const q1 = FakeDriverQueue.at(s.mem, 8, 0x2000);
    d.setupQueue(0, q0, 1);
    d.setupQueue(1, q1, 2);
    d.w(0x16, 2, 0);
    assert.equal(d.r(0x18, 2), 8, 'queue 0 resized to 8');
    assert.equal(d.r(0x1c, 2), 1, 'enabled');
    assert.equal(Number(s.a.host.mmio.read(BAR2_MODERN + 0x20, 8)), 0x1000, 'a 64-bit read of queue_desc');
    d.driverOk();
    echoChains(q0, s.ram, 2);
    d.notify(0);
    assert.deepEqual(
      q0.takeUsed().map((u) => u.len),
      [4, 4],
    );
    assert.deepEqual([...s.ram.subarray(0x9010, 0x9014)], [1, 2, 3, 4]);
    assert.deepEqual(s.a.host.msis, [{ address: BigInt(MSI_ADDR), data: 0x31 }]);
    echoChains(q1, s.ram, 1, 8);
    d.notify(1);
    assert.equal(s.a.host.msis.at(-1)?.data, 0x32);
    assert.deepEqual(s.a.intx, [], 'no INTx while MSI-X is on');
  });

  it('sets queues up through the legacy interface and interrupts with INTx and ISR', () => {
    const s = setup(VirtioMode.Legacy);
    const d = new LegacyDriver(s.a.host);
    d.negotiate(0);
    const q = FakeDriverQueue.legacy(s.mem, 16, 0x10);
    d.setupQueue(0, q);
    assert.equal(d.r(0x08, 4), 0x10, 'queue address reads back');
    d.w(0x0c, 2, 4);
    assert.equal(d.r(0x0c, 2), 16, 'legacy queue size is read-only');
    d.driverOk();
    echoChains(q, s.ram, 3);
    d.notify(0);
    assert.equal(q.takeUsed().length, 3);
    assert.deepEqual(s.a.intx, [true]);
    assert.equal(s.a.cfg.read(0x06, 2) & 0x08, 0x08, 'PCI Status.Interrupt follows ISR');
    assert.equal(d.readIsr(), 1, 'queue interrupt');
    assert.deepEqual(s.a.intx, [true, false], 'reading ISR lowers the pin');
    assert.equal(d.readIsr(), 0, 'and clears it');
  });

  it('moves the device configuration behind the vector registers while MSI-X is enabled', () => {
    const s = setup(VirtioMode.Legacy);
    const d = new LegacyDriver(s.a.host);
    assert.equal(d.configRead(0, 4, false), 0x1312_1110);
    s.a.cfg.msixEnable(true);
    assert.equal(d.configRead(0, 4, true), 0x1312_1110);
    assert.equal(d.r(0x14, 2), NO_VECTOR, 'config vector register');
    s.a.cfg.msixEnable(false);
    assert.equal(d.r(0x14, 4), 0x1312_1110);
    assert.equal(d.r(0x14 + 6, 4), 0x0000_1716, 'bytes past the configuration read 0');
    assert.equal(d.r(0x13 - 1, 4), 0x1110_0000, 'an access straddling header and configuration');
  });

  it('needs a reset for a queue size that is not a power of two, rings outside RAM, or queue_reset', () => {
    for (const bad of ['size', 'rings', 'queue_reset'] as const) {
      const s = setup(VirtioMode.Modern);
      const d = modernReady(s);
      d.w(0x16, 2, 0);
      if (bad === 'size') d.w(0x18, 2, 12);
      if (bad === 'queue_reset') d.w(0x3a, 2, 1);
      if (bad === 'rings') {
        d.w(0x20, 4, RAM_SIZE);
        d.w(0x1c, 2, 1);
        assert.equal(d.r(0x1c, 2), 0, 'not enabled');
      }
      assert.equal(d.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET, bad);
      assert.match(s.a.dev.transport.lastFault ?? '', /power of two|not in guest RAM|queue_reset/);
    }
  });

  it('drops notifies before DRIVER_OK, for unknown or disabled queues, and after DEVICE_NEEDS_RESET', () => {
    const s = setup(VirtioMode.Modern);
    const d = modernReady(s);
    const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
    d.w(0x16, 2, 0);
    d.w(0x20, 4, q.desc);
    d.w(0x28, 4, q.avail);
    d.w(0x30, 4, q.used);
    echoChains(q, s.ram, 1);
    const watch = new MemoryWatch(s.ram);
    d.notify(0); // before DRIVER_OK
    d.driverOk();
    d.notify(0); // queue 0 not enabled
    d.notify(1); // queue 1 not set up
    d.notify(7); // no such queue
    assert.deepEqual(watch.changed(), [], 'nothing written');
    assert.equal(s.a.dev.passes, 0);
    const st = s.a.dev.transport.stats;
    assert.equal(st.notifies, 4);
    assert.equal(st.droppedNotifies, 4);
    assert.equal(d.status & STATUS_NEEDS_RESET, 0, 'a notify the device cannot act on is ignored, not an error');
    d.w(0x1c, 2, 1);
    d.notify(0);
    assert.equal(q.takeUsed().length, 1, 'processed once enabled');
  });

  it('sets DEVICE_NEEDS_RESET on a queue fault and sends the configuration interrupt (MSI-X and INTx)', () => {
    for (const msix of [true, false]) {
      const s = setup(VirtioMode.Transitional);
      const d = modernReady(s);
      if (msix) {
        s.a.cfg.msixVector(s.a.host, 0, MSI_ADDR, 0x40);
        s.a.cfg.msixEnable(true);
        d.w(0x10, 2, 0);
      }
      const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
      d.setupQueue(0, q);
      d.driverOk();
      q.setAvailIdx(40); // far more than the queue holds
      const watch = new MemoryWatch(s.ram);
      d.notify(0);
      assert.deepEqual(watch.changedOutside([q.usedRange]), [], 'at most used.flags (NO_NOTIFY) changed');
      assert.equal(q.usedIdx, 0);
      assert.equal(d.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
      if (msix) {
        assert.deepEqual(s.a.host.msis, [{ address: BigInt(MSI_ADDR), data: 0x40 }]);
      } else {
        assert.deepEqual(s.a.intx, [true]);
        assert.equal(d.readIsr(), 2, 'configuration interrupt');
      }
      assert.equal(s.a.dev.transport.stats.needsReset, 1);
      // Further notifies are dropped until the driver resets the device.
      d.notify(0);
      assert.equal(s.a.dev.transport.stats.droppedNotifies, 1);
      d.status = 0;
      assert.equal(d.status, 0);
    }
  });

  it('turns an exception in the device into DEVICE_NEEDS_RESET, not an exception out of the access', () => {
    const s = setup(VirtioMode.Modern);
    const d = modernReady(s);
    d.setupQueue(0, FakeDriverQueue.at(s.mem, 16, 0x1000));
    d.driverOk();
    s.a.dev.throwNext = true;
    d.notify(0);
    assert.equal(d.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    assert.equal(s.a.dev.transport.stats.deviceErrors, 1);
    assert.match(s.a.dev.transport.lastFault ?? '', /injected device bug/);
  });

  it('honours EVENT_IDX end to end: avail_event published, interrupts only past used_event', () => {
    const s = setup(VirtioMode.Modern);
    const d = modernReady(s, F_VERSION_1 | F_EVENT_IDX);
    s.a.cfg.msixVector(s.a.host, 1, MSI_ADDR, 0x51);
    s.a.cfg.msixEnable(true);
    const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
    d.setupQueue(0, q, 1);
    d.driverOk();
    q.setUsedEvent(1);
    echoChains(q, s.ram, 1);
    d.notify(0);
    assert.equal(s.a.host.msis.length, 0, 'used.idx 1 does not pass used_event 1');
    assert.equal(q.availEvent, 1);
    echoChains(q, s.ram, 1, 1);
    d.notify(0);
    assert.equal(s.a.host.msis.length, 1, 'used.idx 2 passes it');
    assert.equal(q.usedFlags, 0);
  });

  it('without EVENT_IDX honours NO_INTERRUPT', () => {
    const s = setup(VirtioMode.Modern);
    const d = modernReady(s);
    s.a.cfg.msixVector(s.a.host, 1, MSI_ADDR, 0x51);
    s.a.cfg.msixEnable(true);
    const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
    d.setupQueue(0, q, 1);
    d.driverOk();
    q.setAvailFlags(1);
    echoChains(q, s.ram, 1);
    d.notify(0);
    assert.equal(q.takeUsed().length, 1);
    assert.equal(s.a.host.msis.length, 0);
    assert.equal(q.usedFlags, 0, 'NO_NOTIFY cleared after processing');
  });
});

describe('virtio PCI transport: status and reset', () => {
  it('needs a reset when the driver clears a status bit', () => {
    const s = setup(VirtioMode.Modern);
    const d = modernReady(s);
    d.status = STATUS_ACK | STATUS_FEATURES_OK;
    assert.equal(d.status, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_NEEDS_RESET);
  });

  it('resets queues, features, vectors and ISR when the driver writes 0', () => {
    const s = setup(VirtioMode.Transitional);
    const d = modernReady(s);
    const q = FakeDriverQueue.at(s.mem, 8, 0x1000);
    d.setupQueue(0, q, 1);
    d.w(0x10, 2, 0);
    d.driverOk();
    s.a.dev.transport.needsReset('test');
    const resets = s.a.dev.resets;
    d.status = 0;
    assert.equal(d.status, 0);
    assert.equal(s.a.dev.resets, resets + 1);
    assert.equal(s.a.dev.transport.driverFeatures, 0n);
    d.w(0x16, 2, 0);
    assert.equal(d.r(0x18, 2), 16, 'size back to the maximum');
    assert.equal(d.r(0x1c, 2), 0, 'disabled');
    assert.equal(d.r(0x20, 4), 0, 'addresses cleared');
    assert.equal(d.r(0x1a, 2), NO_VECTOR);
    assert.equal(d.r(0x10, 2), NO_VECTOR);
    assert.equal(d.readIsr(), 0);
    const legacy = new LegacyDriver(s.a.host);
    assert.equal(legacy.r(0x08, 4), 0, 'legacy queue address cleared');
    // The device works again after a fresh initialisation.
    assert.ok(d.negotiate(F_VERSION_1));
    d.setupQueue(0, FakeDriverQueue.at(s.mem, 8, 0x3000));
    d.driverOk();
    assert.equal(d.status & STATUS_NEEDS_RESET, 0);
  });

  it('bumps the configuration generation after the driver saw it, and interrupts', () => {
    const s = setup(VirtioMode.Transitional);
    const d = modernReady(s);
    d.driverOk();
    const t = s.a.dev.transport;
    t.configChanged();
    assert.equal(d.r(0x15, 1), 0, 'unchanged while nobody had read it');
    t.configChanged();
    assert.equal(d.r(0x15, 1), 1);
    assert.equal(d.readIsr(), 2);
  });
});

describe('virtio PCI transport: threads and the I/O-thread hooks', () => {
  it('never processes one queue on two threads at once, and loses no notify', () => {
    const s = setup(VirtioMode.Modern);
    const b = thread(s.sh, s.mem);
    const d = modernReady(s);
    const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
    d.setupQueue(0, q);
    d.driverOk();
    echoChains(q, s.ram, 1);
    // While thread a processes, the guest adds a chain and notifies on thread b.
    s.a.dev.during = () => {
      echoChains(q, s.ram, 1, 1);
      b.dev.transport.notify(0);
      assert.equal(b.dev.passes, 0, 'b found the queue busy and left it to a');
    };
    d.notify(0);
    assert.equal(q.takeUsed().length, 2);
    assert.ok(s.a.dev.passes >= 2, 'a ran another pass for b’s notify');
    assert.equal(b.dev.passes, 0);
    // With the queue free, b processes its own notifies.
    echoChains(q, s.ram, 1, 2);
    b.dev.transport.notify(0);
    assert.equal(b.dev.passes, 1);
    assert.equal(q.takeUsed().length, 1);
  });

  it('loses no notify that arrives after the holder last looked at the ring', () => {
    const s = setup(VirtioMode.Modern);
    const b = thread(s.sh, s.mem);
    const d = modernReady(s);
    s.a.cfg.msixVector(s.a.host, 1, MSI_ADDR, 0x71);
    s.a.cfg.msixEnable(true);
    const q = FakeDriverQueue.at(s.mem, 16, 0x1000);
    d.setupQueue(0, q, 1);
    d.driverOk();
    echoChains(q, s.ram, 1);
    // Thread a delivers its interrupt after its final look at the ring, still holding the
    // queue: that is when the guest adds a chain and thread b takes the notify.
    const deliver = s.a.host.msi.bind(s.a.host);
    let once = true;
    s.a.host.msi = (addr, data) => {
      deliver(addr, data);
      if (!once) return;
      once = false;
      echoChains(q, s.ram, 1, 1);
      b.dev.transport.notify(0);
    };
    d.notify(0);
    assert.equal(b.dev.passes, 0, 'b left the queue to its holder');
    assert.equal(q.takeUsed().length, 2, 'a ran the pass b asked for before letting go');
  });

  it('reports where each queue’s notify lands and how its interrupt is routed', () => {
    const s = setup(VirtioMode.Transitional);
    const t = s.a.dev.transport;
    assert.deepEqual(t.notifyBindings(), [
      { queue: 0, space: 'io', addr: BAR0_IO + 0x10, size: 2, datamatch: 0 },
      { queue: 1, space: 'io', addr: BAR0_IO + 0x10, size: 2, datamatch: 1 },
      { queue: 0, space: 'mmio', addr: BAR2_MODERN + 0x2000, size: 2, datamatch: 0 },
      { queue: 1, space: 'mmio', addr: BAR2_MODERN + 0x2000, size: 2, datamatch: 1 },
    ]);
    const gen = t.pci.generation;
    s.a.cfg.write(0x04, 2, 0);
    assert.notEqual(t.pci.generation, gen, 'the generation says when to re-bind');
    assert.deepEqual(t.notifyBindings(), [], 'nothing decodes with I/O and memory off');
    assert.deepEqual(t.queueInterruptRoute(0), { kind: 'intx' });
    s.a.cfg.msixEnable(true);
    assert.deepEqual(t.queueInterruptRoute(0), { kind: 'none' }, 'MSI-X without a vector');
    const d = new ModernDriver(s.a.host, s.a.cfg);
    s.a.cfg.write(0x04, 2, 7);
    d.w(0x16, 2, 1);
    d.w(0x1a, 2, 2);
    assert.deepEqual(t.queueInterruptRoute(1), { kind: 'msix', vector: 2 });
    assert.deepEqual(t.queueInterruptRoute(5), { kind: 'none' });
  });
});

describe('virtio PCI transport: state', () => {
  it('round-trips mid-operation: a chain made available before export is processed after import', () => {
    const s = setup(VirtioMode.Transitional);
    const d = modernReady(s, F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC);
    s.a.cfg.msixVector(s.a.host, 1, MSI_ADDR, 0x61);
    s.a.cfg.msixEnable(true);
    const q = FakeDriverQueue.at(s.mem, 8, 0x1000);
    d.setupQueue(0, q, 1);
    d.driverOk();
    echoChains(q, s.ram, 1);
    d.notify(0);
    assert.equal(q.takeUsed().length, 1);
    q.setUsedEvent(1); // EVENT_IDX: interrupt when the next element is used
    echoChains(q, s.ram, 1, 1); // published, not yet notified
    const saved = JSON.parse(
      JSON.stringify([s.a.dev.transport.exportState(), s.a.dev.transport.pci.exportState()]),
    ) as Payload[];
    assert.equal(saved[0]!.kind, 'pci-virtio');
    assert.equal(saved[1]!.kind, 'pci-device');
    // A fresh device over the same guest memory.
    const b = thread(share(VirtioMode.Transitional), s.mem);
    const offers = new PayloadOffers(saved);
    const v = b.dev.transport.takeState(offers);
    const p = b.dev.transport.pci.takeState(offers);
    offers.finish();
    b.dev.transport.applyState(v);
    b.dev.transport.pci.applyState(p);
    b.dev.transport.syncIntx();
    const bd = new ModernDriver(b.host, b.cfg);
    assert.equal(bd.status, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    bd.notify(0);
    assert.deepEqual(
      q.takeUsed().map((u) => u.len),
      [4],
    );
    assert.deepEqual([...s.ram.subarray(0x9010, 0x9014)], [1, 2, 3, 4]);
    assert.deepEqual(b.host.msis, [{ address: BigInt(MSI_ADDR), data: 0x61 }]);
  });

  it('refuses a payload for another mode, queue count or with reserved status bits', () => {
    const s = setup(VirtioMode.Transitional);
    modernReady(s);
    const good = s.a.dev.transport.exportState();
    const data = good.data as { device: Record<string, unknown>; queues: Record<string, unknown> };
    const tryImport = (mut: (d: typeof data) => void): string => {
      const copy = JSON.parse(JSON.stringify(data)) as typeof data;
      mut(copy);
      const b = thread(share(VirtioMode.Transitional), s.mem);
      try {
        b.dev.transport.takeState(new PayloadOffers([{ ...good, data: copy }]));
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    assert.equal(
      tryImport(() => {}),
      'accepted',
    );
    assert.match(
      tryImport((c) => (c.device.mode = VirtioMode.Legacy)),
      /mode 0/,
    );
    assert.match(
      tryImport((c) => (c.device.status = 0x30)),
      /reserved bits/,
    );
    assert.match(
      tryImport((c) => (c.device.msix_queue_vec = [0])),
      /1 queue vectors for 2 queues/,
    );
    assert.match(
      tryImport((c) => (c.device.msix_cfg_vec = 3)),
      /configuration vector 3/,
    );
    assert.match(
      tryImport((c) => (c.queues.len = '3')),
      /queue counts/,
    );
    assert.match(
      tryImport((c) => ((c.queues.queues as { size: number }[])[1]!.size = 6)),
      /size 6/,
    );
    assert.match(
      tryImport((c) => (c.device.extra = 1)),
      /unknown field/,
    );
  });
});
