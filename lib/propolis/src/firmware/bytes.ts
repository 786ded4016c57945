// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Little-endian byte building for firmware tables (ACPI, SMBIOS): a growable
// writer, fixed-width ASCII fields and the 8-bit checksums both specs use
// (the bytes of a range, checksum byte included, sum to zero mod 256).
//
// Pure functions over plain arrays; no threads, no guest memory.

import assert from 'node:assert/strict';

/** Appends little-endian fields; `finish()` returns exactly the bytes written. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  get length(): number {
    return this.len;
  }

  private reserve(n: number): number {
    const at = this.len;
    if (at + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, at + n));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.len = at + n;
    return at;
  }

  u8(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xff, `u8 out of range: ${v}`);
    const at = this.reserve(1);
    this.buf[at] = v;
    return this;
  }

  u16(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff, `u16 out of range: ${v}`);
    const at = this.reserve(2); // before reading this.view: reserve may replace it
    this.view.setUint16(at, v, true);
    return this;
  }

  u32(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff, `u32 out of range: ${v}`);
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
    return this;
  }

  u64(v: number | bigint): this {
    const b = BigInt(v);
    assert(b >= 0n && b <= 0xffff_ffff_ffff_ffffn, `u64 out of range: ${v}`);
    const at = this.reserve(8);
    this.view.setBigUint64(at, b, true);
    return this;
  }

  bytes(b: Uint8Array | readonly number[]): this {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }

  zeros(n: number): this {
    this.reserve(n); // fresh capacity is already zero
    return this;
  }

  /** `s` in exactly `width` bytes, padded with `pad`; longer strings are a bug. */
  ascii(s: string, width: number, pad = 0x20): this {
    return this.bytes(fixedAscii(s, width, pad));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Bytes of a printable-ASCII string, no terminator. */
export function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    assert(c >= 0x20 && c < 0x7f, `not printable ASCII: ${JSON.stringify(s)}`);
    out[i] = c;
  }
  return out;
}

export function fixedAscii(s: string, width: number, pad = 0x20): Uint8Array {
  assert(s.length <= width, `${JSON.stringify(s)} is longer than ${width} bytes`);
  const out = new Uint8Array(width).fill(pad);
  out.set(asciiBytes(s));
  return out;
}

/** Sum of `bytes[start .. start+length)` mod 256. */
export function sum8(bytes: Uint8Array, start = 0, length = bytes.length - start): number {
  assert(start >= 0 && start + length <= bytes.length, 'checksum range outside the buffer');
  let s = 0;
  for (let i = start; i < start + length; i++) s = (s + bytes[i]!) & 0xff;
  return s;
}

/** Sets `bytes[at]` so that the range (which contains `at`) sums to zero. */
export function fixChecksum(bytes: Uint8Array, at: number, start = 0, length = bytes.length - start): void {
  assert(at >= start && at < start + length, 'checksum byte outside its range');
  bytes[at] = 0;
  bytes[at] = (0x100 - sum8(bytes, start, length)) & 0xff;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
