// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Unit tests of the ABI helpers: ioctl number encoding, struct declaration
// checks and StructBuf field access. Expected values are computed here from
// the asm-generic/ioctl.h layout, not taken from abi.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { alloc, bytes, i32, i64, IO, IOR, IOW, IOWR, nested, struct, StructBuf, u16, u32, u64, u8 } from './abi.js';
import { KVM_GET_REGS, KVM_RUN, KVM_SET_USER_MEMORY_REGION } from './ioctls.js';

const KVMIO = 0xae;

/** _IOC(dir, type, nr, size): dir in bits 30-31, size 16-29, type 8-15, nr 0-7; unsigned 32-bit. */
function expectIoc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

test('ioctl numbers follow the asm-generic encoding', () => {
  assert.equal(KVM_RUN.nr, 0xae80);
  assert.equal(KVM_RUN.nr, expectIoc(0, KVMIO, 0x80, 0));
  assert.equal(KVM_SET_USER_MEMORY_REGION.nr, 0x4020ae46);
  assert.equal(KVM_SET_USER_MEMORY_REGION.nr, expectIoc(1, KVMIO, 0x46, 32));
  // Read direction sets bit 31: the number must stay positive, not wrap negative.
  assert.equal(KVM_GET_REGS.nr, expectIoc(2, KVMIO, 0x81, 144));
  assert.ok(KVM_GET_REGS.nr > 0x8000_0000);

  assert.deepEqual(IO('X', 0x12, 0x34), { name: 'X', nr: expectIoc(0, 0x12, 0x34, 0) });
  assert.equal(IOW('X', 0x12, 0x34, 100).nr, expectIoc(1, 0x12, 0x34, 100));
  assert.equal(IOR('X', 0x12, 0x34, 100).nr, expectIoc(2, 0x12, 0x34, 100));
  assert.equal(IOWR('X', 0x12, 0x34, 0x3fff).nr, expectIoc(3, 0x12, 0x34, 0x3fff));
  assert.equal(IOWR('X', 0xff, 0xff, 0x3fff).nr, 0xffff_ffff);
  assert.throws(() => IOW('X', 0x12, 0x34, 0x4000), RangeError);
});

const Inner = struct('inner', 8, { a: u32(0), b: u16(4) });

const Every = struct('every', 64, {
  byte: u8(0),
  half: u16(2),
  word: u32(4),
  signed: i32(8),
  quad: u64(16),
  signedQuad: i64(24),
  blob: bytes(32, 8),
  inner: nested(Inner, 40),
  renamed: u8(48, 'other.name'),
});

test('struct() fills in snake_case C paths and keeps explicit ones', () => {
  assert.equal(Every.fields.signedQuad.cPath, 'signed_quad');
  assert.equal(Every.fields.byte.cPath, 'byte');
  assert.equal(Every.fields.renamed.cPath, 'other.name');
  assert.equal(Every.fields.inner.size, 8);
});

test('struct() rejects fields outside the struct', () => {
  assert.throws(() => struct('s', 8, { a: u64(4) }), /s\.a .* outside the struct \(8 bytes\)/);
  assert.throws(() => struct('s', 8, { a: u8(-1) }), /outside/);
  assert.throws(() => struct('s', 8, { a: bytes(0, 9) }), /outside/);
  assert.throws(() => struct('s', 12, { a: nested(Inner, 8) }), /outside/);
  // Exactly filling the struct is fine.
  assert.doesNotThrow(() => struct('s', 8, { a: u32(0), b: u32(4) }));
});

test('StructBuf round-trips every scalar kind at its extremes, little-endian', () => {
  const s = alloc(Every);
  s.set('byte', 0xff)
    .set('half', 0xfffe)
    .set('word', 0xffff_fffd)
    .set('signed', -0x8000_0000)
    .set('quad', 0xffff_ffff_ffff_fffcn)
    .set('signedQuad', -(2n ** 63n));
  assert.equal(s.get('byte'), 0xff);
  assert.equal(s.get('half'), 0xfffe);
  assert.equal(s.get('word'), 0xffff_fffd);
  assert.equal(s.get('signed'), -0x8000_0000);
  assert.equal(s.get('quad'), 0xffff_ffff_ffff_fffcn);
  assert.equal(s.get('signedQuad'), -(2n ** 63n));

  const b = s.bytes;
  assert.deepEqual([...b.subarray(0, 4)], [0xff, 0, 0xfe, 0xff]);
  assert.deepEqual([...b.subarray(4, 8)], [0xfd, 0xff, 0xff, 0xff]);
  assert.deepEqual([...b.subarray(8, 12)], [0, 0, 0, 0x80]);
  assert.deepEqual([...b.subarray(16, 24)], [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual([...b.subarray(24, 32)], [0, 0, 0, 0, 0, 0, 0, 0x80]);

  s.set('signed', 0x7fff_ffff).set('signedQuad', 2n ** 63n - 1n);
  assert.equal(s.get('signed'), 0x7fff_ffff);
  assert.equal(s.get('signedQuad'), 2n ** 63n - 1n);
  // 64-bit fields wrap to their width: -1 is all ones unsigned.
  s.set('quad', -1n);
  assert.equal(s.get('quad'), 2n ** 64n - 1n);
});

test('StructBuf bytes fields: exact length, shorter prefix, longer throws', () => {
  const s = alloc(Every);
  s.set('blob', Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual([...s.get('blob')], [1, 2, 3, 4, 5, 6, 7, 8]);
  s.set('blob', Uint8Array.from([9, 9]));
  assert.deepEqual([...s.get('blob')], [9, 9, 3, 4, 5, 6, 7, 8]);
  assert.throws(() => s.set('blob', new Uint8Array(9)), RangeError);
  // Neighbouring fields are untouched.
  assert.equal(s.get('quad'), 0n);
  assert.deepEqual([...s.bytes.subarray(40, 48)], [0, 0, 0, 0, 0, 0, 0, 0]);
});

test('StructBuf nested structs share the parent buffer', () => {
  const s = alloc(Every);
  const inner = s.sub('inner');
  inner.set('a', 0x11223344).set('b', 0x5566);
  assert.deepEqual([...s.bytes.subarray(40, 46)], [0x44, 0x33, 0x22, 0x11, 0x66, 0x55]);
  assert.throws(() => s.sub('byte' as never), TypeError);
});

test('StructBuf over a view of a larger buffer, and too small a buffer', () => {
  const big = new Uint8Array(100);
  const s = new StructBuf(Inner, big.subarray(50, 58));
  s.set('a', 0xdeadbeef);
  assert.deepEqual([...big.subarray(50, 54)], [0xef, 0xbe, 0xad, 0xde]);
  assert.throws(() => new StructBuf(Inner, new Uint8Array(7)), /inner needs 8 bytes, buffer has 7/);
});

test('toObject lists scalars and bytes, not nested structs', () => {
  const o = alloc(Inner).set('a', 1).set('b', 2).toObject();
  assert.deepEqual(o, { a: 1, b: 2 });
  const e = alloc(Every).toObject();
  assert.ok(!('inner' in e));
  assert.deepEqual(e.blob, [0, 0, 0, 0, 0, 0, 0, 0]);
});
