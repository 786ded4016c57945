// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The fw_cfg device as a guest drives it: the selector/data ports, the DMA
// interface against guest memory, hostile descriptors, and its state.
// Port numbers, keys and control bits are this test's own constants, taken
// from QEMU's fw_cfg specification, so a wrong constant in the code shows.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers, type Payload } from '../../migrate.js';
import { FakeHost } from '../../testing/fake-host.js';
import { GuestMemory, Prot } from '../../vmm/memory.js';
import { FwCfgBuilder, QemuFwCfg } from './fwcfg.js';

const SEL = 0x510;
const DATA = 0x511;
const DMA_HI = 0x514;
const DMA_LO = 0x518;
const CTL = { ERROR: 0x01, READ: 0x02, SKIP: 0x04, SELECT: 0x08, WRITE: 0x10 };
const KEY = { SIGNATURE: 0x00, ID: 0x01, RAM_SIZE: 0x03, NOGRAPHIC: 0x04, NB_CPUS: 0x05, MAX_CPUS: 0x0f, DIR: 0x19 };
const RAMFB = new Uint8Array(28).fill(0x11);

function bswap(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function builder(): FwCfgBuilder {
  return new FwCfgBuilder()
    .cpus(2, 4)
    .ramSize(256 * 1024 * 1024)
    .file('opt/test/hello', new TextEncoder().encode('hello, fw_cfg'))
    .file('etc/ramfb', RAMFB, { writable: true })
    .bootOrder(['/pci@i0cf8/scsi@4,0/disk@0,0']);
}

/** The main thread's instance and a vCPU's, over a structured clone of the descriptor (as a worker gets it). */
function setup(b = builder()): { fw: QemuFwCfg; guest: FakeHost } {
  const desc = QemuFwCfg.describe(b);
  const fw = QemuFwCfg.attach(desc, new FakeHost());
  const guest = new FakeHost();
  QemuFwCfg.attach(structuredClone(desc), guest);
  return { fw, guest };
}

function legacyRead(host: FakeHost, key: number, n: number): number[] {
  host.pio.write(SEL, 2, key);
  return Array.from({ length: n }, () => host.pio.read(DATA, 1));
}

function be32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at, false);
}

/** Put a descriptor at `at` in guest memory and start it; returns the control word written back. */
function dma(host: FakeHost, at: number, control: number, length: number, address: number | bigint): number {
  const d = new Uint8Array(16);
  const dv = new DataView(d.buffer);
  dv.setUint32(0, control >>> 0, false);
  dv.setUint32(4, length >>> 0, false);
  dv.setBigUint64(8, BigInt(address), false);
  assert.ok(host.mem.write(at, d), 'descriptor placed');
  kick(host, at);
  return readControl(host, at);
}

function kick(host: FakeHost, at: number): void {
  host.pio.write(DMA_HI, 4, bswap(Math.floor(at / 2 ** 32)));
  host.pio.write(DMA_LO, 4, bswap(at >>> 0));
}

function readControl(host: FakeHost, at: number): number {
  return bswap(host.mem.readU32(at)!);
}

function guestBytes(host: FakeHost, at: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  assert.ok(host.mem.read(at, b));
  return b;
}

