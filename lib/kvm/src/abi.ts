// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Declaring kernel ABI structs and ioctl numbers once.
//
// Every struct the VMM hands to the kernel is declared here with its C name,
// its size and the offset of each field it touches. The declarations are data:
// `header-check.test.ts` compiles a C program against <linux/kvm.h> from the
// same declarations and compares every size and offset, so a wrong number in
// this package fails a test instead of corrupting a vCPU.
//
// Threading: pure data and functions; usable from any thread.

/** Scalar field kinds. 64-bit fields are read and written as bigint. */
export type ScalarKind = 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'i64';

export interface ScalarField<K extends ScalarKind = ScalarKind> {
  readonly tag: 'scalar';
  readonly kind: K;
  readonly offset: number;
  readonly size: number;
  /** Path of the member in C (`io.direction`); filled in by `struct()` when omitted. */
  cPath: string;
}

export interface BytesField {
  readonly tag: 'bytes';
  readonly offset: number;
  readonly size: number;
  cPath: string;
}

export interface NestedField<S extends StructDef = StructDef> {
  readonly tag: 'nested';
  readonly def: S;
  readonly offset: number;
  readonly size: number;
  cPath: string;
}

export type Field = ScalarField | BytesField | NestedField;

const SIZES: Record<ScalarKind, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };

function scalar<K extends ScalarKind>(kind: K, offset: number, cPath?: string): ScalarField<K> {
  return { tag: 'scalar', kind, offset, size: SIZES[kind], cPath: cPath ?? '' };
}

export const u8 = (offset: number, cPath?: string): ScalarField<'u8'> => scalar('u8', offset, cPath);
export const u16 = (offset: number, cPath?: string): ScalarField<'u16'> => scalar('u16', offset, cPath);
export const u32 = (offset: number, cPath?: string): ScalarField<'u32'> => scalar('u32', offset, cPath);
export const i32 = (offset: number, cPath?: string): ScalarField<'i32'> => scalar('i32', offset, cPath);
export const u64 = (offset: number, cPath?: string): ScalarField<'u64'> => scalar('u64', offset, cPath);
export const i64 = (offset: number, cPath?: string): ScalarField<'i64'> => scalar('i64', offset, cPath);

/** An opaque byte range (arrays of bytes, padding the VMM must preserve, register images). */
export const bytes = (offset: number, size: number, cPath?: string): BytesField => ({
  tag: 'bytes',
  offset,
  size,
  cPath: cPath ?? '',
});

/** A struct embedded at `offset` (e.g. each `kvm_segment` inside `kvm_sregs`). */
export const nested = <S extends StructDef>(def: S, offset: number, cPath?: string): NestedField<S> => ({
  tag: 'nested',
  def,
  offset,
  size: def.size,
  cPath: cPath ?? '',
});

export interface StructDef<F extends Record<string, Field> = Record<string, Field>> {
  /** C type as written after `struct` (e.g. `kvm_regs`). */
  readonly cName: string;
  readonly size: number;
  readonly fields: F;
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Declare a kernel struct. Field C paths default to the snake_case of their
 * key (`guestPhysAddr` → `guest_phys_addr`). An out-of-bounds field is a
 * declaration bug and throws at module load. Fields may overlap: members of
 * a C union (the exit payloads of `kvm_run`) share offsets by design; the
 * header check is what catches a field at the wrong place.
 */
export function struct<F extends Record<string, Field>>(cName: string, size: number, fields: F): StructDef<F> {
  for (const [key, f] of Object.entries(fields)) {
    if (f.cPath === '') f.cPath = snakeCase(key);
    if (f.offset < 0 || f.offset + f.size > size) {
      throw new Error(`abi: ${cName}.${key} [${f.offset}, +${f.size}) lies outside the struct (${size} bytes)`);
    }
  }
  return { cName, size, fields };
}

type ValueOf<F extends Field> =
  F extends ScalarField<infer K>
    ? K extends 'u64' | 'i64'
      ? bigint
      : number
    : F extends BytesField
      ? Uint8Array
      : never;

/**
 * A struct instance over a byte buffer: the buffer is what gets passed to
 * ioctl, the accessors read and write fields in it. The buffer may be a view
 * into a larger one (a nested struct, an element of an array).
 */
export class StructBuf<F extends Record<string, Field>> {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(
    readonly def: StructDef<F>,
    bytes?: Uint8Array,
  ) {
    this.bytes = bytes ?? new Uint8Array(def.size);
    if (this.bytes.byteLength < def.size) {
      throw new RangeError(`abi: ${def.cName} needs ${def.size} bytes, buffer has ${this.bytes.byteLength}`);
    }
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, def.size);
  }

