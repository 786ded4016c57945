// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The header check: every struct size, field offset and size, ioctl number
// and constant declared in this package is compared with what the machine's
// C compiler computes from <linux/kvm.h>.
//
// The C program is generated from the same declarations the VMM uses
// (`ALL_STRUCTS`, `ALL_IOCTLS`, `ALL_CONSTANTS`), one check per source line,
// so that a name the header lacks shows up as a compile error on a known line:
// that check is reported, dropped, and the rest still compared. Every problem
// is reported in one failure, by name.
//
// Needs gcc and the kernel UAPI headers (Debian: gcc, linux-libc-dev). Their
// absence is a failure, not a skip: an unchecked ABI is exactly what this
// test exists to prevent.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import type { Field, Ioctl, StructDef } from './abi.js';
import * as ioctls from './ioctls.js';
import { ALL_CONSTANTS, ALL_IOCTLS } from './ioctls.js';
import * as structs from './structs.js';
import { ALL_STRUCTS } from './structs.js';

/** One generated check: the C statement and the name it reports under. */
interface Check {
  readonly label: string;
  readonly stmt: string;
}

/** What the TypeScript side expects for one check, keyed by label. */
type Expectation =
  | { kind: 'struct'; size: number }
  | { kind: 'scalar'; key: string; offset: number; size: number; scalarKind: string }
  | { kind: 'bytes'; key: string; offset: number; size: number }
  | { kind: 'nested'; key: string; offset: number; size: number; cName: string }
  | { kind: 'ioctl'; nr: number }
  | { kind: 'constant'; value: number };

const PRELUDE = `#include <stddef.h>
#include <stdio.h>
#include <linux/kvm.h>
/* The C type of a scalar member, in the kinds abi.ts knows. */
#define KIND(x) _Generic((x), \\
  __u8: "u8", __s8: "i8", char: "char", __u16: "u16", __s16: "i16", __u32: "u32", __s32: "i32", \\
  __u64: "u64", __s64: "i64", unsigned long: "ulong", long: "long", void *: "ptr", default: "other")
int main(void) {
`;

/** Every struct reachable from ALL_STRUCTS, nested ones included. */
function reachableStructs(): StructDef[] {
  const seen = new Map<string, StructDef>();
  const visit = (d: StructDef): void => {
    const prev = seen.get(d.cName);
    if (prev !== undefined) {
      assert.equal(prev, d, `two different declarations of struct ${d.cName}`);
      return;
    }
    seen.set(d.cName, d);
    for (const f of Object.values(d.fields)) if (f.tag === 'nested') visit(f.def);
  };
  ALL_STRUCTS.forEach(visit);
  return [...seen.values()];
}

function cString(s: string): string {
  assert.match(s, /^[A-Za-z0-9_.]+$/, `unexpected characters in C name ${s}`);
  return `"${s}"`;
}

function fieldCheck(d: StructDef, key: string, f: Field): [Check, Expectation] {
  const label = `${d.cName}.${f.cPath}`;
  const s = d.cName;
  const m = f.cPath;
  const off = `offsetof(struct ${s}, ${m})`;
  // Written out rather than through a macro so that gcc reports a missing
  // member on this check's own line.
  const member = `((struct ${s} *)0)->${m}`;
  switch (f.tag) {
    case 'scalar':
      return [
        {
          label,
          stmt: `printf("F\\t%s\\t%zu\\t%zu\\t%s\\n", ${cString(label)}, ${off}, sizeof(${member}), KIND(${member}));`,
        },
        { kind: 'scalar', key, offset: f.offset, size: f.size, scalarKind: f.kind },
      ];
    case 'bytes':
      // Any array or aggregate of the declared size; only its extent matters.
      // A zero-sized declaration stands for a flexible array member, which
      // has no sizeof: only its offset is checked.
      if (f.size === 0) {
        return [
          { label, stmt: `printf("F\\t%s\\t%zu\\t0\\t-\\n", ${cString(label)}, ${off});` },
          { kind: 'bytes', key, offset: f.offset, size: 0 },
        ];
      }
      return [
        {
          label,
          stmt: `printf("F\\t%s\\t%zu\\t%zu\\t-\\n", ${cString(label)}, ${off}, sizeof(${member}));`,
        },
        { kind: 'bytes', key, offset: f.offset, size: f.size },
      ];
    case 'nested':
      return [
        {
          label,
          stmt:
            `printf("F\\t%s\\t%zu\\t%zu\\t%d\\n", ${cString(label)}, ${off}, sizeof(${member}), ` +
            `__builtin_types_compatible_p(__typeof__(${member}), struct ${f.def.cName}));`,
        },
        { kind: 'nested', key, offset: f.offset, size: f.size, cName: f.def.cName },
      ];
  }
}

