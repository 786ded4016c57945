// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// CPUID for each vCPU.
//
// The base set is either what the host's KVM supports or a profile from
// config (the seed's `[cpuid.<name>]` tables), validated here. Each vCPU
// then gets it specialised with its APIC ID and the VM's topology: one
// package, one thread per core, `cpus` cores — leaf 1 (APIC ID, logical
// count, HTT), leaf 4 (cores per package, cache sharing), leaves 0xB/0x1F
// (x2APIC topology) and, for AMD, 0x8000_0008 (core count).
//
// Threading: pure functions.

import type { CpuidEntry } from '../../../kvm/src/index.js';

/** kvm_cpuid_entry2.flags: the entry is selected by ECX (subleaf) too. */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export class CpuidProfileError extends Error {
  readonly code = 'CPUID_PROFILE';
}

export interface CpuidProfileLeaf {
  leaf: number;
  subleaf?: number;
  values: [number, number, number, number];
}

export type CpuidVendor = 'intel' | 'amd';

const VENDOR_STRINGS: Record<CpuidVendor, string> = { intel: 'GenuineIntel', amd: 'AuthenticAMD' };

function vendorRegs(v: CpuidVendor): [number, number, number] {
  const b = Buffer.from(VENDOR_STRINGS[v], 'latin1');
  // Leaf 0 spells the vendor across EBX, EDX, ECX (in that order); returned as [ebx, edx, ecx].
  return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)];
}

function inRange(leaf: number): boolean {
  return (leaf >= 0 && leaf <= 0xffff) || (leaf >= 0x8000_0000 && leaf <= 0x8000_ffff);
}

/**
 * Turn a profile into CPUID entries, with the seed's rules: leaves in
 * 0..0xFFFF or 0x8000_0000..0x8000_FFFF, each (leaf, subleaf) once, and a
 * leaf given either with or without subleaves, not both. Leaf 0's vendor
 * registers are set from `vendor`; hypervisor leaves are the VMM's to add.
 */
export function profileToCpuid(name: string, vendor: CpuidVendor, leaves: CpuidProfileLeaf[]): CpuidEntry[] {
  const seen = new Set<string>();
  const plain = new Set<number>();
  const indexed = new Set<number>();
  const out: CpuidEntry[] = [];
  for (const l of leaves) {
    const id = l.subleaf === undefined ? `${l.leaf}` : `${l.leaf}-${l.subleaf}`;
    if (!Number.isInteger(l.leaf) || !inRange(l.leaf)) {
      throw new CpuidProfileError(
        `cpuid profile ${name}: leaf 0x${l.leaf.toString(16)} is outside 0..0xFFFF and 0x80000000..0x8000FFFF`,
      );
    }
    if (seen.has(id)) throw new CpuidProfileError(`cpuid profile ${name}: leaf ${id} appears twice`);
    seen.add(id);
    (l.subleaf === undefined ? plain : indexed).add(l.leaf);
    if (plain.has(l.leaf) && indexed.has(l.leaf)) {
      throw new CpuidProfileError(
        `cpuid profile ${name}: leaf 0x${l.leaf.toString(16)} is given both with and without a subleaf`,
      );
    }
    for (const v of l.values) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
        throw new CpuidProfileError(`cpuid profile ${name}: leaf ${id} has a register value outside 32 bits`);
      }
    }
    const [eax, ebx, ecx, edx] = l.values;
    out.push({
      function: l.leaf >>> 0,
      index: l.subleaf ?? 0,
      flags: l.subleaf === undefined ? 0 : KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
      eax,
      ebx,
      ecx,
      edx,
    });
  }
  const l0 = out.find((e) => e.function === 0);
  if (!l0) throw new CpuidProfileError(`cpuid profile ${name}: leaf 0 is required`);
  [l0.ebx, l0.edx, l0.ecx] = vendorRegs(vendor);
  return out;
}

function log2ceil(n: number): number {
  let s = 0;
  while (1 << s < n) s++;
  return s;
}

/** Specialise `base` for vCPU `vcpuId` of a `vcpus`-vCPU machine. */
export function specializeCpuid(base: CpuidEntry[], vcpuId: number, vcpus: number): CpuidEntry[] {
  const coreBits = log2ceil(vcpus);
  const out: CpuidEntry[] = [];
  for (const e of base) {
    const c = { ...e };
    switch (c.function) {
      case 1:
        // EBX[31:24] initial APIC ID, [23:16] addressable logical processors.
        c.ebx = ((c.ebx & 0x0000_ffff) | (Math.min(1 << coreBits, 255) << 16) | ((vcpuId & 0xff) << 24)) >>> 0;
        c.edx = vcpus > 1 ? (c.edx | (1 << 28)) >>> 0 : (c.edx & ~(1 << 28)) >>> 0; // HTT
        break;
      case 4: {
        // Deterministic cache parameters: EAX[31:26] cores per package − 1,
        // [25:14] threads sharing this cache − 1 (level 3 is shared by all).
        const type = c.eax & 0x1f;
        if (type === 0) break;
        const level = (c.eax >> 5) & 0x7;
        const sharing = level >= 3 ? (1 << coreBits) - 1 : 0;
        c.eax = ((c.eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((((1 << coreBits) - 1) & 0x3f) << 26)) >>> 0;
        break;
      }
      case 0xb:
      case 0x1f: {
        // x2APIC topology: level 0 SMT (1 thread), level 1 core (`vcpus`).
        c.edx = vcpuId >>> 0;
        if (c.index === 0) {
          c.eax = 0;
          c.ebx = 1;
          c.ecx = (1 << 8) | 0;
        } else if (c.index === 1) {
          c.eax = coreBits;
          c.ebx = vcpus;
          c.ecx = (2 << 8) | 1;
        } else {
          c.eax = 0;
          c.ebx = 0;
          c.ecx = c.index & 0xff;
        }
        break;
      }
      case 0x8000_0008:
        // AMD: ECX[7:0] cores − 1, [15:12] APIC ID bits for the core.
        c.ecx = ((c.ecx & ~0xf0ff) | ((vcpus - 1) & 0xff) | ((coreBits & 0xf) << 12)) >>> 0;
        break;
      default:
        break;
    }
    out.push(c);
  }
  return out;
}
