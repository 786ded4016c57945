// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Generates the server's OpenAPI 3.0.3 document from the route table and the
// schemas, in the shape Dropshot gives the original's:
//
//   - every named schema (a `$id`) is a component, and any use of it inside
//     another schema or an operation is `$ref: #/components/schemas/<Name>`;
//     a use with its own description is `{ description, allOf: [$ref] }`;
//   - `T | null` becomes `nullable: true`; a union of string constants a
//     string `enum`; other unions `oneOf`; a constant a one-value `enum`;
//     a map (`Type.Record`) an object with `additionalProperties`;
//   - a JSON `null` response is `{ title: 'Null', type: 'string', enum: [null] }`;
//   - every operation answers `4XX`/`5XX` with `#/components/responses/Error`.
//
// Output is deterministic: paths, methods, components, properties and
// `required` sorted by name; keys inside each object in one fixed order.
// scripts/gen-openapi.ts writes it to openapi/propolis-server.json, and a
// test fails when that file and this function disagree.
//
// Threading: none; pure.

import type { TSchema } from '@sinclair/typebox';
import { ENDPOINTS, type Endpoint } from './endpoints.js';
import { COMPONENTS } from './registry.js';
import { API_VERSION } from './version.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const TITLE = 'Oxide Propolis Server API';

