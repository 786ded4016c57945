// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// linux: the Linux guest adapters end to end — a root shell on the serial
// console, commands, a reboot. They need hardware virtualization; on the
// project's nested-PVM hosts they report themselves skipped with the
// reason (framework.ts checks before building or fetching anything).

import { phdTest } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot } from './helpers.js';

export const LINUX_TESTS = [
  phdTest('linux', 'initramfs_shell_test', async (ctx) => {
    const vm = await ctx.spawnVm(ctx.vmConfig('initramfs_shell_test').guest('linux').cpus(2));
    await launchAndBoot(vm);
    expectEqual(await vm.runShellCommand('uname -s'), 'Linux', 'uname -s');
    expectEqual(await vm.runShellCommand('nproc'), '2', 'nproc');
  }),

  phdTest('linux', 'disk_image_login_test', async (ctx) => {
    const config = ctx.vmConfig('disk_image_login_test').guest('linux-disk', 'virtio').cpus(2);
    const vm = await ctx.spawnVm(config);
    await launchAndBoot(vm);
    expectEqual(await vm.runShellCommand('uname -s'), 'Linux', 'uname -s');
    expectEqual(await vm.runShellCommand('nproc'), '2', 'nproc');
    await vm.gracefulReboot();
    expectEqual(await vm.runShellCommand('nproc'), '2', 'nproc after a reboot');
  }),
];
