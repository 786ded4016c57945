// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// framework: the serial console path end to end (guest UART → server →
// websocket → terminal model → matching) with output that spans many
// lines and lines far longer than a terminal is wide, both ways: typed
// input echoed back and guest output.

import { phdTest } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, testosRomConfig } from './helpers.js';

export const FRAMEWORK_TESTS = [
  phdTest('framework', 'multiline_serial_test', async (ctx) => {
    const vm = await ctx.spawnVm(testosRomConfig(ctx, 'multiline_serial_test'));
    await launchAndBoot(vm);
    // More lines than a 24-row screen, each one checked.
    const want = Array.from({ length: 60 }, (_, i) => `line ${i + 1}`).join('\n');
    expectEqual(await vm.runShellCommand('lines 60'), want, '`lines 60` output');
    // Several words echoed back on one line, twice in a row (the second must not match the first).
    expectEqual(await vm.runShellCommand('echo hello world'), 'hello world', '`echo hello world`');
    expectEqual(await vm.runShellCommand('echo hello world'), 'hello world', 'the same command again');
  }),

  phdTest('framework', 'long_line_serial_test', async (ctx) => {
    const vm = await ctx.spawnVm(testosRomConfig(ctx, 'long_line_serial_test'));
    await launchAndBoot(vm);
    // A typed line of 300 characters (its echo wraps any 80-column terminal) comes back whole.
    const word = Array.from({ length: 300 }, (_, i) => String.fromCharCode(0x61 + (i % 26))).join('');
    expectEqual(await vm.runShellCommand(`echo ${word}`), word, 'a 300-character word echoed');
    // And a 2000-character line of output.
    const digits = Array.from({ length: 2000 }, (_, i) => String(i % 10)).join('');
    expectEqual(await vm.runShellCommand('longline 2000'), digits, '`longline 2000` output');
  }),
];
