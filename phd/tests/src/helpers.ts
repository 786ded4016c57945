// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// What several tests of the catalogue share: the test OS's configurations,
// its command outputs parsed (disks, lspci), host-side copies of its
// checksums and data pattern (so the host can prepare and check what the
// guest reads and writes), and expectations with messages that say what
// was expected of which VM.
//
// Threading: main thread.

import {
  check,
  DiskBackend,
  PhdAssertion,
  VmApiError,
  type DiskInterface,
  type TestContext,
  type TestVm,
  type VmConfig,
} from '../../framework/src/index.js';

/** A config booting the test OS as the bootrom (no firmware: the fastest boot). */
export function testosRomConfig(ctx: TestContext, name: string): VmConfig {
  return ctx.vmConfig(name).bootrom('testos-rom');
}

/** A config booting the test OS from a disk through SeaBIOS. */
export function testosDiskConfig(ctx: TestContext, name: string, iface: DiskInterface = 'nvme'): VmConfig {
  return ctx.vmConfig(name).bootrom('seabios').bootDisk('testos', iface, DiskBackend.file());
}

/** Launch and wait for the shell prompt; the boot output. */
export async function launchAndBoot(vm: TestVm): Promise<string> {
  await vm.launch();
  return vm.waitToBoot();
}

export function expectEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new PhdAssertion(`${what}: expected ${e}, got ${a}`);
}

/** `p` must fail with an API error (of `status`, if given); the error. */
export async function expectApiError(p: Promise<unknown>, what: string, status?: number): Promise<VmApiError> {
  let e: unknown;
  try {
    await p;
  } catch (x) {
    e = x;
  }
  check(e !== undefined, `${what}: expected the server to refuse, but it accepted`);
  if (!(e instanceof VmApiError)) throw e instanceof Error ? e : new Error(String(e));
  if (status !== undefined) check(e.status === status, `${what}: expected status ${status}, got: ${e.message}`);
  return e;
}

// ---- test OS output ----

export interface GuestDisk {
  /** vda, vdb, … / nvme0, … */
  name: string;
  kind: 'virtio' | 'nvme';
  /** PCI device number (bus 0). */
  device: number;
  function: number;
  sectors: number;
}

/** `disks`: one line per disk, `vda virtio 00:04.0 sectors=N`. */
export function parseDisks(out: string): GuestDisk[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(\S+) (virtio|nvme) 00:([0-9a-f]{2})\.([0-7]) sectors=(\d+)$/.exec(l.trim());
      if (!m) throw new PhdAssertion(`unexpected line from \`disks\`: ${JSON.stringify(l)}`);
      return {
        name: m[1]!,
        kind: m[2] as 'virtio' | 'nvme',
        device: Number.parseInt(m[3]!, 16),
        function: Number(m[4]),
        sectors: Number(m[5]),
      };
    });
}

/** The guest's name for the disk at PCI device `device`. */
export async function guestDiskAt(vm: TestVm, device: number): Promise<GuestDisk> {
  const disks = parseDisks(await vm.runShellCommand('disks'));
  const d = disks.find((x) => x.device === device && x.function === 0);
  if (!d) {
    throw new PhdAssertion(
      `${vm.name}: no disk at PCI 00:${hex2(device)}.0 in the guest; it lists: ${disks.map((x) => `${x.name}@00:${hex2(x.device)}.${x.function}`).join(', ') || 'none'}`,
    );
  }
  return d;
}

export const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

export interface PciFunction {
  slot: string;
  vendor: number;
  device: number;
  class: string;
}

/** `lspci`: `00:DD.F VVVV:DDDD class CC.SS.PP` per function. */
export function parseLspci(out: string): PciFunction[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m =
        /^(00:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}):([0-9a-f]{4}) class ([0-9a-f]{2}\.[0-9a-f]{2}\.[0-9a-f]{2})$/.exec(
          l.trim(),
        );
      if (!m) throw new PhdAssertion(`unexpected line from \`lspci\`: ${JSON.stringify(l)}`);
      return { slot: m[1]!, vendor: Number.parseInt(m[2]!, 16), device: Number.parseInt(m[3]!, 16), class: m[4]! };
    });
}

// ---- host-side copies of the test OS's arithmetic ----

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** 64-bit FNV-1a (the test OS's `memsum`/`dsum`), as 16 hex digits. */
export function fnv1a64(bytes: Uint8Array): string {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  return h.toString(16).padStart(16, '0');
}

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The test OS's `dwrite` pattern for sectors [lba, lba + count): 8-byte
 * word i of sector s is the (s·64 + i + 1)-th output of splitmix64 seeded
 * with `seed` (guests/testos/disk.c).
 */
export function diskPattern(seed: number, lba: number, count: number): Uint8Array {
  const out = new Uint8Array(count * 512);
  const view = new DataView(out.buffer);
  const s0 = BigInt(seed);
  for (let s = 0; s < count; s++) {
    for (let i = 0; i < 64; i++) {
      const k = BigInt((lba + s) * 64 + i + 1);
      view.setBigUint64(s * 512 + i * 8, mix64((s0 + 0x9e3779b97f4a7c15n * k) & MASK64), true);
    }
  }
  return out;
}
