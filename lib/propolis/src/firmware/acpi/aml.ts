// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A small AML (ACPI Machine Language) encoder: each function returns the
// bytes of one term, and terms nest by value, so a DSDT reads like the ASL
// it stands for:
//
//   device('PCI0', name('_HID', eisaId('PNP0A03')), name('_UID', 0))
//
// Only what our DSDT needs is here. Encodings follow the AML grammar of the
// ACPI specification (section 20.2, "AML Grammar Definition"); the opcode
// values are collected in `Op` below. Numbers passed where a term is
// expected become Integer terms (Zero/One/Byte/Word/DWord/QWord, smallest
// first); name arguments are ASL-style paths ("\\_SB.PCI0", "^LNKA", "_HID").
//
// Pure byte generation; no shared state.

import assert from 'node:assert/strict';
import { asciiBytes, concat } from '../bytes.js';

/** Encoded AML: a term, a name string or a data object. */
export type Aml = Uint8Array;
/** A term, or a number/bigint that becomes an Integer term. */
export type AmlArg = Aml | number | bigint;

/** AML opcodes used here (ACPI 6.x, section 20.3 "AML Byte Stream Byte Values"). */
export const Op = {
  Zero: 0x00,
  One: 0x01,
  Name: 0x08,
  BytePrefix: 0x0a,
  WordPrefix: 0x0b,
  DWordPrefix: 0x0c,
  StringPrefix: 0x0d,
  QWordPrefix: 0x0e,
  Scope: 0x10,
  Buffer: 0x11,
  Package: 0x12,
  Method: 0x14,
  DualNamePrefix: 0x2e,
  MultiNamePrefix: 0x2f,
  ExtOpPrefix: 0x5b,
  RootChar: 0x5c,
  ParentPrefixChar: 0x5e,
  Local0: 0x60,
  Arg0: 0x68,
  Store: 0x70,
  Add: 0x72,
  Subtract: 0x74,
  ShiftLeft: 0x79,
  ShiftRight: 0x7a,
  And: 0x7b,
  Or: 0x7d,
  DerefOf: 0x83,
  Index: 0x88,
  CreateDWordField: 0x8a,
  CreateWordField: 0x8b,
  CreateByteField: 0x8c,
  LAnd: 0x90,
  LOr: 0x91,
  LNot: 0x92,
  LEqual: 0x93,
  LGreater: 0x94,
  LLess: 0x95,
  If: 0xa0,
  Else: 0xa1,
  Return: 0xa4,
  Ones: 0xff,
  // Second bytes after ExtOpPrefix.
  ExtOpRegion: 0x80,
  ExtField: 0x81,
  ExtDevice: 0x82,
} as const;

const MAX_PKG_LENGTH = 0x0fff_ffff; // 28 bits

/**
 * PkgLength encoding of `value` itself (used as is for field widths).
 * One byte holds 0..63 in bits 0-5; longer forms put the count of following
 * bytes (1..3) in bits 6-7, the low nibble in bits 0-3 and 8 more bits in
 * each following byte.
 */
export function pkgLengthValue(value: number): Aml {
  assert(Number.isInteger(value) && value >= 0 && value <= MAX_PKG_LENGTH, `PkgLength out of range: ${value}`);
  if (value <= 0x3f) return Uint8Array.of(value);
  return forceWidth(value, value <= 0xfff ? 2 : value <= 0xf_ffff ? 3 : 4);
}

/**
 * PkgLength of a package whose contents (after the PkgLength) are
 * `bodyLength` bytes: the encoded length counts its own bytes too.
 */
export function pkgLength(bodyLength: number): Aml {
  // Largest total length each encoding size can hold.
  const limits = [0x3f, 0xfff, 0xf_ffff, MAX_PKG_LENGTH];
  for (let n = 1; n <= 4; n++) {
    if (bodyLength + n <= limits[n - 1]!) {
      return n === 1 ? Uint8Array.of(bodyLength + 1) : forceWidth(bodyLength + n, n);
    }
  }
  assert.fail(`package too long for a PkgLength: ${bodyLength}`);
}

