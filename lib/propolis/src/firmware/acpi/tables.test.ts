// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// ACPI tables byte by byte: headers, checksums, FADT/MADT values, the _PRT
// routing rule, and the table loader run by an independent firmware
// simulation written here from the command format (see table-loader.ts),
// so a mistake shared by builder and runner cannot hide.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FirmwareConfigError } from '../errors.js';
import { defaultPciHoles, type AcpiMachine } from './machine.js';
import { decodeTableLoader } from './table-loader.js';
import { buildAcpi, resolveAcpi } from './tables.js';

const GiB = 1024 * 1024 * 1024;

function machine(over: Partial<AcpiMachine> = {}): AcpiMachine {
  return { cpus: 2, lowmemTop: 3 * GiB, highmem: 1 * GiB, serialPorts: ['com1', 'com2'], enablePcie: false, ...over };
}

const sum = (b: Uint8Array, start = 0, len = b.length - start): number => {
  let s = 0;
  for (let i = start; i < start + len; i++) s += b[i]!;
  return s & 0xff;
};
const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const sig = (b: Uint8Array, at = 0, n = 4): string => String.fromCharCode(...b.subarray(at, at + n));
const indexOf = (hay: Uint8Array, needle: number[]): number => Buffer.from(hay).indexOf(Buffer.from(needle));
const count = (hay: Uint8Array, s: string): number => Buffer.from(hay).toString('latin1').split(s).length - 1;

