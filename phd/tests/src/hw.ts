// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// hw: the PCI hardware the guest sees — the chipset functions and the
// disks where the spec puts them — stays the same across a reset and
// across stop and start of a successor VM (the original's
// lspci_lifecycle_test, through `lspci` in the test OS).

import { check, DiskBackend, DiskSource, phdTest } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, parseLspci, testosDiskConfig } from './helpers.js';

export const HW_TESTS = [
  phdTest('hw', 'lspci_lifecycle_test', async (ctx) => {
    const config = testosDiskConfig(ctx, 'lspci_lifecycle_test', 'nvme').dataDisk(
      'data-disk',
      DiskSource.blank(1 << 20),
      'virtio',
      DiskBackend.file(),
      5,
    );
    const vm = await ctx.spawnVm(config);
    await launchAndBoot(vm);
    const before = await vm.runShellCommand('lspci');
    const fns = parseLspci(before);
    const at = (slot: string): string => {
      const f = fns.find((x) => x.slot === slot);
      return f
        ? `${f.vendor.toString(16).padStart(4, '0')}:${f.device.toString(16).padStart(4, '0')} ${f.class}`
        : 'none';
    };
    // The i440FX host bridge, the PIIX3 ISA bridge, PIIX4 power management, the NVMe boot disk, the virtio disk.
    expectEqual(at('00:00.0'), '8086:1237 06.00.00', 'host bridge at 00:00.0');
    expectEqual(at('00:01.0'), '8086:7000 06.01.00', 'ISA bridge at 00:01.0');
    check(at('00:01.3').startsWith('8086:7113 06.80'), `PIIX4 PM at 00:01.3: ${at('00:01.3')}`);
    check(at('00:04.0').endsWith(' 01.08.02'), `NVMe controller at 00:04.0: ${at('00:04.0')}`);
    expectEqual(at('00:05.0').split(' ')[0], '1af4:1001', 'virtio-blk at 00:05.0');

    await vm.reset();
    await vm.waitToBoot();
    expectEqual(await vm.runShellCommand('lspci'), before, 'lspci after a reset');

    await vm.stop();
    await vm.waitForState('Destroyed');
    const next = await ctx.spawnSuccessorVm('lspci_lifecycle_test_successor', vm);
    await launchAndBoot(next);
    expectEqual(await next.runShellCommand('lspci'), before, 'lspci in a successor VM after stop and start');
  }),
];
