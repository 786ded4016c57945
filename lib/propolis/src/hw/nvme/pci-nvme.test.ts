// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// `pci-nvme` driven as a guest driver would: configuration cycles, BAR0
// registers and doorbells through the PCI BAR router, queues and data in
// guest memory (NvmeTestDriver), interrupts as FakeHost MSIs. The test's
// own constants come from driver-fake.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { PciPath } from '../pci/path.js';
import { nvmeBootPath, PciNvme, PciNvmeConfigError, setNvmeBackendOpener } from './pci-nvme.js';
import {
  BAR0,
  MemDisk,
  NvmeTestBed,
  NvmeTestDriver,
  OPC,
  SC,
  T,
  memDiskOpener,
  pattern,
  type Cqe,
} from './driver-fake.js';
import type { NvmeThreadJob } from './driver-worker.js';

function ready(opts: ConstructorParameters<typeof NvmeTestBed>[0] = {}): { bed: NvmeTestBed; drv: NvmeTestDriver } {
  const bed = new NvmeTestBed(opts);
  const drv = new NvmeTestDriver(bed);
  assert.equal(drv.enable(), T.CSTS_RDY, 'controller ready');
  return { bed, drv };
}

function ok(c: Cqe, what: string): void {
  assert.equal(c.status, SC.SUCCESS, `${what}: status 0x${c.status.toString(16)}`);
}

