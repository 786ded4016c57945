// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// virtio-block driven as a guest would drive it — legacy interface with
// INTx, transitional/modern with MSI-X — against an in-memory fake
// BlockTarget: the request types, the error answers, and a hostile driver
// that must only ever get IOERR/UNSUPP or DEVICE_NEEDS_RESET, with guest
// memory changed nowhere but the used ring and the buffers it handed over.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackendDescriptor, BlockTarget, DeviceInfo } from '../../block/types.js';
import { BlockResult } from '../../block/types.js';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { PciPath } from '../pci/path.js';
import { PciTopology } from '../pci/topology.js';
import { VirtioMode } from './bits.js';
import { PciVirtioBlock, PciVirtioBlockLoader, VirtioBlockConfigError, type VirtioBlockOptions } from './block.js';
import {
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  FakeCfg,
  FakeDriverQueue,
  LegacyDriver,
  MemoryWatch,
  ModernDriver,
  RAM_SIZE,
  ROM_BASE,
  STATUS_NEEDS_RESET,
  VirtioTestHost,
  pciWindows,
  testMemory,
  writeDesc,
  type Buf,
} from './driver-fake.js';

// The test's own numbers (virtio 1.2 §5.2).
const T_IN = 0;
const T_OUT = 1;
const T_FLUSH = 4;
const T_GET_ID = 8;
const T_GET_LIFETIME = 10;
const T_DISCARD = 11;
const T_WRITE_ZEROES = 13;
const S_OK = 0;
const S_IOERR = 1;
const S_UNSUPP = 2;
const F_RO = 1 << 5;
const F_BLK_SIZE = 1 << 6;
const F_SEG_MAX = 1 << 2;
const F_FLUSH = 1 << 9;
const F_MQ = 1 << 12;
const F_DISCARD = 1 << 13;
const F_WRITE_ZEROES = 1 << 14;
const DEV = 5;
const MSI_ADDR = 0xfee0_0000;

/** An in-memory disk that records what it is asked to do. */
class FakeTarget implements BlockTarget {
  readonly disk: Uint8Array;
  readonly calls: string[] = [];
  result: BlockResult = BlockResult.Success;
  throwNext = false;
  closed = false;

  constructor(readonly info: DeviceInfo) {
    this.disk = new Uint8Array(info.totalBlocks * info.blockSize);
  }

  private op(what: string): BlockResult | undefined {
    this.calls.push(what);
    if (this.throwNext) {
      this.throwNext = false;
      throw new Error('backend bug');
    }
    return this.result === BlockResult.Success ? undefined : this.result;
  }

  read(offset: number, bufs: Uint8Array[]): BlockResult {
    const n = bufs.reduce((a, b) => a + b.length, 0);
    const r = this.op(`read ${offset} ${n}`);
    if (r) return r;
    let o = offset;
    for (const b of bufs) {
      b.set(this.disk.subarray(o, o + b.length));
      o += b.length;
    }
    return BlockResult.Success;
  }

  write(offset: number, bufs: Uint8Array[]): BlockResult {
    const n = bufs.reduce((a, b) => a + b.length, 0);
    const r = this.op(`write ${offset} ${n}`);
    if (r) return r;
    let o = offset;
    for (const b of bufs) {
      this.disk.set(b, o);
      o += b.length;
    }
    return BlockResult.Success;
  }

  flush(): BlockResult {
    return this.op('flush') ?? BlockResult.Success;
  }

  discard(offset: number, len: number): BlockResult {
    return this.op(`discard ${offset} ${len}`) ?? BlockResult.Success;
  }

  writeZeroes(offset: number, len: number): BlockResult {
    const r = this.op(`zeroes ${offset} ${len}`);
    if (r) return r;
    this.disk.fill(0, offset, offset + len);
    return BlockResult.Success;
  }

  close(): void {
    this.closed = true;
  }
}

/** The opener the loader test names in its backend reference. */
export function openTestTarget(d: BackendDescriptor): BlockTarget {
  return new FakeTarget((d.params as { info: DeviceInfo }).info);
}

const INFO: DeviceInfo = { blockSize: 512, totalBlocks: 2048, readOnly: false, supportsDiscard: true };

// Guest buffers used by requests.
const HDR = 0x30000;
const STATUS = 0x31000;
const DATA = 0x40000;

function setup(opts: Partial<VirtioBlockOptions> = {}) {
  const m = testMemory();
  const info = opts.info ?? INFO;
  const target = new FakeTarget(info);
  const desc = PciVirtioBlock.describe('vblk0', {
    path: new PciPath(0, DEV, 0),
    info,
    serial: 'disk-serial-0001',
    ...opts,
  });
  const host = new VirtioTestHost(m.mem);
  const dev = PciVirtioBlock.attachWithTarget(desc, host, target);
  const topo = pciWindows(host);
  const intx: boolean[] = [];
  topo.setIntxRouter({ setIntx: (_d, _p, level) => void intx.push(level) });
  const cfg = new FakeCfg(topo, 0, DEV, 0);
  const mode = opts.mode ?? VirtioMode.Legacy;
  cfg.enable({ io: mode !== VirtioMode.Modern, modern: mode !== VirtioMode.Legacy });
  return { ...m, target, desc, host, dev, cfg, intx, info };
}

type Setup = ReturnType<typeof setup>;

