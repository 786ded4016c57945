// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The generated document against (1) the committed openapi/propolis-server.json
// (drift) and (2) the original server's document (compatibility).
//
// The original's propolis-server 5.0.0 document is read from the shared
// reference material beside the repository (../shared/reference/, as CI
// lays it out); it is not copied into the repository. Only its structure is
// compared.
//
// The comparison is structural: references are followed where one side
// inlines what the other names, single-entry `allOf` wrappers are unwrapped,
// and prose is ignored. Every remaining difference must be listed in
// DIFFERENCES (differences.ts), and every listed document change must occur.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DIFFERENCES } from './differences.js';
import { FORMAT_MAXIMUM } from './kinds.js';
import { buildOpenApi } from './openapi.js';

const root = join(import.meta.dirname, '..', '..', '..', '..');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
interface Doc {
  paths: Record<string, Record<string, Obj>>;
  components: { schemas: Record<string, Obj> };
}

const load = (path: string): Doc => JSON.parse(readFileSync(join(root, path), 'utf8')) as Doc;
const ours = (): Doc => JSON.parse(JSON.stringify(buildOpenApi())) as Doc;
const UPSTREAM = join(root, '..', 'shared', 'reference', 'propolis-server-openapi-5.0.0.json');
const upstream = ((): Doc => {
  try {
    return JSON.parse(readFileSync(UPSTREAM, 'utf8')) as Doc;
  } catch (e) {
    throw new Error(
      `the original server's OpenAPI document is needed at ${UPSTREAM} (the shared reference material ` +
        `beside the repository): ${(e as Error).message}`,
    );
  }
})();

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

test('the committed openapi/propolis-server.json is what buildOpenApi() generates', () => {
  const committed = load('openapi/propolis-server.json');
  assert.deepStrictEqual(
    ours(),
    committed,
    'openapi/propolis-server.json is out of date with lib/api-types: run `npm run openapi` and commit the result',
  );
});

test('buildOpenApi() is deterministic, key order included', () => {
  assert.equal(JSON.stringify(buildOpenApi()), JSON.stringify(buildOpenApi()));
});

test('every $ref in the document points at a component, and every component is used', () => {
  const doc = ours();
  const refs = new Set<string>();
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isObj(v)) {
      if (typeof v.$ref === 'string') refs.add(v.$ref);
      Object.values(v).forEach(walk);
    }
  };
  walk(doc as unknown as Json);
  const schemas = new Set(Object.keys(doc.components.schemas).map((n) => `#/components/schemas/${n}`));
  for (const ref of refs) {
    if (ref !== '#/components/responses/Error') assert.ok(schemas.has(ref), `dangling ${ref}`);
  }
  for (const s of schemas) assert.ok(refs.has(s), `${s} is never referenced`);
});

// ---------------------------------------------------------------------------
// Structural comparison

interface Diff {
  at: string;
  change: string;
  detail: string;
}

class Comparison {
  readonly diffs: Diff[] = [];
  constructor(
    private readonly a: Doc, // ours
    private readonly b: Doc, // upstream
  ) {}

  private add(at: string, change: string, ours: unknown, theirs: unknown): void {
    this.diffs.push({ at, change, detail: `ours ${JSON.stringify(ours)}, original ${JSON.stringify(theirs)}` });
  }

  /** Drops prose and unwraps `{ allOf: [X] }` (keeping `nullable`). */
  private static unwrap(s: Obj): Obj {
    const { description: _d, title: _t, ...rest } = s;
    if (Array.isArray(rest.allOf) && rest.allOf.length === 1 && isObj(rest.allOf[0])) {
      const { allOf, ...others } = rest;
      return { ...Comparison.unwrap(allOf[0] as Obj), ...others };
    }
    return rest;
  }

  private resolve(doc: Doc, s: Obj): Obj {
    const name = String(s.$ref).replace('#/components/schemas/', '');
    const target = doc.components.schemas[name];
    assert.ok(target !== undefined, `dangling reference ${String(s.$ref)}`);
    const { $ref: _r, ...rest } = s;
    return { ...Comparison.unwrap(target), ...rest };
  }