function ascii(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number): number => (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0;
const u64 = (b: Uint8Array, o: number): number => u32(b, o) + u32(b, o + 4) * 2 ** 32;

describe('pci-nvme: PCI function', () => {
  it('identifies as Oxide NVMe with a 64-bit 16 KiB BAR0 and 1024 MSI-X vectors in BAR4', () => {
    const bed = new NvmeTestBed();
    assert.equal(bed.cfgRead(0x00, 4), 0x0000_01de, 'vendor 01DE, device 0000');
    assert.equal(bed.cfgRead(0x08, 4) >>> 8, 0x01_08_02, 'class 01, subclass 08, prog-if 02');
    assert.equal(bed.cfgRead(0x2c, 4), 0x0000_01de, 'subsystem 01DE:0000');
    // BAR0 sizing (64-bit memory BAR: type bits 10b).
    bed.cfgWrite(0x04, 2, 0);
    bed.cfgWrite(0x10, 4, 0xffff_ffff);
    assert.equal(bed.cfgRead(0x10, 4), (0x1_0000_0000 - 0x4000 + 0x4) >>> 0);
    bed.cfgWrite(0x14, 4, 0xffff_ffff);
    assert.equal(bed.cfgRead(0x14, 4), 0xffff_ffff, 'upper half fully writable');
    const cap = bed.msixCap();
    assert.equal(bed.cfgRead(cap + 2, 2) & 0x7ff, 1023, 'MSI-X table size 1024');
    assert.equal(bed.cfgRead(cap + 4, 4) & 7, 4, 'table in BAR4');
    assert.equal(bed.cfgRead(cap + 8, 4) & 7, 4, 'PBA in BAR4');
    assert.notEqual(bed.cfgRead(0x3d, 1), 0, 'an INTx pin for the fallback');
  });

  it('reports its registers at power-on', () => {
    const bed = new NvmeTestBed();
    const cap = bed.reg64(T.CAP);
    assert.equal(cap & 0xffffn, 0xffffn, 'MQES 65535 (zero-based)');
    assert.equal((cap >> 16n) & 1n, 1n, 'CQR');
    assert.equal((cap >> 24n) & 0xffn, 0n, 'TO 0 (ready at once)');
    assert.equal((cap >> 32n) & 0xfn, 0n, 'DSTRD 0');
    assert.equal((cap >> 37n) & 0xffn, 1n, 'CSS: NVM only');
    assert.equal((cap >> 48n) & 0xffn, 0n, 'MPSMIN = MPSMAX = 4 KiB');
    assert.equal(BigInt(bed.reg32(T.CAP)) | (BigInt(bed.reg32(T.CAP + 4)) << 32n), cap, '32-bit halves agree');
    assert.equal(bed.reg32(T.VS), 0x0001_0000, 'NVMe 1.0');
    assert.equal(bed.reg32(T.CC), 0);
    assert.equal(bed.reg32(T.CSTS), 0);
    assert.equal(Number(bed.host.mmio.read(BAR0 + T.VS + 2, 2)), 1, 'narrow reads see the register bytes');
  });

  it('takes AQA/ASQ/ACQ only while disabled and keeps queue bases page-aligned', () => {
    const bed = new NvmeTestBed();
    bed.setReg32(T.AQA, 0xffff_ffff);
    assert.equal(bed.reg32(T.AQA), 0x0fff_0fff, 'reserved bits read 0');
    bed.setReg64(T.ASQ, 0x1234_5678_9abcn);
    assert.equal(bed.reg64(T.ASQ), 0x1234_5678_9000n, 'low 12 bits reserved');
    const drv = new NvmeTestDriver(bed);
    drv.enable();
    const asq = bed.reg64(T.ASQ);
    bed.setReg64(T.ASQ, 0x8000n);
    assert.equal(bed.reg64(T.ASQ), asq, 'ignored while enabled');
  });

  it('refuses a serial of more than 20 characters or with non-ASCII', () => {
    const disk = new MemDisk({ blockSize: 512, totalBlocks: 8, readOnly: false, supportsDiscard: false });
    const d = { name: 'n', pciPath: '0.5.0', backend: () => disk.target() };
    assert.throws(() => PciNvme.describe({ ...d, serial: 'x'.repeat(21) }), PciNvmeConfigError);
    assert.throws(() => PciNvme.describe({ ...d, serial: 'caf\u00e9' }), PciNvmeConfigError);
    assert.throws(() => PciNvme.describe({ ...d, serial: new Uint8Array(21) }), PciNvmeConfigError);
  });

  it('opens descriptor backends through the thread opener, and fails clearly without one', () => {
    const disk = new MemDisk({ blockSize: 512, totalBlocks: 8, readOnly: false, supportsDiscard: false });
    const desc = PciNvme.describe({
      name: 'n',
      pciPath: '0.6.0',
      serial: 's',
      backend: { kind: 'test', name: 'disk', params: {} },
    });
    setNvmeBackendOpener(undefined);
    assert.throws(() => PciNvme.attach(desc, new FakeHost()), /no block backend opener/);
    const opened: string[] = [];
    setNvmeBackendOpener((d) => (opened.push(d.name), disk.target()));
    try {
      const dev = PciNvme.attach(desc, new FakeHost());
      assert.deepEqual(opened, ['disk']);
      dev.halt();
    } finally {
      setNvmeBackendOpener(undefined);
    }
  });

  it('refuses a backend whose block size is not a power of two', () => {
    const disk = new MemDisk({ blockSize: 768, totalBlocks: 8, readOnly: false, supportsDiscard: false });
    const desc = PciNvme.describe({ name: 'n', pciPath: '0.7.0', serial: 's', backend: () => disk.target() });
    assert.throws(() => PciNvme.attach(desc, new FakeHost()), /block size 768/);
  });
});

describe('pci-nvme: admin', () => {
  it('enables with admin queues and answers Identify Controller', () => {
    const { drv } = ready({ serial: 'SN-42' });
    const { cqe, data } = drv.identify(1);
    ok(cqe, 'identify controller');
    assert.equal(u16(data, 0), 0x01de, 'VID');
    assert.equal(u16(data, 2), 0x01de, 'SSVID');
    assert.equal(ascii(data.subarray(4, 24)), 'SN-42' + ' '.repeat(15), 'SN, space-padded');
    assert.deepEqual([...data.subarray(24, 64)], new Array(40).fill(0), 'MN zero, as the seed');
    assert.deepEqual([...data.subarray(73, 76)], [0x25, 0x40, 0xa8], 'OUI A8-40-25, least significant byte first');
    assert.equal(data[77], 8, 'MDTS 8 (1 MiB)');
    assert.equal(u16(data, 256), 1 << 8, 'OACS: Doorbell Buffer Config');
    assert.equal(data[512], 0x66, 'SQES');
    assert.equal(data[513], 0x44, 'CQES');
    assert.equal(u32(data, 516), 1, 'NN');
    assert.equal(u16(data, 520), 1 << 2, 'ONCS: Dataset Management');
    assert.equal(data[525], 1, 'VWC present');
  });

  it('answers Identify Namespace for namespace 1 only', () => {
    const { drv } = ready({ blocks: 3000, blockSize: 4096 });
    const { cqe, data } = drv.identify(0, 1);
    ok(cqe, 'identify namespace');
    assert.equal(u64(data, 0), 3000, 'NSZE');
    assert.equal(u64(data, 8), 3000, 'NCAP');
    assert.equal(u64(data, 16), 3000, 'NUSE');
    assert.equal(data[25], 0, 'NLBAF: one format');
    assert.equal(data[26], 0, 'FLBAS: format 0');
    assert.equal((u32(data, 128) >>> 16) & 0xff, 12, 'LBADS = log2(4096)');
    for (const nsid of [0, 2, 0xffff_ffff]) {
      const r = drv.identify(0, nsid).cqe;
      assert.equal(r.status, SC.INVALID_NAMESPACE, `nsid ${nsid}`);
      assert.ok(r.dnr);
    }
    const other = drv.identify(0x10, 1).cqe;
    assert.equal(other.status, SC.INVALID_FIELD, 'unsupported CNS');
  });

  it('creates and deletes I/O queues', () => {
    const { drv } = ready();
    drv.createPair(1, 16, { ien: false });
    drv.createPair(15, 2, { ien: false });
    ok(drv.deleteSq(15), 'delete SQ 15');
    ok(drv.deleteCq(15), 'delete CQ 15');
    drv.createPair(15, 65536, { ien: false, cqSize: 4 });
    ok(drv.deleteSq(1), 'delete SQ 1');
    ok(drv.deleteCq(1), 'delete CQ 1');
  });

  it('returns zeros for any log page, of the requested length', () => {
    const { bed, drv } = ready();
    const buf = bed.alloc(2 * T.PAGE);
    bed.write(buf, new Uint8Array(2 * T.PAGE).fill(0xee));
    // 128 dwords (NUMDL 127) of log 2 (SMART).
    ok(drv.admin({ opc: OPC.GET_LOG, prp1: buf, cdw10: (127 << 16) | 2 }), 'get log page');
    assert.deepEqual([...bed.read(buf, 512)], new Array(512).fill(0));
    assert.equal(bed.read(buf + 512, 1)[0], 0xee, 'nothing past the requested length');
    const big = drv.admin({ opc: OPC.GET_LOG, prp1: buf, cdw10: 0xffff_0002, cdw11: 0x0004 });
    assert.equal(big.status, SC.INVALID_FIELD, 'more than MDTS');
  });

  it('gets and sets features', () => {
    const { drv, bed } = ready({ readOnly: true });
    const nq = drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x07, cdw11: (31 << 16) | 63 });
    ok(nq, 'set number of queues');
    assert.equal(nq.dw0, (14 << 16) | 14, 'clamped to 15 each (zero-based 14)');
    assert.equal(drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x07, cdw11: (2 << 16) | 3 }).dw0, (2 << 16) | 3);
    assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 0x07 }).dw0, (2 << 16) | 3);
    const bad = drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x07, cdw11: 0xffff });
    assert.equal(bad.status, SC.INVALID_FIELD);
    assert.ok(bad.dnr);
    assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 0x06 }).dw0, 1, 'write cache on');
    ok(drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x06, cdw11: 0 }), 'write cache off');
    assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 0x06 }).dw0, 0);
    assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 0xf0 }).dw0, 1, 'Oxide feature: read-only');
    const ro = drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0xf0, cdw11: 0 });
    assert.deepEqual([ro.status, ro.dnr], [SC.INVALID_FIELD, true], 'the Oxide feature is read-only');
    const other = drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x08, cdw11: 1 });
    assert.deepEqual([other.status, other.dnr], [SC.INVALID_FIELD, true], 'other features cannot be set');
    assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 0x08 }).dw0, 0, 'other features read zero');
    const save = drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x8000_0006, cdw11: 1 });
    assert.equal(save.status, SC.NOT_SAVEABLE, 'nothing is saveable');
    void bed;
  });

  it('answers Abort "not aborted", AER and unknown opcodes with Invalid Opcode', () => {
    const { drv } = ready();
    const a = drv.admin({ opc: OPC.ABORT, cdw10: (7 << 16) | 1 });
    ok(a, 'abort');
    assert.equal(a.dw0 & 1, 1, 'command not aborted');
    for (const opc of [OPC.AER, 0x10, 0x80, 0xc0, 0xff]) {
      const r = drv.admin({ opc });
      assert.deepEqual([r.status, r.dnr], [SC.INVALID_OPCODE, true], `opcode 0x${opc.toString(16)}`);
    }
  });
});