/** Legacy driver: accept every offered feature, queue 0 at page 0x10, DRIVER_OK. */
function legacyReady(s: Setup, size = 256): { drv: LegacyDriver; q: FakeDriverQueue } {
  const drv = new LegacyDriver(s.host);
  drv.negotiate(drv.r(0x00, 4));
  const q = FakeDriverQueue.legacy(s.mem, size, 0x10);
  drv.setupQueue(0, q);
  drv.driverOk();
  return { drv, q };
}

function header(s: Setup, at: number, type: number, sector: number): void {
  const dv = new DataView(s.ram.buffer);
  dv.setUint32(at, type, true);
  dv.setUint32(at + 4, 0, true);
  dv.setBigUint64(at + 8, BigInt(sector), true);
}

/** A request chain: header, data buffers, status byte. The head. */
function req(s: Setup, q: FakeDriverQueue, type: number, sector: number, data: Buf[] = [], slot = 0): number {
  header(s, HDR + 16 * slot, type, sector);
  s.ram[STATUS + slot] = 0xee;
  const head = q.addChain([{ addr: HDR + 16 * slot, len: 16 }, ...data, { addr: STATUS + slot, len: 1, write: true }]);
  q.publish(head);
  return head;
}

const status = (s: Setup, slot = 0): number => s.ram[STATUS + slot] as number;

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

describe('virtio-block: identity and configuration', () => {
  it('is the seed’s pci-virtio-block: 1AF4:1001, subsystem 1AF4:0002, class 01/00, legacy BAR0, MSI-X ×2', () => {
    const s = setup();
    const c = s.cfg;
    assert.equal(s.dev.typeName, 'pci-virtio-block');
    assert.equal(c.read(0x00, 4), 0x1001_1af4);
    assert.equal(c.read(0x08, 4), 0x0100_0000, 'class 01, subclass 00, prog-if 00, revision 0');
    assert.equal(c.read(0x2c, 4), 0x0002_1af4);
    c.write(0x04, 2, 0);
    c.write(0x10, 4, 0xffff_ffff);
    assert.equal(c.read(0x10, 4), 0xffff_fe01, 'BAR0: I/O 0x200');
    assert.equal(c.read(0x18, 4), 0, 'no modern BAR');
    const msix = c.caps().find(([id]) => id === 0x11)![1];
    assert.equal((c.read(msix + 2, 2) & 0x7ff) + 1, 2, 'two MSI-X vectors');
    const drv = new LegacyDriver(s.host);
    s.cfg.enable();
    drv.w(0x0e, 2, 0);
    assert.equal(drv.r(0x0c, 2), 256, 'one queue of 256');
    drv.w(0x0e, 2, 1);
    assert.equal(drv.r(0x0c, 2), 0, 'and no second');
  });

  it('offers BLK_SIZE, SEG_MAX, FLUSH, WRITE_ZEROES and DISCARD, and describes them in its configuration', () => {
    const s = setup({ info: { blockSize: 4096, totalBlocks: 300, readOnly: false, supportsDiscard: true } });
    const drv = new LegacyDriver(s.host);
    const f = drv.r(0x00, 4);
    for (const bit of [F_BLK_SIZE, F_SEG_MAX, F_FLUSH, F_WRITE_ZEROES, F_DISCARD]) assert.ok(f & bit, `feature ${bit}`);
    assert.equal(f & (F_RO | F_MQ), 0);
    const cfg = (off: number, size: 1 | 2 | 4) => drv.configRead(off, size, false);
    assert.equal(cfg(0x00, 4) + cfg(0x04, 4) * 2 ** 32, (300 * 4096) / 512, 'capacity in 512-byte sectors');
    assert.equal(cfg(0x0c, 4), 126, 'seg_max');
    assert.equal(cfg(0x14, 4), 4096, 'blk_size');
    assert.equal(cfg(0x24, 4), 2048, 'max_discard_sectors');
    assert.equal(cfg(0x28, 4), 1, 'max_discard_seg');
    assert.equal(cfg(0x2c, 4), 8, 'discard_sector_alignment in sectors');
    assert.equal(cfg(0x30, 4), 2048, 'max_write_zeroes_sectors');
    assert.equal(cfg(0x34, 4), 1, 'max_write_zeroes_seg');
    assert.equal(cfg(0x38, 1), 0, 'write_zeroes_may_unmap');
    drv.w(0x14 + 0x14, 4, 0x1234);
    assert.equal(cfg(0x14, 4), 4096, 'configuration is read-only');
  });

  it('is read-only when asked or when the backend is: RO offered, no DISCARD or WRITE_ZEROES', () => {
    for (const opts of [{ readOnly: true }, { info: { ...INFO, readOnly: true } }]) {
      const s = setup(opts);
      const f = new LegacyDriver(s.host).r(0x00, 4);
      assert.ok(f & F_RO);
      assert.equal(f & (F_DISCARD | F_WRITE_ZEROES), 0);
    }
    const s = setup({ info: { ...INFO, supportsDiscard: false } });
    assert.equal(new LegacyDriver(s.host).r(0x00, 4) & F_DISCARD, 0, 'no DISCARD without backend support');
  });

  it('refuses bad options with a typed error', () => {
    const bad = (o: Partial<VirtioBlockOptions>, re: RegExp): void => {
      assert.throws(
        () => PciVirtioBlock.describe('x', { path: new PciPath(0, 6, 0), info: INFO, ...o }),
        (e: unknown) => e instanceof VirtioBlockConfigError && e.code === 'VIRTIO_BLOCK_CONFIG' && re.test(e.message),
      );
    };
    bad({ serial: 'x'.repeat(21) }, /serial/);
    bad({ serial: 'naïve' }, /serial/);
    bad({ info: { ...INFO, blockSize: 1000 } }, /block size/);
    bad({ queueSize: 100 }, /queue size/);
    bad({ queues: 0 }, /queues/);
  });
});