describe('ACPI tables', () => {
  for (const cpus of [1, 2, 32]) {
    for (const enablePcie of [false, true]) {
      it(`${cpus} vCPU(s), PCIe ${enablePcie ? 'on' : 'off'}: headers, lengths and checksums`, () => {
        const b = buildAcpi(machine({ cpus, enablePcie }));
        const sigs = b.layout.map((l) => l.signature);
        assert.deepEqual(sigs, ['FACS', 'DSDT', 'FACP', 'APIC', ...(enablePcie ? ['MCFG'] : []), 'XSDT']);
        let end = 0;
        for (const l of b.layout) {
          assert.equal(l.offset, end, 'tables are contiguous');
          end += l.length;
          const t = b.tables.subarray(l.offset, l.offset + l.length);
          assert.equal(sig(t), l.signature);
          assert.equal(dv(t).getUint32(4, true), l.length, `${l.signature} length field`);
          if (l.signature === 'FACS') {
            assert.equal(l.offset % 64, 0, 'FACS is 64-byte aligned within the blob');
            assert.equal(l.length, 64);
            continue;
          }
          assert.equal(t[9], 0, `${l.signature}: checksum left to the loader, zero in the file`);
          assert.equal(sig(t, 10, 6), 'OXIDE ');
          assert.equal(sig(t, 16, 8), 'PROPOLIS');
        }
        assert.equal(end, b.tables.length);
        const rev = (s: string): number => b.tables[b.layout.find((l) => l.signature === s)!.offset + 8]!;
        assert.deepEqual([rev('DSDT'), rev('FACP'), rev('APIC'), rev('XSDT')], [2, 6, 4, 1]);
        assert.equal(b.rsdp.length, 36);
        assert.equal(sig(b.rsdp, 0, 8), 'RSD PTR ');
        assert.deepEqual([b.rsdp[8], b.rsdp[32]], [0, 0], 'RSDP checksums left to the loader');
        assert.equal(b.rsdp[15], 2, 'ACPI 2.0+ RSDP');
        // After the loader, at any address, every checksum holds.
        const r = resolveAcpi(b, 0x7ff0_0000n, 0xf_0000n);
        for (const [s, t] of r.standalone) if (s !== 'FACS' && s !== 'RSDP') assert.equal(sum(t), 0, `${s} checksum`);
        assert.equal(sum(r.rsdp, 0, 20), 0);
        assert.equal(sum(r.rsdp), 0);
        // DSDT contents that depend on the description.
        const dsdt = resolveAcpi(b, 0n, 0n).standalone.get('DSDT')!;
        assert.equal(count(dsdt, 'ACPI0007'), cpus, 'one processor device per vCPU');
        assert.equal(indexOf(dsdt, [0x86, 0x09, 0x00, 0x01, 0, 0, 0, 0xe0]) >= 0, enablePcie, 'ECAM reserved iff PCIe');
      });
    }
  }

  it('fills the FADT from the PIIX4 PM block', () => {
    const f = resolveAcpi(buildAcpi(machine()), 0x7ff0_0000n, 0xf_0000n).standalone.get('FACP')!;
    const v = dv(f);
    assert.equal(f.length, 276);
    assert.equal(v.getUint16(46, true), 9, 'SCI_INT');
    assert.equal(v.getUint32(48, true), 0xb2, 'SMI_CMD');
    assert.deepEqual([f[52], f[53]], [0xf1, 0xf0], 'ACPI_ENABLE/DISABLE');
    assert.equal(v.getUint32(56, true), 0xb000, 'PM1a_EVT_BLK');
    assert.equal(v.getUint32(64, true), 0xb004, 'PM1a_CNT_BLK');
    assert.equal(v.getUint32(76, true), 0xb008, 'PM_TMR_BLK');
    assert.equal(v.getUint32(80, true), 0xafe0, 'GPE0_BLK');
    assert.deepEqual([...f.subarray(88, 93)], [4, 2, 0, 4, 4], 'PM1_EVT/PM1_CNT/PM2_CNT/PM_TMR/GPE0 lengths');
    assert.deepEqual([v.getUint16(96, true), v.getUint16(98, true)], [101, 1001], 'C2/C3 latency');
    // WBINVD(0) PROC_C1(2) SLP_BUTTON(5) RTC_S4(7) TMR_VAL_EXT(8) RESET_REG_SUP(10)
    assert.equal(v.getUint32(112, true), (1 << 0) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 10));
    assert.deepEqual([...f.subarray(116, 120)], [1, 8, 0, 1], 'RESET_REG: system I/O, 8 bits, byte access');
    assert.equal(v.getBigUint64(120, true), 0xcf9n);
    assert.equal(f[128], 6, 'RESET_VALUE');
    // X_ blocks: {space, bit width, offset, access, address}
    const gas = (at: number): [number, number, bigint] => [f[at]!, f[at + 1]!, v.getBigUint64(at + 4, true)];
    assert.deepEqual(gas(148), [1, 32, 0xb000n], 'X_PM1a_EVT_BLK');
    assert.deepEqual(gas(172), [1, 16, 0xb004n], 'X_PM1a_CNT_BLK');
    assert.deepEqual(gas(208), [1, 32, 0xb008n], 'X_PM_TMR_BLK');
    assert.deepEqual(gas(220), [1, 32, 0xafe0n], 'X_GPE0_BLK');
    // FACS by its 32-bit field only; DSDT by both.
    assert.equal(v.getUint32(36, true), 0x7ff0_0000);
    assert.equal(v.getBigUint64(132, true), 0n);
    assert.equal(BigInt(v.getUint32(40, true)), v.getBigUint64(140, true));
  });

  it('lists every vCPU, the IOAPIC, the overrides and the NMI in the MADT', () => {
    const cpus = 3;
    const m = resolveAcpi(buildAcpi(machine({ cpus })), 0n, 0n).standalone.get('APIC')!;
    const v = dv(m);
    assert.equal(v.getUint32(36, true), 0xfee0_0000);
    assert.equal(v.getUint32(40, true), 1, 'PCAT_COMPAT');
    const entries: number[][] = [];
    for (let at = 44; at < m.length; at += m[at + 1]!) entries.push([...m.subarray(at, at + m[at + 1]!)]);
    const le32 = (x: number): number[] => [x & 0xff, (x >> 8) & 0xff, (x >> 16) & 0xff, x >>> 24];
    assert.deepEqual(entries, [
      [0, 8, 0, 0, 1, 0, 0, 0],
      [0, 8, 1, 1, 1, 0, 0, 0],
      [0, 8, 2, 2, 1, 0, 0, 0],
      [1, 12, 2, 0, ...le32(0xfec0_0000), 0, 0, 0, 0],
      [2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
      // level (3 << 2) | active-high (1) = 0x0D
      [2, 10, 0, 5, 5, 0, 0, 0, 0x0d, 0],
      [2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0],
      [2, 10, 0, 10, 10, 0, 0, 0, 0x0d, 0],
      [2, 10, 0, 11, 11, 0, 0, 0, 0x0d, 0],
      [4, 6, 0xff, 0, 0, 1],
    ]);
  });

  it('describes MCFG with one ECAM segment when PCIe is enabled', () => {
    const m = resolveAcpi(buildAcpi(machine({ enablePcie: true })), 0n, 0n).standalone.get('MCFG')!;
    assert.equal(m.length, 36 + 8 + 16);
    const v = dv(m);
    assert.equal(v.getBigUint64(44, true), 0xe000_0000n);
    assert.deepEqual([v.getUint16(52, true), m[54], m[55]], [0, 0, 255]);
  });

  it('routes INTx of every bus-0 slot to LNKA..D by the PIIX rule', () => {
    const dsdt = resolveAcpi(buildAcpi(machine()), 0n, 0n).standalone.get('DSDT')!;
    // Name(_PRT, Package(n) { Package(4) { DWord addr, pin, \_SB.LNKx, 0 }, ... })
    let at = indexOf(dsdt, [0x08, ...Buffer.from('_PRT'), 0x12]);
    assert(at > 0, 'no _PRT');
    at += 6;
    const pkgLen = (): void => {
      const lead = dsdt[at]!;
      at += 1 + (lead >> 6);
    };
    pkgLen();
    const n = dsdt[at++]!;
    assert.equal(n, 31 * 4);
    const routes = new Map<string, string>();
    for (let i = 0; i < n; i++) {
      assert.equal(dsdt[at++], 0x12);
      pkgLen();
      assert.equal(dsdt[at++], 4);
      assert.equal(dsdt[at++], 0x0c, 'address is a DWord');
      const addr = dv(dsdt).getUint32(at, true);
      at += 4;
      const op = dsdt[at++]!;
      const pin = op === 0x0a ? dsdt[at++]! : op; // Zero/One or BytePrefix
      assert.deepEqual([...dsdt.subarray(at, at + 6)], [0x5c, 0x2e, ...Buffer.from('_SB_')]);
      const link = sig(dsdt, at + 6, 4);
      at += 10;
      assert.equal(dsdt[at++], 0x00, 'source index Zero');
      assert.equal(addr & 0xffff, 0xffff, 'any function');
      const slot = addr >>> 16;
      // SeaBIOS's formulation, pins counted 1..4: ((pin - 1) + (slot - 1)) & 3.
      const pin1 = pin + 1;
      const expected = `LNK${'ABCD'[(pin1 - 1 + (slot - 1)) & 3]}`;
      assert.equal(link, expected, `slot ${slot} INT${'ABCD'[pin]}`);
      routes.set(`${slot} INT${'ABCD'[pin]}`, link);
    }
    assert.equal(routes.size, 124, 'every (slot, pin) exactly once');
    // Spot checks, written out.
    const spots = ['1 INTA', '1 INTB', '1 INTD', '2 INTA', '3 INTA', '4 INTA', '5 INTA', '31 INTC'];
    assert.deepEqual(
      spots.map((k) => routes.get(k)),
      ['LNKA', 'LNKB', 'LNKD', 'LNKB', 'LNKC', 'LNKD', 'LNKA', 'LNKA'],
    );
  });

  it('describes exactly the serial ports present', () => {
    for (const ports of [[], ['com1'], ['com1', 'com2', 'com3', 'com4'], ['com3']] as const) {
      const dsdt = resolveAcpi(buildAcpi(machine({ serialPorts: ports })), 0n, 0n).standalone.get('DSDT')!;
      for (const [i, p] of ['com1', 'com2', 'com3', 'com4'].entries()) {
        assert.equal(
          count(dsdt, `COM${i + 1}`),
          (ports as readonly string[]).includes(p) ? 1 : 0,
          `${p} in ${ports.join(',')}`,
        );
      }
    }
    // COM3: IO(Decode16, 0x3E8, 0x3E8, 1, 8), IRQNoFlags(){4}
    const d3 = resolveAcpi(buildAcpi(machine({ serialPorts: ['com3'] })), 0n, 0n).standalone.get('DSDT')!;
    assert(indexOf(d3, [0x47, 0x01, 0xe8, 0x03, 0xe8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00]) > 0);
  });

  it('places PCI windows between RAM and the APIC area, skipping ECAM', () => {
    assert.deepEqual(defaultPciHoles({ lowmemTop: 3 * GiB, highmem: 0, enablePcie: false }), {
      mmio32: [{ base: 0xc000_0000, size: 0xfec0_0000 - 0xc000_0000 }],
      mmio64: { base: 0x1_0000_0000n, size: 0x1000_0000_0000n - 0x1_0000_0000n },
    });
    assert.deepEqual(defaultPciHoles({ lowmemTop: 2 * GiB, highmem: 2 * GiB, enablePcie: true }), {
      mmio32: [
        { base: 0x8000_0000, size: 0x6000_0000 },
        { base: 0xf000_0000, size: 0x0ec0_0000 },
      ],
      mmio64: { base: 0x1_8000_0000n, size: 0x1000_0000_0000n - 0x1_8000_0000n },
    });
  });

  it('rejects descriptions it cannot express', () => {
    const bad: Partial<AcpiMachine>[] = [
      { cpus: 0 },
      { cpus: 33 },
      { cpus: 1.5 },
      { lowmemTop: 3 * GiB + 4096 },
      { highmem: -1 },
      { serialPorts: ['com1', 'com1'] },
      { serialPorts: ['com5' as 'com1'] },
      { pciHoles: { mmio32: [{ base: 0xb000_0000, size: 0x1000_0000 }] } },
      { pciHoles: { mmio32: [{ base: 0xfe00_0000, size: 0x0100_0000 }] } },
      { enablePcie: true, pciHoles: { mmio32: [{ base: 0xc000_0000, size: 0x3000_0000 }] } },
      { pciHoles: { mmio32: [], mmio64: { base: 0x1_0000_0000n, size: 0x1000n } } },
    ];
    for (const over of bad) {
      assert.throws(
        () => buildAcpi(machine(over)),
        FirmwareConfigError,
        JSON.stringify(over, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
      );
    }
  });
});

describe('table loader', () => {
  // The command format, independently: 128-byte records, u32 command first.
  interface Cmd {
    command: number;
    a: string;
    b: string;
    u60: number;
    u64: number;
    u68: number;
    u116: number;
    u120: number;
    zone: number;
  }
  function parse(loader: Uint8Array): Cmd[] {
    assert.equal(loader.length % 128, 0);
    const out: Cmd[] = [];
    for (let at = 0; at < loader.length; at += 128) {
      const r = loader.subarray(at, at + 128);
      const v = dv(r);
      const str = (o: number): string => {
        const s = r.subarray(o, o + 56);
        return sig(s, 0, s.indexOf(0));
      };
      out.push({
        command: v.getUint32(0, true),
        a: str(4),
        b: str(60),
        u60: v.getUint32(60, true),
        u64: v.getUint32(64, true),
        u68: v.getUint32(68, true),
        u116: v.getUint32(116, true),
        u120: r[120]!,
        zone: r[64]!,
      });
    }
    return out;
  }

  /**
   * What SeaBIOS/OVMF do with the script: returns guest "memory" as blobs at
   * addresses. They differ in ADD_CHECKSUM: SeaBIOS subtracts the range's
   * sum from the checksum byte, OVMF stores the negated sum of the range
   * with the byte included in it.
   */
  function firmware(
    files: Map<string, Uint8Array>,
    loader: Uint8Array,
    highBase: bigint,
    fsegBase: bigint,
    flavour: 'seabios' | 'ovmf',
  ) {
    const mem = new Map<string, { addr: bigint; bytes: Uint8Array }>();
    let high = highBase;
    let fseg = fsegBase;
    for (const c of parse(loader)) {
      if (c.command === 1) {
        const align = BigInt(c.u60);
        const zone = c.zone;
        assert(zone === 1 || zone === 2, 'zone HIGH or FSEG');
        let addr = zone === 1 ? high : fseg;
        addr = (addr + align - 1n) & ~(align - 1n);
        const src = files.get(c.a);
        assert(src, `allocate of unknown file ${c.a}`);
        mem.set(c.a, { addr, bytes: src.slice() });
        if (zone === 1) high = addr + BigInt(src.length);
        else fseg = addr + BigInt(src.length);
      } else if (c.command === 2) {
        const dest = mem.get(c.a)!;
        const src = mem.get(c.b)!;
        assert(dest && src, 'pointer between allocated files');
        const size = c.u120;
        assert([1, 2, 4, 8].includes(size));
        let val = 0n;
        for (let i = 0; i < size; i++) val += BigInt(dest.bytes[c.u116 + i]!) << BigInt(8 * i);
        val += src.addr;
        for (let i = 0; i < size; i++) dest.bytes[c.u116 + i] = Number((val >> BigInt(8 * i)) & 0xffn);
      } else if (c.command === 3) {
        const f = mem.get(c.a)!;
        const rangeSum = sum(f.bytes, c.u64, c.u68);
        f.bytes[c.u60] = flavour === 'seabios' ? (f.bytes[c.u60]! - rangeSum) & 0xff : (0x100 - rangeSum) & 0xff;
      } else {
        assert.fail(`unexpected command ${c.command}`);
      }
    }
    const read = (addr: bigint, len: number): Uint8Array => {
      for (const { addr: base, bytes } of mem.values()) {
        if (addr >= base && addr + BigInt(len) <= base + BigInt(bytes.length)) {
          const off = Number(addr - base);
          return bytes.subarray(off, off + len);
        }
      }
      assert.fail(`no allocated memory at 0x${addr.toString(16)}+${len}`);
    };
    return { mem, read };
  }

  for (const [enablePcie, flavour] of [
    [false, 'seabios'],
    [true, 'ovmf'],
  ] as const) {
    it(`decodes into allocate, pointer and checksum commands (PCIe ${enablePcie ? 'on' : 'off'})`, () => {
      const b = buildAcpi(machine({ enablePcie }));
      assert.deepEqual(decodeTableLoader(b.loader), b.loaderEntries);
      const cmds = parse(b.loader);
      assert.deepEqual(
        cmds.slice(0, 2).map((c) => [c.command, c.a, c.u60, c.zone]),
        [
          [1, 'etc/acpi/tables', 64, 1],
          [1, 'etc/acpi/rsdp', 16, 2],
        ],
      );
      const described = enablePcie ? 3 : 2;
      // FADT: FACS, DSDT, X_DSDT; XSDT: one per described table; RSDP: XSDT.
      assert.equal(cmds.filter((c) => c.command === 2).length, 3 + described + 1);
      // One per table except FACS, plus two for the RSDP.
      assert.equal(cmds.filter((c) => c.command === 3).length, 1 + 1 + described + 2);
      assert.deepEqual(
        b.files.map((f) => f.name),
        ['etc/acpi/tables', 'etc/acpi/rsdp', 'etc/table-loader'],
      );
      assert.equal(b.files[2]!.bytes, b.loader);
    });

    it(`yields, in simulated ${flavour}, an RSDP → XSDT → tables chain that validates (PCIe ${enablePcie ? 'on' : 'off'})`, () => {
      const b = buildAcpi(machine({ cpus: 4, enablePcie }));
      const files = new Map(b.files.map((f) => [f.name, f.bytes]));
      const { mem, read } = firmware(files, b.loader, 0x7ffd_f010n, 0xf_5a48n, flavour);
      const rsdpAddr = mem.get('etc/acpi/rsdp')!.addr;
      assert.equal(rsdpAddr % 16n, 0n);
      assert(rsdpAddr >= 0xe_0000n && rsdpAddr < 0x10_0000n);
      const rsdp = read(rsdpAddr, 36);
      assert.equal(sig(rsdp, 0, 8), 'RSD PTR ');
      assert.equal(sum(rsdp, 0, 20), 0, 'RSDP checksum');
      assert.equal(sum(rsdp, 0, 36), 0, 'RSDP extended checksum');
      assert.equal(dv(rsdp).getUint32(16, true), 0, 'no RSDT');

      const table = (addr: bigint, expect: string): Uint8Array => {
        const head = read(addr, 8);
        assert.equal(sig(head), expect);
        const t = read(addr, dv(head).getUint32(4, true));
        if (expect !== 'FACS') assert.equal(sum(t), 0, `${expect} checksum after patching`);
        return t;
      };
      const xsdt = table(dv(rsdp).getBigUint64(24, true), 'XSDT');
      const found: string[] = [];
      let fadt: Uint8Array | undefined;
      for (let at = 36; at < xsdt.length; at += 8) {
        const addr = dv(xsdt).getBigUint64(at, true);
        const s = sig(read(addr, 4));
        found.push(s);
        const t = table(addr, s);
        if (s === 'FACP') fadt = t;
      }
      assert.deepEqual(found, ['FACP', 'APIC', ...(enablePcie ? ['MCFG'] : [])]);
      assert(fadt);
      const facsAddr = BigInt(dv(fadt).getUint32(36, true));
      assert.equal(facsAddr % 64n, 0n, 'FACS 64-byte aligned in memory');
      assert.equal(table(facsAddr, 'FACS').length, 64);
      const dsdtAddr = dv(fadt).getBigUint64(140, true);
      assert.equal(BigInt(dv(fadt).getUint32(40, true)), dsdtAddr, 'DSDT and X_DSDT agree');
      table(dsdtAddr, 'DSDT');

      // The library's own runner places and patches the same way.
      const tablesAddr = mem.get('etc/acpi/tables')!.addr;
      const r = resolveAcpi(b, tablesAddr, rsdpAddr);
      assert.deepEqual(r.tables, mem.get('etc/acpi/tables')!.bytes);
      assert.deepEqual(r.rsdp, mem.get('etc/acpi/rsdp')!.bytes);
    });
  }
});