describe('pci-nvme: I/O', () => {
  function io(opts: ConstructorParameters<typeof NvmeTestBed>[0] = {}) {
    const r = ready(opts);
    r.drv.createPair(1, 64, { ien: false });
    return r;
  }

  it('writes and reads back with PRP1 only, PRP1+PRP2, and PRP lists', () => {
    const { bed, drv } = io();
    const cases: [string, number, number][] = [
      ['PRP1 only, in one page', 0x200, 1],
      ['PRP1 + PRP2, unaligned start', 0xe00, 4],
      ['two whole pages', 0, 16],
      ['PRP list, multi-page', 0, 40],
      ['PRP list, unaligned first entry', 0x600, 37],
      ['PRP list, the largest transfer (MDTS)', 0, 2048],
    ];
    let slba = 0;
    cases.forEach(([what, off, nlb], i) => {
      const data = pattern(nlb * 512, i + 1);
      const wbuf = bed.alloc(nlb * 512 + T.PAGE) + off;
      ok(drv.writeBlocks(1, slba, data, wbuf), `${what}: write`);
      assert.deepEqual(bed.disk.bytes.subarray(slba * 512, (slba + nlb) * 512), data, `${what}: on disk`);
      const rbuf = bed.alloc(nlb * 512 + T.PAGE) + off;
      const { cqe, data: back } = drv.readBlocks(1, slba, nlb, rbuf);
      ok(cqe, `${what}: read`);
      assert.deepEqual(back, data, `${what}: read back`);
      slba += nlb;
    });
    assert.equal(bed.disk.violations, 0);
    // Every block went out once and came back once.
    assert.deepEqual(bed.dev.ioStats, { readBytes: slba * 512, writeBytes: slba * 512 });
  });

  it('follows a chained PRP list', () => {
    const { bed, drv } = io();
    const nlb = 64; // 32 KiB: 8 pages, 7 list entries
    const data = pattern(nlb * 512, 9);
    const buf = bed.alloc(nlb * 512);
    bed.write(buf, data);
    // Place the list 3 slots before the end of its page: 2 entries, a chain, the rest.
    const listPage = bed.alloc(T.PAGE);
    const { prp1, prp2 } = drv.prps(buf, data.length, listPage + T.PAGE - 24);
    ok(drv.submit(1, { opc: OPC.WRITE, nsid: 1, prp1, prp2, cdw10: 100, cdw12: nlb - 1 }), 'write');
    assert.deepEqual(bed.disk.bytes.subarray(100 * 512, (100 + nlb) * 512), data);
  });

  it('reads and writes into scattered pages', () => {
    const { bed, drv } = io();
    const pages = [bed.alloc(T.PAGE), bed.alloc(T.PAGE * 3) + T.PAGE * 2, bed.alloc(T.PAGE)];
    const list = bed.alloc(T.PAGE);
    drv.writeU64(list, pages[1]!);
    drv.writeU64(list + 8, pages[2]!);
    const data = pattern(3 * T.PAGE - 0x400, 3);
    bed.disk.bytes.set(data, 512 * 7);
    const r = drv.submit(1, {
      opc: OPC.READ,
      nsid: 1,
      prp1: pages[0]! + 0x400,
      prp2: list,
      cdw10: 7,
      cdw12: data.length / 512 - 1,
    });
    ok(r, 'read');
    const got = new Uint8Array([
      ...bed.read(pages[0]! + 0x400, T.PAGE - 0x400),
      ...bed.read(pages[1]!, T.PAGE),
      ...bed.read(pages[2]!, T.PAGE),
    ]);
    assert.deepEqual(got, data);
  });

  it('flushes, honours FUA and a disabled write cache', () => {
    const { bed, drv } = io();
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'flush');
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 0xffff_ffff }), 'flush, all namespaces');
    assert.equal(bed.disk.flushes, 2);
    const buf = bed.alloc(T.PAGE);
    ok(drv.writeBlocks(1, 0, pattern(512, 1), buf), 'plain write');
    assert.equal(bed.disk.flushes, 2, 'no flush with the cache on');
    ok(drv.writeBlocks(1, 0, pattern(512, 1), buf, { cdw12: 1 << 30 }), 'FUA write');
    assert.equal(bed.disk.flushes, 3, 'FUA flushes');
    ok(drv.admin({ opc: OPC.SET_FEATURES, cdw10: 0x06, cdw11: 0 }), 'cache off');
    ok(drv.writeBlocks(1, 0, pattern(512, 1), buf), 'write-through');
    assert.equal(bed.disk.flushes, 4, 'every write flushes with the cache off');
  });

  it('deallocates ranges with Dataset Management', () => {
    const { bed, drv } = io();
    bed.disk.bytes.fill(0x77);
    const ranges = bed.alloc(T.PAGE);
    drv.writeU64(ranges + 8, 10); // range 0: LBA 10, 5 blocks
    drv.setU32(ranges + 4, 5);
    drv.writeU64(ranges + 16 + 8, 4000); // range 1: LBA 4000, 96 blocks (to the end)
    drv.setU32(ranges + 16 + 4, 96);
    drv.writeU64(ranges + 32 + 8, 0); // range 2: empty
    ok(drv.submit(1, { opc: OPC.DSM, nsid: 1, prp1: ranges, cdw10: 2, cdw11: 1 << 2 }), 'deallocate');
    assert.deepEqual(bed.disk.discards, [
      [10 * 512, 5 * 512],
      [4000 * 512, 96 * 512],
    ]);
    ok(drv.submit(1, { opc: OPC.DSM, nsid: 1, prp1: ranges, cdw10: 0, cdw11: 1 }), 'attributes only: a hint');
    assert.equal(bed.disk.discards.length, 2);
    drv.setU32(ranges + 4, 4097);
    const oor = drv.submit(1, { opc: OPC.DSM, nsid: 1, prp1: ranges, cdw10: 0, cdw11: 1 << 2 });
    assert.deepEqual([oor.status, oor.dnr], [SC.LBA_OUT_OF_RANGE, true]);
    assert.equal(bed.disk.discards.length, 2, 'nothing deallocated when a range is bad');
  });

  it('accepts deallocation on a backend without discard and changes nothing', () => {
    const { bed, drv } = io({ discard: false });
    bed.disk.bytes.fill(0x55);
    const ranges = bed.alloc(T.PAGE);
    drv.setU32(ranges + 4, 8);
    ok(drv.submit(1, { opc: OPC.DSM, nsid: 1, prp1: ranges, cdw10: 0, cdw11: 1 << 2 }), 'deallocate');
    assert.equal(bed.disk.bytes[0], 0x55);
  });

  it('refuses writes to a read-only backend, and reports backend failures', () => {
    const { bed, drv } = io({ readOnly: true });
    const buf = bed.alloc(T.PAGE);
    const w = drv.writeBlocks(1, 0, pattern(512, 1), buf);
    assert.deepEqual([w.status, w.dnr], [SC.WRITE_RO, true]);
    assert.equal(bed.disk.writes, 0, 'the backend was not asked');
    const dsm = drv.submit(1, { opc: OPC.DSM, nsid: 1, prp1: buf, cdw10: 0, cdw11: 1 << 2 });
    assert.equal(dsm.status, SC.WRITE_RO);
    ok(drv.readBlocks(1, 0, 1, buf).cqe, 'reads still work');
    bed.disk.failNext = 'read';
    const r = drv.readBlocks(1, 0, 1, buf).cqe;
    assert.deepEqual([r.status, r.dnr], [SC.READ_ERROR, false], 'unrecovered read error, retryable');
    bed.disk.failNext = 'flush';
    assert.equal(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }).status, SC.WRITE_FAULT);
  });

  it('wraps completion phases and reports the SQ head', () => {
    const { bed, drv } = ready();
    drv.createCq(1, 4, { ien: false });
    drv.createSq(1, 3, 1);
    const seen: [number, number][] = [];
    for (let i = 0; i < 13; i++) {
      const c = drv.submit(1, { opc: OPC.FLUSH, nsid: 1 });
      ok(c, `flush ${i}`);
      seen.push([c.phase, c.sqhd]);
    }
    // CQ of 4: phase 1 for entries 0–3, 0 for 4–7, 1 for 8–11, 0 for 12. SQ of 3: head 1, 2, 0, …
    assert.deepEqual(
      seen.map(([p]) => p),
      [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0],
    );
    assert.deepEqual(
      seen.map(([, h]) => h),
      [1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1],
    );
    void bed;
  });

  it('stops at a full CQ and resumes when the host frees it', () => {
    const { drv } = ready();
    drv.createCq(1, 2, { ien: false }); // holds one entry
    drv.createSq(1, 8, 1);
    const cids = [0, 1, 2, 3].map(() => drv.place(1, { opc: OPC.FLUSH, nsid: 1 }));
    drv.ringSq(1);
    const got: number[] = [];
    for (let i = 0; i < 8 && got.length < 4; i++) {
      const c = drv.reap(1, false);
      assert.ok(c.length <= 1, 'never more than the CQ holds');
      got.push(...c.map((e) => e.cid));
      drv.ringCq(1); // the head doorbell lets the corked SQ go on
    }
    assert.deepEqual(got, cids);
  });

  it('processes several entries per doorbell, in order, even with a reused command id', () => {
    const { drv, bed } = io();
    const buf = bed.alloc(T.PAGE);
    bed.write(buf, pattern(512, 5));
    drv.place(1, { opc: OPC.WRITE, nsid: 1, cid: 0x42, prp1: buf, cdw10: 3 });
    drv.place(1, { opc: OPC.READ, nsid: 1, cid: 0x42, prp1: buf + 0x200, cdw10: 3 });
    drv.place(1, { opc: OPC.FLUSH, nsid: 1, cid: 0x42 });
    drv.ringSq(1);
    const c = drv.reap(1);
    assert.deepEqual(
      c.map((e) => [e.cid, e.status, e.sqhd]),
      [
        [0x42, 0, 1],
        [0x42, 0, 2],
        [0x42, 0, 3],
      ],
    );
    assert.deepEqual(bed.read(buf + 0x200, 512), pattern(512, 5));
  });
});

