// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// AML and resource descriptor encodings against byte sequences worked out
// here from the ACPI specification's grammar (section 20.2) and resource
// data types (section 6.4), with this file's own constants.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  and,
  argN,
  buffer,
  call,
  createDWordField,
  derefOf,
  device,
  eisaId,
  eisaIdValue,
  field,
  FieldAccess,
  FieldUpdate,
  ifThen,
  index,
  integer,
  lEqual,
  local,
  method,
  name,
  nameString,
  Ones,
  operationRegion,
  or,
  orElse,
  pkg,
  pkgLength,
  pkgLengthValue,
  ref,
  RegionSpace,
  ret,
  scope,
  store,
  string,
} from './aml.js';
import {
  dwordMemory,
  endTag,
  fixedIo,
  interrupt,
  io,
  irq,
  irqNoFlags,
  memory32Fixed,
  qwordMemory,
  resourceTemplate,
  wordBusNumber,
  wordIo,
} from './resources.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const eq = (actual: Uint8Array, expected: Uint8Array | number[]): void =>
  assert.equal(hex(actual), hex(expected instanceof Uint8Array ? expected : Uint8Array.from(expected)));

// Opcodes, from the specification's AML byte stream table.
const NAME = 0x08;
const BYTE = 0x0a;
const WORD = 0x0b;
const DWORD = 0x0c;
const QWORD = 0x0e;
const STRING = 0x0d;
const SCOPE = 0x10;
const BUFFER = 0x11;
const PACKAGE = 0x12;
const METHOD = 0x14;
const EXT = 0x5b;
const ROOT = 0x5c;
const PARENT = 0x5e;
const DUAL = 0x2e;
const MULTI = 0x2f;

describe('PkgLength', () => {
  it('uses one byte up to a total of 63, counting itself', () => {
    eq(pkgLength(0), [0x01]);
    eq(pkgLength(62), [0x3f]);
  });

  it('switches to two bytes at 64: low nibble in byte 0, bits 4-11 in byte 1', () => {
    // body 63 → total 65 = 0x41: byte0 = 0b01_00_0001, byte1 = 0x41 >> 4.
    eq(pkgLength(63), [0x41, 0x04]);
    // body 0xFFD → total 0xFFF, the largest two-byte value.
    eq(pkgLength(0xffd), [0x4f, 0xff]);
  });

  it('uses three and four bytes beyond 12 and 20 bits', () => {
    // body 0xFFE → total 0x1001 (0x1000 would not fit two bytes).
    eq(pkgLength(0xffe), [0x81, 0x00, 0x01]);
    // body 0xFFFFD → total 0x100001.
    eq(pkgLength(0xf_fffd), [0xc1, 0x00, 0x00, 0x01]);
  });

  it('encodes raw values (field widths) without counting itself', () => {
    eq(pkgLengthValue(8), [0x08]);
    eq(pkgLengthValue(63), [0x3f]);
    eq(pkgLengthValue(64), [0x40, 0x04]);
    eq(pkgLengthValue(0x12345), [0x85, 0x34, 0x12]);
  });

  it('gives enclosing objects the right length across the boundary', () => {
    // Buffer of 60 bytes: BufferSize is "0A 3C" (2 bytes) → body 62 → one byte.
    const b60 = buffer(new Uint8Array(60));
    eq(b60.subarray(0, 4), [BUFFER, 0x3f, BYTE, 60]);
    assert.equal(b60.length, 1 + 63);
    // 61 bytes: body 63 → two-byte PkgLength 65.
    const b61 = buffer(new Uint8Array(61));
    eq(b61.subarray(0, 5), [BUFFER, 0x41, 0x04, BYTE, 61]);
    assert.equal(b61.length, 1 + 65);
  });
});