describe('virtio-block: requests', () => {
  it('writes and reads back through the legacy interface, interrupting with INTx', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    const data = pattern(1024, 3);
    s.ram.set(data, DATA);
    const w = req(s, q, T_OUT, 2, [{ addr: DATA, len: 1024 }]);
    drv.notify(0);
    assert.deepEqual(q.takeUsed(), [{ id: w, len: 1 }]);
    assert.equal(status(s), S_OK);
    assert.deepEqual(s.target.disk.subarray(1024, 2048), data);
    assert.deepEqual(s.intx, [true]);
    assert.equal(drv.readIsr(), 1);
    // Read it back into two buffers.
    const r = req(s, q, T_IN, 2, [
      { addr: DATA + 0x1000, len: 512, write: true },
      { addr: DATA + 0x2000, len: 512, write: true },
    ]);
    drv.notify(0);
    assert.deepEqual(q.takeUsed(), [{ id: r, len: 1025 }], 'data and status written');
    assert.equal(status(s), S_OK);
    assert.deepEqual(s.ram.subarray(DATA + 0x1000, DATA + 0x1200), data.subarray(0, 512));
    assert.deepEqual(s.ram.subarray(DATA + 0x2000, DATA + 0x2200), data.subarray(512));
    assert.deepEqual(s.target.calls, ['write 1024 1024', 'read 1024 1024']);
    assert.equal(s.dev.stats.requests, 2);
  });

  it('works through the modern interface with MSI-X and indirect descriptors, as Linux drives it', () => {
    const s = setup({ mode: VirtioMode.Transitional });
    const drv = new ModernDriver(s.host, s.cfg);
    const offered = drv.deviceFeatures();
    assert.ok(offered & F_VERSION_1);
    assert.ok(drv.negotiate(offered & (F_VERSION_1 | F_INDIRECT_DESC | F_EVENT_IDX | 0xffff_ffn)));
    s.cfg.msixVector(s.host, 0, MSI_ADDR, 0x20);
    s.cfg.msixVector(s.host, 1, MSI_ADDR, 0x21);
    s.cfg.msixEnable(true);
    drv.w(0x10, 2, 0);
    const q = FakeDriverQueue.at(s.mem, 128, 0x10000);
    drv.setupQueue(0, q, 1);
    drv.driverOk();
    assert.equal(drv.configRead(0x00, 4), 2048, 'capacity through the device capability');
    s.target.disk.set(pattern(4096, 9), 8 * 512);
    header(s, HDR, T_IN, 8);
    const head = q.addIndirect(0x20000, [
      { addr: HDR, len: 16 },
      ...Array.from({ length: 8 }, (_, i) => ({ addr: DATA + 0x1000 * i, len: 512, write: true })),
      { addr: STATUS, len: 1, write: true },
    ]);
    q.publish(head);
    drv.notify(0);
    assert.deepEqual(q.takeUsed(), [{ id: head, len: 4097 }]);
    assert.equal(status(s), S_OK);
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(
        s.ram.subarray(DATA + 0x1000 * i, DATA + 0x1000 * i + 512),
        pattern(4096, 9).subarray(512 * i, 512 * (i + 1)),
      );
    }
    assert.deepEqual(s.host.msis, [{ address: BigInt(MSI_ADDR), data: 0x21 }]);
    assert.deepEqual(s.intx, []);
  });

  it('flushes', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    req(s, q, T_FLUSH, 0);
    drv.notify(0);
    assert.equal(status(s), S_OK);
    assert.deepEqual(s.target.calls, ['flush']);
    assert.deepEqual(
      q.takeUsed().map((u) => u.len),
      [1],
    );
  });

  it('answers GET_ID with the serial, NUL-padded to 20 bytes', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.ram.fill(0xff, DATA, DATA + 20);
    req(s, q, T_GET_ID, 0, [{ addr: DATA, len: 20, write: true }]);
    drv.notify(0);
    assert.equal(status(s), S_OK);
    const id = Buffer.from(s.ram.subarray(DATA, DATA + 20));
    assert.equal(id.toString('latin1'), 'disk-serial-0001\0\0\0\0');
    assert.deepEqual(
      q.takeUsed().map((u) => u.len),
      [21],
    );
    assert.deepEqual(s.target.calls, [], 'the backend is not involved');
  });

  it('discards and writes zeroes, one segment at a time', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.target.disk.fill(0x77);
    const seg = (at: number, sector: number, n: number, flags: number): void => {
      const dv = new DataView(s.ram.buffer);
      dv.setBigUint64(at, BigInt(sector), true);
      dv.setUint32(at + 8, n, true);
      dv.setUint32(at + 12, flags, true);
    };
    seg(DATA, 8, 16, 0);
    req(s, q, T_DISCARD, 0, [{ addr: DATA, len: 16 }], 0);
    seg(DATA + 16, 64, 8, 1); // write zeroes may carry unmap
    req(s, q, T_WRITE_ZEROES, 0, [{ addr: DATA + 16, len: 16 }], 1);
    drv.notify(0);
    assert.deepEqual([status(s, 0), status(s, 1)], [S_OK, S_OK]);
    assert.deepEqual(s.target.calls, ['discard 4096 8192', 'zeroes 32768 4096']);
    assert.ok(s.target.disk.subarray(32768, 36864).every((b) => b === 0));
    assert.equal(s.target.disk[36864], 0x77);
    // Unknown flags, unmap on a discard: UNSUPP. Two segments, too many sectors, past the end: IOERR.
    const cases: [number, number, number, number, number, number][] = [
      [T_DISCARD, 0, 8, 2, 16, S_UNSUPP],
      [T_WRITE_ZEROES, 0, 8, 0x8000_0000, 16, S_UNSUPP],
      [T_DISCARD, 0, 8, 1, 16, S_UNSUPP],
      [T_DISCARD, 0, 8, 0, 32, S_IOERR],
      [T_WRITE_ZEROES, 0, 4096, 0, 16, S_IOERR],
      [T_WRITE_ZEROES, 2040, 16, 0, 16, S_IOERR],
      [T_DISCARD, 0, 8, 0, 8, S_IOERR],
    ];
    s.target.calls.length = 0;
    cases.forEach(([type, sector, n, flags, len], i) => {
      seg(DATA + 0x100 * i, sector, n, flags);
      seg(DATA + 0x100 * i + 16, 0, 1, 0);
      req(s, q, type, 0, [{ addr: DATA + 0x100 * i, len }], i);
    });
    drv.notify(0);
    assert.deepEqual(
      cases.map((_, i) => status(s, i)),
      cases.map((c) => c[5]),
    );
    assert.deepEqual(s.target.calls, []);
  });

  it('answers DISCARD with UNSUPP when the backend cannot discard', () => {
    const s = setup({ info: { ...INFO, supportsDiscard: false } });
    const { drv, q } = legacyReady(s);
    req(s, q, T_DISCARD, 0, [{ addr: DATA, len: 16 }]);
    drv.notify(0);
    assert.equal(status(s), S_UNSUPP);
  });

  it('answers IOERR to every write-type request on a read-only disk, and writes nothing', () => {
    const s = setup({ readOnly: true });
    const { drv, q } = legacyReady(s);
    req(s, q, T_OUT, 0, [{ addr: DATA, len: 512 }], 0);
    req(s, q, T_WRITE_ZEROES, 0, [{ addr: DATA, len: 16 }], 1);
    req(s, q, T_DISCARD, 0, [{ addr: DATA, len: 16 }], 2);
    req(s, q, T_IN, 0, [{ addr: DATA, len: 512, write: true }], 3);
    drv.notify(0);
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => status(s, i)),
      [S_IOERR, S_IOERR, S_IOERR, S_OK],
    );
    assert.deepEqual(s.target.calls, ['read 0 512']);
    assert.equal(s.dev.stats.ioerr, 3);
  });

  it('answers IOERR for requests past the capacity or not in whole sectors, UNSUPP for unknown types', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    const cases: [number, number, Buf[], number][] = [
      [T_IN, 2047, [{ addr: DATA, len: 1024, write: true }], S_IOERR],
      [T_OUT, 2048, [{ addr: DATA, len: 512 }], S_IOERR],
      [T_IN, 2 ** 60, [{ addr: DATA, len: 512, write: true }], S_IOERR],
      [T_IN, 0, [{ addr: DATA, len: 100, write: true }], S_IOERR],
      [T_OUT, 0, [{ addr: DATA, len: 513 }], S_IOERR],
      [T_GET_LIFETIME, 0, [{ addr: DATA, len: 8, write: true }], S_UNSUPP],
      [0x7777, 0, [], S_UNSUPP],
      [T_IN, 2047, [{ addr: DATA, len: 512, write: true }], S_OK],
    ];
    cases.forEach(([type, sector, data], i) => req(s, q, type, sector, data, i));
    drv.notify(0);
    assert.deepEqual(
      cases.map((_, i) => status(s, i)),
      cases.map((c) => c[3]),
    );
    assert.deepEqual(s.target.calls, ['read 1048064 512']);
    assert.equal(s.dev.stats.unsupp, 2);
  });

  it('passes backend results through, and a backend exception becomes IOERR', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.target.result = BlockResult.Failure;
    req(s, q, T_FLUSH, 0, [], 0);
    drv.notify(0);
    s.target.result = BlockResult.Unsupported;
    req(s, q, T_FLUSH, 0, [], 1);
    drv.notify(0);
    s.target.result = BlockResult.ReadOnly;
    req(s, q, T_OUT, 0, [{ addr: DATA, len: 512 }], 2);
    drv.notify(0);
    s.target.result = BlockResult.Success;
    s.target.throwNext = true;
    req(s, q, T_IN, 0, [{ addr: DATA, len: 512, write: true }], 3);
    drv.notify(0);
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => status(s, i)),
      [S_IOERR, S_UNSUPP, S_IOERR, S_IOERR],
    );
    assert.equal(s.dev.stats.backendErrors, 1);
    assert.equal(q.takeUsed().length, 4);
    assert.equal(drv.status & STATUS_NEEDS_RESET, 0);
  });

  it('serves several queues with VIRTIO_BLK_F_MQ', () => {
    const s = setup({ queues: 2, queueSize: 64, mode: VirtioMode.Modern });
    const drv = new ModernDriver(s.host, s.cfg);
    const offered = drv.deviceFeatures();
    assert.ok(offered & BigInt(F_MQ));
    assert.ok(drv.negotiate(offered & ~(1n << 40n)));
    assert.equal(drv.configRead(0x22, 2), 2, 'num_queues');
    assert.equal(drv.r(0x12, 2), 2);
    const q0 = FakeDriverQueue.at(s.mem, 64, 0x10000);
    const q1 = FakeDriverQueue.at(s.mem, 64, 0x18000);
    drv.setupQueue(0, q0);
    drv.setupQueue(1, q1);
    drv.driverOk();
    s.ram.set(pattern(512, 1), DATA);
    req(s, q1, T_OUT, 5, [{ addr: DATA, len: 512 }], 0);
    drv.notify(1);
    req(s, q0, T_IN, 5, [{ addr: DATA + 0x1000, len: 512, write: true }], 1);
    drv.notify(0);
    assert.equal(q1.takeUsed().length, 1);
    assert.equal(q0.takeUsed().length, 1);
    assert.deepEqual(s.ram.subarray(DATA + 0x1000, DATA + 0x1200), pattern(512, 1));
  });
});