describe('pci-nvme: interrupts', () => {
  it('signals each CQ through its MSI-X vector, once per doorbell batch', () => {
    const { bed, drv } = ready();
    bed.enableMsix([0, 3, 9]);
    drv.createPair(1, 16, { iv: 3 });
    drv.createPair(2, 16, { iv: 9 });
    drv.createPair(3, 16, { ien: false, iv: 5 });
    bed.host.msis.length = 0;
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'q1');
    ok(drv.submit(2, { opc: OPC.FLUSH, nsid: 1 }), 'q2');
    ok(drv.submit(3, { opc: OPC.FLUSH, nsid: 1 }), 'q3: interrupts off');
    ok(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 7 }), 'admin');
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    assert.equal(drv.reap(1).length, 2);
    assert.deepEqual(
      bed.host.msis.map((m) => [Number(m.address), m.data]),
      [
        [0xfee0_0000, 0x103],
        [0xfee0_0000, 0x109],
        [0xfee0_0000, 0x100],
        [0xfee0_0000, 0x103],
      ],
    );
  });

  it('leaves a masked vector pending and delivers it on unmask', () => {
    const { bed, drv } = ready();
    bed.enableMsix([0, 1]);
    drv.createPair(1, 16, { iv: 1 });
    bed.host.mmio.write(0xfe10_0000 + 16 + 12, 4, 1); // mask vector 1
    bed.host.msis.length = 0;
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'flush');
    assert.equal(bed.host.msis.length, 0);
    bed.host.mmio.write(0xfe10_0000 + 16 + 12, 4, 0);
    assert.deepEqual(
      bed.host.msis.map((m) => m.data),
      [0x101],
    );
  });

  it('refuses vectors beyond the table, and non-zero vectors without MSI-X', () => {
    const { bed, drv } = ready();
    assert.equal(drv.createCq(1, 4, { iv: 1 }).status, SC.INVALID_VECTOR, 'MSI-X off: only vector 0');
    bed.enableMsix([0]);
    assert.equal(drv.createCq(1, 4, { iv: 1024 }).status, SC.INVALID_VECTOR);
    ok(drv.createCq(1, 4, { iv: 1023 }), 'last vector');
  });

  it('drives INTx while completions wait, masked by INTMS', () => {
    const { bed, drv } = ready();
    const intx = (): boolean => (bed.cfgRead(0x06, 2) & 0x08) !== 0; // Status.Interrupt
    drv.createPair(1, 16);
    assert.equal(intx(), false);
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    assert.equal(intx(), true, 'a completion is waiting');
    bed.setReg32(T.INTMS, 1);
    assert.equal(bed.reg32(T.INTMS), 1);
    assert.equal(intx(), false, 'masked');
    bed.setReg32(T.INTMC, 1);
    assert.equal(bed.reg32(T.INTMC), 0);
    assert.equal(intx(), true, 'unmasked');
    drv.reap(1);
    assert.equal(intx(), false, 'the host consumed it');
  });
});

