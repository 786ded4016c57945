// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The controller against a hostile driver: every malformed queue, doorbell,
// PRP, transfer and configuration gets the right status (or CSTS.CFS, or is
// ignored and counted), nothing throws, guest memory changes only where the
// controller may write (completion queues, the buffers of successful reads),
// and the controller keeps working afterwards. Also shadow doorbells.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NvmeTestBed, NvmeTestDriver, OPC, SC, T, needEvent, pattern, type Cqe } from './driver-fake.js';

const SENTINEL = 0xa5;

function hostile(): { bed: NvmeTestBed; drv: NvmeTestDriver } {
  const bed = new NvmeTestBed({ ramFill: SENTINEL, blocks: 8192 });
  const drv = new NvmeTestDriver(bed);
  assert.equal(drv.enable(), T.CSTS_RDY);
  drv.createPair(1, 16, { ien: false });
  return { bed, drv };
}

function expect(c: Cqe, status: number, what: string, dnr = true): void {
  assert.equal(c.status, status, `${what}: status 0x${c.status.toString(16)}, expected 0x${status.toString(16)}`);
  assert.equal(c.dnr, dnr, `${what}: DNR`);
}

/** The completion queue rings, where the controller may always write. */
function cqRings(drv: NvmeTestDriver): [number, number][] {
  return [...drv.cqs.values()].map((c) => [c.base, c.size * 16]);
}

/** The controller still does I/O: a write and a read back through queue 1. */
function stillWorks(bed: NvmeTestBed, drv: NvmeTestDriver, what: string): void {
  const buf = bed.alloc(2 * T.PAGE);
  const data = pattern(1024, 99);
  assert.equal(drv.writeBlocks(1, 100, data, buf).status, 0, `${what}: write afterwards`);
  const r = drv.readBlocks(1, 100, 2, buf + T.PAGE);
  assert.equal(r.cqe.status, 0, `${what}: read afterwards`);
  assert.deepEqual(r.data, data, `${what}: data afterwards`);
  assert.equal(bed.disk.violations, 0, `${what}: backend never asked outside the disk`);
}

