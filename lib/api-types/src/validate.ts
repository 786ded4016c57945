// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Checks untrusted JSON (request bodies, path parameters, query strings)
// against the API schemas.
//
// The accept/refuse decision is TypeBox's compiled checker, built once per
// schema object and cached. Only when it refuses do we walk the schema
// ourselves to name the first problem in plain words with its JSON path:
//
//   properties.name: expected a string, got 42
//   init.value.spec.board.cpus: 300 is more than 255
//   unknown field "foo" in properties
//   missing field "id" in properties
//   init.value.spec.components.disk0.type: expected one of "virtio_disk", ..., got "floppy"
//
// Tagged unions are explained through their tag: a wrong tag names the tag,
// a right tag explains the variant it selects (not "matched no variant").
// The walk handles exactly the schema vocabulary kinds.ts produces; if it
// ever finds nothing wrong where the checker did, TypeBox's own first error
// is reported instead.
//
// Threading: the cache is per thread (module state); no shared state.

import { FormatRegistry, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { FORMAT_MAXIMUM, UUID_PATTERN } from './kinds.js';
import { COMPONENTS } from './registry.js';

export type Validation<V> = { ok: true; value: V } | { ok: false; message: string };

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/**
 * Checks `value` against `schema`. On success the value itself comes back,
 * typed (nothing is copied, defaulted or converted); on failure, a message
 * naming the first problem and where it is.
 */
export function validate<T extends TSchema>(schema: T, value: unknown): Validation<Static<T>> {
  const check = checker(schema);
  if (check.Check(value)) return { ok: true, value: value as Static<T> };
  const message = explain(schema, value, []);
  if (message !== undefined) return { ok: false, message };
  const first = check.Errors(value).First();
  return { ok: false, message: first === undefined ? 'invalid value' : `${first.path || '/'}: ${first.message}` };
}

/**
 * Checks a query string against an endpoint's query schema (a closed object
 * of optional strings, integers and booleans). Integer and boolean
 * parameters are converted from their text first; a parameter given twice or
 * not in the schema is refused.
 */
export function validateQuery<T extends TObject>(
  schema: T,
  params: URLSearchParams | Iterable<[string, string]>,
): Validation<Static<T>> {
  const out: Record<string, unknown> = {};
  for (const [name, text] of params) {
    // (hasOwn: `__proto__` and friends are unknown names, not prototype lookups)
    const property = Object.hasOwn(schema.properties, name) ? schema.properties[name] : undefined;
    if (property === undefined) return { ok: false, message: `unknown query parameter "${name}"` };
    if (Object.hasOwn(out, name)) return { ok: false, message: `query parameter "${name}" is given more than once` };
    out[name] = fromQueryText(property, text);
  }
  return validate(schema, out);
}

function fromQueryText(schema: TSchema, text: string): unknown {
  const types = new Set(leafTypes(schema));
  if ((types.has('integer') || types.has('number')) && /^-?[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text);
  if (types.has('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

function leafTypes(schema: TSchema): string[] {
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).flatMap(leafTypes);
  return typeof schema.type === 'string' ? [schema.type] : [];
}

// ---------------------------------------------------------------------------
// Explaining a refusal

type Path = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** `init.value.spec.components.disk0`, `order[0].id`, `components["my disk"]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

const at = (path: Path, problem: string): string => (path.length === 0 ? problem : `${formatPath(path)}: ${problem}`);
const inside = (path: Path): string => (path.length === 0 ? '' : ` in ${formatPath(path)}`);

/** A number as digits, also past 2^53 (where `String` switches to rounding and exponents). */
const digits = (n: number): string => (Number.isInteger(n) ? BigInt(n).toString() : String(n));

/** A short rendering of a JSON value for "got ...". */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
    case 'number':
      return digits(v);
    case 'boolean':
      return String(v);
    case 'object':
      return 'an object';
    default:
      return `a ${typeof v} value`;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

/** What a schema wants, as a noun phrase: "an integer", "one of ...", "a UUID". */
function wanted(schema: TSchema): string {
  const s = target(schema);
  if (Array.isArray(s.anyOf)) {
    const members = s.anyOf as TSchema[];
    if (members.every((m) => m.const !== undefined)) return oneOf(members.map((m) => m.const));
    return [...new Set(members.map(wanted))].join(' or ');
  }
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'string' && s.format === 'uuid') return 'a UUID';
  return TYPE_NAMES[String(s.type)] ?? 'a value';
}

function oneOf(values: readonly unknown[]): string {
  return values.length === 1 ? JSON.stringify(values[0]) : `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
}

const mismatch = (path: Path, expected: string, v: unknown): string =>
  at(path, `expected ${expected}, got ${describe(v)}`);

/** A self-reference (`{ $ref: 'VolumeInfo' }`) resolved to its schema. */
function target(schema: TSchema): TSchema {
  if (typeof schema.$ref === 'string' && schema.anyOf === undefined && schema.type === undefined) {
    const named = COMPONENTS.get(schema.$ref);
    if (named === undefined) throw new TypeError(`unknown schema reference ${schema.$ref}`);
    return named;
  }
  return schema;
}

/** The first problem with `v` against `schema`, or undefined if there is none. */
function explain(schema: TSchema, v: unknown, path: Path, orNull = false): string | undefined {
  const s = target(schema);
  if (Array.isArray(s.anyOf)) return explainUnion(s.anyOf as TSchema[], v, path);
  if (s.const !== undefined) return v === s.const ? undefined : mismatch(path, JSON.stringify(s.const), v);
  const expected = (what: string): string => mismatch(path, orNull ? `${what} or null` : what, v);
  switch (s.type) {
    case 'null':
      return v === null ? undefined : expected('null');
    case 'boolean':
      return typeof v === 'boolean' ? undefined : expected('a boolean');
    case 'string':
      return explainString(s, v, path, expected);
    case 'integer':
    case 'number':
      return explainNumber(s, v, path, expected);
    case 'array':
      return explainArray(s, v, path, expected);
    case 'object':
      return explainObject(s, v, path, expected);
    default:
      // Not a shape kinds.ts makes: TypeBox decides, without a better word.
      return checker(s).Check(v) ? undefined : at(path, 'invalid value');
  }
}

function explainString(s: TSchema, v: unknown, path: Path, expected: (w: string) => string): string | undefined {
  if (typeof v !== 'string') return expected(s.format === 'uuid' ? 'a UUID string' : 'a string');
  if (s.format === 'uuid' && !UUID_PATTERN.test(v)) return mismatch(path, 'a UUID', v);
  if (typeof s.format === 'string' && s.format !== 'uuid' && FormatRegistry.Has(s.format)) {
    if (!FormatRegistry.Get(s.format)!(v)) return mismatch(path, `a string in format ${s.format}`, v);
  }
  return undefined;
}

function explainNumber(s: TSchema, v: unknown, path: Path, expected: (w: string) => string): string | undefined {
  const name = s.type === 'integer' ? 'an integer' : 'a number';
  if (typeof v !== 'number' || !Number.isFinite(v)) return expected(name);
  if (s.type === 'integer' && !Number.isInteger(v)) return expected(name);
  if (typeof s.minimum === 'number' && v < s.minimum) return at(path, `${digits(v)} is less than ${s.minimum}`);
  if (typeof s.maximum === 'number' && v > s.maximum) {
    const why =
      s.maximum === FORMAT_MAXIMUM.uint64 ? ' (larger integers cannot be carried exactly by a JSON number here)' : '';
    return at(path, `${digits(v)} is more than ${s.maximum}${why}`);
  }
  return undefined;
}

function explainArray(s: TSchema, v: unknown, path: Path, expected: (w: string) => string): string | undefined {
  if (!Array.isArray(v)) return expected('an array');
  const { minItems, maxItems } = s as { minItems?: number; maxItems?: number };
  if (minItems !== undefined && minItems === maxItems && v.length !== minItems) {
    return at(path, `expected ${minItems} items, got ${v.length}`);
  }
  if (minItems !== undefined && v.length < minItems)
    return at(path, `expected at least ${minItems} items, got ${v.length}`);
  if (maxItems !== undefined && v.length > maxItems)
    return at(path, `expected at most ${maxItems} items, got ${v.length}`);
  const items = s.items as TSchema | undefined;
  if (items !== undefined) {
    for (let i = 0; i < v.length; i++) {
      const problem = explain(items, v[i], [...path, i]);
      if (problem !== undefined) return problem;
    }
  }
  if (s.uniqueItems === true) {
    const seen = new Set<string>();
    for (const item of v) {
      const key = JSON.stringify(item);
      if (seen.has(key)) return at(path, `items must be unique, but ${describe(item)} appears more than once`);
      seen.add(key);
    }
  }
  return undefined;
}

function explainObject(s: TSchema, v: unknown, path: Path, expected: (w: string) => string): string | undefined {
  if (!isObject(v)) return expected('an object');
  const properties = (s.properties ?? {}) as Record<string, TSchema>;
  const required = new Set((s.required ?? []) as string[]);
  // A map (`Type.Record`): every value against the one value schema.
  const pattern = s.patternProperties as Record<string, TSchema> | undefined;
  if (pattern !== undefined) {
    const valueSchema = Object.values(pattern)[0]!;
    for (const [key, value] of Object.entries(v)) {
      const problem = explain(valueSchema, value, [...path, key]);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  // Unknown fields first: a misspelt field is then reported as such, not as
  // the required field it was meant to be.
  if (s.additionalProperties === false) {
    for (const key of Object.keys(v)) {
      if (!Object.hasOwn(properties, key)) return `unknown field ${JSON.stringify(key)}${inside(path)}`;
    }
  }
  for (const [key, propSchema] of Object.entries(properties)) {
    if (!Object.hasOwn(v, key)) {
      if (required.has(key)) return `missing field ${JSON.stringify(key)}${inside(path)}`;
      continue;
    }
    const problem = explain(propSchema, v[key], [...path, key]);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * The property every member of a union of objects requires with a distinct
 * constant value (serde's tag), if there is one.
 */
function discriminator(members: readonly TSchema[]): string | undefined {
  const first = members[0];
  if (first === undefined || first.type !== 'object') return undefined;
  for (const [key, prop] of Object.entries((first.properties ?? {}) as Record<string, TSchema>)) {
    if (typeof prop.const !== 'string') continue;
    const values = members.map((m) => {
      const p = (m.properties as Record<string, TSchema> | undefined)?.[key];
      return m.type === 'object' && (m.required as string[] | undefined)?.includes(key) ? p?.const : undefined;
    });
    if (values.every((x) => typeof x === 'string') && new Set(values).size === values.length) return key;
  }
  return undefined;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function explainUnion(members: readonly TSchema[], v: unknown, path: Path): string | undefined {
  const resolved = members.map(target);
  if (resolved.some((m) => explain(m, v, path) === undefined)) return undefined;
  const nonNull = resolved.filter((m) => m.type !== 'null');
  const orNull = nonNull.length < resolved.length;
  if (orNull && v === null) return undefined;

  // A string enum.
  if (nonNull.every((m) => m.const !== undefined)) {
    const values = nonNull.map((m) => m.const);
    return mismatch(path, orNull ? `${oneOf(values)} or null` : oneOf(values), v);
  }
  // `T | null`: explain T.
  if (nonNull.length === 1) return explain(nonNull[0]!, v, path, orNull);

  // A tagged enum: the tag picks the variant.
  const tag = discriminator(nonNull);
  if (tag !== undefined) {
    if (!isObject(v)) return mismatch(path, orNull ? 'an object or null' : 'an object', v);
    if (!Object.hasOwn(v, tag)) return `missing field ${JSON.stringify(tag)}${inside(path)}`;
    const tags = nonNull.map((m) => (m.properties as Record<string, TSchema>)[tag]!.const);
    const chosen = nonNull.find((m) => (m.properties as Record<string, TSchema>)[tag]!.const === v[tag]);
    if (chosen === undefined) return mismatch([...path, tag], oneOf(tags), v[tag]);
    return explain(chosen, v, path);
  }

  // Otherwise explain against the closest variant of the value's JSON type
  // (for objects: the one declaring most of the value's keys).
  const type = jsonType(v);
  const candidates = nonNull.filter((m) => m.type === type || (m.type === 'number' && type === 'integer'));
  if (candidates.length === 0) {
    const names = [...new Set(nonNull.map((m) => TYPE_NAMES[String(m.type)] ?? wanted(m)))];
    if (orNull) names.push('null');
    return mismatch(path, names.join(' or '), v);
  }
  let best = candidates[0]!;
  if (isObject(v)) {
    const score = (m: TSchema): number =>
      Object.keys(v).filter((k) => Object.hasOwn((m.properties ?? {}) as object, k)).length;
    for (const m of candidates) if (score(m) > score(best)) best = m;
  }
  return explain(best, v, path);
}
