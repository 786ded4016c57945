// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CpuidEntry } from '../../../kvm/src/index.js';
import { CpuidProfileError, profileToCpuid, specializeCpuid } from './cpuid.js';

const e = (fn: number, index = 0, regs: Partial<CpuidEntry> = {}): CpuidEntry => ({
  function: fn,
  index,
  flags: 0,
  eax: 0,
  ebx: 0,
  ecx: 0,
  edx: 0,
  ...regs,
});

describe('specializeCpuid', () => {
  it('puts the APIC ID and logical count in leaf 1 and sets HTT only for SMP', () => {
    const base = [e(1, 0, { ebx: 0x0000_0800, edx: 0 })];
    const one = specializeCpuid(base, 0, 1)[0]!;
    assert.equal(one.ebx >>> 24, 0);
    assert.equal(one.edx & (1 << 28), 0);
    const v3 = specializeCpuid(base, 3, 4)[0]!;
    assert.equal(v3.ebx >>> 24, 3, 'APIC ID');
    assert.equal((v3.ebx >> 16) & 0xff, 4, 'logical processors');
    assert.equal(v3.ebx & 0xffff, 0x0800, 'CLFLUSH size kept');
    assert.notEqual(v3.edx & (1 << 28), 0);
  });

  it('describes one package of N cores in leaves 4 and 0xB', () => {
    const base = [e(4, 0, { eax: 0x21 }), e(4, 3, { eax: 0x63 }), e(0xb, 0), e(0xb, 1), e(0xb, 2)];
    const s = specializeCpuid(base, 5, 6);
    const l1d = s[0]!;
    const l3 = s[1]!;
    assert.equal(l1d.eax >>> 26, 7, 'cores per package − 1 (rounded to a power of two: 8)');
    assert.equal((l1d.eax >> 14) & 0xfff, 0, 'L1 private');
    assert.equal((l3.eax >> 14) & 0xfff, 7, 'L3 shared');
    const [smt, core, inval] = s.slice(2);
    assert.deepEqual([smt!.ebx, (smt!.ecx >> 8) & 0xff, smt!.edx], [1, 1, 5]);
    assert.deepEqual([core!.eax, core!.ebx, (core!.ecx >> 8) & 0xff, core!.edx], [3, 6, 2, 5]);
    assert.equal((inval!.ecx >> 8) & 0xff, 0, 'level type invalid ends the enumeration');
  });
});

describe('profileToCpuid', () => {
  it('builds entries with the vendor in leaf 0 and subleaf flags', () => {
    const entries = profileToCpuid('p', 'amd', [
      { leaf: 0, values: [0xd, 0, 0, 0] },
      { leaf: 7, subleaf: 0, values: [0, 1, 2, 3] },
    ]);
    const l0 = entries[0]!;
    const vendor = Buffer.alloc(12);
    vendor.writeUInt32LE(l0.ebx, 0);
    vendor.writeUInt32LE(l0.edx, 4);
    vendor.writeUInt32LE(l0.ecx, 8);
    assert.equal(vendor.toString('latin1'), 'AuthenticAMD');
    assert.equal(entries[1]!.flags, 1);
  });

  it('refuses the seed-invalid profiles, naming the leaf', () => {
    const bad: [Parameters<typeof profileToCpuid>[2], RegExp][] = [
      [
        [
          { leaf: 0, values: [1, 0, 0, 0] },
          { leaf: 0x4000_0000, values: [0, 0, 0, 0] },
        ],
        /0x40000000 is outside/,
      ],
      [
        [
          { leaf: 0, values: [1, 0, 0, 0] },
          { leaf: 0, values: [1, 0, 0, 0] },
        ],
        /leaf 0 appears twice/,
      ],
      [
        [
          { leaf: 0, values: [1, 0, 0, 0] },
          { leaf: 7, values: [0, 0, 0, 0] },
          { leaf: 7, subleaf: 0, values: [0, 0, 0, 0] },
        ],
        /both with and without a subleaf/,
      ],
      [[{ leaf: 1, values: [0, 0, 0, 0] }], /leaf 0 is required/],
      [[{ leaf: 0, values: [2 ** 32, 0, 0, 0] }], /outside 32 bits/],
    ];
    for (const [leaves, re] of bad) {
      assert.throws(
        () => profileToCpuid('p', 'intel', leaves),
        (err: unknown) => err instanceof CpuidProfileError && re.test(err.message),
      );
    }
  });
});
