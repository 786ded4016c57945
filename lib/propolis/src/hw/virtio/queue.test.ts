// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The device side of a split virtqueue, driven by the driver-side fake
// over plain guest memory: normal chains, indirect tables, notification
// suppression both ways, and a hostile driver — every malformed ring or
// chain must fault the queue without writing a byte of guest memory.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GuestMemory } from '../../vmm/memory.js';
import {
  AVAIL_F_NO_INTERRUPT,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  FakeDriverQueue,
  MemoryWatch,
  RAM_SIZE,
  ROM_BASE,
  USED_F_NO_NOTIFY,
  testMemory,
  writeDesc,
} from './driver-fake.js';
import { SplitQueue } from './queue.js';

// The test's own feature bits (spec §6).
const INDIRECT = 1 << 28;
const EVENT_IDX = 1 << 29;

interface Setup {
  mem: GuestMemory;
  ram: Uint8Array;
  q: SplitQueue;
  d: FakeDriverQueue;
  faults: string[];
  features: Int32Array;
}

function setup(opts: { size?: number; max?: number; features?: number; base?: number } = {}): Setup {
  const { mem, ram } = testMemory();
  const max = opts.max ?? 16;
  const size = opts.size ?? max;
  const features = new Int32Array(1);
  features[0] = opts.features ?? 0;
  const faults: string[] = [];
  const q = new SplitQueue(0, max, SplitQueue.words(SplitQueue.allocate(1), 0), features, (_q, why) =>
    faults.push(why),
  );
  q.reset();
  assert.ok(q.setSize(size));
  const d = FakeDriverQueue.at(mem, size, opts.base ?? 0x1000);
  q.setAddrs(d.desc, d.avail, d.used);
  return { mem, ram, q, d, faults, features };
}

/** Pop everything available; the chains' (head, buffers) as plain data. */
function popAll(s: Setup): { head: number; bufs: { addr: number; len: number; writable: boolean }[] }[] {
  const out = [];
  let c;
  while ((c = s.q.popAvail(s.mem)) !== undefined) {
    const bufs = [];
    for (let i = 0; i < c.count; i++) bufs.push(c.buffer(i));
    out.push({ head: c.head, bufs });
  }
  return out;
}

/** A fault: nothing popped, the queue broken, one reason matching `re`, and no guest byte changed. */
function assertFault(s: Setup, re: RegExp): void {
  const watch = new MemoryWatch(s.ram);
  assert.equal(s.q.popAvail(s.mem), undefined);
  assert.equal(s.q.broken, true);
  assert.equal(s.faults.length, 1, `faults: ${s.faults.join('; ')}`);
  assert.match(s.faults[0] as string, re);
  assert.equal(s.q.pushUsed(s.mem, 0, 0), false, 'a broken queue takes no used elements');
  assert.equal(s.q.resumeNotify(s.mem), false);
  assert.deepEqual(watch.changed(), [], 'guest memory untouched');
  // Broken until reset: asking again changes nothing and reports nothing new.
  assert.equal(s.q.popAvail(s.mem), undefined);
  assert.equal(s.faults.length, 1);
}