describe('virtio-block: a hostile driver gets IOERR', () => {
  /** Run `build` as one request; the status it got and whether memory changed outside `allowed`. */
  function hostile(build: (s: Setup, q: FakeDriverQueue) => void, allowed: [number, number][] = []) {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.ram[STATUS] = 0xee;
    build(s, q);
    const watch = new MemoryWatch(s.ram);
    drv.notify(0);
    const changed = watch.changedOutside([q.usedRange, [STATUS, STATUS + 1], ...allowed]);
    return { s, q, drv, changed, used: q.takeUsed() };
  }

  it('a header shorter than 16 bytes', () => {
    const r = hostile((s, q) => {
      header(s, HDR, T_IN, 0);
      q.publish(
        q.addChain([
          { addr: HDR, len: 8 },
          { addr: DATA, len: 512, write: true },
          { addr: STATUS, len: 1, write: true },
        ]),
      );
    });
    assert.equal(status(r.s), S_IOERR);
    assert.deepEqual(r.changed, []);
    assert.deepEqual(r.s.target.calls, []);
    assert.equal(r.used[0]?.len, 0, 'the data was not written: used length 0');
  });

  it('a header outside guest RAM', () => {
    const r = hostile((_s, q) => {
      q.publish(
        q.addChain([
          { addr: RAM_SIZE + 0x100, len: 16 },
          { addr: STATUS, len: 1, write: true },
        ]),
      );
    });
    assert.equal(status(r.s), S_IOERR);
    assert.deepEqual(r.changed, []);
  });

  it('data buffers in the wrong direction', () => {
    for (const [type, data] of [
      [T_IN, [{ addr: DATA, len: 512 }]],
      [T_OUT, [{ addr: DATA, len: 512, write: true }]],
      [T_GET_ID, [{ addr: DATA, len: 20 }]],
    ] as [number, Buf[]][]) {
      const r = hostile((s, q) => void req(s, q, type, 0, data));
      assert.equal(status(r.s), S_IOERR, `type ${type}`);
      assert.deepEqual(r.changed, []);
      assert.deepEqual(r.s.target.calls, []);
    }
  });

  it('a read into the hole, into ROM, or into a 4 GiB buffer', () => {
    for (const data of [
      [{ addr: RAM_SIZE, len: 512, write: true }],
      [{ addr: ROM_BASE, len: 512, write: true }],
      [
        { addr: DATA, len: 512, write: true },
        { addr: DATA + 0x1000, len: 0xffff_fc00, write: true },
      ],
    ] as Buf[][]) {
      const r = hostile((s, q) => void req(s, q, T_IN, 0, data));
      assert.equal(status(r.s), S_IOERR);
      assert.deepEqual(r.changed, []);
      assert.ok(
        r.s.rom.every((b) => b === 0xa5),
        'ROM untouched',
      );
      assert.deepEqual(r.s.target.calls, [], 'nothing reaches the backend');
    }
  });

  it('no device-writable byte for a status: returned used with length 0', () => {
    const r = hostile((s, q) => {
      header(s, HDR, T_FLUSH, 0);
      q.publish(q.addChain([{ addr: HDR, len: 16 }]));
    });
    assert.deepEqual(
      r.used.map((u) => u.len),
      [0],
    );
    assert.deepEqual(r.changed, []);
    assert.equal(r.s.dev.stats.noStatus, 1);
    assert.equal(r.drv.status & STATUS_NEEDS_RESET, 0);
  });

  it('a status byte in ROM: returned used with length 0, ROM untouched', () => {
    const r = hostile((s, q) => {
      header(s, HDR, T_FLUSH, 0);
      q.publish(
        q.addChain([
          { addr: HDR, len: 16 },
          { addr: ROM_BASE + 8, len: 1, write: true },
        ]),
      );
    });
    assert.deepEqual(
      r.used.map((u) => u.len),
      [0],
    );
    assert.ok(r.s.rom.every((b) => b === 0xa5));
    assert.deepEqual(r.changed, []);
  });

  it('zero-length descriptors scattered through a request are harmless', () => {
    const r = hostile(
      (s, q) => {
        header(s, HDR, T_IN, 1);
        s.target.disk.set(pattern(512, 5), 512);
        q.publish(
          q.addChain([
            { addr: HDR, len: 16 },
            { addr: 0xffff_ffff_0000, len: 0 },
            { addr: DATA, len: 512, write: true },
            { addr: RAM_SIZE + 5, len: 0, write: true },
            { addr: STATUS, len: 1, write: true },
          ]),
        );
      },
      [[DATA, DATA + 512]],
    );
    assert.equal(status(r.s), S_OK);
    assert.deepEqual(r.s.ram.subarray(DATA, DATA + 512), pattern(512, 5));
    assert.deepEqual(r.changed, []);
  });
});

