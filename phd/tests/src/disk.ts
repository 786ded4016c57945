// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// disk: the storage backends end to end, checked by the guest against the
// test OS's data pattern (which the host computes too, helpers.ts):
//
//  - in-memory (blob) backend: a read-only disk whose contents travel in
//    the spec reads back exactly, and refuses writes;
//  - file backend: what the guest writes to a virtio and an NVMe disk is
//    in the host file, survives a reset, and survives a stop and a new VM
//    started on the same files.
//
// A mismatch names the disk (spec name, interface, PCI address, the
// guest's name for it) and the first LBA that differs, as the test OS
// reports it.

import { readFileSync } from 'node:fs';
import { check, DiskBackend, DiskSource, PhdAssertion, phdTest, type TestVm } from '../../framework/src/index.js';
import {
  diskPattern,
  expectEqual,
  fnv1a64,
  guestDiskAt,
  hex2,
  launchAndBoot,
  testosDiskConfig,
  testosRomConfig,
} from './helpers.js';

/** Check `count` sectors at `lba` of the disk at PCI `device` hold the pattern of `seed`, in the guest. */
async function verifyInGuest(
  vm: TestVm,
  disk: { name: string; device: number },
  lba: number,
  count: number,
  seed: number,
  when: string,
): Promise<void> {
  const g = await guestDiskAt(vm, disk.device);
  const cmd = `dverify ${g.name} ${lba} ${count} ${seed}`;
  const out = await vm.runShellCommand(cmd).ignoreStatus();
  if (out !== 'ok') {
    throw new PhdAssertion(
      `${vm.name}: disk ${disk.name} (${g.kind} 00:${hex2(disk.device)}.0, ${g.name} in the guest) ${when}: ` +
        `\`${cmd}\` → ${out}`,
    );
  }
}

const DATA_LBA = 2048;
const DATA_SECTORS = 256;

export const DISK_TESTS = [
  phdTest('disk', 'in_memory_backend_smoke_test', async (ctx) => {
    const seed = 42;
    const sectors = 256;
    const contents = diskPattern(seed, 0, sectors);
    const config = testosRomConfig(ctx, 'in_memory_backend_smoke_test').dataDisk(
      'blob-disk',
      DiskSource.bytes(contents, 'pattern 42'),
      'virtio',
      DiskBackend.inMemory(true),
      24,
    );
    const vm = await ctx.spawnVm(config);
    await launchAndBoot(vm);
    const g = await guestDiskAt(vm, 24);
    expectEqual(g.sectors, sectors, `size of blob-disk (${g.name}) in sectors`);
    await verifyInGuest(vm, { name: 'blob-disk', device: 24 }, 0, sectors, seed, 'as the spec gave it');
    expectEqual(
      await vm.runShellCommand(`dsum ${g.name} 0 ${sectors}`),
      `sum=${fnv1a64(contents)}`,
      'the guest checksum of the whole blob disk',
    );
    // Read-only: a write fails, and the contents stay.
    const refused = await vm.runShellCommand(`dwrite ${g.name} 0 1 7`).checkErr();
    check(/^error: /.test(refused), `a write to the read-only blob disk printed ${JSON.stringify(refused)}`);
    await verifyInGuest(vm, { name: 'blob-disk', device: 24 }, 0, 1, seed, 'after a refused write');
  }),

  phdTest('disk', 'file_backend_persistence_test', async (ctx) => {
    const disks = [
      { name: 'data-virtio', device: 5, iface: 'virtio' as const, seed: 7 },
      { name: 'data-nvme', device: 6, iface: 'nvme' as const, seed: 8 },
    ];
    const config = testosDiskConfig(ctx, 'file_backend_persistence_test', 'virtio');
    for (const d of disks) config.dataDisk(d.name, DiskSource.blank(4 << 20), d.iface, DiskBackend.file(), d.device);
    const vm = await ctx.spawnVm(config);
    await launchAndBoot(vm);
    for (const d of disks) {
      const g = await guestDiskAt(vm, d.device);
      expectEqual(
        await vm.runShellCommand(`dwrite ${g.name} ${DATA_LBA} ${DATA_SECTORS} ${d.seed}`),
        'ok',
        `dwrite to ${d.name}`,
      );
      // What the guest wrote is in the host file, byte for byte.
      const file = readFileSync(vm.disks.path(d.name));
      const got = file.subarray(DATA_LBA * 512, (DATA_LBA + DATA_SECTORS) * 512);
      const want = diskPattern(d.seed, DATA_LBA, DATA_SECTORS);
      if (!got.equals(want)) {
        let lba = DATA_LBA;
        while (
          got
            .subarray((lba - DATA_LBA) * 512, (lba - DATA_LBA + 1) * 512)
            .equals(want.subarray((lba - DATA_LBA) * 512, (lba - DATA_LBA + 1) * 512))
        )
          lba++;
        throw new PhdAssertion(`disk ${d.name}: the host file differs from what the guest wrote, first at lba ${lba}`);
      }
    }

    await vm.reset();
    await vm.waitToBoot();
    for (const d of disks) await verifyInGuest(vm, d, DATA_LBA, DATA_SECTORS, d.seed, 'after a reset');

    await vm.stop();
    await vm.waitForState('Destroyed');
    const next = await ctx.spawnSuccessorVm('file_backend_persistence_test_successor', vm);
    await launchAndBoot(next);
    for (const d of disks) await verifyInGuest(next, d, DATA_LBA, DATA_SECTORS, d.seed, 'in a new VM on the same file');
  }),
];
