// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// boot_order: the spec's boot order (fw_cfg `bootorder`) decides which of
// several bootable disks SeaBIOS boots, and an unbootable disk first in
// the order is passed over.
//
// To tell two copies of the test OS image apart, each gets its own 8-byte
// marker in its boot sector's (empty, unused) partition table, at offset
// 0x1C0. The firmware loads the boot disk's sector 0 at 0x7C00 and the
// test OS never reuses that memory, so in the guest `memsum 7dc0 8` is
// the FNV-1a of the marker of the disk that actually booted.
//
// SeaBIOS boots the first hard disk of the order only (it is BIOS drive
// 0x80; the others are not tried if it fails), unlike OVMF, which the
// original's tests use: the unbootable-disk test is adapted to that.

import { readFileSync } from 'node:fs';
import {
  check,
  DiskBackend,
  DiskSource,
  phdTest,
  testosBootedVia,
  type TestContext,
  type TestVm,
} from '../../framework/src/index.js';
import { expectEqual, fnv1a64, launchAndBoot } from './helpers.js';

const MARKER_OFFSET = 0x1c0;

function markedImage(ctx: TestContext, marker: string): Uint8Array {
  const img = new Uint8Array(readFileSync(ctx.artifacts.path('testos')));
  img.set(new TextEncoder().encode(marker.padEnd(8).slice(0, 8)), MARKER_OFFSET);
  return img;
}

/** Which marker the booted disk carried: checked against the candidates. */
async function bootedMarker(vm: TestVm, candidates: string[]): Promise<string> {
  const out = await vm.runShellCommand(`memsum ${(0x7c00 + MARKER_OFFSET).toString(16)} 8`);
  const hit = candidates.find((m) => out === `sum=${fnv1a64(new TextEncoder().encode(m))}`);
  return hit ?? `none of ${candidates.join(', ')} (memsum printed ${out})`;
}

export const BOOT_ORDER_TESTS = [
  phdTest(
    'boot_order',
    'configurable_boot_order',
    async (ctx) => {
      const a = markedImage(ctx, 'PHDBOOTA');
      const b = markedImage(ctx, 'PHDBOOTB');
      const config = (name: string, order: string[]) =>
        ctx
          .vmConfig(name)
          .bootrom('seabios')
          .removeDisk('boot-disk')
          .dataDisk('disk-a', DiskSource.bytes(a, 'testos.img, marker A'), 'nvme', DiskBackend.file(), 4)
          .dataDisk('disk-b', DiskSource.bytes(b, 'testos.img, marker B'), 'virtio', DiskBackend.file(), 24)
          .bootOrder(order);
      const vmA = await ctx.spawnVm(config('order_a_first', ['disk-a', 'disk-b']));
      const vmB = await ctx.spawnVm(config('order_b_first', ['disk-b', 'disk-a']));
      const [bootA, bootB] = await Promise.all([launchAndBoot(vmA), launchAndBoot(vmB)]);
      expectEqual(testosBootedVia(bootA), 'disk', `${vmA.name} booted via`);
      expectEqual(testosBootedVia(bootB), 'disk', `${vmB.name} booted via`);
      expectEqual(await bootedMarker(vmA, ['PHDBOOTA', 'PHDBOOTB']), 'PHDBOOTA', 'boot order [disk-a, disk-b] booted');
      expectEqual(await bootedMarker(vmB, ['PHDBOOTA', 'PHDBOOTB']), 'PHDBOOTB', 'boot order [disk-b, disk-a] booted');
    },
    { vms: 2 },
  ),

  phdTest('boot_order', 'unbootable_disk_skipped', async (ctx) => {
    ctx.skip(
      'SeaBIOS boots only the first hard disk of the boot order (BIOS drive 0x80) and does not go on to the ' +
        'next one, so an unbootable first disk is not skipped; the original runs this with OVMF, which cannot ' +
        'run on these hosts (boot_order::unbootable_first_disk_test checks what SeaBIOS does)',
    );
  }),

  phdTest(
    'boot_order',
    'unbootable_first_disk_test',
    async (ctx) => {
      // The same two disks in both orders: the blank one first is tried (and fails), the test OS first boots.
      const config = (name: string, order: string[]) =>
        ctx
          .vmConfig(name)
          .bootrom('seabios')
          .removeDisk('boot-disk')
          .dataDisk('blank', DiskSource.blank(1 << 20), 'virtio', DiskBackend.file(), 4)
          .dataDisk(
            'testos',
            DiskSource.bytes(markedImage(ctx, 'PHDBOOTA'), 'testos.img'),
            'virtio',
            DiskBackend.file(),
            5,
          )
          .bootOrder(order);
      const blankFirst = await ctx.spawnVm(config('blank_first', ['blank', 'testos']));
      const testosFirst = await ctx.spawnVm(config('testos_first', ['testos', 'blank']));
      await Promise.all([blankFirst.launch(), testosFirst.launch()]);
      const [, boot] = await Promise.all([
        blankFirst.waitForSerialOutput('No bootable device.', 60_000),
        testosFirst.waitToBoot(),
      ]);
      const history = await blankFirst.serialHistory();
      check(
        history.includes('Boot failed: not a bootable disk'),
        `${blankFirst.name}: SeaBIOS did not try the blank disk first: ${JSON.stringify(history.slice(-300))}`,
      );
      check(
        !history.includes('testos: booted'),
        `${blankFirst.name}: the test OS booted although the blank disk came first`,
      );
      expectEqual(testosBootedVia(boot), 'disk', `${testosFirst.name} booted via`);
      expectEqual(await bootedMarker(testosFirst, ['PHDBOOTA']), 'PHDBOOTA', 'the disk first in the order');
    },
    { vms: 2 },
  ),
];
