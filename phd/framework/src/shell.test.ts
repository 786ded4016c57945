// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Shell commands over a fake test OS: output between echo and prompt,
// multi-line and long output, the status check and its two opt-outs, and
// commands issued together running one after the other.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TESTOS } from './guest-os/testos.js';
import { SerialReader } from './serial/console.js';
import { GuestShell, ShellCommand, ShellCommandError } from './shell.js';
import { FakeTestOs } from './testing.js';

function setup(): { os: FakeTestOs; shell: GuestShell } {
  const os = new FakeTestOs({
    echo: (a) => [a.join(' ')],
    lines: (a) => Array.from({ length: Number(a[0]) }, (_, i) => `line ${i + 1}`),
    longline: (a) => ['x'.repeat(Number(a[0]))],
    fail: () => 'error: it failed',
  });
  const serial = new SerialReader(os.source, { name: 'vm0' });
  return { os, shell: new GuestShell(serial, TESTOS, 'vm0') };
}

const cmd = (shell: GuestShell, c: string): ShellCommand => new ShellCommand(() => shell, c);

describe('GuestShell', () => {
  it('boots through the adapter sequence and returns the boot output', async () => {
    const { os, shell } = setup();
    const booted = shell.waitToBoot(2000);
    os.boot('disk');
    assert.match(await booted, /testos: booted via disk\s+testos: ready/);
  });

  it('returns a command output, trimmed, with lines joined by \\n', async () => {
    const { os, shell } = setup();
    os.boot();
    await shell.waitToBoot(2000);
    assert.equal(await cmd(shell, 'echo hello world'), 'hello world');
    assert.equal(await cmd(shell, 'lines 3'), 'line 1\nline 2\nline 3');
    assert.equal(await cmd(shell, 'longline 500'), 'x'.repeat(500));
    // Each command is followed by `status`.
    assert.equal(os.source.typed, 'echo hello world\rstatus\rlines 3\rstatus\rlongline 500\rstatus\r');
  });

  it('fails a command whose status is not 0, unless told otherwise', async () => {
    const { os, shell } = setup();
    os.boot();
    await shell.waitToBoot(2000);
    const e = await cmd(shell, 'fail now').then(
      () => assert.fail('a failing command passed'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof ShellCommandError);
    assert.equal(e.message, 'vm0: `fail now` failed (status 1): error: it failed');
    assert.equal(await cmd(shell, 'fail').checkErr(), 'error: it failed');
    assert.equal(await cmd(shell, 'fail').ignoreStatus(), 'error: it failed');
    await assert.rejects(Promise.resolve(cmd(shell, 'echo ok').checkErr()), /expected to fail but succeeded: ok/);
  });

  it('runs commands issued together one at a time', async () => {
    const { os, shell } = setup();
    os.boot();
    await shell.waitToBoot(2000);
    const outs = await Promise.all([cmd(shell, 'echo a'), cmd(shell, 'echo b'), cmd(shell, 'lines 2')]);
    assert.deepEqual(outs, ['a', 'b', 'line 1\nline 2']);
  });
});