  schema(oursIn: Obj, theirsIn: Obj, at: string): void {
    let o = Comparison.unwrap(oursIn);
    let t = Comparison.unwrap(theirsIn);
    if (typeof o.$ref === 'string' && typeof t.$ref === 'string') {
      // Both name a component: equal names are compared once, at the top.
      if (o.$ref !== t.$ref) this.add(at, 'ref', o.$ref, t.$ref);
      if ((o.nullable ?? false) !== (t.nullable ?? false)) this.add(at, 'nullable', o.nullable, t.nullable);
      return;
    }
    if (typeof o.$ref === 'string') o = this.resolve(this.a, o);
    if (typeof t.$ref === 'string') t = this.resolve(this.b, t);

    const keys = new Set([...Object.keys(o), ...Object.keys(t)]);
    for (const key of [...keys].sort()) {
      const ov = o[key];
      const tv = t[key];
      switch (key) {
        case 'properties': {
          const op = isObj(ov) ? ov : {};
          const tp = isObj(tv) ? tv : {};
          for (const name of new Set([...Object.keys(op), ...Object.keys(tp)])) {
            const where = `${at}.properties.${name}`;
            if (op[name] === undefined) this.add(where, 'property-missing', undefined, tp[name]);
            else if (tp[name] === undefined) this.add(where, 'property-extra', op[name], undefined);
            else this.schema(op[name] as Obj, tp[name] as Obj, where);
          }
          break;
        }
        case 'items':
          if (isObj(ov) && isObj(tv)) this.schema(ov, tv, `${at}.items`);
          else this.add(at, 'items', ov, tv);
          break;
        case 'oneOf':
          if (!Array.isArray(ov) || !Array.isArray(tv) || ov.length !== tv.length) {
            this.add(at, 'variants', Array.isArray(ov) ? ov.length : ov, Array.isArray(tv) ? tv.length : tv);
          } else {
            ov.forEach((v, i) => this.schema(v as Obj, tv[i] as Obj, `${at}.oneOf[${i}]`));
          }
          break;
        case 'additionalProperties':
          if (isObj(ov) && isObj(tv)) this.schema(ov, tv, `${at}.additionalProperties`);
          else if (ov === false && (tv === undefined || tv === true)) this.add(at, 'closed', ov, tv);
          else if (tv === false && ov !== false) this.add(at, 'opened', ov, tv);
          else if (JSON.stringify(ov) !== JSON.stringify(tv)) this.add(at, 'additionalProperties', ov, tv);
          break;
        case 'required': {
          const os = JSON.stringify([...((ov as string[] | undefined) ?? [])].sort());
          const ts = JSON.stringify([...((tv as string[] | undefined) ?? [])].sort());
          if (os !== ts) this.add(at, 'required', ov, tv);
          break;
        }
        case 'nullable':
          if ((ov ?? false) !== (tv ?? false)) this.add(at, 'nullable', ov, tv);
          break;
        case 'maximum': {
          const bound = FORMAT_MAXIMUM[o.format as keyof typeof FORMAT_MAXIMUM];
          if (ov === tv) break;
          if (tv === undefined && bound !== undefined && ov === bound) this.add(at, 'maximum-by-format', ov, tv);
          else this.add(at, 'maximum', ov, tv);
          break;
        }
        default:
          if (JSON.stringify(ov) !== JSON.stringify(tv)) this.add(at, key, ov, tv);
      }
    }
  }