describe('nvme, hostile driver: queue management', () => {
  it('refuses bad I/O completion queues', () => {
    const { bed, drv } = hostile();
    bed.track();
    expect(drv.createCq(0, 16), SC.INVALID_QID, 'CQ id 0');
    expect(drv.createCq(16, 16), SC.INVALID_QID, 'CQ id 16');
    expect(drv.createCq(0xffff, 16), SC.INVALID_QID, 'CQ id 0xffff');
    expect(drv.createCq(1, 16), SC.INVALID_QID, 'CQ id in use');
    expect(drv.createCq(2, 1), SC.INVALID_QSIZE, 'one entry');
    expect(drv.createCq(2, 16, { pc: false }), SC.INVALID_FIELD, 'not physically contiguous');
    expect(drv.createCq(2, 16, { iv: 4 }), SC.INVALID_VECTOR, 'vector without MSI-X');
    expect(drv.createCq(2, 16, { base: bed.ramBytes - 64 }), SC.INVALID_FIELD, 'ring past the end of RAM');
    expect(drv.createCq(2, 16, { base: bed.alloc(T.PAGE) + 0x100 }), SC.INVALID_FIELD, 'ring not page-aligned');
    expect(drv.createCq(2, 16, { base: 2 ** 52 }), SC.INVALID_FIELD, 'ring far outside RAM');
    bed.assertOnlyChanged(cqRings(drv), 'bad CQs');
    stillWorks(bed, drv, 'bad CQs');
  });

  it('refuses bad I/O submission queues', () => {
    const { bed, drv } = hostile();
    expect(drv.createSq(0, 16, 1), SC.INVALID_QID, 'SQ id 0');
    expect(drv.createSq(16, 16, 1), SC.INVALID_QID, 'SQ id 16');
    expect(drv.createSq(1, 16, 1), SC.INVALID_QID, 'SQ id in use');
    expect(drv.createSq(2, 1, 1), SC.INVALID_QSIZE, 'one entry');
    expect(drv.createSq(2, 16, 1, { pc: false }), SC.INVALID_FIELD, 'not physically contiguous');
    expect(drv.createSq(2, 16, 0), SC.CQ_INVALID, 'on the admin CQ');
    expect(drv.createSq(2, 16, 5), SC.CQ_INVALID, 'on a CQ that does not exist');
    expect(drv.createSq(2, 16, 200), SC.CQ_INVALID, 'on a CQ id out of range');
    expect(drv.createSq(2, 65536, 1, { base: bed.ramBytes - 4 * T.PAGE }), SC.INVALID_FIELD, 'ring past RAM');
    stillWorks(bed, drv, 'bad SQs');
  });

  it('refuses bad deletions', () => {
    const { bed, drv } = hostile();
    expect(drv.deleteCq(1), SC.INVALID_DELETION, 'CQ with an SQ on it');
    expect(drv.deleteCq(0), SC.INVALID_QID, 'admin CQ');
    expect(drv.deleteSq(0), SC.INVALID_QID, 'admin SQ');
    expect(drv.deleteCq(7), SC.INVALID_QID, 'CQ that does not exist');
    expect(drv.deleteSq(7), SC.INVALID_QID, 'SQ that does not exist');
    expect(drv.deleteSq(16), SC.INVALID_QID, 'SQ id 16');
    expect(drv.deleteCq(0xffff), SC.INVALID_QID, 'CQ id 0xffff');
    stillWorks(bed, drv, 'bad deletions');
  });

  it('refuses I/O queues before CC.IOSQES/IOCQES are set', () => {
    const bed = new NvmeTestBed();
    const drv = new NvmeTestDriver(bed);
    assert.equal(drv.enable({ cc: T.CC_EN }), T.CSTS_RDY, 'enabling without entry sizes is allowed');
    expect(drv.createCq(1, 16), SC.INVALID_FIELD, 'CQ without IOCQES');
    bed.setReg32(T.CC, T.CC_EN | T.CC_IOSQES6 | T.CC_IOCQES4);
    assert.equal(bed.reg32(T.CSTS), T.CSTS_RDY);
    drv.createPair(1, 16, { ien: false });
  });
});

