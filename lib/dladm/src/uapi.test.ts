// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Header check for uapi.ts: a C program generated from the same declarations
// prints what gcc computes from the system headers (sizes, offsets, member
// types, ioctl numbers, constants), and every line is compared with the
// TypeScript side. One failure lists every disagreement by name.
//
// Needs gcc and the libc/kernel headers (Debian: gcc, libc6-dev,
// linux-libc-dev); without them the test fails rather than skips.
//
// Threading: test code on the main thread.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import type { Field, Ioctl, StructDef } from '../../kvm/src/abi.js';
import * as uapi from './uapi.js';
import { ALL_CONSTANTS, ALL_IOCTLS, ALL_STRUCTS } from './uapi.js';

const PRELUDE = `#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/sockios.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#define KIND(x) _Generic((x), \\
  __u8: "u8", __s8: "i8", char: "char", __u16: "u16", __s16: "i16", __u32: "u32", __s32: "i32", \\
  __u64: "u64", __s64: "i64", default: "other")
int main(void) {
`;

interface Line {
  /** What the C program prints for this check (tab-separated, label second). */
  readonly stmt: string;
  readonly label: string;
  /** The values the TypeScript declaration expects, in the printed order. */
  readonly expect: readonly string[];
  /** A scalar field: its third value is a member type, compared with `sameKind`. */
  readonly scalar?: true;
}

function cName(s: string): string {
  assert.match(s, /^[A-Za-z0-9_.]+$/, `unexpected characters in C name ${s}`);
  return `"${s}"`;
}

function fieldLine(d: StructDef, f: Field): Line {
  const label = `${d.cName}.${f.cPath}`;
  const member = `((struct ${d.cName} *)0)->${f.cPath}`;
  const where = `offsetof(struct ${d.cName}, ${f.cPath}), sizeof(${member})`;
  switch (f.tag) {
    case 'scalar':
      return {
        label,
        stmt: `printf("%s\\t%zu\\t%zu\\t%s\\n", ${cName(label)}, ${where}, KIND(${member}));`,
        expect: [String(f.offset), String(f.size), f.kind],
        scalar: true,
      };
    case 'bytes':
      return {
        label,
        stmt: `printf("%s\\t%zu\\t%zu\\n", ${cName(label)}, ${where});`,
        expect: [String(f.offset), String(f.size)],
      };
    case 'nested':
      return {
        label,
        stmt:
          `printf("%s\\t%zu\\t%zu\\t%d\\n", ${cName(label)}, ${where}, ` +
          `__builtin_types_compatible_p(__typeof__(${member}), struct ${f.def.cName}));`,
        expect: [String(f.offset), String(f.size), '1'],
      };
  }
}

function lines(): Line[] {
  const out: Line[] = [];
  for (const d of ALL_STRUCTS) {
    out.push({
      label: d.cName,
      stmt: `printf("%s\\t%zu\\n", ${cName(d.cName)}, sizeof(struct ${d.cName}));`,
      expect: [String(d.size)],
    });
    for (const f of Object.values(d.fields)) out.push(fieldLine(d, f));
  }
  for (const io of ALL_IOCTLS) {
    out.push({
      label: io.name,
      stmt: `printf("%s\\t0x%lx\\n", ${cName(io.name)}, (unsigned long)(${io.name}));`,
      expect: [`0x${io.nr.toString(16)}`],
    });
  }
  for (const [name, v] of Object.entries(ALL_CONSTANTS)) {
    out.push({
      label: name,
      stmt: `printf("%s\\t%lld\\n", ${cName(name)}, (long long)(${name}));`,
      expect: [String(v)],
    });
  }
  return out;
}

/**
 * The C side stores a 16-bit flag word as `short`; uapi.ts declares it u16
 * (see `Ifreq`). Offset and size still have to match exactly.
 */
function sameKind(ts: string, c: string): boolean {
  return ts === c || (ts === 'u16' && c === 'i16');
}

function isIoctl(v: unknown): v is Ioctl {
  return typeof v === 'object' && v !== null && 'nr' in v && 'name' in v && !('fields' in v);
}

function isStructDef(v: unknown): v is StructDef {
  return typeof v === 'object' && v !== null && 'cName' in v && 'fields' in v;
}

test('every exported declaration of uapi.ts is in the lists the header check walks', () => {
  const forgotten: string[] = [];
  for (const [name, v] of Object.entries(uapi)) {
    if (isStructDef(v) && !ALL_STRUCTS.includes(v)) forgotten.push(`${name} is not in ALL_STRUCTS`);
    if (isIoctl(v)) {
      if (!ALL_IOCTLS.includes(v)) forgotten.push(`${name} is not in ALL_IOCTLS`);
      if (v.name !== name) forgotten.push(`${name} carries the name ${v.name}`);
    }
    if (typeof v === 'number' && ALL_CONSTANTS[name] !== v) forgotten.push(`${name} is not in ALL_CONSTANTS`);
  }
  assert.deepEqual(forgotten, []);
});

test('ifreq, virtio_net_hdr, TUN/SIOCGIF ioctls and constants match the system headers', () => {
  const checks = lines();
  const dir = mkdtempSync(join(tmpdir(), 'dladm-header-check-'));
  try {
    const src = PRELUDE + checks.map((c) => `  ${c.stmt}\n`).join('') + '  return 0;\n}\n';
    const cFile = join(dir, 'check.c');
    const exe = join(dir, 'check');
    writeFileSync(cFile, src);
    const cc = spawnSync('gcc', ['-std=gnu11', '-O0', '-o', exe, cFile], { encoding: 'utf8' });
    if (cc.error !== undefined) {
      assert.fail(
        `gcc is not usable (${cc.error.message}); the header check compiles C against <linux/if_tun.h> ` +
          'and <net/if.h> (Debian: apt-get install gcc libc6-dev linux-libc-dev)',
      );
    }
    assert.equal(cc.status, 0, `the generated header check does not compile:\n${cc.stderr}`);
    const run = spawnSync(exe, [], { encoding: 'utf8' });
    assert.equal(run.status, 0, `the header check program failed: ${run.stderr}`);

    const got = new Map<string, string[]>();
    for (const l of run.stdout.split('\n')) {
      if (l === '') continue;
      const [label = '', ...vals] = l.split('\t');
      got.set(label, vals);
    }
    const problems: string[] = [];
    for (const c of checks) {
      const vals = got.get(c.label);
      if (vals === undefined) {
        problems.push(`${c.label}: the C program printed nothing`);
        continue;
      }
      const [eOff, eSize, eKind = ''] = c.expect;
      if (c.scalar) {
        if (vals[0] !== eOff || vals[1] !== eSize || !sameKind(eKind, vals[2] ?? '')) {
          problems.push(`${c.label}: TS offset/size/kind ${c.expect.join('/')}, C ${vals.join('/')}`);
        }
      } else if (vals.join('\t') !== c.expect.join('\t')) {
        problems.push(`${c.label}: TS ${c.expect.join('/')}, C ${vals.join('/')}`);
      }
    }
    assert.ok(
      problems.length === 0,
      `${problems.length} declaration(s) disagree with the headers:\n  ${problems.join('\n  ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