  operations(): void {
    const ops = (doc: Doc): Map<string, Obj> => {
      const out = new Map<string, Obj>();
      for (const [path, methods] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(methods)) out.set(`${method.toUpperCase()} ${path}`, op);
      }
      return out;
    };
    const mine = ops(this.a);
    const theirs = ops(this.b);
    for (const key of new Set([...mine.keys(), ...theirs.keys()])) {
      const o = mine.get(key);
      const t = theirs.get(key);
      if (o === undefined || t === undefined) {
        this.add(key, o === undefined ? 'operation-missing' : 'operation-extra', o?.operationId, t?.operationId);
        continue;
      }
      if (o.operationId !== t.operationId) this.add(key, 'operationId', o.operationId, t.operationId);
      this.parameters(key, o, t);
      const body = (op: Obj): Obj | undefined => op.requestBody as Obj | undefined;
      const ob = body(o);
      const tb = body(t);
      if ((ob === undefined) !== (tb === undefined) || ob?.required !== tb?.required) {
        this.add(key, 'requestBody', ob?.required, tb?.required);
      } else if (ob !== undefined && tb !== undefined) {
        this.schema(Comparison.content(ob)!, Comparison.content(tb)!, `${key} request body`);
      }
      const success = (op: Obj): [string, Obj] => {
        const entry = Object.entries(op.responses as Obj).find(([s]) => /^[0-9]{3}$/.test(s));
        assert.ok(entry !== undefined, `${key} has no success response`);
        return entry as [string, Obj];
      };
      const [os, oResp] = success(o);
      const [ts, tResp] = success(t);
      if (os !== ts) this.add(key, 'success-status', os, ts);
      const oc = Comparison.content(oResp);
      const tc = Comparison.content(tResp);
      if ((oc === undefined) !== (tc === undefined)) this.add(key, 'response-body', oc, tc);
      else if (oc !== undefined && tc !== undefined) this.schema(oc, tc, `${key} response`);
      for (const range of ['4XX', '5XX']) {
        const of = JSON.stringify((o.responses as Obj)[range]);
        const tf = JSON.stringify((t.responses as Obj)[range]);
        if (of !== tf) this.add(key, `responses-${range}`, of, tf);
      }
      const ws = (op: Obj): boolean => op['x-dropshot-websocket'] !== undefined;
      if (ws(o) !== ws(t)) this.add(key, 'websocket', ws(o), ws(t));
    }
  }

  private static content(x: Obj): Obj | undefined {
    const c = x.content as Obj | undefined;
    return (c?.['application/json'] as Obj | undefined)?.schema as Obj | undefined;
  }

  private parameters(key: string, o: Obj, t: Obj): void {
    const list = (op: Obj): Map<string, Obj> =>
      new Map(((op.parameters ?? []) as Obj[]).map((p) => [`${String(p.in)} ${String(p.name)}`, p]));
    const op = list(o);
    const tp = list(t);
    const order = (m: Map<string, Obj>): string => [...m.keys()].join(',');
    if (order(op) !== order(tp)) this.add(key, 'parameters', order(op), order(tp));
    for (const [name, p] of tp) {
      const mine = op.get(name);
      if (mine === undefined) continue;
      if ((mine.required ?? false) !== (p.required ?? false))
        this.add(`${key} ${name}`, 'required', mine.required, p.required);
      this.schema(mine.schema as Obj, p.schema as Obj, `${key} parameter ${name}`);
    }
  }

  components(): void {
    const mine = this.a.components.schemas;
    const theirs = this.b.components.schemas;
    for (const name of new Set([...Object.keys(mine), ...Object.keys(theirs)])) {
      if (mine[name] === undefined) this.add(name, 'schema-missing', undefined, name);
      else if (theirs[name] === undefined) this.add(name, 'schema-extra', name, undefined);
      else this.schema(mine[name], theirs[name], name);
    }
  }
}

function compare(): Diff[] {
  const c = new Comparison(ours(), upstream);
  c.components();
  c.operations();
  return c.diffs;
}

const allowances = DIFFERENCES.flatMap((d) => d.document ?? []);
const allowed = (d: Diff): boolean => allowances.some((a) => a.change === d.change && (a.at === '*' || a.at === d.at));

test('the original document has 13 operations and 62 schemas, and so does ours', () => {
  const count = (doc: Doc): number => Object.values(doc.paths).reduce((n, m) => n + Object.keys(m).length, 0);
  assert.equal(count(upstream), 13);
  assert.equal(Object.keys(upstream.components.schemas).length, 62);
  assert.equal(count(ours()), 13);
  assert.equal(Object.keys(ours().components.schemas).length, 62);
});

test('every operation and schema agrees with the original document, except as DIFFERENCES lists', () => {
  const unlisted = compare().filter((d) => !allowed(d));
  assert.deepStrictEqual(
    unlisted.map((d) => `${d.at}: ${d.change} (${d.detail})`),
    [],
    'differences from the original document that differences.ts does not list',
  );
});

test('every document change DIFFERENCES lists actually occurs', () => {
  const diffs = compare();
  const stale = allowances.filter((a) => !diffs.some((d) => d.change === a.change && (a.at === '*' || a.at === d.at)));
  assert.deepStrictEqual(stale, [], 'listed in differences.ts but no longer different: remove them');
});

test('the comparison notices a change that is not listed', () => {
  const doc = ours();
  const board = doc.components.schemas.Board!;
  (board.required as string[]).pop(); // drop memory_mb
  ((board.properties as Obj).cpus as Obj).type = 'number';
  const c = new Comparison(doc, upstream);
  c.components();
  const found = c.diffs.filter((d) => !allowed(d)).map((d) => `${d.at}: ${d.change}`);
  assert.deepStrictEqual(found.sort(), ['Board.properties.cpus: type', 'Board: required']);
});

test('every DIFFERENCES entry says where, what and why', () => {
  assert.ok(DIFFERENCES.length > 0);
  for (const d of DIFFERENCES) {
    for (const key of ['where', 'what', 'why'] as const) assert.ok(d[key].trim().length > 10, `${d.where}: ${key}`);
  }
});
