// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The building blocks the API schemas are written in: unsigned integers by
// their Rust width, UUID strings, `Option<T>` fields, closed objects and the
// two serde enum taggings the API uses. Each produces plain TypeBox schemas,
// so `Static<>` gives the TypeScript type and the compiler the validator;
// openapi.ts turns the same objects into OpenAPI 3.0.
//
// Importing this module registers the `uuid` string format with TypeBox's
// global FormatRegistry (TypeBox fails any format it does not know).
//
// Threading: none; schemas are immutable values built at import time.

import {
  CloneType,
  FormatRegistry,
  Kind,
  Type,
  type SchemaOptions,
  type TInteger,
  type TLiteral,
  type TNull,
  type TObject,
  type TOptional,
  type TProperties,
  type TSchema,
  type TString,
  type TUnion,
} from '@sinclair/typebox';

/**
 * The hyphenated 8-4-4-4-12 form, any case. The original (the `uuid` crate)
 * also accepts the simple, braced and URN forms; see DIFFERENCES.
 */
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (v) => UUID_PATTERN.test(v));

/**
 * The largest value of each unsigned format. JSON numbers arrive as doubles,
 * so 64-bit (and `usize`, "uint") values stop at 2^53 - 1, the last integer
 * a double holds exactly; see DIFFERENCES.
 */
export const FORMAT_MAXIMUM = {
  uint8: 0xff,
  uint16: 0xffff,
  uint32: 0xffff_ffff,
  uint64: Number.MAX_SAFE_INTEGER,
  uint: Number.MAX_SAFE_INTEGER,
} as const satisfies Record<string, number>;

export type UnsignedFormat = keyof typeof FORMAT_MAXIMUM;

function unsigned(format: UnsignedFormat, options?: SchemaOptions): TInteger {
  return Type.Integer({ format, minimum: 0, maximum: FORMAT_MAXIMUM[format], ...options });
}

export const u8 = (options?: SchemaOptions): TInteger => unsigned('uint8', options);
export const u32 = (options?: SchemaOptions): TInteger => unsigned('uint32', options);
export const u64 = (options?: SchemaOptions): TInteger => unsigned('uint64', options);
/** Rust's `usize`, which schemars calls format "uint". */
export const usize = (options?: SchemaOptions): TInteger => unsigned('uint', options);

export const uuid = (options?: SchemaOptions): TString => Type.String({ format: 'uuid', ...options });

/** `T | null`; openapi.ts emits it as OpenAPI 3.0's `nullable: true`. */
export function nullable<T extends TSchema>(schema: T, options?: SchemaOptions): TUnion<[T, TNull]> {
  return Type.Union([schema, Type.Null()], options);
}

/** An `Option<T>` field: serde takes it missing or null. */
export function option<T extends TSchema>(schema: T, options?: SchemaOptions): TOptional<TUnion<[T, TNull]>> {
  return Type.Optional(nullable(schema, options));
}

/**
 * A named schema used as a field with the field's own description. The copy
 * keeps the `$id`, so the generator still emits a reference (wrapped in
 * `allOf`, the way the original document does it).
 */
export function described<T extends TSchema>(schema: T, description: string): T {
  const copy = CloneType(schema); // (CloneType's options would not override the schema's own description)
  copy.description = description;
  return copy;
}

/** An object that refuses properties it does not declare. */
export function closed<T extends TProperties>(properties: T, options?: SchemaOptions): TObject<T> {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

/**
 * A union that stays a union with one member (`Type.Union` collapses
 * `[x]` to `x`; the original's one-variant `Chipset` is still a `oneOf`).
 */
export function union<const T extends TSchema[]>(members: [...T], options?: SchemaOptions): TUnion<T> {
  return { ...options, [Kind]: 'Union', anyOf: members } as unknown as TUnion<T>;
}

/** A string enum (a Rust unit-variant enum). */
export function strings<const V extends [string, ...string[]]>(
  values: V,
  options?: SchemaOptions,
): TUnion<{ [K in keyof V]: TLiteral<V[K]> }> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  ) as unknown as TUnion<{ [K in keyof V]: TLiteral<V[K]> }>;
}

/**
 * One variant of an adjacently tagged enum (`#[serde(tag = T, content = C)]`):
 * `{ [tag]: name, [content]: value }`. Closed unless `open` (the original
 * document leaves a few response-only enums open; they stay so).
 */
export function adjacent<Tag extends string, Name extends string, Content extends string, S extends TSchema>(
  tag: Tag,
  name: Name,
  content: Content,
  schema: S,
  options: { description?: string; open?: boolean } = {},
): TObject<{ [K in Tag]: TLiteral<Name> } & { [K in Content]: S }> {
  const properties = { [tag]: Type.Literal(name), [content]: schema } as { [K in Tag]: TLiteral<Name> } & {
    [K in Content]: S;
  };
  const { open = false, ...rest } = options;
  return open ? Type.Object(properties, rest) : closed(properties, rest);
}

/** A unit variant of a tagged enum: `{ [tag]: name }`. */
export function unit<Tag extends string, Name extends string>(
  tag: Tag,
  name: Name,
  options?: SchemaOptions & { additionalProperties?: false },
): TObject<{ [K in Tag]: TLiteral<Name> }> {
  const properties = { [tag]: Type.Literal(name) } as { [K in Tag]: TLiteral<Name> };
  return Type.Object(properties, options);
}