describe('split virtqueue: normal operation', () => {
  it('pops a chain readable-then-writable and publishes the used element after its contents', () => {
    const s = setup();
    const head = s.d.addChain([
      { addr: 0x8000, len: 16 },
      { addr: 0x9000, len: 512, write: true },
      { addr: 0x9200, len: 1, write: true },
    ]);
    s.d.publish(head);
    assert.equal(s.q.pending(s.mem), 1);
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    assert.equal(c.head, head);
    assert.equal(c.readable, 1);
    assert.equal(c.readBytes, 16);
    assert.equal(c.writeBytes, 513);
    assert.deepEqual(c.buffer(1), { addr: 0x9000, len: 512, writable: true });
    assert.equal(s.q.popAvail(s.mem), undefined, 'one chain only');
    assert.ok(s.q.pushUsed(s.mem, c.head, 513));
    assert.deepEqual(s.d.takeUsed(), [{ id: head, len: 513 }]);
    assert.equal(s.q.nextAvail, 1);
    assert.equal(s.q.nextUsed, 1);
  });

  it('wraps the free-running indices past 65535', () => {
    const s = setup({ size: 4, max: 4 });
    for (let n = 0; n < 70_000; n++) {
      s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
      const c = s.q.popAvail(s.mem);
      assert.ok(c, `chain ${n}`);
      s.q.pushUsed(s.mem, c.head, 1);
      s.d.takeUsed();
    }
    assert.equal(s.q.nextAvail, 70_000 & 0xffff);
    assert.equal(s.d.usedIdx, 70_000 & 0xffff);
    assert.deepEqual(s.faults, []);
  });

  it('copies across descriptor boundaries and gives views of guest memory', () => {
    const s = setup();
    s.ram.set([1, 2, 3], 0x8000);
    s.ram.set([4, 5, 6, 7], 0x8100);
    s.d.publish(
      s.d.addChain([
        { addr: 0x8000, len: 3 },
        { addr: 0x8100, len: 4 },
        { addr: 0x9000, len: 2, write: true },
        { addr: 0x9100, len: 3, write: true },
      ]),
    );
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    const dst = new Uint8Array(5);
    assert.ok(c.read(s.mem, 1, dst));
    assert.deepEqual([...dst], [2, 3, 4, 5, 6]);
    assert.equal(c.read(s.mem, 3, new Uint8Array(5)), false, 'past the readable part');
    assert.ok(c.write(s.mem, 1, Uint8Array.of(9, 8, 7)));
    assert.deepEqual([...s.ram.subarray(0x9000, 0x9002)], [0, 9]);
    assert.deepEqual([...s.ram.subarray(0x9100, 0x9103)], [8, 7, 0]);
    const views: Uint8Array[] = [];
    assert.ok(c.views(s.mem, true, 0, 5, views));
    assert.deepEqual(
      views.map((v) => v.length),
      [2, 3],
    );
    views[1]![2] = 0x55;
    assert.equal(s.ram[0x9102], 0x55, 'views alias guest memory');
  });

  it('accepts zero-length buffers and counts them as buffers of no bytes', () => {
    const s = setup();
    s.d.publish(
      s.d.addChain([
        { addr: 0x8000, len: 0 },
        { addr: 0xdead_0000_0000, len: 0 },
        { addr: 0x9000, len: 1, write: true },
      ]),
    );
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    assert.equal(c.count, 3);
    assert.equal(c.readBytes, 0);
    assert.ok(c.writeU8(s.mem, 0, 0x11));
    assert.equal(s.ram[0x9000], 0x11);
  });

  it('walks an indirect table, and direct descriptors followed by one', () => {
    const s = setup({ features: INDIRECT });
    s.d.publish(
      s.d.addIndirect(0x4000, [
        { addr: 0x8000, len: 16 },
        { addr: 0x9000, len: 4096, write: true },
        { addr: 0xa000, len: 1, write: true },
      ]),
    );
    // Two direct readable descriptors, then an indirect one with the rest.
    writeDesc(s.mem, 0x5000, { addr: 0xb000, len: 1, flags: DESC_F_WRITE, next: 0 });
    s.d.setDesc(8, { addr: 0x7000, len: 8, flags: DESC_F_NEXT, next: 9 });
    s.d.setDesc(9, { addr: 0x7100, len: 8, flags: DESC_F_NEXT, next: 10 });
    s.d.setDesc(10, { addr: 0x5000, len: 16, flags: DESC_F_INDIRECT | DESC_F_WRITE, next: 0 });
    s.d.publish(8);
    const [a, b] = popAll(s);
    assert.ok(a && b);
    assert.deepEqual(
      a.bufs.map((x) => [x.addr, x.len, x.writable]),
      [
        [0x8000, 16, false],
        [0x9000, 4096, true],
        [0xa000, 1, true],
      ],
    );
    assert.deepEqual(
      b.bufs.map((x) => [x.addr, x.len, x.writable]),
      [
        [0x7000, 8, false],
        [0x7100, 8, false],
        [0xb000, 1, true],
      ],
      'the WRITE flag of the descriptor naming the table is ignored',
    );
    assert.deepEqual(s.faults, []);
  });

  it('lays a legacy queue out from its page frame', () => {
    const s = setup({ size: 256, max: 256 });
    s.q.setLegacyPfn(0x10);
    const d = FakeDriverQueue.legacy(s.mem, 256, 0x10);
    assert.equal(s.q.addr('desc'), 0x10000);
    assert.equal(s.q.addr('avail'), 0x11000);
    assert.equal(s.q.addr('used'), 0x12000, 'used ring on the next 4 KiB boundary');
    assert.equal(s.q.legacyPfn, 0x10);
    d.publish(d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    s.q.pushUsed(s.mem, c.head, 1);
    assert.deepEqual(d.takeUsed(), [{ id: 0, len: 1 }]);
    s.q.setLegacyPfn(0);
    assert.equal(s.q.mapped, false);
    assert.equal(s.q.legacyPfn, 0);
  });
});

describe('split virtqueue: notification suppression', () => {
  it('without EVENT_IDX: NO_NOTIFY while processing, NO_INTERRUPT honoured', () => {
    const s = setup();
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    s.q.suppressNotify(s.mem);
    assert.equal(s.d.usedFlags, USED_F_NO_NOTIFY);
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    s.q.pushUsed(s.mem, c.head, 1);
    assert.equal(s.q.resumeNotify(s.mem), false, 'nothing more available');
    assert.equal(s.d.usedFlags, 0);
    assert.equal(s.q.takeSignal(s.mem), true);
    assert.equal(s.q.takeSignal(s.mem), false, 'nothing new since');
    s.d.setAvailFlags(AVAIL_F_NO_INTERRUPT);
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    s.q.pushUsed(s.mem, s.q.popAvail(s.mem)!.head, 1);
    assert.equal(s.q.takeSignal(s.mem), false, 'driver asked for no interrupt');
  });

  it('resumeNotify reports chains that arrived while notifications were off', () => {
    const s = setup();
    s.q.suppressNotify(s.mem);
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    assert.equal(s.q.resumeNotify(s.mem), true);
  });

  it('with EVENT_IDX: interrupts only when used_event is passed, and publishes avail_event', () => {
    const s = setup({ features: EVENT_IDX });
    const serve = (): void => {
      s.q.suppressNotify(s.mem);
      assert.equal(s.d.usedFlags, 0, 'with EVENT_IDX the device leaves used.flags 0');
      let c;
      while ((c = s.q.popAvail(s.mem)) !== undefined) s.q.pushUsed(s.mem, c.head, 1);
      s.q.resumeNotify(s.mem);
    };
    s.d.setUsedEvent(2); // interrupt me when used.idx goes past 2 (i.e. reaches 3)
    const signals: boolean[] = [];
    for (let n = 0; n < 4; n++) {
      s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
      serve();
      signals.push(s.q.takeSignal(s.mem));
      assert.equal(s.d.availEvent, n + 1, 'avail_event: the next index the device will consume');
    }
    assert.deepEqual(signals, [false, false, true, false]);
    // A batch that jumps over used_event still interrupts.
    s.d.setUsedEvent(5);
    for (let n = 0; n < 3; n++) s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    serve();
    assert.equal(s.d.usedIdx, 7);
    assert.equal(s.q.takeSignal(s.mem), true);
    // NO_INTERRUPT is ignored under EVENT_IDX.
    s.d.setAvailFlags(AVAIL_F_NO_INTERRUPT);
    s.d.setUsedEvent(7);
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    serve();
    assert.equal(s.q.takeSignal(s.mem), true);
  });
});

describe('split virtqueue: ring geometry', () => {
  it('validates size, alignment and placement in guest RAM', () => {
    const s = setup();
    assert.equal(s.q.validate(s.mem), undefined);
    assert.equal(s.q.setSize(12), false, 'not a power of two');
    assert.equal(s.q.setSize(32), false, 'above the maximum');
    assert.equal(s.q.setSize(0), false);
    const bad = (desc: number, avail: number, used: number, re: RegExp): void => {
      s.q.setAddrs(desc, avail, used);
      assert.match(s.q.validate(s.mem) ?? '', re);
    };
    bad(0x1008, 0x2000, 0x3000, /descriptor table .* 16-byte/);
    bad(0x1000, 0x2001, 0x3000, /avail ring .* 2-byte/);
    bad(0x1000, 0x2000, 0x3002, /used ring .* 4-byte/);
    bad(RAM_SIZE - 0x80, 0x2000, 0x3000, /descriptor table .* not in guest RAM/);
    bad(0x1000, RAM_SIZE + 0x1000, 0x3000, /avail ring .* not in guest RAM/);
    bad(0x1000, 0x2000, ROM_BASE, /used ring .* not in writable guest RAM/);
    bad(0x1000, 0x2000, 2 ** 64 - 4096, /used ring .* not in writable guest RAM/);
  });

  it('faults, without touching memory, when the rings are outside guest RAM', () => {
    const s = setup();
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    s.q.setAddrs(s.d.desc, s.d.avail, RAM_SIZE + 0x100);
    assertFault(s, /used ring .* not in writable guest RAM/);
  });

  it('stays broken until reset, and works again after', () => {
    const s = setup();
    s.d.setAvailIdx(100);
    assertFault(s, /avail index 100 is 100 entries ahead/);
    s.q.reset();
    assert.equal(s.q.broken, false);
    assert.equal(s.q.mapped, false);
    s.d.clear();
    s.q.setAddrs(s.d.desc, s.d.avail, s.d.used);
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    assert.ok(s.q.popAvail(s.mem));
  });
});

describe('split virtqueue: hostile chains fault the queue', () => {
  it('a head index outside the table', () => {
    const s = setup();
    s.d.publish(16);
    assertFault(s, /descriptor index 16 is outside a table of 16/);
  });

  it('a next index outside the table', () => {
    const s = setup();
    s.d.setDesc(0, { addr: 0x8000, len: 1, flags: DESC_F_NEXT, next: 40 });
    s.d.publish(0);
    assertFault(s, /descriptor index 40/);
  });

  it('a descriptor loop', () => {
    const s = setup();
    s.d.setDesc(0, { addr: 0x8000, len: 1, flags: DESC_F_NEXT, next: 1 });
    s.d.setDesc(1, { addr: 0x8000, len: 1, flags: DESC_F_NEXT, next: 0 });
    s.d.publish(0);
    assertFault(s, /loop/);
  });

  it('a self-loop in an indirect table', () => {
    const s = setup({ features: INDIRECT });
    writeDesc(s.mem, 0x4000, { addr: 0x8000, len: 1, flags: DESC_F_NEXT, next: 0 });
    s.d.setDesc(0, { addr: 0x4000, len: 16, flags: DESC_F_INDIRECT, next: 0 });
    s.d.publish(0);
    assertFault(s, /loop/);
  });

  it('a chain longer than the queue (every descriptor used, the last pointing back)', () => {
    const s = setup({ size: 8, max: 16 });
    for (let i = 0; i < 8; i++) s.d.setDesc(i, { addr: 0x8000, len: 1, flags: DESC_F_NEXT, next: (i + 1) % 8 });
    s.d.publish(0);
    assertFault(s, /more than 8 descriptors/);
  });

  it('an avail index that runs more than a queue ahead', () => {
    const s = setup();
    s.d.setAvailIdx(17);
    assertFault(s, /17 entries ahead/);
  });

  it('a device-readable descriptor after a device-writable one', () => {
    const s = setup();
    s.d.publish(
      s.d.addChain([
        { addr: 0x8000, len: 16 },
        { addr: 0x9000, len: 1, write: true },
        { addr: 0x8100, len: 16 },
      ]),
    );
    assertFault(s, /device-readable descriptor after a device-writable one/);
  });

  it('the same ordering rule inside an indirect table', () => {
    const s = setup({ features: INDIRECT });
    s.d.publish(
      s.d.addIndirect(0x4000, [
        { addr: 0x9000, len: 1, write: true },
        { addr: 0x8000, len: 16 },
      ]),
    );
    assertFault(s, /device-readable descriptor after a device-writable one/);
  });

  it('an indirect descriptor without VIRTIO_F_INDIRECT_DESC', () => {
    const s = setup();
    s.d.publish(s.d.addIndirect(0x4000, [{ addr: 0x9000, len: 1, write: true }]));
    assertFault(s, /without VIRTIO_F_INDIRECT_DESC/);
  });

  it('an indirect table inside an indirect table', () => {
    const s = setup({ features: INDIRECT });
    writeDesc(s.mem, 0x5000, { addr: 0x9000, len: 1, flags: DESC_F_WRITE, next: 0 });
    writeDesc(s.mem, 0x4000, { addr: 0x5000, len: 16, flags: DESC_F_INDIRECT, next: 0 });
    s.d.setDesc(0, { addr: 0x4000, len: 16, flags: DESC_F_INDIRECT, next: 0 });
    s.d.publish(0);
    assertFault(s, /indirect descriptor inside an indirect table/);
  });

  it('an indirect descriptor with NEXT', () => {
    const s = setup({ features: INDIRECT });
    writeDesc(s.mem, 0x4000, { addr: 0x9000, len: 1, flags: DESC_F_WRITE, next: 0 });
    s.d.setDesc(0, { addr: 0x4000, len: 16, flags: DESC_F_INDIRECT | DESC_F_NEXT, next: 1 });
    s.d.publish(0);
    assertFault(s, /indirect descriptor with NEXT/);
  });

  for (const len of [0, 24, 0xffff_fff0]) {
    it(`an indirect table of ${len} bytes`, () => {
      const s = setup({ features: INDIRECT });
      s.d.setDesc(0, { addr: 0x4000, len, flags: DESC_F_INDIRECT, next: 0 });
      s.d.publish(0);
      assertFault(s, len === 0xffff_fff0 ? /exceeds 16/ : /not a multiple of 16/);
    });
  }

  it('an indirect table outside guest RAM', () => {
    const s = setup({ features: INDIRECT });
    s.d.setDesc(0, { addr: RAM_SIZE - 16, len: 32, flags: DESC_F_INDIRECT, next: 0 });
    s.d.publish(0);
    assertFault(s, /indirect table .* not in guest RAM/);
  });

  it('descriptors totalling 4 GiB or more', () => {
    const s = setup();
    s.d.publish(
      s.d.addChain([
        { addr: 0x8000, len: 0xffff_ffff },
        { addr: 0x9000, len: 1, write: true },
      ]),
    );
    assertFault(s, /4 GiB/);
  });
});

describe('split virtqueue: data buffers outside guest RAM', () => {
  it('a nearly-4 GiB buffer or one in the hole pops, but every access to it fails without touching memory', () => {
    const s = setup();
    s.d.publish(
      s.d.addChain([
        { addr: 0x8000, len: 0xffff_ff00 },
        { addr: RAM_SIZE + 0x1000, len: 16, write: true },
        { addr: ROM_BASE, len: 16, write: true },
      ]),
    );
    const watch = new MemoryWatch(s.ram);
    const c = s.q.popAvail(s.mem);
    assert.ok(c);
    assert.ok(c.read(s.mem, 0, new Uint8Array(16)), 'bytes that are in RAM can be read');
    assert.equal(c.read(s.mem, RAM_SIZE - 0x8000 - 8, new Uint8Array(16)), false, 'bytes running out of RAM cannot');
    assert.equal(c.views(s.mem, false, 0, 0xffff_ff00, []), false);
    assert.equal(c.writeU8(s.mem, 0, 1), false, 'hole');
    assert.equal(c.writeU8(s.mem, 16, 1), false, 'read-only');
    assert.equal(c.views(s.mem, true, 16, 16, []), false);
    assert.deepEqual(watch.changed(), []);
    assert.deepEqual(s.faults, [], 'a bad data buffer is the device’s to answer, not a queue fault');
  });
});

describe('split virtqueue: state', () => {
  it('exports and imports its registers and cursors', () => {
    const s = setup({ size: 8 });
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    s.d.publish(s.d.addChain([{ addr: 0x8000, len: 1, write: true }]));
    s.q.pushUsed(s.mem, s.q.popAvail(s.mem)!.head, 1);
    s.q.enable();
    s.q.markLive();
    s.q.msixVector = 1;
    const st = s.q.exportState();
    assert.equal(st.size, 8);
    assert.equal(st.descr_gpa, BigInt(s.d.desc));
    assert.equal(st.avail_cur_idx, 1);
    assert.equal(st.used_idx, 1);
    const t = setup({ size: 16 });
    assert.equal(t.q.checkImport(st, false), undefined);
    assert.match(t.q.checkImport(st, true) ?? '', /size 8/, 'legacy queues cannot be resized');
    assert.match(t.q.checkImport({ ...st, size: 12 }, false) ?? '', /size 12/);
    assert.match(t.q.checkImport({ ...st, id: 3 }, false) ?? '', /saved id 3/);
    t.q.importState(st, 1);
    // Continue on the imported queue over the first queue's memory.
    const c = t.q.popAvail(s.mem);
    assert.ok(c, 'the second chain is still available');
    t.q.pushUsed(s.mem, c.head, 1);
    assert.equal(s.d.takeUsed().length, 2);
    assert.equal(t.q.msixVector, 1);
    assert.equal(t.q.enabled, true);
  });
});