describe('pci-nvme: controller state changes', () => {
  it('disables (dropping every queue) and enables again', () => {
    const { bed, drv } = ready();
    drv.createPair(1, 16, { ien: false });
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'before');
    drv.disable();
    assert.equal(bed.reg32(T.CSTS) & T.CSTS_RDY, 0, 'not ready');
    const before = bed.disk.flushes;
    bed.setReg32(T.DB + 8, 1); // a doorbell on the gone queue
    assert.equal(bed.disk.flushes, before, 'nothing runs while disabled');
    assert.equal(drv.enable(), T.CSTS_RDY);
    drv.createPair(1, 16, { ien: false });
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'after re-enable, queue id 1 again');
  });

  it('reports shutdown complete after flushing, and normal again when SHN clears', () => {
    const { bed, drv } = ready();
    const flushes = bed.disk.flushes;
    bed.setReg32(T.CC, bed.reg32(T.CC) | T.CC_SHN_NORMAL);
    assert.equal(bed.reg32(T.CSTS) & 0xc, T.CSTS_SHST_COMPLETE);
    assert.equal(bed.disk.flushes, flushes + 1, 'flushed on shutdown');
    bed.setReg32(T.CC, bed.reg32(T.CC) & ~(3 << 14));
    assert.equal(bed.reg32(T.CSTS) & 0xc, 0);
    drv.disable();
    assert.equal(bed.reg32(T.CSTS), 0);
  });

  it('returns to power-on state on a machine reset', () => {
    const { bed, drv } = ready();
    bed.enableMsix([0]);
    drv.createPair(1, 16);
    bed.dev.reset();
    assert.equal(bed.cfgRead(0x04, 2), 0, 'PCI command cleared');
    assert.equal(bed.cfgRead(0x10, 4) & ~0xf, 0, 'BAR0 unassigned');
    const c = bed.dev.controller;
    assert.deepEqual(
      [T.CC, T.CSTS, T.AQA, T.ASQ, T.ACQ, T.INTMS].map((r) => c.regRead(r, 4)),
      [0, 0, 0, 0, 0, 0],
    );
  });

  it('does not process queues while bus mastering is off', () => {
    const { bed, drv } = ready();
    drv.createPair(1, 16, { ien: false });
    bed.cfgWrite(0x04, 2, 0x0002); // memory space only
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    assert.equal(drv.peek(1), undefined, 'no DMA without BME');
    bed.cfgWrite(0x04, 2, 0x0006);
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    assert.equal(drv.reap(1).length, 2, 'both run once BME is set');
  });

  it('shares one controller between threads', () => {
    const { bed, drv } = ready();
    drv.createPair(1, 16, { ien: false });
    drv.createPair(2, 16, { ien: false });
    const other = bed.sibling();
    const buf = bed.alloc(T.PAGE);
    bed.write(buf, pattern(512, 77));
    drv.place(2, { opc: OPC.WRITE, nsid: 1, prp1: buf, cdw10: 9 });
    // The doorbell is rung on the other thread's bus.
    other.host.mmio.write(BAR0 + T.DB + 16, 4, drv.sqs.get(2)!.sqTail);
    const c = drv.reap(2);
    assert.equal(c.length, 1);
    ok(c[0]!, 'write via thread 2');
    assert.deepEqual(bed.disk.bytes.subarray(9 * 512, 10 * 512), pattern(512, 77));
    assert.equal(Number(other.host.mmio.read(BAR0 + T.CSTS, 4)), T.CSTS_RDY, 'same registers');
    // And the I/O-thread entry point runs a queue on any instance.
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    bed.setReg32(T.DB + 8, drv.sqs.get(1)!.sqTail);
    assert.equal(drv.reap(1).length, 1);
  });

  it('names its boot device as the seed does', () => {
    assert.equal(nvmeBootPath(new PciPath(0, 0x1a, 0)), '/pci@i0cf8/pci8086,5845@1a/namespace@1,0');
    assert.equal(nvmeBootPath(new PciPath(0, 4, 3)), '/pci@i0cf8/pci8086,5845@4,3/namespace@1,0');
    assert.equal(nvmeBootPath(new PciPath(1, 4, 0)), undefined, 'behind a bridge');
  });

  it('lists the doorbells with their BAR0 offsets', () => {
    const d = PciNvme.doorbells();
    assert.equal(d.length, 32);
    assert.deepEqual(d[0], { qid: 0, kind: 'sq', bar: 0, offset: 0x1000 });
    assert.deepEqual(d[1], { qid: 0, kind: 'cq', bar: 0, offset: 0x1004 });
    assert.deepEqual(d[31], { qid: 15, kind: 'cq', bar: 0, offset: 0x107c });
  });
});