/** PkgLength of `value` in exactly `n` bytes (a value may fit a shorter form). */
function forceWidth(value: number, n: number): Aml {
  const out = new Uint8Array(n);
  out[0] = ((n - 1) << 6) | (value & 0x0f);
  for (let i = 1; i < n; i++) out[i] = (value >>> (4 + 8 * (i - 1))) & 0xff;
  return out;
}

/** `prefix PkgLength body`: the shape of every variable-length AML object. */
function withPkg(prefix: readonly number[], parts: readonly Aml[]): Aml {
  const body = concat(parts);
  return concat([Uint8Array.from(prefix), pkgLength(body.length), body]);
}

// --- Names ---------------------------------------------------------------

const NAME_SEG = /^[A-Z_][A-Z0-9_]{0,3}$/;

/** A NameSeg: 4 characters, short names padded with '_' (ASL "PIC" → "PIC_"). */
export function nameSeg(seg: string): Aml {
  assert(NAME_SEG.test(seg), `bad ACPI name segment ${JSON.stringify(seg)}`);
  return asciiBytes(seg.padEnd(4, '_'));
}

/**
 * A NameString from an ASL path: optional root ('\') or parent ('^'...)
 * prefixes, then segments joined by '.'; "" (or "\\" alone) is the null
 * name after the prefix.
 */
export function nameString(path: string): Aml {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith('\\')) {
    prefix.push(Op.RootChar);
    i = 1;
  } else {
    while (path[i] === '^') {
      prefix.push(Op.ParentPrefixChar);
      i++;
    }
  }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  let namePath: Aml;
  if (segs.length === 0) namePath = Uint8Array.of(0x00);
  else if (segs.length === 1) namePath = segs[0]!;
  else if (segs.length === 2) namePath = concat([Uint8Array.of(Op.DualNamePrefix), ...segs]);
  else {
    assert(segs.length <= 255, 'name path too deep');
    namePath = concat([Uint8Array.of(Op.MultiNamePrefix, segs.length), ...segs]);
  }
  return concat([Uint8Array.from(prefix), namePath]);
}

/** A reference to a named object, as a term argument or package element. */
export const ref = nameString;

// --- Data ----------------------------------------------------------------

export const Zero: Aml = Uint8Array.of(Op.Zero);
export const One: Aml = Uint8Array.of(Op.One);
/** All bits set; 64 bits wide in a revision-2 definition block. */
export const Ones: Aml = Uint8Array.of(Op.Ones);

/** The shortest Integer encoding of `v` (0 → Zero, 1 → One, then by width). */
export function integer(v: number | bigint): Aml {
  const b = BigInt(v);
  assert(b >= 0n && b <= 0xffff_ffff_ffff_ffffn, `AML integer out of range: ${v}`);
  if (b === 0n) return Zero;
  if (b === 1n) return One;
  const [op, width] =
    b <= 0xffn
      ? [Op.BytePrefix, 1]
      : b <= 0xffffn
        ? [Op.WordPrefix, 2]
        : b <= 0xffff_ffffn
          ? [Op.DWordPrefix, 4]
          : [Op.QWordPrefix, 8];
  const out = new Uint8Array(1 + width);
  out[0] = op;
  for (let i = 0; i < width; i++) out[1 + i] = Number((b >> BigInt(8 * i)) & 0xffn);
  return out;
}

function arg(a: AmlArg): Aml {
  return typeof a === 'number' || typeof a === 'bigint' ? integer(a) : a;
}

/** A String object: ASCII characters 0x01..0x7F, NUL-terminated. */
export function string(s: string): Aml {
  return concat([Uint8Array.of(Op.StringPrefix), asciiBytes(s), Uint8Array.of(0)]);
}

/**
 * EISA ID compression of a PnP ID like "PNP0A03": three letters of 5 bits
 * each ('A' = 1) and four hex digits, stored as the big-endian bytes of a
 * 32-bit word. Returned as the Integer value the AML DWord holds.
 */