describe('nvme, hostile driver: doorbells', () => {
  it('ignores doorbells beyond the queue, past the other pointer, or for queues that do not exist', () => {
    const { bed, drv } = hostile();
    const c = bed.dev.controller;
    bed.track();
    const n0 = c.badDoorbells;
    const flushes = bed.disk.flushes;
    bed.setReg32(T.DB + 8, 16); // SQ 1 tail = size: past the end
    bed.setReg32(T.DB + 8, 0xffff);
    bed.setReg32(T.DB + 8 * 5, 1); // SQ 5 does not exist
    bed.setReg32(T.DB + 8 * 5 + 4, 1); // CQ 5 neither
    bed.setReg32(0x1080, 1); // SQ 16: beyond the queue ids
    bed.setReg32(0x3ffc, 1); // the last dword of BAR0
    bed.setReg32(T.DB + 8 + 4, 3); // CQ 1 head past its (empty) tail
    bed.setReg32(T.DB + 4, 31); // admin CQ head past its tail
    assert.equal(c.badDoorbells - n0, 8, 'each one counted');
    assert.equal(bed.disk.flushes, flushes, 'nothing executed');
    bed.assertOnlyChanged([], 'bad doorbells');
    // A doorbell that would lap the head: the SQ holds at most 15 of 16.
    drv.place(1, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(1);
    assert.equal(drv.reap(1).length, 1);
    const sq = drv.sqs.get(1)!;
    bed.setReg32(T.DB + 8, sq.sqTail); // no change: fine, nothing new
    assert.equal(c.badDoorbells - n0, 8);
    stillWorks(bed, drv, 'bad doorbells');
  });

  it('ignores doorbells while the controller is disabled', () => {
    const bed = new NvmeTestBed();
    const n0 = bed.dev.controller.badDoorbells;
    bed.setReg32(T.DB, 1);
    bed.setReg32(T.DB + 4, 1);
    assert.equal(bed.dev.controller.badDoorbells - n0, 2);
  });

  it('treats a narrow or odd-sized register access as the hardware would, without throwing', () => {
    const { bed, drv } = hostile();
    bed.track();
    for (const size of [1, 2] as const) {
      for (let off = 0; off < 0x40; off++) {
        bed.host.mmio.read(0xfe00_0000 + off, size);
        if (off !== T.CC && off !== T.CC + 1 && off !== T.CC + 2 && off !== T.CC + 3) {
          bed.host.mmio.write(0xfe00_0000 + off, size, 0xffff);
        }
      }
    }
    bed.host.mmio.write(0xfe00_0000 + 0x1002, 8, 0x1234_5678_9abc_def0n); // unaligned 8-byte write
    bed.assertOnlyChanged(cqRings(drv), 'narrow accesses');
    assert.equal(bed.reg32(T.CSTS) & T.CSTS_RDY, T.CSTS_RDY);
    bed.setReg32(T.INTMC, 0xffff_ffff);
    stillWorks(bed, drv, 'narrow accesses');
  });

  it('survives random register and doorbell writes, and works after a reset', () => {
    const { bed, drv } = hostile();
    let x = 0x1234_5678;
    const rnd = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    for (let i = 0; i < 20000; i++) {
      const r = rnd();
      const size = ([1, 2, 4, 8] as const)[r & 3]!;
      // Mostly registers and the first doorbells; sometimes anywhere in the BAR.
      const off = (r >>> 2) % 8 === 0 ? rnd() % 0x4000 : (rnd() % 0x1100) & ~(size - 1);
      const v = rnd();
      if (r & 0x8000_0000) bed.host.mmio.read(0xfe00_0000 + off, size);
      else bed.host.mmio.write(0xfe00_0000 + off, size, size === 8 ? BigInt(v) * 0x1_0000_0001n : v);
    }
    // Whatever state that left: disable, enable, queues, I/O.
    bed.setReg32(T.CC, 0);
    assert.equal(bed.reg32(T.CSTS), 0);
    bed.setReg32(T.INTMC, 0xffff_ffff);
    assert.equal(drv.enable(), T.CSTS_RDY);
    drv.createPair(1, 16, { ien: false });
    stillWorks(bed, drv, 'register fuzz');
  });
});

describe('nvme, hostile driver: commands', () => {
  it('refuses PRPs outside guest RAM or misaligned, writing nothing outside the CQ', () => {
    const { bed, drv } = hostile();
    const list = bed.alloc(T.PAGE);
    const buf = bed.alloc(16 * T.PAGE);
    const read = (prp1: number, prp2: number, nlb: number): Cqe =>
      drv.submit(1, { opc: OPC.READ, nsid: 1, prp1, prp2, cdw12: nlb - 1 });
    const cases: [string, () => Cqe, number][] = [
      ['PRP1 outside RAM', () => read(bed.ramBytes, 0, 1), SC.DATA_TRANSFER_ERROR],
      ['PRP1 far outside RAM', () => read(2 ** 50, 0, 1), SC.DATA_TRANSFER_ERROR],
      ['PRP2 just past the end of RAM', () => read(bed.ramBytes - 256, bed.ramBytes, 1), SC.DATA_TRANSFER_ERROR],
      ['PRP1 not dword-aligned', () => read(buf + 1, 0, 1), SC.PRP_OFFSET_INVALID],
      ['PRP2 outside RAM', () => read(buf + 0xe00, bed.ramBytes + T.PAGE, 2), SC.DATA_TRANSFER_ERROR],
      ['PRP2 with an offset', () => read(buf + 0xe00, buf + T.PAGE + 0x200, 2), SC.PRP_OFFSET_INVALID],
      ['PRP list outside RAM', () => read(buf, bed.ramBytes, 24), SC.DATA_TRANSFER_ERROR],
      ['PRP list not qword-aligned', () => read(buf, list + 4, 24), SC.PRP_OFFSET_INVALID],
      [
        'list entry with an offset',
        () => {
          drv.writeU64(list, buf + T.PAGE);
          drv.writeU64(list + 8, buf + 2 * T.PAGE + 8);
          return read(buf, list, 24);
        },
        SC.PRP_OFFSET_INVALID,
      ],
      [
        'list entry outside RAM',
        () => {
          drv.writeU64(list, buf + T.PAGE);
          drv.writeU64(list + 8, bed.ramBytes);
          return read(buf, list, 24);
        },
        SC.DATA_TRANSFER_ERROR,
      ],
      [
        'list entry beyond 2^53',
        () => {
          drv.writeU64(list, buf + T.PAGE);
          drv.writeU64(list + 8, 2 ** 60);
          return read(buf, list, 24);
        },
        SC.DATA_TRANSFER_ERROR,
      ],
    ];
    for (const [what, run, status] of cases) {
      bed.track();
      expect(run(), status, what);
      bed.assertOnlyChanged(cqRings(drv), what);
    }
    stillWorks(bed, drv, 'bad PRPs');
  });

  it('refuses transfers past MDTS and past the namespace', () => {
    const { bed, drv } = hostile();
    const buf = bed.alloc(T.PAGE);
    const rw = (opc: number, slba: number, nlb: number): Cqe =>
      drv.submit(1, {
        opc,
        nsid: 1,
        prp1: buf,
        prp2: buf,
        cdw10: slba % 2 ** 32,
        cdw11: Math.floor(slba / 2 ** 32),
        cdw12: nlb - 1,
      });
    bed.track();
    const disk = bed.disk.bytes.slice();
    expect(rw(OPC.READ, 0, 2049), SC.INVALID_FIELD, 'read of 2049 blocks (MDTS is 2048)');
    expect(rw(OPC.WRITE, 0, 4096), SC.INVALID_FIELD, 'write of 4096 blocks');
    expect(rw(OPC.READ, 8192, 1), SC.LBA_OUT_OF_RANGE, 'read at the first LBA past the end');
    expect(rw(OPC.WRITE, 8191, 2), SC.LBA_OUT_OF_RANGE, 'write straddling the end');
    expect(rw(OPC.READ, 2 ** 40, 1), SC.LBA_OUT_OF_RANGE, 'huge LBA');
    expect(rw(OPC.WRITE, 2 ** 63, 1), SC.LBA_OUT_OF_RANGE, 'LBA at 2^63');
    const last = drv.submit(1, { opc: OPC.READ, nsid: 1, prp1: buf, cdw10: 0xffff_ffff, cdw11: 0xffff_ffff });
    expect(last, SC.LBA_OUT_OF_RANGE, 'LBA 2^64-1');
    const wrap = drv.submit(1, { opc: OPC.READ, nsid: 1, prp1: buf, cdw10: 0xffff_ffff, cdw11: 0x1f_ffff, cdw12: 1 });
    expect(wrap, SC.LBA_OUT_OF_RANGE, 'LBA just below 2^53');
    bed.assertOnlyChanged(cqRings(drv), 'bad transfers');
    assert.deepEqual(bed.disk.bytes, disk, 'disk untouched');
    stillWorks(bed, drv, 'bad transfers');
  });

  it('refuses fused commands, SGLs, unknown opcodes and other namespaces', () => {
    const { bed, drv } = hostile();
    const buf = bed.alloc(T.PAGE);
    expect(drv.submit(1, { opc: OPC.WRITE, nsid: 1, prp1: buf, fuse: 1 }), SC.INVALID_FIELD, 'fused, first');
    expect(drv.submit(1, { opc: OPC.WRITE, nsid: 1, prp1: buf, fuse: 2 }), SC.INVALID_FIELD, 'fused, second');
    expect(drv.submit(1, { opc: OPC.READ, nsid: 1, prp1: buf, psdt: 1 }), SC.INVALID_FIELD, 'SGL');
    expect(drv.admin({ opc: OPC.IDENTIFY, prp1: buf, cdw10: 1, fuse: 1 }), SC.INVALID_FIELD, 'fused admin');
    expect(drv.submit(1, { opc: OPC.READ, nsid: 2, prp1: buf }), SC.INVALID_NAMESPACE, 'namespace 2');
    expect(drv.submit(1, { opc: OPC.READ, nsid: 0, prp1: buf }), SC.INVALID_NAMESPACE, 'namespace 0');
    expect(drv.submit(1, { opc: OPC.FLUSH, nsid: 3 }), SC.INVALID_NAMESPACE, 'flush of namespace 3');
    expect(drv.submit(1, { opc: OPC.DSM, nsid: 9, cdw11: 4 }), SC.INVALID_NAMESPACE, 'DSM of namespace 9');
    for (const opc of [0x04, 0x05, 0x08, 0x0d, 0x7f, 0x80, 0xff]) {
      expect(drv.submit(1, { opc, nsid: 1 }), SC.INVALID_OPCODE, `I/O opcode 0x${opc.toString(16)}`);
    }
    expect(drv.admin({ opc: OPC.IDENTIFY, prp1: bed.ramBytes, cdw10: 1 }), SC.DATA_TRANSFER_ERROR, 'identify out');
    expect(
      drv.admin({ opc: OPC.GET_LOG, prp1: bed.ramBytes - 64, prp2: bed.ramBytes, cdw10: 127 << 16 }),
      SC.DATA_TRANSFER_ERROR,
      'log page straddling RAM',
    );
    expect(drv.admin({ opc: OPC.DBBUF, prp1: buf + 8, prp2: buf }), SC.INVALID_FIELD, 'unaligned doorbell buffer');
    expect(drv.admin({ opc: OPC.DBBUF, prp1: buf, prp2: 0 }), SC.INVALID_FIELD, 'no EventIdx buffer');
    expect(drv.admin({ opc: OPC.DBBUF, prp1: buf, prp2: bed.ramBytes }), SC.INVALID_FIELD, 'EventIdx outside RAM');
    stillWorks(bed, drv, 'bad commands');
  });

  it('processes an SQ entry copied once: garbage entries complete with errors, in order', () => {
    const { bed, drv } = hostile();
    const sq = drv.sqs.get(1)!;
    // Fill the whole ring with junk and announce 15 entries.
    for (let i = 0; i < 16; i++) bed.write(sq.sqBase + 64 * i, pattern(64, 1000 + i));
    bed.setReg32(T.DB + 8, 15);
    const got = drv.reap(1);
    assert.equal(got.length, 15);
    assert.ok(got.every((c) => c.sqid === 1));
    assert.deepEqual(
      got.map((c) => c.sqhd),
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    sq.sqTail = 15;
    // Junk may name real buffers, so reads may land anywhere in RAM the junk points at;
    // but the disk is only ever asked for what fits it.
    assert.equal(bed.disk.violations, 0);
    stillWorks(bed, drv, 'junk entries');
  });
});

describe('nvme, hostile driver: configuration', () => {
  function bedWithAdmin(): { bed: NvmeTestBed; drv: NvmeTestDriver } {
    const bed = new NvmeTestBed({ ramFill: SENTINEL });
    return { bed, drv: new NvmeTestDriver(bed) };
  }

  const BASE = T.CC_EN | T.CC_IOSQES6 | T.CC_IOCQES4;
  const bad: [string, number][] = [
    ['IOSQES 7', T.CC_EN | (7 << 16) | T.CC_IOCQES4],
    ['IOSQES 5', T.CC_EN | (5 << 16) | T.CC_IOCQES4],
    ['IOCQES 5', T.CC_EN | T.CC_IOSQES6 | (5 << 20)],
    ['CSS admin-only (7)', BASE | (7 << 4)],
    ['CSS 1', BASE | (1 << 4)],
    ['MPS 8 KiB', BASE | (1 << 7)],
    ['AMS weighted round robin', BASE | (1 << 11)],
  ];

  for (const [what, cc] of bad) {
    it(`sets CFS on enable with ${what}, and recovers after a disable`, () => {
      const { bed, drv } = bedWithAdmin();
      bed.track();
      const csts = drv.enable({ cc });
      assert.equal(csts & (T.CSTS_RDY | T.CSTS_CFS), T.CSTS_CFS, `${what}: CFS, not ready`);
      drv.place(0, { opc: OPC.GET_FEATURES, cdw10: 7 });
      bed.setReg32(T.DB, 1);
      bed.assertOnlyChanged([], `${what}: nothing processed`);
      drv.disable(0);
      assert.equal(bed.reg32(T.CSTS), 0, `${what}: a reset clears CFS`);
      assert.equal(drv.enable(), T.CSTS_RDY, `${what}: then it enables`);
      drv.createPair(1, 8, { ien: false });
      stillWorks(bed, drv, what);
    });
  }

  it('sets CFS when IOSQES turns bad while enabled, and clears it when the disabled host rewrites CC', () => {
    const { bed, drv } = bedWithAdmin();
    assert.equal(drv.enable(), T.CSTS_RDY);
    bed.setReg32(T.CC, T.CC_EN | (3 << 16) | T.CC_IOCQES4);
    assert.equal(bed.reg32(T.CSTS) & T.CSTS_CFS, T.CSTS_CFS);
    const n0 = bed.dev.controller.badDoorbells;
    bed.setReg32(T.DB, 1);
    assert.equal(bed.dev.controller.badDoorbells, n0 + 1, 'a failed controller takes no doorbells');
    bed.setReg32(T.CC, 0);
    bed.setReg32(T.CC, (3 << 16) | T.CC_IOCQES4);
    assert.equal(bed.reg32(T.CSTS), T.CSTS_CFS, 'bad sizes written while disabled');
    bed.setReg32(T.CC, T.CC_IOSQES6 | T.CC_IOCQES4);
    assert.equal(bed.reg32(T.CSTS), 0, 'good sizes: CFS gone');
  });

  it('keeps CSS, MPS and AMS while enabled', () => {
    const { bed, drv } = bedWithAdmin();
    assert.equal(drv.enable(), T.CSTS_RDY);
    bed.setReg32(T.CC, bed.reg32(T.CC) | (1 << 7) | (1 << 11));
    assert.equal(bed.reg32(T.CC) & ((0xf << 7) | (7 << 11)), 0);
    assert.equal(bed.reg32(T.CSTS), T.CSTS_RDY);
  });

  it('sets CFS for admin queues of one entry or outside guest RAM', () => {
    const cases: [string, (bed: NvmeTestBed) => void][] = [
      ['ASQS 0 (one entry)', (b) => b.setReg32(T.AQA, 0x001f_0000)],
      ['ACQS 0 (one entry)', (b) => b.setReg32(T.AQA, 0x0000_001f)],
      [
        'ASQ past RAM',
        (b) => {
          b.setReg32(T.AQA, 0x001f_007f); // 128 entries: 8 KiB from the last page of RAM
          b.setReg64(T.ASQ, BigInt(b.ramBytes - 4096));
        },
      ],
      ['ACQ far outside RAM', (b) => b.setReg64(T.ACQ, 1n << 51n)],
    ];
    for (const [what, poke] of cases) {
      const { bed, drv } = bedWithAdmin();
      const asq = bed.alloc(32 * 64);
      const acq = bed.alloc(32 * 16);
      bed.setReg32(T.AQA, 0x001f_001f);
      bed.setReg64(T.ASQ, BigInt(asq));
      bed.setReg64(T.ACQ, BigInt(acq));
      poke(bed);
      bed.setReg32(T.CC, BASE);
      assert.equal(bed.reg32(T.CSTS) & 3, T.CSTS_CFS, what);
      drv.disable();
      assert.equal(drv.enable(), T.CSTS_RDY, `${what}: recovers`);
    }
  });
});

describe('nvme: shadow doorbells', () => {
  function shadowed(): { bed: NvmeTestBed; drv: NvmeTestDriver } {
    const { bed, drv } = hostile();
    assert.equal(drv.configureDoorbellBuffer().status, 0, 'doorbell buffer config');
    assert.ok(bed.dev.controller.shadowDoorbells);
    return { bed, drv };
  }

  it('takes I/O tails from the shadow buffer and asks for doorbells through EventIdx', () => {
    const { bed, drv } = shadowed();
    drv.createPair(2, 64, { ien: false });
    const n0 = drv.mmioDoorbells;
    for (let i = 0; i < 10; i++) assert.equal(drv.submit(2, { opc: OPC.FLUSH, nsid: 1 }).status, 0);
    // Each submission follows an emptied queue, so each rings once; the CQ head rings only
    // when it first passes its EventIdx (0), since the controller reads heads from the shadow.
    assert.equal(drv.mmioDoorbells - n0, 10 + 1, 'one SQ doorbell per submission, one CQ doorbell');
    const ei = drv.u32(drv.dbbuf!.evtidx + 16);
    assert.equal(ei, drv.sqs.get(2)!.sqTail, 'SQ EventIdx at the consumed tail');
    // Submissions that arrive while the host sees no need to ring are still found by the
    // next processing pass (an I/O thread woken by an ioeventfd calls processQueue).
    drv.place(2, { opc: OPC.FLUSH, nsid: 1 });
    drv.place(2, { opc: OPC.FLUSH, nsid: 1 });
    drv.setU32(drv.dbbuf!.shadow + 16, drv.sqs.get(2)!.sqTail);
    bed.dev.processQueue(2);
    assert.equal(drv.reap(2).length, 2);
    assert.ok(needEvent(drv.u32(drv.dbbuf!.evtidx + 16), drv.sqs.get(2)!.sqTail + 1, drv.sqs.get(2)!.sqTail));
  });

  it('keeps the admin queue on MMIO doorbells, mirroring them into the shadow', () => {
    const { drv } = shadowed();
    for (let i = 0; i < 5; i++) assert.equal(drv.admin({ opc: OPC.GET_FEATURES, cdw10: 7 }).status, 0);
    assert.equal(drv.u32(drv.dbbuf!.shadow), drv.sqs.get(0)!.sqTail, 'admin SQ tail mirrored');
    assert.equal(drv.u32(drv.dbbuf!.shadow + 4), drv.cqs.get(0)!.head, 'admin CQ head mirrored');
  });

  it('reads CQ heads from the shadow when the CQ fills, and resumes on a kick', () => {
    const { bed, drv } = shadowed();
    drv.createCq(3, 2, { ien: false });
    drv.createSq(3, 8, 3);
    for (let i = 0; i < 4; i++) drv.place(3, { opc: OPC.FLUSH, nsid: 1 });
    drv.ringSq(3);
    const got: Cqe[] = [];
    for (let i = 0; i < 10 && got.length < 4; i++) {
      got.push(...drv.reap(3)); // updates the CQ head in the shadow; rings only if EventIdx asks
      bed.dev.kickCompletionQueue(3);
    }
    assert.equal(got.length, 4);
    assert.ok(got.every((c) => c.status === 0));
  });

  it('ignores shadow values out of range', () => {
    const { bed, drv } = shadowed();
    const n0 = bed.dev.controller.badDoorbells;
    drv.setU32(drv.dbbuf!.shadow + 8, 999); // SQ 1 tail beyond its 16 entries
    bed.dev.processQueue(1);
    assert.ok(bed.dev.controller.badDoorbells > n0, 'counted');
    drv.setU32(drv.dbbuf!.shadow + 8, drv.sqs.get(1)!.sqTail);
    stillWorks(bed, drv, 'bad shadow values');
  });

  it('is forgotten on controller reset', () => {
    const { bed, drv } = shadowed();
    drv.disable();
    assert.equal(bed.dev.controller.shadowDoorbells, false);
    assert.equal(drv.enable(), T.CSTS_RDY);
    drv.createPair(1, 16, { ien: false });
    stillWorks(bed, drv, 'after reset');
  });
});