describe('QemuFwCfg: traditional interface', () => {
  it('claims 0x510-0x511 and 0x514-0x51b, not 0x512-0x513', () => {
    const { guest } = setup();
    for (const p of [0x510, 0x511, 0x514, 0x51b])
      assert.ok(guest.pio.owner(p)?.startsWith('qemu-fwcfg'), `0x${p.toString(16)}`);
    for (const p of [0x50f, 0x512, 0x513, 0x51c]) assert.equal(guest.pio.owner(p), undefined, `0x${p.toString(16)}`);
  });

  it('reads the signature, the interface ID (traditional + DMA) and the legacy items', () => {
    const { guest } = setup();
    assert.equal(String.fromCharCode(...legacyRead(guest, KEY.SIGNATURE, 4)), 'QEMU');
    assert.deepEqual(legacyRead(guest, KEY.ID, 4), [3, 0, 0, 0]);
    assert.deepEqual(legacyRead(guest, KEY.NB_CPUS, 2), [2, 0]);
    assert.deepEqual(legacyRead(guest, KEY.MAX_CPUS, 2), [4, 0]);
    assert.deepEqual(legacyRead(guest, KEY.NOGRAPHIC, 2), [0, 0]);
    assert.deepEqual(legacyRead(guest, KEY.RAM_SIZE, 8), [0, 0, 0, 0x10, 0, 0, 0, 0]);
  });

  it('returns zeros past the end and for unknown keys; ignores data writes and 1-byte selector writes', () => {
    const { fw, guest } = setup();
    assert.deepEqual(legacyRead(guest, KEY.NB_CPUS, 4), [2, 0, 0, 0]);
    assert.deepEqual(legacyRead(guest, 0x1234, 2), [0, 0]);
    guest.pio.write(SEL, 2, KEY.SIGNATURE);
    guest.pio.write(DATA, 1, 0x55);
    guest.pio.write(SEL, 1, KEY.ID); // not a selector write in QEMU either
    assert.equal(guest.pio.read(DATA, 1), 0x51, 'still the signature, from its start');
    assert.equal(guest.pio.read(SEL, 1), 0xff, 'the selector reads all-ones');
    assert.equal(guest.pio.read(SEL, 2), 0xffff);
    assert.equal(fw.stats().ignored, 2);
  });

  it('returns successive bytes for wider data reads', () => {
    const { guest } = setup();
    guest.pio.write(SEL, 2, KEY.SIGNATURE);
    assert.equal(guest.pio.read(DATA, 2), 0x4551); // 'Q','E'
    assert.equal(guest.pio.read(DATA, 4), 0x0000_554d, "'M','U' then the end: zeros");
  });

  it('ignores the write-channel bit of the selector', () => {
    const { guest } = setup();
    assert.equal(String.fromCharCode(...legacyRead(guest, 0x4000 | KEY.SIGNATURE, 4)), 'QEMU');
  });

  it('shows the DMA signature "QEMU CFG" in the address register', () => {
    const { guest } = setup();
    const bytes = (port: number): string => {
      const v = guest.pio.read(port, 4);
      return String.fromCharCode(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
    };
    assert.equal(bytes(DMA_HI) + bytes(DMA_LO), 'QEMU CFG');
    assert.equal(guest.pio.read(0x516, 1), 'M'.charCodeAt(0));
  });

  it('shares the selection between instances (threads)', () => {
    const desc = QemuFwCfg.describe(builder());
    const a = new FakeHost();
    const b = new FakeHost();
    QemuFwCfg.attach(desc, a);
    QemuFwCfg.attach(structuredClone(desc), b);
    a.pio.write(SEL, 2, KEY.SIGNATURE);
    assert.equal(a.pio.read(DATA, 1), 'Q'.charCodeAt(0));
    assert.equal(b.pio.read(DATA, 1), 'E'.charCodeAt(0));
  });
});

describe('QemuFwCfg: file directory', () => {
  it('lists the named files only, sorted by name, with keys from 0x20 in that order', () => {
    const b = new FwCfgBuilder()
      .cpus(1)
      .file('opt/z', new Uint8Array(3))
      .file('bootorder', new Uint8Array(7))
      .file('etc/e820', new Uint8Array(40));
    const { guest } = setup(b);
    guest.pio.write(SEL, 2, KEY.DIR);
    const count = be32(new Uint8Array(Array.from({ length: 4 }, () => guest.pio.read(DATA, 1))), 0);
    assert.equal(count, 3);
    const entries = [];
    for (let i = 0; i < count; i++) {
      const e = new Uint8Array(Array.from({ length: 64 }, () => guest.pio.read(DATA, 1)));
      const nul = e.indexOf(0, 8);
      entries.push({
        size: be32(e, 0),
        select: (e[4]! << 8) | e[5]!,
        reserved: (e[6]! << 8) | e[7]!,
        name: Buffer.from(e.subarray(8, nul)).toString(),
        padding: Array.from(e.subarray(nul, 64)).every((x) => x === 0),
      });
    }
    assert.deepEqual(entries, [
      { size: 7, select: 0x20, reserved: 0, name: 'bootorder', padding: true },
      { size: 40, select: 0x21, reserved: 0, name: 'etc/e820', padding: true },
      { size: 3, select: 0x22, reserved: 0, name: 'opt/z', padding: true },
    ]);
    assert.equal(guest.pio.read(DATA, 1), 0, 'nothing after the last entry');
  });

  it('reads a file through the data port by its directory key', () => {
    const { fw, guest } = setup();
    const key = fw.fileKey('opt/test/hello')!;
    assert.equal(Buffer.from(legacyRead(guest, key, 13)).toString(), 'hello, fw_cfg');
  });
});

describe('QemuFwCfg: DMA', () => {
  it('reads the signature and ID with SELECT+READ', () => {
    const { guest } = setup();
    assert.equal(dma(guest, 0x1000, (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ, 4, 0x2000), 0);
    assert.equal(Buffer.from(guestBytes(guest, 0x2000, 4)).toString(), 'QEMU');
    assert.equal(dma(guest, 0x1000, (KEY.ID << 16) | CTL.SELECT | CTL.READ, 4, 0x2000), 0);
    assert.deepEqual(Array.from(guestBytes(guest, 0x2000, 4)), [3, 0, 0, 0]);
  });

  it('reads a file into guest RAM, continuing at the offset the data port left', () => {
    const { fw, guest } = setup();
    const key = fw.fileKey('opt/test/hello')!;
    assert.deepEqual(legacyRead(guest, key, 2), [0x68, 0x65]); // "he"
    assert.equal(dma(guest, 0x1000, CTL.READ, 5, 0x3000), 0);
    assert.equal(Buffer.from(guestBytes(guest, 0x3000, 5)).toString(), 'llo, ');
    assert.equal(guest.pio.read(DATA, 1), 'f'.charCodeAt(0), 'the data port continues after the DMA read');
    assert.deepEqual(fw.stats(), { dmaOps: 1, dmaErrors: 0, ignored: 0 });
  });

  it('skips, then reads', () => {
    const { fw, guest } = setup();
    const key = fw.fileKey('opt/test/hello')!;
    assert.equal(dma(guest, 0x1000, (key << 16) | CTL.SELECT | CTL.SKIP, 7, 0), 0);
    assert.equal(dma(guest, 0x1000, CTL.READ, 6, 0x3000), 0);
    assert.equal(Buffer.from(guestBytes(guest, 0x3000, 6)).toString(), 'fw_cfg');
    assert.equal(dma(guest, 0x1000, CTL.SKIP, 1000, 0), 0, 'skipping past the end is no error');
    assert.equal(guest.pio.read(DATA, 1), 0);
  });

  it('zero-fills a read that runs past the end of the item', () => {
    const { guest } = setup();
    guest.mem.write(0x3000, new Uint8Array(16).fill(0xaa));
    assert.equal(dma(guest, 0x1000, (KEY.NB_CPUS << 16) | CTL.SELECT | CTL.READ, 16, 0x3000), 0);
    assert.deepEqual(Array.from(guestBytes(guest, 0x3000, 16)), [2, 0, ...new Array(14).fill(0)]);
    guest.mem.write(0x3000, new Uint8Array(8).fill(0xaa));
    assert.equal(dma(guest, 0x1000, (0x1234 << 16) | CTL.SELECT | CTL.READ, 8, 0x3000), 0, 'no such item: zeros');
    assert.deepEqual(Array.from(guestBytes(guest, 0x3000, 8)), new Array(8).fill(0));
  });

  it('gives READ priority over WRITE over SKIP; no operation bit just selects', () => {
    const { fw, guest } = setup();
    const key = fw.fileKey('etc/ramfb')!;
    guest.mem.write(0x3000, new Uint8Array(28).fill(0x77));
    const all = (key << 16) | CTL.SELECT | CTL.READ | CTL.WRITE | CTL.SKIP;
    assert.equal(dma(guest, 0x1000, all, 28, 0x3000), 0);
    assert.deepEqual(guestBytes(guest, 0x3000, 28), RAMFB, 'READ: the guest got the item');
    assert.equal(fw.fileWrites('etc/ramfb'), 0);
    guest.mem.write(0x3000, new Uint8Array(28).fill(0x77));
    assert.equal(dma(guest, 0x1000, (key << 16) | CTL.SELECT | CTL.WRITE | CTL.SKIP, 28, 0x3000), 0);
    assert.deepEqual(fw.readFile('etc/ramfb'), new Uint8Array(28).fill(0x77), 'WRITE over SKIP');
    assert.equal(dma(guest, 0x1000, (KEY.SIGNATURE << 16) | CTL.SELECT, 99, 0x3000), 0);
    assert.equal(guest.pio.read(DATA, 1), 'Q'.charCodeAt(0), 'selected, offset 0');
  });

  it('writes a writable item at the current offset; reset restores it', () => {
    const { fw, guest } = setup();
    const key = fw.fileKey('etc/ramfb')!;
    guest.mem.write(0x3000, new Uint8Array([1, 2, 3, 4]));
    assert.equal(dma(guest, 0x1000, (key << 16) | CTL.SELECT | CTL.SKIP, 8, 0), 0);
    assert.equal(dma(guest, 0x1000, CTL.WRITE, 4, 0x3000), 0);
    const want = RAMFB.slice();
    want.set([1, 2, 3, 4], 8);
    assert.deepEqual(fw.readFile('etc/ramfb'), want);
    assert.equal(fw.fileWrites('etc/ramfb'), 1);
    assert.equal(dma(guest, 0x1000, CTL.WRITE, 0, 0xdead_0000), 0, 'an empty write is no error');
    fw.reset();
    assert.deepEqual(fw.readFile('etc/ramfb'), RAMFB);
    assert.equal(guest.pio.read(DATA, 1), 'Q'.charCodeAt(0), 'reset selects the signature');
  });

  it('clears the address register after each operation', () => {
    const { guest } = setup();
    guest.pio.write(DMA_HI, 4, bswap(1)); // a descriptor at 4 GiB + 0x1000: not RAM
    const d = new Uint8Array(16);
    new DataView(d.buffer).setUint32(0, (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ);
    new DataView(d.buffer).setUint32(4, 4);
    new DataView(d.buffer).setBigUint64(8, 0x2000n);
    guest.mem.write(0x1000, d);
    guest.pio.write(DMA_LO, 4, bswap(0x1000));
    assert.deepEqual(Array.from(guestBytes(guest, 0x2000, 4)), [0, 0, 0, 0], 'nothing happened');
    guest.pio.write(DMA_LO, 4, bswap(0x1000)); // the high half is 0 now
    assert.equal(readControl(guest, 0x1000), 0);
    assert.equal(Buffer.from(guestBytes(guest, 0x2000, 4)).toString(), 'QEMU');
  });

  it('takes the address halves from different threads', () => {
    const desc = QemuFwCfg.describe(builder());
    const a = new FakeHost();
    const b = new FakeHost();
    QemuFwCfg.attach(desc, a);
    QemuFwCfg.attach(structuredClone(desc), b);
    const d = new Uint8Array(16);
    new DataView(d.buffer).setUint32(0, (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ);
    new DataView(d.buffer).setUint32(4, 4);
    new DataView(d.buffer).setBigUint64(8, 0x2000n);
    b.mem.write(0x1000, d);
    a.pio.write(DMA_HI, 4, 0);
    b.pio.write(DMA_LO, 4, bswap(0x1000));
    assert.equal(Buffer.from(guestBytes(b, 0x2000, 4)).toString(), 'QEMU');
  });

  describe('hostile descriptors end in ERROR, never an exception', () => {
    const RAM = 1 << 20; // FakeHost's

    it('a buffer outside RAM, or running off its end', () => {
      const { fw, guest } = setup();
      const sel = (KEY.SIGNATURE << 16) | CTL.SELECT;
      assert.equal(dma(guest, 0x1000, sel | CTL.READ, 4, RAM), CTL.ERROR);
      assert.equal(dma(guest, 0x1000, sel | CTL.READ, 16, RAM - 8), CTL.ERROR);
      assert.deepEqual(Array.from(guestBytes(guest, RAM - 8, 8)), new Array(8).fill(0), 'nothing written');
      assert.equal(dma(guest, 0x1000, sel | CTL.READ, 4, 0xffff_ffff_ffff_fff0n), CTL.ERROR);
      assert.equal(dma(guest, 0x1000, sel | CTL.READ, 4, 2n ** 53n + 0x2000n), CTL.ERROR, 'beyond exact numbers');
      assert.equal(guest.pio.read(DATA, 1), 'Q'.charCodeAt(0), 'a failed read leaves the offset alone');
      assert.equal(fw.stats().dmaErrors, 4);
    });

    it('a huge length', () => {
      const { guest } = setup();
      guest.mem.writeU8(0x5000, 0xaa);
      const ctl = (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ;
      assert.equal(dma(guest, 0x1000, ctl, 0xffff_ffff, 0x5000), CTL.ERROR);
      assert.equal(guest.mem.readU8(0x5000), 0xaa, 'untouched');
      assert.equal(dma(guest, 0x1000, CTL.WRITE, 0xffff_ffff, 0), CTL.ERROR);
    });

    it('a write to a read-only item, past the end of a writable one, or with nothing selected', () => {
      const { fw, guest } = setup();
      const ramfb = fw.fileKey('etc/ramfb')!;
      guest.mem.write(0x3000, new Uint8Array(64).fill(0x55));
      assert.equal(dma(guest, 0x1000, (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.WRITE, 4, 0x3000), CTL.ERROR);
      assert.equal(String.fromCharCode(...legacyRead(guest, KEY.SIGNATURE, 4)), 'QEMU');
      assert.equal(dma(guest, 0x1000, (ramfb << 16) | CTL.SELECT | CTL.WRITE, 29, 0x3000), CTL.ERROR);
      assert.equal(dma(guest, 0x1000, (ramfb << 16) | CTL.SELECT | CTL.SKIP, 20, 0), 0);
      assert.equal(dma(guest, 0x1000, CTL.WRITE, 9, 0x3000), CTL.ERROR, 'a truncated write is dropped whole');
      assert.deepEqual(fw.readFile('etc/ramfb'), RAMFB);
      assert.equal(dma(guest, 0x1000, (0xffff << 16) | CTL.SELECT | CTL.WRITE, 1, 0x3000), CTL.ERROR);
      assert.equal(
        dma(guest, 0x1000, (ramfb << 16) | CTL.SELECT | CTL.WRITE, 28, RAM - 4),
        CTL.ERROR,
        'source outside RAM',
      );
      assert.deepEqual(fw.readFile('etc/ramfb'), RAMFB);
      assert.equal(fw.fileWrites('etc/ramfb'), 0);
    });

    it('a descriptor outside RAM, or straddling its end', () => {
      const { fw, guest } = setup();
      assert.doesNotThrow(() => kick(guest, RAM));
      assert.doesNotThrow(() => kick(guest, 2 ** 52));
      // The control word is in RAM even though the descriptor is not: it gets ERROR.
      guest.mem.writeU32(RAM - 8, bswap((KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ));
      kick(guest, RAM - 8);
      assert.equal(readControl(guest, RAM - 8), CTL.ERROR);
      guest.pio.write(DMA_HI, 4, 0xffff_ffff);
      guest.pio.write(DMA_LO, 4, 0xffff_ffff);
      assert.deepEqual(fw.stats(), { dmaOps: 4, dmaErrors: 4, ignored: 0 });
    });

    it('a buffer in read-only memory or spanning two unrelated regions; a 1 GiB view boundary is fine', () => {
      class Host extends FakeHost {
        override readonly mem = GuestMemory.fromBuffers([
          { gpa: 0, bytes: new Uint8Array(0x2000) },
          { gpa: 0x2000, bytes: new Uint8Array(0x1000) }, // adjacent, but another mapping
          { gpa: 0x8000, bytes: new Uint8Array(0x1000), prot: Prot.Read },
          { gpa: 0x3fff_f000, bytes: new Uint8Array(0x1000) }, // the Machine's 1 GiB views
          { gpa: 0x4000_0000, bytes: new Uint8Array(0x1000) },
        ]);
      }
      const desc = QemuFwCfg.describe(builder());
      const guest = new Host();
      QemuFwCfg.attach(desc, guest);
      const sel = (KEY.SIGNATURE << 16) | CTL.SELECT | CTL.READ;
      assert.equal(dma(guest, 0x100, sel, 4, 0x8000), CTL.ERROR, 'read-only destination');
      assert.equal(dma(guest, 0x100, sel, 8, 0x1ffc), CTL.ERROR, 'crosses into another region');
      assert.equal(dma(guest, 0x100, sel, 8, 0x3fff_fffe), 0, 'contiguous RAM split at 1 GiB');
      assert.equal(Buffer.from(guestBytes(guest, 0x3fff_fffe, 2)).toString(), 'QE');
      assert.deepEqual(Array.from(guestBytes(guest, 0x4000_0000, 6)), [0x4d, 0x55, 0, 0, 0, 0]); // "MU", zero-filled
    });
  });
});

describe('QemuFwCfg: hostile port accesses', () => {
  it('never throws for any port, size and value, including random descriptors', () => {
    const { fw, guest } = setup();
    let seed = 0x1234_5678;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const sizes = [1, 2, 4] as const;
    for (let i = 0; i < 20000; i++) {
      // Random bytes where descriptors and buffers may point.
      if (i % 64 === 0)
        guest.mem.write(rand() & 0xffff, new Uint8Array(Array.from({ length: 16 }, () => rand() & 0xff)));
      const port = 0x50e + (rand() % 16);
      const size = sizes[rand() % 3]!;
      const value = rand() % 8 === 0 ? rand() : bswap(rand() & 0xffff);
      assert.doesNotThrow(() => {
        if (rand() & 1) guest.pio.read(port, size);
        else guest.pio.write(port, size, value);
      });
    }
    assert.ok(fw.stats().dmaOps > 0, 'some operations ran');
  });
});

describe('QemuFwCfg: state', () => {
  function busy(): { fw: QemuFwCfg; guest: FakeHost; key: number } {
    const { fw, guest } = setup();
    const key = fw.fileKey('opt/test/hello')!;
    const ramfb = fw.fileKey('etc/ramfb')!;
    guest.mem.write(0x3000, new Uint8Array(28).fill(0x42));
    assert.equal(dma(guest, 0x1000, (ramfb << 16) | CTL.SELECT | CTL.WRITE, 28, 0x3000), 0);
    legacyRead(guest, key, 3);
    guest.pio.write(DMA_HI, 4, bswap(0x12)); // between the two halves
    return { fw, guest, key };
  }

  it('round-trips selection, offset, the DMA address half and writable items', () => {
    const { fw } = busy();
    const state = fw.migrate().export();
    assert.equal(state.length, 1);
    assert.equal(state[0]!.kind, 'qemu-fwcfg');
    assert.equal(state[0]!.version, 2);
    assert.deepEqual(JSON.parse(JSON.stringify(state)), state, 'plain JSON');
    const { fw: fw2, guest: guest2 } = setup();
    fw2.migrate().import(new PayloadOffers(state));
    assert.deepEqual(fw2.migrate().export(), state);
    assert.equal(guest2.pio.read(DATA, 1), 'l'.charCodeAt(0), 'continues after "hel"');
    assert.deepEqual(fw2.readFile('etc/ramfb'), new Uint8Array(28).fill(0x42));
    const data = state[0]!.data as { dmaAddr: string };
    assert.equal(data.dmaAddr, String(0x12n << 32n));
  });

  it('refuses payloads that do not fit this device, changing nothing', () => {
    const { fw } = busy();
    const good = fw.migrate().export()[0]!;
    const gd = good.data as Record<string, unknown> & {
      entries: { selector: number; name: string; value: number[] }[];
    };
    const ramfb = gd.entries[0]!;
    const variants: [string, unknown][] = [
      ['offset past the item', { ...gd, offset: 14 }],
      ['offset into no item', { ...gd, selector: 0x1234, offset: 1 }],
      ['a low DMA address half', { ...gd, dmaAddr: '1' }],
      ['an unknown writable item', { ...gd, entries: [{ ...ramfb, name: 'opt/test/hello' }] }],
      ['a wrong key', { ...gd, entries: [{ ...ramfb, selector: 0x30 }] }],
      ['a wrong size', { ...gd, entries: [{ ...ramfb, value: [1, 2, 3] }] }],
      ['a missing writable item', { ...gd, entries: [] }],
      ['a duplicate', { ...gd, entries: [ramfb, ramfb] }],
      ['a non-byte value', { ...gd, entries: [{ ...ramfb, value: new Array(28).fill(256) }] }],
      ['an extra field', { ...gd, cached: true }],
      ['a bad selector', { ...gd, selector: 0x10000 }],
    ];
    const { fw: fw2, guest: guest2 } = setup();
    const before = fw2.migrate().export();
    for (const [what, data] of variants) {
      assert.throws(
        () => fw2.migrate().import(new PayloadOffers([{ ...good, data }])),
        (e: unknown) => e instanceof MigrateError,
        what,
      );
    }
    assert.throws(
      () => fw2.migrate().import(new PayloadOffers([good, { kind: 'qemu-ramfb', version: 1, data: {} }])),
      (e: unknown) => e instanceof MigrateError && e.code === 'UnexpectedPayload',
    );
    assert.throws(
      () => fw2.migrate().import(new PayloadOffers([])),
      (e: unknown) => e instanceof MigrateError && e.code === 'DataMissing',
    );
    assert.deepEqual(fw2.migrate().export(), before);
    assert.equal(guest2.pio.read(DATA, 1), 'Q'.charCodeAt(0));
  });

  it("upgrades the seed's qemu-fwcfg-legacy v1 payload", () => {
    const { fw, guest } = setup();
    const v1: Payload = { kind: 'qemu-fwcfg-legacy', version: 1, data: { selector: 0, offset: 2 } };
    fw.migrate().import(new PayloadOffers([v1]));
    assert.equal(guest.pio.read(DATA, 1), 'M'.charCodeAt(0));
    assert.deepEqual(fw.readFile('etc/ramfb'), RAMFB);
  });
});

describe('QemuFwCfg.describe', () => {
  it('still takes { cpus } and shares item contents rather than copying them', () => {
    const desc = QemuFwCfg.describe({ cpus: 6 });
    const guest = new FakeHost();
    QemuFwCfg.attach(desc, guest);
    assert.deepEqual(legacyRead(guest, KEY.NB_CPUS, 2), [6, 0]);
    assert.deepEqual(legacyRead(guest, KEY.MAX_CPUS, 2), [6, 0]);
    const shared = desc.shared as { image: { data: unknown } };
    assert.ok(shared.image.data instanceof SharedArrayBuffer);
  });
});