const COMPONENT_REF = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });
const ERROR_RESPONSE: JsonObject = { $ref: '#/components/responses/Error' };

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** `o` without its undefined values, keys in insertion order. */
function compact(o: Record<string, Json | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** Key order inside every emitted schema; keys not listed follow, sorted. */
const SCHEMA_KEY_ORDER = [
  '$ref',
  'title',
  'nullable',
  'description',
  'type',
  'format',
  'minimum',
  'maximum',
  'enum',
  'items',
  'minItems',
  'maxItems',
  'uniqueItems',
  'properties',
  'required',
  'additionalProperties',
  'oneOf',
  'allOf',
];
const SCHEMA_RANK = new Map(SCHEMA_KEY_ORDER.map((k, i) => [k, i]));

function orderedSchema(o: Record<string, Json | undefined>): JsonObject {
  const keys = Object.keys(o).filter((k) => o[k] !== undefined);
  const last = SCHEMA_KEY_ORDER.length;
  keys.sort((a, b) => (SCHEMA_RANK.get(a) ?? last) - (SCHEMA_RANK.get(b) ?? last) || byName(a, b));
  const out: JsonObject = {};
  for (const k of keys) out[k] = o[k]!;
  return out;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/**
 * One schema as OpenAPI 3.0. `definition` is true for a component's own
 * definition (which must not turn into a reference to itself).
 */
export function toOpenApiSchema(s: TSchema, definition = false): JsonObject {
  if (!definition && typeof s.$id === 'string') {
    const named = COMPONENTS.get(s.$id);
    if (named === undefined) throw new TypeError(`schema $id ${s.$id} is not a component`);
    // A use of a named schema with a description of its own.
    if (s.description !== undefined && s.description !== named.description) {
      return orderedSchema({ description: s.description, allOf: [COMPONENT_REF(s.$id)] });
    }
    return COMPONENT_REF(s.$id);
  }
  if (typeof s.$ref === 'string') return COMPONENT_REF(s.$ref);

  const title = str(s.title);
  const description = str(s.description);

  if (Array.isArray(s.anyOf)) {
    const members = s.anyOf as TSchema[];
    const nonNull = members.filter((m) => m.type !== 'null');
    if (nonNull.length === 1 && members.length === 2) {
      const inner = toOpenApiSchema(nonNull[0]!);
      if (typeof inner.$ref === 'string') return orderedSchema({ title, nullable: true, description, allOf: [inner] });
      // A described reference or an inline schema: mark it nullable, keep
      // the union's own description if it has one.
      return orderedSchema({ ...inner, title, nullable: true, description: description ?? inner.description });
    }
    if (members.every((m) => typeof m.const === 'string')) {
      return orderedSchema({ title, description, type: 'string', enum: members.map((m) => m.const as string) });
    }
    return orderedSchema({ title, description, oneOf: members.map((m) => toOpenApiSchema(m)) });
  }

  if (s.const !== undefined) {
    return orderedSchema({ title, description, type: typeof s.const, enum: [s.const as Json] });
  }

  switch (s.type) {
    case 'null':
      // Dropshot's rendering of a `()` response body.
      return orderedSchema({ title: title ?? 'Null', description, type: 'string', enum: [null] });
    case 'object': {
      const pattern = s.patternProperties as Record<string, TSchema> | undefined;
      if (pattern !== undefined) {
        const value = Object.values(pattern)[0]!;
        return orderedSchema({ title, description, type: 'object', additionalProperties: toOpenApiSchema(value) });
      }
      const properties = (s.properties ?? {}) as Record<string, TSchema>;
      const props: JsonObject = {};
      for (const name of Object.keys(properties).sort(byName)) props[name] = toOpenApiSchema(properties[name]!);
      const required = ((s.required ?? []) as string[]).slice().sort(byName);
      return orderedSchema({
        title,
        description,
        type: 'object',
        properties: props,
        required: required.length > 0 ? required : undefined,
        additionalProperties: s.additionalProperties === false ? false : undefined,
      });
    }
    case 'array':
      return orderedSchema({
        title,
        description,
        type: 'array',
        items: toOpenApiSchema(s.items as TSchema),
        minItems: num(s.minItems),
        maxItems: num(s.maxItems),
        uniqueItems: s.uniqueItems === true ? true : undefined,
      });
    case 'string':
    case 'integer':
    case 'number':
    case 'boolean':
      return orderedSchema({
        title,
        description,
        type: s.type,
        format: str(s.format),
        minimum: num(s.minimum),
        maximum: num(s.maximum),
      });
    default:
      throw new TypeError(`no OpenAPI rendering for schema ${JSON.stringify(s)}`);
  }
}

function json(schema: TSchema): JsonObject {
  return { 'application/json': { schema: toOpenApiSchema(schema) } };
}

function parameters(e: Endpoint): Json[] | undefined {
  const out: Json[] = [];
  const add = (where: 'path' | 'query', obj: TSchema | undefined): void => {
    const props = (obj?.properties ?? {}) as Record<string, TSchema>;
    const names = Object.keys(props);
    // Path parameters in path order (the object declares them so); query
    // parameters by name, as Dropshot lists them.
    if (where === 'query') names.sort(byName);
    for (const name of names) {
      const { description, ...rest } = props[name]!;
      let schema = toOpenApiSchema(rest as TSchema);
      // Dropshot types an optional query parameter as `Option<T>`.
      if (where === 'query') schema = orderedSchema({ ...schema, nullable: true });
      out.push(
        compact({
          in: where,
          name,
          description: str(description),
          required: where === 'path' ? true : undefined,
          schema,
        }),
      );
    }
  };
  add('path', e.params);
  add('query', e.query);
  return out.length > 0 ? out : undefined;
}

function operation(e: Endpoint): JsonObject {
  const { status, description, schema } = e.success;
  return compact({
    summary: e.summary,
    description: e.description,
    operationId: e.operationId,
    parameters: parameters(e),
    requestBody: e.body === undefined ? undefined : compact({ content: json(e.body), required: true }),
    responses: {
      [String(status)]: compact({ description, content: schema === undefined ? undefined : json(schema) }),
      '4XX': ERROR_RESPONSE,
      '5XX': ERROR_RESPONSE,
    },
    'x-dropshot-websocket': e.websocket ? {} : undefined,
  });
}

/** The OpenAPI document of this server's API; equal to openapi/propolis-server.json. */
export function buildOpenApi(): JsonObject {
  const paths = new Map<string, Map<string, JsonObject>>();
  for (const e of ENDPOINTS as readonly Endpoint[]) {
    const methods = paths.get(e.path) ?? new Map<string, JsonObject>();
    const method = e.method.toLowerCase();
    if (methods.has(method)) throw new TypeError(`two endpoints for ${e.method} ${e.path}`);
    methods.set(method, operation(e));
    paths.set(e.path, methods);
  }
  const pathsOut: JsonObject = {};
  for (const path of [...paths.keys()].sort(byName)) {
    const methods = paths.get(path)!;
    const out: JsonObject = {};
    for (const m of [...methods.keys()].sort(byName)) out[m] = methods.get(m)!;
    pathsOut[path] = out;
  }
  const schemas: JsonObject = {};
  for (const [name, schema] of COMPONENTS) schemas[name] = toOpenApiSchema(schema, true);
  return compact({
    openapi: '3.0.3',
    info: compact({
      title: TITLE,
      description: 'The REST API of propolis-server, the Propolis VMM (here on Linux/KVM).',
      version: API_VERSION,
    }),
    paths: pathsOut,
    components: compact({
      schemas,
      responses: { Error: compact({ description: 'Error', content: json(COMPONENTS.get('Error')!) }) },
    }),
  });
}