describe('AML data', () => {
  it('encodes integers in the shortest form', () => {
    eq(integer(0), [0x00]);
    eq(integer(1), [0x01]);
    eq(integer(2), [BYTE, 0x02]);
    eq(integer(0xff), [BYTE, 0xff]);
    eq(integer(0x100), [WORD, 0x00, 0x01]);
    eq(integer(0xffff), [WORD, 0xff, 0xff]);
    eq(integer(0x1_0000), [DWORD, 0x00, 0x00, 0x01, 0x00]);
    eq(integer(0xfec0_0000), [DWORD, 0x00, 0x00, 0xc0, 0xfe]);
    eq(integer(0x1_0000_0000n), [QWORD, 0, 0, 0, 0, 1, 0, 0, 0]);
    eq(integer(0xffff_ffff_ffff_fffen), [QWORD, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    eq(Ones, [0xff]);
    assert.throws(() => integer(-1));
    assert.throws(() => integer(1n << 64n));
  });

  it('encodes strings NUL-terminated', () => {
    eq(string('ACPI0007'), [STRING, ...ascii('ACPI0007'), 0]);
    eq(string(''), [STRING, 0]);
  });

  it('compresses EISA IDs', () => {
    // P=0x10, N=0x0E, P=0x10 → 0b0_10000_01110_10000 = 0x41D0; then 0x0A03.
    assert.equal(eisaIdValue('PNP0A03'), 0x030a_d041);
    eq(eisaId('PNP0A03'), [DWORD, 0x41, 0xd0, 0x0a, 0x03]);
    eq(eisaId('PNP0C0F'), [DWORD, 0x41, 0xd0, 0x0c, 0x0f]);
    eq(eisaId('PNP0501'), [DWORD, 0x41, 0xd0, 0x05, 0x01]);
    assert.throws(() => eisaId('pnp0a03'));
    assert.throws(() => eisaId('PNP0A0'));
  });

  it('encodes packages and buffers', () => {
    // PackageOp PkgLength NumElements elements
    eq(pkg(1, 2), [PACKAGE, 0x05, 0x02, 0x01, BYTE, 0x02]);
    eq(pkg(), [PACKAGE, 0x02, 0x00]);
    // BufferOp PkgLength BufferSize bytes
    eq(buffer(bytes(0xaa)), [BUFFER, 0x03, 0x01, 0xaa]);
    eq(buffer(bytes()), [BUFFER, 0x02, 0x00]);
    // A reference as an element: the bare NameString.
    eq(pkg(ref('\\_SB.LNKA')), [PACKAGE, 0x0c, 0x01, ROOT, DUAL, ...ascii('_SB_LNKA')]);
    assert.throws(() => pkg(...new Array<number>(256).fill(0)));
  });
});

describe('AML names', () => {
  it('pads name segments with underscores', () => {
    eq(nameString('_HID'), ascii('_HID'));
    eq(nameString('PIC'), ascii('PIC_'));
    eq(nameString('A'), ascii('A___'));
  });

  it('encodes root, parent, dual and multi name paths', () => {
    eq(nameString('\\_SB'), [ROOT, ...ascii('_SB_')]);
    eq(nameString('\\_SB.PCI0'), [ROOT, DUAL, ...ascii('_SB_PCI0')]);
    eq(nameString('\\_SB.PCI0.LPC'), [ROOT, MULTI, 3, ...ascii('_SB_PCI0LPC_')]);
    eq(nameString('^LNKA'), [PARENT, ...ascii('LNKA')]);
    eq(nameString('^^X.Y'), [PARENT, PARENT, DUAL, ...ascii('X___Y___')]);
    eq(nameString('\\'), [ROOT, 0x00]);
  });

  it('rejects invalid segments', () => {
    for (const bad of ['lnka', '1ABC', 'TOOLONG', 'A-B', '\\_SB..X']) assert.throws(() => nameString(bad), bad);
  });
});

describe('AML named objects and statements', () => {
  it('Name(_HID, EisaId("PNP0A03"))', () => {
    eq(name('_HID', eisaId('PNP0A03')), [NAME, ...ascii('_HID'), DWORD, 0x41, 0xd0, 0x0a, 0x03]);
  });

  it('Scope and Device wrap their terms in a package', () => {
    eq(scope('\\_SB'), [SCOPE, 0x06, ROOT, ...ascii('_SB_')]);
    // 5B 82 PkgLength NameString TermList; body = 4 + 6 = 10 → 11.
    eq(device('PCI0', name('_UID', 0)), [EXT, 0x82, 0x0b, ...ascii('PCI0'), NAME, ...ascii('_UID'), 0x00]);
  });

  it('Method flags hold the argument count, serialization and sync level', () => {
    // 14 PkgLength NameString MethodFlags TermList; body = 4 + 1 + 3 = 8 → 9.
    eq(method('_STA', {}, ret(0x0b)), [METHOD, 0x09, ...ascii('_STA'), 0x00, 0xa4, BYTE, 0x0b]);
    const m = method('IQCR', { args: 1, serialized: true, syncLevel: 2 });
    eq(m, [METHOD, 0x06, ...ascii('IQCR'), 0x01 | 0x08 | 0x20]);
    assert.throws(() => method('X', { args: 8 }));
  });

  it('If/Else, comparisons and logic', () => {
    // A0 PkgLength Predicate TermList; LEqual = 93, Arg0 = 68, Return = A4.
    eq(ifThen(lEqual(argN(0), 0), ret(1)), [0xa0, 0x06, 0x93, 0x68, 0x00, 0xa4, 0x01]);
    eq(orElse(ret(0)), [0xa1, 0x03, 0xa4, 0x00]);
  });

  it('Store, And, Or with and without a target', () => {
    // Store(And(Arg0, 0x0F), Local0): 70 7B 68 0A 0F 00 60
    eq(store(and(argN(0), 0x0f), local(0)), [0x70, 0x7b, 0x68, BYTE, 0x0f, 0x00, 0x60]);
    // Or(PRQA, 0x80, PRQA): 7D name 0A 80 name
    eq(or(ref('PRQA'), 0x80, ref('PRQA')), [0x7d, ...ascii('PRQA'), BYTE, 0x80, ...ascii('PRQA')]);
    assert.throws(() => local(8));
    assert.throws(() => argN(7));
  });

  it('Index, DerefOf, CreateDWordField and method calls', () => {
    eq(derefOf(index(argN(0), 5)), [0x83, 0x88, 0x68, BYTE, 0x05, 0x00]);
    eq(createDWordField(argN(0), 5, 'PRRI'), [0x8a, 0x68, BYTE, 0x05, ...ascii('PRRI')]);
    eq(call('IQST', argN(0)), [...ascii('IQST'), 0x68]);
  });

  it('OperationRegion and Field', () => {
    // 5B 80 NameString RegionSpace Offset Length
    eq(operationRegion('PIRQ', RegionSpace.PciConfig, 0x60, 4), [
      EXT,
      0x80,
      ...ascii('PIRQ'),
      0x02,
      BYTE,
      0x60,
      BYTE,
      0x04,
    ]);
    // 5B 81 PkgLength NameString FieldFlags FieldList; a gap is 00 PkgLength.
    const f = field('PIRQ', { access: FieldAccess.Byte }, [
      { name: 'PRQA', bits: 8 },
      { skip: 8 },
      { name: 'PRQC', bits: 8 },
    ]);
    eq(f, [EXT, 0x81, 0x12, ...ascii('PIRQ'), 0x01, ...ascii('PRQA'), 0x08, 0x00, 0x08, ...ascii('PRQC'), 0x08]);
    // DWordAcc (3) | Lock (0x10) | WriteAsZeros (2 << 5)
    const g = field('R', { access: FieldAccess.DWord, lock: true, update: FieldUpdate.WriteAsZeros }, []);
    eq(g, [EXT, 0x81, 0x06, ...ascii('R___'), 0x53]);
  });
});

describe('resource descriptors', () => {
  it('small IRQ descriptors: mask, then the information byte', () => {
    eq(irqNoFlags(1), [0x22, 0x02, 0x00]);
    eq(irqNoFlags(12), [0x22, 0x00, 0x10]);
    eq(irqNoFlags(2, 8), [0x22, 0x04, 0x01]);
    // level (bit 0 clear), active-low (bit 3), shared (bit 4)
    eq(irq({ edge: false, activeLow: true, shared: true }, 5, 10, 11), [0x23, 0x20, 0x0c, 0x18]);
    eq(irq({ edge: true, activeLow: false, shared: false }, 4), [0x23, 0x10, 0x00, 0x01]);
    assert.throws(() => irqNoFlags(16));
  });

  it('I/O port, fixed I/O and end tag', () => {
    eq(io(0x3f8, 0x3f8, 1, 8), [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
    eq(fixedIo(0x60, 1), [0x4b, 0x60, 0x00, 0x01]);
    eq(endTag(), [0x79, 0x00]);
  });

  it('32-bit fixed memory and extended interrupts', () => {
    eq(memory32Fixed(true, 0xe000_0000, 0x1000_0000), [0x86, 0x09, 0x00, 0x01, 0, 0, 0, 0xe0, 0, 0, 0, 0x10]);
    // flags: consumer (bit 0) | shared (bit 3); level, active-high leave bits 1-2 clear.
    eq(
      interrupt({ edge: false, activeLow: false, shared: true }, 5, 10),
      [0x89, 0x0a, 0x00, 0x09, 0x02, 5, 0, 0, 0, 10, 0, 0, 0],
    );
    // edge (bit 1), active-low (bit 2), exclusive
    eq(interrupt({ edge: true, activeLow: true, shared: false }, 0x20), [0x89, 0x06, 0x00, 0x07, 0x01, 0x20, 0, 0, 0]);
  });

  it('address space descriptors: type, general flags, type flags, then five values', () => {
    // Bus numbers; producer, MinFixed (bit 2), MaxFixed (bit 3).
    eq(wordBusNumber(0, 0xff), [0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0xff, 0, 0, 0, 0x00, 0x01]);
    // I/O; _RNG = 3 (entire range).
    eq(wordIo(0x0d00, 0xffff), [0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3]);
    // Memory; read-write (bit 0), cacheable (_MEM = 1 in bits 1-2).
    const d = dwordMemory(0xc000_0000, 0xfebf_ffff);
    eq(d.subarray(0, 6), [0x87, 0x17, 0x00, 0x00, 0x0c, 0x03]);
    const dv = new DataView(d.buffer, d.byteOffset);
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((i) => dv.getUint32(6 + 4 * i, true)),
      [0, 0xc000_0000, 0xfebf_ffff, 0, 0x3ec0_0000],
    );
    assert.equal(d.length, 3 + 0x17);
    const q = qwordMemory(0x1_4000_0000n, 0xfff_ffff_ffffn, { caching: 0 });
    eq(q.subarray(0, 6), [0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x01]);
    const qv = new DataView(q.buffer, q.byteOffset);
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((i) => qv.getBigUint64(6 + 8 * i, true)),
      [0n, 0x1_4000_0000n, 0xfff_ffff_ffffn, 0n, 0xfff_ffff_ffffn - 0x1_4000_0000n + 1n],
    );
    assert.throws(() => wordIo(0x10, 0x1_0000));
    assert.throws(() => dwordMemory(2, 1));
  });

  it('ResourceTemplate is a Buffer ending in an End Tag', () => {
    eq(resourceTemplate(irqNoFlags(1)), [BUFFER, 0x08, BYTE, 0x05, 0x22, 0x02, 0x00, 0x79, 0x00]);
  });
});
