// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// smoke: the original's smoke tests, on the run's default guest (the test
// OS booted from an NVMe disk by SeaBIOS unless the runner says otherwise;
// they use only what every guest adapter offers: boot, `nproc`, reboot),
// plus one that boots the test OS both ways (as the bootrom and from disk).

import { check, phdTest, testosBootedVia } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, testosDiskConfig, testosRomConfig } from './helpers.js';

export const SMOKE_TESTS = [
  phdTest('smoke', 'nproc_test', async (ctx) => {
    const vm = await ctx.spawnVm(ctx.vmConfig('nproc_test').cpus(6));
    await launchAndBoot(vm);
    expectEqual(await vm.runShellCommand('nproc'), '6', 'nproc in a guest with 6 vCPUs');
  }),

  phdTest('smoke', 'api_reboot_test', async (ctx) => {
    const vm = await ctx.spawnDefaultVm('api_reboot_test');
    await launchAndBoot(vm);
    const gen = await vm.stateGeneration();
    await vm.reset();
    // Rebooting, then Running: at least two generations on.
    await vm.waitForState('Running', 60_000, gen + 2);
    await vm.waitToBoot();
  }),

  phdTest('smoke', 'guest_reboot_test', async (ctx) => {
    const vm = await ctx.spawnDefaultVm('guest_reboot_test');
    await launchAndBoot(vm);
    const gen = await vm.stateGeneration();
    await vm.gracefulReboot();
    // The reset came from the guest, and the server went through Rebooting.
    const now = await vm.stateGeneration();
    check(
      now >= gen + 2,
      `${vm.name}: state generation ${gen} → ${now} across a guest reboot; expected Rebooting, Running`,
    );
    expectEqual(await vm.state(), 'Running', `${vm.name}'s state after the guest rebooted`);
  }),

  phdTest('smoke', 'instance_spec_get_test', async (ctx) => {
    const vm = await ctx.spawnVm(ctx.vmConfig('instance_spec_get_test').cpus(4).memoryMib(3072));
    await vm.launch();
    const got = await vm.getSpec();
    check(got.spec.type === 'Present', `${vm.name}: spec is ${got.spec.type}`);
    expectEqual(got.spec.value.board.cpus, 4, 'board.cpus in the instance spec');
    expectEqual(got.spec.value.board.memory_mb, 3072, 'board.memory_mb in the instance spec');
    expectEqual(got.properties.name, 'instance_spec_get_test', 'properties.name');
  }),

  phdTest(
    'smoke',
    'testos_boot_paths_test',
    async (ctx) => {
      const rom = await ctx.spawnVm(testosRomConfig(ctx, 'rom'));
      const disk = await ctx.spawnVm(testosDiskConfig(ctx, 'disk', 'virtio'));
      const [romBoot, diskBoot] = await Promise.all([launchAndBoot(rom), launchAndBoot(disk)]);
      expectEqual(testosBootedVia(romBoot), 'rom', 'how the test OS booted as the bootrom');
      expectEqual(testosBootedVia(diskBoot), 'disk', 'how the test OS booted from a virtio disk');
      // SeaBIOS ran first on the disk boot, and printed on COM1.
      const history = await disk.serialHistory();
      check(/SeaBIOS \(version/.test(history), `${disk.name}: no SeaBIOS banner in the serial history`);
    },
    { vms: 2 },
  ),
];