function buildChecks(): { checks: Check[]; expected: Map<string, Expectation> } {
  const checks: Check[] = [];
  const expected = new Map<string, Expectation>();
  const add = (c: Check, e: Expectation): void => {
    assert.ok(!expected.has(c.label), `${c.label} is declared twice`);
    checks.push(c);
    expected.set(c.label, e);
  };
  for (const d of reachableStructs()) {
    add(
      { label: d.cName, stmt: `printf("S\\t%s\\t%zu\\n", ${cString(d.cName)}, sizeof(struct ${d.cName}));` },
      { kind: 'struct', size: d.size },
    );
    for (const [key, f] of Object.entries(d.fields)) add(...fieldCheck(d, key, f));
  }
  for (const io of ALL_IOCTLS) {
    add(
      { label: io.name, stmt: `printf("I\\t%s\\t%lu\\n", ${cString(io.name)}, (unsigned long)(${io.name}));` },
      { kind: 'ioctl', nr: io.nr },
    );
  }
  for (const [name, value] of Object.entries(ALL_CONSTANTS)) {
    add(
      { label: name, stmt: `printf("C\\t%s\\t%lld\\n", ${cString(name)}, (long long)(${name}));` },
      { kind: 'constant', value },
    );
  }
  return { checks, expected };
}

function gccAvailable(): string | undefined {
  const r = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (r.error) return r.error.message;
  if (r.status !== 0) return `gcc --version exited with ${r.status}: ${r.stderr}`;
  return undefined;
}

/**
 * Compile and run the checks. A check whose line fails to compile (a member
 * or macro the header lacks) is reported in `missing` and left out of a
 * recompile; an error on any other line aborts the test with gcc's output.
 */
function runChecks(dir: string, checks: Check[]): { output: string; missing: Map<string, string> } {
  const missing = new Map<string, string>();
  let live = checks;
  for (let attempt = 0; attempt < 4; attempt++) {
    const preludeLines = PRELUDE.split('\n').length - 1;
    const src = PRELUDE + live.map((c) => `  ${c.stmt}\n`).join('') + '  return 0;\n}\n';
    const cFile = join(dir, 'header-check.c');
    const exe = join(dir, 'header-check');
    writeFileSync(cFile, src);
    const cc = spawnSync('gcc', ['-std=gnu11', '-O0', '-ftrack-macro-expansion=0', '-o', exe, cFile], {
      encoding: 'utf8',
    });
    if (cc.error) throw cc.error;
    if (cc.status === 0) {
      const run = spawnSync(exe, [], { encoding: 'utf8' });
      if (run.error) throw run.error;
      assert.equal(run.status, 0, `the generated header check program failed: ${run.stderr}`);
      return { output: run.stdout, missing };
    }
    let attributed = false;
    const unattributed: string[] = [];
    for (const m of cc.stderr.matchAll(/^[^\n:]*header-check\.c:(\d+):\d+: error: (.*)$/gm)) {
      const idx = Number(m[1]) - 1 - preludeLines;
      const c = live[idx];
      if (c === undefined) {
        unattributed.push(m[0]);
        continue;
      }
      if (!missing.has(c.label)) missing.set(c.label, m[2] ?? '');
      attributed = true;
    }
    if (!attributed || unattributed.length > 0) {
      assert.fail(
        `gcc could not compile the generated header check (is linux-libc-dev installed?):\n` +
          `${unattributed.join('\n')}\n${cc.stderr}`,
      );
    }
    live = live.filter((c) => !missing.has(c.label));
  }
  assert.fail('the generated header check still does not compile after dropping the failing checks');
}