export function eisaIdValue(id: string): number {
  assert(/^[A-Z]{3}[0-9A-F]{4}$/.test(id), `bad EISA ID ${JSON.stringify(id)}`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  const be = new Uint8Array([vendor >> 8, vendor & 0xff, product >> 8, product & 0xff]);
  return new DataView(be.buffer).getUint32(0, true);
}

/** EisaId("PNP0A03") as a DWord Integer (always DWord-encoded, as ASL does). */
export function eisaId(id: string): Aml {
  const out = new Uint8Array(5);
  out[0] = Op.DWordPrefix;
  new DataView(out.buffer).setUint32(1, eisaIdValue(id), true);
  return out;
}

/** Buffer(n) { bytes }: the size is the byte count. */
export function buffer(bytes: Uint8Array): Aml {
  return withPkg([Op.Buffer], [integer(bytes.length), bytes]);
}

/** Package(n) { elements }: numbers become Integers; names go in via `ref`. */
export function pkg(...elements: AmlArg[]): Aml {
  assert(elements.length <= 255, 'Package holds at most 255 elements (VarPackage is not implemented)');
  return withPkg([Op.Package], [Uint8Array.of(elements.length), ...elements.map(arg)]);
}

// --- Namespace modifiers and named objects ---------------------------------

export function name(path: string, value: AmlArg): Aml {
  return concat([Uint8Array.of(Op.Name), nameString(path), arg(value)]);
}

export function scope(path: string, ...terms: Aml[]): Aml {
  return withPkg([Op.Scope], [nameString(path), ...terms]);
}

export function device(path: string, ...terms: Aml[]): Aml {
  return withPkg([Op.ExtOpPrefix, Op.ExtDevice], [nameString(path), ...terms]);
}

export interface MethodOptions {
  /** Number of arguments, 0..7. */
  args?: number;
  /** Serialized methods may create named objects without racing re-entry. */
  serialized?: boolean;
  /** 0..15; only meaningful with `serialized`. */
  syncLevel?: number;
}

export function method(path: string, opts: MethodOptions, ...terms: Aml[]): Aml {
  const args = opts.args ?? 0;
  const sync = opts.syncLevel ?? 0;
  assert(args >= 0 && args <= 7 && sync >= 0 && sync <= 15, 'bad method flags');
  const flags = args | (opts.serialized ? 0x08 : 0) | (sync << 4);
  return withPkg([Op.Method], [nameString(path), Uint8Array.of(flags), ...terms]);
}

/** Operation region address spaces (RegionSpace byte). */
export const RegionSpace = {
  SystemMemory: 0x00,
  SystemIO: 0x01,
  PciConfig: 0x02,
  EmbeddedControl: 0x03,
  SMBus: 0x04,
  SystemCMOS: 0x05,
  PciBarTarget: 0x06,
} as const;

export function operationRegion(path: string, space: number, offset: AmlArg, length: AmlArg): Aml {
  return concat([
    Uint8Array.of(Op.ExtOpPrefix, Op.ExtOpRegion),
    nameString(path),
    Uint8Array.of(space),
    arg(offset),
    arg(length),
  ]);
}

/** FieldFlags: access type (bits 0-3), lock rule (bit 4), update rule (bits 5-6). */
export const FieldAccess = { Any: 0, Byte: 1, Word: 2, DWord: 3, QWord: 4, Buffer: 5 } as const;
export const FieldUpdate = { Preserve: 0, WriteAsOnes: 1, WriteAsZeros: 2 } as const;

export interface FieldFlags {
  access: number;
  lock?: boolean;
  update?: number;
}

/** A named field of `bits` bits, or `bits` unnamed bits skipped (ASL `, n` / Offset()). */
export type FieldUnit = { name: string; bits: number } | { skip: number };

export function field(region: string, flags: FieldFlags, units: FieldUnit[]): Aml {
  const f = flags.access | (flags.lock ? 0x10 : 0) | ((flags.update ?? FieldUpdate.Preserve) << 5);
  const list = units.map((u) =>
    'name' in u
      ? concat([nameSeg(u.name), pkgLengthValue(u.bits)])
      : concat([Uint8Array.of(0x00), pkgLengthValue(u.skip)]),
  );
  return withPkg([Op.ExtOpPrefix, Op.ExtField], [nameString(region), Uint8Array.of(f), ...list]);
}

// --- Statements and expressions -------------------------------------------

export function local(n: number): Aml {
  assert(Number.isInteger(n) && n >= 0 && n <= 7, `no Local${n}`);
  return Uint8Array.of(Op.Local0 + n);
}

export function argN(n: number): Aml {
  assert(Number.isInteger(n) && n >= 0 && n <= 6, `no Arg${n}`);
  return Uint8Array.of(Op.Arg0 + n);
}

/** Target operand: a name/local/arg to store into, or none (NullName). */
function target(t: Aml | undefined): Aml {
  return t ?? Uint8Array.of(0x00);
}

export function ret(value: AmlArg): Aml {
  return concat([Uint8Array.of(Op.Return), arg(value)]);
}

export function store(value: AmlArg, dest: Aml): Aml {
  return concat([Uint8Array.of(Op.Store), arg(value), dest]);
}

function binary(op: number, a: AmlArg, b: AmlArg, t?: Aml): Aml {
  return concat([Uint8Array.of(op), arg(a), arg(b), target(t)]);
}

export const and = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.And, a, b, t);
export const or = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.Or, a, b, t);
export const add = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.Add, a, b, t);
export const subtract = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.Subtract, a, b, t);
export const shiftLeft = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.ShiftLeft, a, b, t);
export const shiftRight = (a: AmlArg, b: AmlArg, t?: Aml): Aml => binary(Op.ShiftRight, a, b, t);