  get<K extends keyof F & string>(key: K): ValueOf<F[K]> {
    return readField(this.view, this.def.fields[key] as Field, 0) as ValueOf<F[K]>;
  }

  set<K extends keyof F & string>(key: K, value: ValueOf<F[K]>): this {
    writeField(this.view, this.def.fields[key] as Field, 0, value as number | bigint | Uint8Array);
    return this;
  }

  /** The embedded struct at `key`, sharing this buffer. */
  sub<K extends keyof F & string>(key: K): F[K] extends NestedField<infer S> ? StructBuf<S['fields']> : never {
    const f = this.def.fields[key] as Field;
    if (f.tag !== 'nested') throw new TypeError(`abi: ${this.def.cName}.${key} is not a nested struct`);
    const sub = this.bytes.subarray(f.offset, f.offset + f.size);
    return new StructBuf(f.def, sub) as never;
  }

  /** All scalar fields as a plain object (for logs and state export). */
  toObject(): Record<string, number | bigint | number[]> {
    const out: Record<string, number | bigint | number[]> = {};
    for (const [k, f] of Object.entries(this.def.fields)) {
      if (f.tag === 'scalar') out[k] = readField(this.view, f, 0) as number | bigint;
      else if (f.tag === 'bytes') out[k] = Array.from(this.bytes.subarray(f.offset, f.offset + f.size));
    }
    return out;
  }
}

export function alloc<F extends Record<string, Field>>(def: StructDef<F>): StructBuf<F> {
  return new StructBuf(def);
}

/** Read a field at `base + field.offset` without allocating (hot paths use this on the kvm_run page). */
export function readField(dv: DataView, f: Field, base: number): number | bigint | Uint8Array {
  const at = base + f.offset;
  if (f.tag === 'bytes') return new Uint8Array(dv.buffer, dv.byteOffset + at, f.size);
  if (f.tag === 'nested') throw new TypeError(`abi: nested field ${f.cPath} has no scalar value`);
  switch (f.kind) {
    case 'u8':
      return dv.getUint8(at);
    case 'u16':
      return dv.getUint16(at, true);
    case 'u32':
      return dv.getUint32(at, true);
    case 'i32':
      return dv.getInt32(at, true);
    case 'u64':
      return dv.getBigUint64(at, true);
    case 'i64':
      return dv.getBigInt64(at, true);
  }
}

export function writeField(dv: DataView, f: Field, base: number, v: number | bigint | Uint8Array): void {
  const at = base + f.offset;
  if (f.tag === 'bytes') {
    if (!(v instanceof Uint8Array) || v.byteLength > f.size) {
      throw new RangeError(`abi: ${f.cPath} takes at most ${f.size} bytes`);
    }
    new Uint8Array(dv.buffer, dv.byteOffset + at, f.size).set(v);
    return;
  }
  if (f.tag === 'nested') throw new TypeError(`abi: nested field ${f.cPath} has no scalar value`);
  switch (f.kind) {
    case 'u8':
      dv.setUint8(at, Number(v));
      return;
    case 'u16':
      dv.setUint16(at, Number(v), true);
      return;
    case 'u32':
      dv.setUint32(at, Number(v), true);
      return;
    case 'i32':
      dv.setInt32(at, Number(v), true);
      return;
    case 'u64':
      dv.setBigUint64(at, BigInt.asUintN(64, BigInt(v as number | bigint)), true);
      return;
    case 'i64':
      dv.setBigInt64(at, BigInt.asIntN(64, BigInt(v as number | bigint)), true);
      return;
  }
}

// ---- ioctl numbers (asm-generic/ioctl.h encoding, used by x86) ----

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

export interface Ioctl {
  readonly name: string;
  readonly nr: number;
}

function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << IOC_SIZEBITS) throw new RangeError(`abi: ioctl argument size ${size} too large`);
  // Computed with multiplication: the direction bits reach bit 31, past what
  // JavaScript's signed 32-bit `<<` can express.
  return dir * 2 ** IOC_DIRSHIFT + size * 2 ** IOC_SIZESHIFT + type * 2 ** IOC_TYPESHIFT + nr * 2 ** IOC_NRSHIFT;
}

export const IO = (name: string, type: number, nr: number): Ioctl => ({ name, nr: ioc(IOC_NONE, type, nr, 0) });
export const IOR = (name: string, type: number, nr: number, size: number): Ioctl => ({
  name,
  nr: ioc(IOC_READ, type, nr, size),
});
export const IOW = (name: string, type: number, nr: number, size: number): Ioctl => ({
  name,
  nr: ioc(IOC_WRITE, type, nr, size),
});
export const IOWR = (name: string, type: number, nr: number, size: number): Ioctl => ({
  name,
  nr: ioc(IOC_READ | IOC_WRITE, type, nr, size),
});