function compare(output: string, expected: Map<string, Expectation>, missing: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const [label, why] of missing) problems.push(`${label}: not in <linux/kvm.h> (gcc: ${why})`);
  const seen = new Set<string>();
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const [tag, label = '', a = '', b = '', c = ''] = line.split('\t');
    const e = expected.get(label);
    assert.ok(e !== undefined, `unexpected output line from the C program: ${line}`);
    seen.add(label);
    const name = 'key' in e && e.key !== label.slice(label.indexOf('.') + 1) ? `${label} (${e.key})` : label;
    const differ = (what: string, ts: number | string, cVal: number | string): void => {
      if (ts !== cVal) problems.push(`${name}: ${what} TS ${ts}, C ${cVal}`);
    };
    switch (e.kind) {
      case 'struct':
        assert.equal(tag, 'S');
        differ('sizeof', e.size, Number(a));
        break;
      case 'scalar': {
        assert.equal(tag, 'F');
        differ('offset', e.offset, Number(a));
        differ('size', e.size, Number(b));
        // A u64 may stand for a pointer (e.g. kvm_dirty_log.dirty_bitmap).
        const cKind = c === 'ptr' && e.scalarKind === 'u64' ? 'u64' : c;
        differ('type', e.scalarKind, cKind);
        break;
      }
      case 'bytes':
        assert.equal(tag, 'F');
        differ('offset', e.offset, Number(a));
        differ('size', e.size, Number(b));
        break;
      case 'nested':
        assert.equal(tag, 'F');
        differ('offset', e.offset, Number(a));
        differ('size', e.size, Number(b));
        if (c !== '1') problems.push(`${name}: C member is not a struct ${e.cName}`);
        break;
      case 'ioctl':
        assert.equal(tag, 'I');
        differ('number', `0x${e.nr.toString(16)}`, `0x${BigInt(a).toString(16)}`);
        break;
      case 'constant':
        assert.equal(tag, 'C');
        differ('value', e.value, Number(a));
        break;
    }
  }
  for (const label of expected.keys()) {
    if (!seen.has(label) && !missing.has(label)) problems.push(`${label}: the C program printed nothing for it`);
  }
  return problems;
}

function isIoctl(v: unknown): v is Ioctl {
  return typeof v === 'object' && v !== null && 'nr' in v && 'name' in v;
}

function isStructDef(v: unknown): v is StructDef {
  return typeof v === 'object' && v !== null && 'cName' in v && 'fields' in v;
}

test('every exported declaration is in the lists the header check walks', () => {
  const forgotten: string[] = [];
  for (const [name, v] of Object.entries(structs)) {
    if (isStructDef(v) && !ALL_STRUCTS.includes(v)) forgotten.push(`structs.${name} is not in ALL_STRUCTS`);
  }
  for (const [name, v] of Object.entries(ioctls)) {
    if (isIoctl(v)) {
      if (!ALL_IOCTLS.includes(v)) forgotten.push(`ioctls.${name} is not in ALL_IOCTLS`);
      if (v.name !== name) forgotten.push(`ioctls.${name} carries the name ${v.name}`);
    } else if (typeof v === 'number' && ALL_CONSTANTS[name] !== v) {
      forgotten.push(`ioctls.${name} is not in ALL_CONSTANTS`);
    }
  }
  assert.deepEqual(forgotten, []);
});

test('struct layouts, ioctl numbers and constants match <linux/kvm.h>', () => {
  const noGcc = gccAvailable();
  if (noGcc !== undefined) {
    assert.fail(
      `gcc is not usable (${noGcc}). The header check compiles C against <linux/kvm.h>; ` +
        'install gcc and the kernel headers (Debian: apt-get install gcc linux-libc-dev).',
    );
  }
  const { checks, expected } = buildChecks();
  const dir = mkdtempSync(join(tmpdir(), 'kvm-header-check-'));
  try {
    const { output, missing } = runChecks(dir, checks);
    const problems = compare(output, expected, missing);
    assert.ok(
      problems.length === 0,
      `${problems.length} declaration(s) disagree with <linux/kvm.h>:\n  ${problems.join('\n  ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