describe('virtio-block: a hostile driver gets DEVICE_NEEDS_RESET', () => {
  /** Build a malformed queue; the device must need a reset, reach no backend and write nothing. */
  function expectReset(build: (s: Setup, q: FakeDriverQueue, drv: LegacyDriver) => void): Setup {
    const s = setup();
    const { drv, q } = legacyReady(s, 256);
    build(s, q, drv);
    const before = new MemoryWatch(s.ram);
    drv.notify(0);
    assert.equal(drv.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    assert.deepEqual(before.changedOutside([q.usedRange]), [], 'the notify wrote at most used.flags');
    assert.equal(q.usedIdx, 0, 'nothing used');
    assert.deepEqual(s.target.calls, []);
    assert.ok(s.rom.every((b) => b === 0xa5));
    assert.equal(drv.readIsr() & 2, 2, 'a configuration interrupt told the driver');
    // And the driver can start over.
    drv.status = 0;
    assert.equal(drv.status, 0);
    return s;
  }

  it('a descriptor loop', () => {
    expectReset((s, q) => {
      header(s, HDR, T_IN, 0);
      q.setDesc(0, { addr: HDR, len: 16, flags: DESC_F_NEXT, next: 1 });
      q.setDesc(1, { addr: DATA, len: 512, flags: DESC_F_NEXT | DESC_F_WRITE, next: 0 });
      q.publish(0);
    });
  });

  it('a chain longer than the queue', () => {
    expectReset((_s, q) => {
      for (let i = 0; i < 256; i++) q.setDesc(i, { addr: DATA, len: 1, flags: DESC_F_NEXT, next: (i + 1) % 256 });
      q.publish(0);
    });
  });

  it('a device-readable descriptor after a device-writable one', () => {
    expectReset((s, q) => {
      header(s, HDR, T_OUT, 0);
      q.publish(
        q.addChain([
          { addr: STATUS, len: 1, write: true },
          { addr: HDR, len: 16 },
        ]),
      );
    });
  });

  it('an indirect table inside an indirect table', () => {
    expectReset((_s, q) => {
      writeDesc(q.mem, 0x21000, { addr: STATUS, len: 1, flags: DESC_F_WRITE, next: 0 });
      writeDesc(q.mem, 0x20000, { addr: 0x21000, len: 16, flags: DESC_F_INDIRECT, next: 0 });
      q.setDesc(0, { addr: 0x20000, len: 16, flags: DESC_F_INDIRECT, next: 0 });
      q.publish(0);
    });
  });

  it('rings outside guest RAM (a legacy queue address past the end of RAM)', () => {
    const s = setup();
    const drv = new LegacyDriver(s.host);
    drv.negotiate(0);
    drv.w(0x0e, 2, 0);
    drv.w(0x08, 4, RAM_SIZE / 4096 - 1); // the rings would run past RAM
    assert.equal(drv.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    drv.driverOk();
    const watch = new MemoryWatch(s.ram);
    drv.notify(0);
    assert.deepEqual(watch.changed(), []);
    assert.deepEqual(s.target.calls, []);
  });

  it('a queue size that is not a power of two (modern)', () => {
    const s = setup({ mode: VirtioMode.Modern });
    const drv = new ModernDriver(s.host, s.cfg);
    assert.ok(drv.negotiate(F_VERSION_1));
    drv.w(0x16, 2, 0);
    drv.w(0x18, 2, 100);
    assert.equal(drv.status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    assert.equal(drv.r(0x18, 2), 256, 'the size was not taken');
  });

  it('a notify for a queue that is not enabled is ignored, touching nothing', () => {
    const s = setup({ mode: VirtioMode.Modern });
    const drv = new ModernDriver(s.host, s.cfg);
    assert.ok(drv.negotiate(F_VERSION_1));
    const q = FakeDriverQueue.at(s.mem, 256, 0x10000);
    drv.w(0x16, 2, 0);
    drv.w(0x20, 4, q.desc);
    drv.w(0x28, 4, q.avail);
    drv.w(0x30, 4, q.used);
    drv.driverOk();
    req(s, q, T_FLUSH, 0);
    const watch = new MemoryWatch(s.ram);
    drv.notify(0);
    drv.notify(3);
    assert.deepEqual(watch.changed(), []);
    assert.deepEqual(s.target.calls, []);
    assert.equal(s.dev.transport.stats.droppedNotifies, 2);
  });
});

describe('virtio-block: notification suppression', () => {
  it('EVENT_IDX: one interrupt for a batch the driver asked to hear about at its end', () => {
    const s = setup();
    const drv = new LegacyDriver(s.host);
    drv.negotiate(Number(F_EVENT_IDX));
    const q = FakeDriverQueue.legacy(s.mem, 256, 0x10);
    drv.setupQueue(0, q);
    drv.driverOk();
    q.setUsedEvent(2); // interrupt when the third request completes
    for (let i = 0; i < 3; i++) req(s, q, T_FLUSH, 0, [], i);
    drv.notify(0);
    assert.equal(q.takeUsed().length, 3);
    assert.deepEqual(s.intx, [true]);
    drv.readIsr();
    req(s, q, T_FLUSH, 0, [], 3);
    drv.notify(0);
    assert.deepEqual(s.intx, [true, false], 'no interrupt for the fourth');
    assert.equal(q.availEvent, 4);
  });
});

describe('virtio-block: lifecycle and state', () => {
  it('round-trips through export and import mid-operation', () => {
    const s = setup({ mode: VirtioMode.Transitional });
    const drv = new ModernDriver(s.host, s.cfg);
    assert.ok(drv.negotiate(F_VERSION_1 | F_INDIRECT_DESC));
    s.cfg.msixVector(s.host, 1, MSI_ADDR, 0x44);
    s.cfg.msixEnable(true);
    const q = FakeDriverQueue.at(s.mem, 64, 0x10000);
    drv.setupQueue(0, q, 1);
    drv.driverOk();
    s.ram.set(pattern(512, 8), DATA);
    req(s, q, T_OUT, 3, [{ addr: DATA, len: 512 }], 0);
    drv.notify(0);
    req(s, q, T_IN, 3, [{ addr: DATA + 0x1000, len: 512, write: true }], 1); // in flight at export
    const mig = s.dev.migrate();
    assert.notEqual(mig, 'empty');
    assert.notEqual(mig, 'non-migratable');
    if (typeof mig === 'string') return;
    const saved = JSON.parse(JSON.stringify(mig.export())) as Payload[];
    assert.deepEqual(
      saved.map((p) => `${p.kind} v${p.version}`),
      ['pci-virtio v1', 'pci-device v1'],
    );
    // The destination: a fresh device over the same memory and disk contents.
    const desc2 = PciVirtioBlock.describe('vblk0', {
      path: new PciPath(0, DEV, 0),
      info: INFO,
      mode: VirtioMode.Transitional,
    });
    const host2 = new VirtioTestHost(s.mem);
    const dev2 = PciVirtioBlock.attachWithTarget(desc2, host2, s.target);
    pciWindows(host2);
    const mig2 = dev2.migrate();
    if (typeof mig2 === 'string') throw new Error('not migratable');
    mig2.import(new PayloadOffers(saved));
    new ModernDriver(host2, new FakeCfg(PciTopology.of(host2), 0, DEV, 0)).notify(0);
    assert.equal(status(s, 1), S_OK);
    assert.deepEqual(s.ram.subarray(DATA + 0x1000, DATA + 0x1200), pattern(512, 8));
    assert.deepEqual(
      q.takeUsed().map((u) => u.len),
      [1, 513],
    );
    assert.deepEqual(host2.msis, [{ address: BigInt(MSI_ADDR), data: 0x44 }]);
    // Leftover or missing payloads are refused.
    const mig3 = PciVirtioBlock.attachWithTarget(
      PciVirtioBlock.describe('vblk1', { path: new PciPath(0, 7, 0), info: INFO, mode: VirtioMode.Transitional }),
      new VirtioTestHost(s.mem),
      s.target,
    ).migrate();
    if (typeof mig3 === 'string') throw new Error('not migratable');
    assert.throws(() => mig3.import(new PayloadOffers([...saved, { kind: 'x', version: 1, data: {} }])), /unexpected/);
    assert.throws(() => mig3.import(new PayloadOffers([saved[0]!])), /pci-device/);
  });

  it('resets to power-on: virtio state and the PCI function', () => {
    const s = setup();
    const { drv } = legacyReady(s);
    s.dev.reset();
    assert.equal(s.cfg.read(0x10, 4), 1, 'BAR0 unassigned again (I/O type bit)');
    s.cfg.enable();
    assert.equal(drv.status, 0);
    assert.equal(drv.r(0x08, 4), 0);
  });

  it('workers attach through the loader, which opens the backend on their thread', async () => {
    const m = testMemory();
    const desc = PciVirtioBlock.describe('vblk0', {
      path: new PciPath(0, DEV, 0),
      info: INFO,
      backend: {
        module: import.meta.url,
        export: 'openTestTarget',
        descriptor: { kind: 'test', name: 't', params: { info: INFO } },
      },
    });
    assert.equal(desc.export, 'PciVirtioBlockLoader');
    const host = new VirtioTestHost(m.mem);
    const dev = await PciVirtioBlockLoader.attach(desc, host);
    const topo = pciWindows(host);
    new FakeCfg(topo, 0, DEV, 0).enable();
    const drv = new LegacyDriver(host);
    drv.negotiate(0);
    const q = FakeDriverQueue.legacy(m.mem, 256, 0x10);
    drv.setupQueue(0, q);
    drv.driverOk();
    const s = { ram: m.ram } as Setup;
    req(s, q, T_FLUSH, 0);
    drv.notify(0);
    assert.equal(m.ram[STATUS], S_OK, 'the opened target answered');
    dev.halt();
    // A bad reference fails the attach with a typed error.
    const bad = PciVirtioBlock.describe('vblk1', {
      path: new PciPath(0, 6, 0),
      info: INFO,
      backend: { module: import.meta.url, export: 'nope', descriptor: { kind: 'test', name: 't', params: {} } },
    });
    await assert.rejects(PciVirtioBlockLoader.attach(bad, new VirtioTestHost(m.mem)), VirtioBlockConfigError);
  });

  it('answers IOERR when no backend could be opened on this thread', () => {
    const m = testMemory();
    const desc = PciVirtioBlock.describe('vblk0', { path: new PciPath(0, DEV, 0), info: INFO });
    const host = new VirtioTestHost(m.mem);
    const dev = PciVirtioBlock.attach(desc, host);
    new FakeCfg(pciWindows(host), 0, DEV, 0).enable();
    const drv = new LegacyDriver(host);
    drv.negotiate(0);
    const q = FakeDriverQueue.legacy(m.mem, 256, 0x10);
    drv.setupQueue(0, q);
    drv.driverOk();
    req({ ram: m.ram } as Setup, q, T_FLUSH, 0);
    drv.notify(0);
    assert.equal(m.ram[STATUS], S_IOERR);
    assert.equal(dev.stats.ioerr, 1);
  });
});

describe('virtio-block: request merging', () => {
  it('runs adjacent reads queued together as one backend call, and each request completes on its own', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.target.disk.set(pattern(8 * 512, 11), 16 * 512);
    // Eight 512-byte reads of sectors 16..23, in order, each into its own buffer.
    const heads = Array.from({ length: 8 }, (_, i) =>
      req(s, q, T_IN, 16 + i, [{ addr: DATA + i * 0x1000, len: 512, write: true }], i),
    );
    drv.notify(0);
    const used = q.takeUsed();
    assert.deepEqual(
      used.map((u) => u.id).sort((a, b) => a - b),
      [...heads].sort((a, b) => a - b),
    );
    for (const u of used) assert.equal(u.len, 513, 'data and status');
    for (let i = 0; i < 8; i++) {
      assert.equal(status(s, i), S_OK);
      assert.deepEqual(
        s.ram.subarray(DATA + i * 0x1000, DATA + i * 0x1000 + 512),
        s.target.disk.subarray((16 + i) * 512, (17 + i) * 512),
      );
    }
    assert.deepEqual(s.target.calls, ['read 8192 4096'], 'one call for the whole run');
    assert.equal(s.dev.stats.merged, 7);
    assert.equal(s.dev.stats.requests, 8);
    assert.deepEqual(s.dev.ioStats, { readBytes: 4096, writeBytes: 0 });
  });

  it('breaks runs at a gap, a change of direction and a flush, keeping their order', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    s.ram.set(pattern(2048, 5), DATA);
    req(s, q, T_OUT, 0, [{ addr: DATA, len: 512 }], 0);
    req(s, q, T_OUT, 1, [{ addr: DATA + 512, len: 512 }], 1);
    req(s, q, T_FLUSH, 0, [], 2);
    req(s, q, T_OUT, 2, [{ addr: DATA + 1024, len: 512 }], 3);
    req(s, q, T_OUT, 9, [{ addr: DATA + 1536, len: 512 }], 4); // a gap
    req(s, q, T_IN, 0, [{ addr: DATA + 0x8000, len: 1024, write: true }], 5); // another direction
    drv.notify(0);
    assert.equal(q.takeUsed().length, 6);
    assert.deepEqual(s.target.calls, ['write 0 1024', 'flush', 'write 1024 512', 'write 4608 512', 'read 0 1024']);
    for (let i = 0; i < 6; i++) assert.equal(status(s, i), S_OK, `request ${i}`);
    assert.deepEqual(s.ram.subarray(DATA + 0x8000, DATA + 0x8400), pattern(2048, 5).subarray(0, 1024));
  });

  it('when a merged call fails, retries each request alone: only the failing one gets IOERR', () => {
    const s = setup();
    const { drv, q } = legacyReady(s);
    // A backend that fails any read touching sector 5.
    const read = s.target.read.bind(s.target);
    s.target.read = (offset: number, bufs: Uint8Array[]): BlockResult => {
      const n = bufs.reduce((a, b) => a + b.length, 0);
      return offset <= 5 * 512 && offset + n > 5 * 512 ? BlockResult.Failure : read(offset, bufs);
    };
    for (let i = 0; i < 4; i++) req(s, q, T_IN, 3 + i, [{ addr: DATA + i * 0x1000, len: 512, write: true }], i);
    drv.notify(0);
    const used = q.takeUsed();
    assert.equal(used.length, 4);
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => status(s, i)),
      [S_OK, S_OK, S_IOERR, S_OK],
    );
    assert.equal(used.filter((u) => u.len === 0).length, 1, 'the failed read reports no data written');
    assert.equal(s.dev.stats.ioerr, 1);
    assert.equal(s.dev.stats.merged, 0);
    assert.deepEqual(s.dev.ioStats, { readBytes: 3 * 512, writeBytes: 0 }, 'only what succeeded is counted');
  });
});
