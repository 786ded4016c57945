// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// nmi: POST /instance/nmi delivers an NMI to the guest's vCPU 0; the test
// OS counts the NMIs it takes (`nmi` → `nmis=N`).

import { PhdAssertion, phdTest, type TestVm } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, testosRomConfig } from './helpers.js';

/** Poll `nmi` until it shows `want` (delivery is asynchronous), for up to 5 s. */
async function waitForNmis(vm: TestVm, want: number): Promise<void> {
  const deadline = Date.now() + 5000;
  let last = '';
  while (Date.now() < deadline) {
    last = await vm.runShellCommand('nmi');
    if (last === `nmis=${want}`) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new PhdAssertion(`${vm.name}: expected nmis=${want} after injecting NMIs, the guest says ${last}`);
}

export const NMI_TESTS = [
  phdTest('nmi', 'nmi_delivery_test', async (ctx) => {
    const vm = await ctx.spawnVm(testosRomConfig(ctx, 'nmi_delivery_test'));
    await launchAndBoot(vm);
    expectEqual(await vm.runShellCommand('nmi'), 'nmis=0', 'NMIs taken before any was injected');
    await vm.client.instanceIssueNmi();
    await waitForNmis(vm, 1);
    await vm.client.instanceIssueNmi();
    await vm.client.instanceIssueNmi();
    await waitForNmis(vm, 3);
  }),
];
