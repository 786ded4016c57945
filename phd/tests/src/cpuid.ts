// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// cpuid: a CPUID profile in the instance spec is what the server reports
// back and what the guest's CPUID instruction returns. The profile starts
// from the server's own default (what an instance without one reads back:
// the host's values), with the brand string of the original's test in
// leaves 0x8000_0002..4.

import { readFileSync } from 'node:fs';
import type { Cpuid, CpuidEntry } from '../../../lib/api-types/src/index.js';
import { check, phdTest, type TestContext } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, testosRomConfig } from './helpers.js';

const BRAND = 'Oxide Cloud Computer Company Cloud Computer';

/** The CPUID the server fills in for an instance that names none. */
async function defaultCpuid(ctx: TestContext): Promise<Cpuid> {
  const probe = await ctx.spawnVm(testosRomConfig(ctx, 'cpuid_probe'));
  await probe.instanceEnsure();
  const got = await probe.getSpec();
  await probe.teardown();
  check(got.spec.type === 'Present' && got.spec.value.board.cpuid, 'the server reported no default CPUID');
  return got.spec.value.board.cpuid;
}

/** `cpuid` with the brand string in leaves 0x8000_0002..4 (NUL-padded to 48 bytes). */
function withBrand(cpuid: Cpuid, brand: string): Cpuid {
  const bytes = new Uint8Array(48);
  bytes.set(new TextEncoder().encode(brand).slice(0, 47));
  const view = new DataView(bytes.buffer);
  const entries = cpuid.entries.filter((e) => e.leaf < 0x8000_0002 || e.leaf > 0x8000_0004);
  for (let i = 0; i < 3; i++) {
    const o = i * 16;
    entries.push({
      leaf: 0x8000_0002 + i,
      subleaf: null,
      eax: view.getUint32(o, true),
      ebx: view.getUint32(o + 4, true),
      ecx: view.getUint32(o + 8, true),
      edx: view.getUint32(o + 12, true),
    });
  }
  // The extended range must reach the brand leaves.
  const ext = entries.find((e) => e.leaf === 0x8000_0000);
  if (ext && ext.eax < 0x8000_0004) ext.eax = 0x8000_0004;
  if (!ext) entries.push({ leaf: 0x8000_0000, subleaf: null, eax: 0x8000_0004, ebx: 0, ecx: 0, edx: 0 });
  entries.sort((a, b) => a.leaf - b.leaf || (a.subleaf ?? 0) - (b.subleaf ?? 0));
  return { vendor: cpuid.vendor, entries };
}

/** The host CPU's brand string, as Linux reports it. */
function hostBrand(): string | undefined {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim();
  } catch {
    return undefined;
  }
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');
const key = (e: CpuidEntry): string => `${e.leaf}:${e.subleaf ?? '-'}`;

export const CPUID_TESTS = [
  phdTest('cpuid', 'cpuid_instance_spec_round_trip_test', async (ctx) => {
    const profile = withBrand(await defaultCpuid(ctx), BRAND);
    const vm = await ctx.spawnVm(testosRomConfig(ctx, 'cpuid_instance_spec_round_trip_test').cpuid(profile));
    await vm.instanceEnsure();
    const got = await vm.getSpec();
    check(got.spec.type === 'Present' && got.spec.value.board.cpuid, `${vm.name}: no cpuid in the spec read back`);
    const back = got.spec.value.board.cpuid;
    expectEqual(back.vendor, profile.vendor, 'cpuid vendor read back');
    const norm = (c: Cpuid): string[] =>
      c.entries.map((e) => `${key(e)}=${hex8(e.eax)},${hex8(e.ebx)},${hex8(e.ecx)},${hex8(e.edx)}`).sort();
    expectEqual(norm(back), norm(profile), 'cpuid entries read back');
  }),

  phdTest('cpuid', 'cpuid_boot_test', async (ctx) => {
    const profile = withBrand(await defaultCpuid(ctx), BRAND);
    const vm = await ctx.spawnVm(testosRomConfig(ctx, 'cpuid_boot_test').cpuid(profile));
    await launchAndBoot(vm);
    const brand = await vm.runShellCommand('brand');
    if (brand !== BRAND && ctx.host.pvm && brand === hostBrand()) {
      // Not the VM's CPUID at all but the host CPU's: the instruction never reached KVM.
      ctx.skip(
        `the guest read the host CPU's brand (${JSON.stringify(brand)}), not the VM's: on this nested-PVM host ` +
          'CPUID executed at CPL3 runs natively, and the test OS runs its `brand`/`cpuid` commands at CPL3; ' +
          'the test needs them to execute CPUID at CPL0',
      );
    }
    expectEqual(brand, BRAND, 'the brand string the guest reads');
    for (const e of profile.entries.filter((x) => x.leaf >= 0x8000_0002 && x.leaf <= 0x8000_0004)) {
      expectEqual(
        await vm.runShellCommand(`cpuid ${e.leaf.toString(16)}`),
        `eax=${hex8(e.eax)} ebx=${hex8(e.ebx)} ecx=${hex8(e.ecx)} edx=${hex8(e.edx)}`,
        `CPUID leaf 0x${e.leaf.toString(16)} in the guest`,
      );
    }
  }),
];