describe('pci-nvme: state', () => {
  function exported(bed: NvmeTestBed): Payload[] {
    const m = bed.dev.migrate();
    assert.ok(typeof m === 'object');
    return JSON.parse(JSON.stringify(m.export())) as Payload[];
  }

  it('round-trips with live queues, mid-phase, and keeps working', () => {
    const { bed, drv } = ready();
    bed.enableMsix([0, 2]);
    drv.createCq(1, 4, { iv: 2 });
    drv.createSq(1, 8, 1);
    for (let i = 0; i < 5; i++) ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), `flush ${i}`);
    // Four more: three completions fill the CQ (one slot stays empty), one command waits for space.
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    const payloads = exported(bed);
    assert.deepEqual(
      payloads.map((p) => `${p.kind} v${p.version}`),
      ['pci-device v1', 'nvme-ctrl v1'],
    );
    type Q = { id: number; head: number; tail: number };
    const st = payloads[1]!.data as { sqs: Q[]; cqs: (Q & { phase: boolean })[] };
    assert.deepEqual(
      st.sqs.map((q) => [q.id, q.head, q.tail]),
      [
        [0, 2, 2],
        [1, 8 % 8, 9 % 8],
      ],
      'SQ 1: eight taken, one waiting',
    );
    assert.deepEqual(
      st.cqs.map((q) => [q.id, q.head, q.tail, q.phase]),
      [
        [0, 2, 2, true],
        [1, 1, 0, true],
      ],
      'CQ 1 full (head 1, tail 0) after eight posts: the third pass posts phase 1',
    );

    // A fresh controller on another host over the same guest memory takes the state.
    const bed2 = new NvmeTestBed({ restoreFrom: bed });
    const m2 = bed2.dev.migrate();
    assert.ok(typeof m2 === 'object');
    m2.import(new PayloadOffers(payloads));
    assert.deepEqual(exported(bed2), payloads, 'export of the import is the same');
    assert.equal((bed2.cfgRead(0x10, 4) & ~0xf) >>> 0, BAR0, 'BARs restored');

    // The driver carries on against the new controller.
    const drv2 = drv.moveTo(bed2);
    const got: Cqe[] = [];
    for (let i = 0; i < 4 && got.length < 4; i++) got.push(...drv2.reap(1));
    assert.equal(got.length, 4, 'the three posted, then the corked one once space frees');
    assert.ok(got.every((c) => c.status === 0));
    assert.ok(bed2.host.msis.length > 0, 'interrupts from the new controller');
    ok(drv2.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'new commands');
    ok(drv2.admin({ opc: OPC.GET_FEATURES, cdw10: 7 }), 'admin too');
  });

  it('refuses states that make no sense, changing nothing', () => {
    const { bed, drv } = ready();
    drv.createPair(1, 16, { ien: false });
    const good = exported(bed);
    const nvme = good[1]!.data as Record<string, unknown>;
    const mutate = (f: (d: Record<string, any>) => void): Payload[] => {
      const copy = JSON.parse(JSON.stringify(good)) as Payload[];
      f(copy[1]!.data as Record<string, any>);
      return copy;
    };
    const bad: [string, Payload[]][] = [
      ['other CAP', mutate((d) => (d.cap = '0'))],
      ['SQ on a missing CQ', mutate((d) => (d.sqs[1].cq_id = 7))],
      ['head outside the queue', mutate((d) => (d.sqs[1].head = 16))],
      ['admin size differs from AQA', mutate((d) => (d.aqa = 0x0003_0003))],
      ['ring outside RAM', mutate((d) => (d.cqs[1].base = String(1 << 30)))],
      ['RDY without EN', mutate((d) => (d.cc = 0))],
      ['queue id twice', mutate((d) => d.cqs.push(d.cqs[1]))],
      ['vector out of range', mutate((d) => (d.cqs[1].iv = 4000))],
      ['one doorbell buffer address', mutate((d) => (d.dbbuf_shadow = '8192'))],
      ['leftover payload', [...good, { kind: 'extra', version: 1, data: {} }]],
    ];
    const m = bed.dev.migrate();
    assert.ok(typeof m === 'object');
    for (const [what, payloads] of bad) {
      assert.throws(() => m.import(new PayloadOffers(payloads)), /./, what);
      assert.deepEqual(exported(bed), good, `${what}: state unchanged`);
    }
    void nvme;
    ok(drv.submit(1, { opc: OPC.FLUSH, nsid: 1 }), 'still working');
  });
});