export const lEqual = (a: AmlArg, b: AmlArg): Aml => concat([Uint8Array.of(Op.LEqual), arg(a), arg(b)]);
export const lGreater = (a: AmlArg, b: AmlArg): Aml => concat([Uint8Array.of(Op.LGreater), arg(a), arg(b)]);
export const lLess = (a: AmlArg, b: AmlArg): Aml => concat([Uint8Array.of(Op.LLess), arg(a), arg(b)]);
export const lAnd = (a: AmlArg, b: AmlArg): Aml => concat([Uint8Array.of(Op.LAnd), arg(a), arg(b)]);
export const lOr = (a: AmlArg, b: AmlArg): Aml => concat([Uint8Array.of(Op.LOr), arg(a), arg(b)]);
export const lNot = (a: AmlArg): Aml => concat([Uint8Array.of(Op.LNot), arg(a)]);

/** Index(source, i): a reference to element/byte `i` of a package, buffer or string. */
export function index(source: AmlArg, i: AmlArg, t?: Aml): Aml {
  return concat([Uint8Array.of(Op.Index), arg(source), arg(i), target(t)]);
}

export function derefOf(reference: Aml): Aml {
  return concat([Uint8Array.of(Op.DerefOf), reference]);
}

export function ifThen(predicate: AmlArg, ...terms: Aml[]): Aml {
  return withPkg([Op.If], [arg(predicate), ...terms]);
}

/** Must directly follow an `ifThen` in the same term list. */
export function orElse(...terms: Aml[]): Aml {
  return withPkg([Op.Else], terms);
}

function createField(op: number, source: Aml, byteIndex: AmlArg, fieldName: string): Aml {
  return concat([Uint8Array.of(op), source, arg(byteIndex), nameString(fieldName)]);
}

export const createByteField = (src: Aml, at: AmlArg, n: string): Aml => createField(Op.CreateByteField, src, at, n);
export const createWordField = (src: Aml, at: AmlArg, n: string): Aml => createField(Op.CreateWordField, src, at, n);
export const createDWordField = (src: Aml, at: AmlArg, n: string): Aml => createField(Op.CreateDWordField, src, at, n);

/** A call of a control method with arguments. */
export function call(path: string, ...args: AmlArg[]): Aml {
  return concat([nameString(path), ...args.map(arg)]);
}