describe('pci-nvme: threads', () => {
  it('lets two worker threads drive SQs that share one CQ, losing and duplicating nothing', async () => {
    setNvmeBackendOpener(memDiskOpener);
    try {
      const bed = new NvmeTestBed({ threads: true, ramBytes: 16 << 20, blocks: 8192 });
      const drv = new NvmeTestDriver(bed);
      assert.equal(drv.enable(), T.CSTS_RDY);
      ok(drv.createCq(1, 8192, { ien: false }), 'shared CQ');
      const count = 1500;
      const jobs: NvmeThreadJob[] = [1, 2].map((sqid) => {
        ok(drv.createSq(sqid, 4096, 1), `SQ ${sqid}`);
        const data = bed.alloc(count * 512);
        bed.write(data, pattern(count * 512, sqid));
        return {
          desc: bed.desc,
          ram: bed.ram!,
          sqid,
          sqBase: drv.sqs.get(sqid)!.sqBase,
          sqSize: 4096,
          otherSqid: 3 - sqid,
          count,
          firstLba: (sqid - 1) * 4096,
          data,
        };
      });
      await Promise.all(
        jobs.map(
          (job) =>
            new Promise<void>((resolve, reject) => {
              const w = new Worker(new URL('./driver-worker.js', import.meta.url), { workerData: job });
              w.on('message', (m: unknown) => (m === 'done' ? resolve() : reject(new Error(JSON.stringify(m)))));
              w.on('error', reject);
            }),
        ),
      );
      const got = drv.reap(1);
      assert.equal(got.length, 2 * count, 'every command completed once');
      assert.ok(got.every((c) => c.status === 0));
      const keys = new Set(got.map((c) => `${c.sqid}:${c.cid}`));
      assert.equal(keys.size, 2 * count, 'no duplicates');
      for (const sqid of [1, 2]) {
        const done = got.filter((c) => c.sqid === sqid).map((c) => c.cid);
        assert.deepEqual(
          done,
          [...done].sort((a, b) => a - b),
          `SQ ${sqid} completes in submission order`,
        );
        const lba = (sqid - 1) * 4096;
        assert.deepEqual(bed.disk.bytes.subarray(lba * 512, (lba + count) * 512), pattern(count * 512, sqid));
      }
    } finally {
      setNvmeBackendOpener(undefined);
    }
  });
});
