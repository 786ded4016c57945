// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial console's keyboard escapes, byte by byte and across reads.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ConsoleInput } from './console-input.js';

const A = 0x01;
const C = 0x03;

function feed(ci: ConsoleInput, bytes: number[] | string): { send: number[]; exit: boolean } {
  const r = ci.feed(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : Uint8Array.from(bytes));
  return { send: [...r.send], exit: r.exit };
}

it('plain bytes pass through', () => {
  assert.deepEqual(feed(new ConsoleInput(), 'ls -l\r'), {
    send: [...new TextEncoder().encode('ls -l\r')],
    exit: false,
  });
});

it('Ctrl-A sends the next byte as is, even across reads', () => {
  const ci = new ConsoleInput();
  assert.deepEqual(feed(ci, [A]), { send: [], exit: false });
  assert.deepEqual(feed(ci, [C]), { send: [C], exit: false });
  assert.deepEqual(feed(ci, [A, A]), { send: [A], exit: false });
  assert.deepEqual(feed(ci, [A, 0x78, 0x79]), { send: [0x78, 0x79], exit: false });
  assert.deepEqual(feed(ci, [A, C, A, A, 0x7a]), { send: [C, A, 0x7a], exit: false });
});

it('a bare Ctrl-C leaves; what came before it in the same read is still sent', () => {
  assert.deepEqual(feed(new ConsoleInput(), [C]), { send: [], exit: true });
  assert.deepEqual(feed(new ConsoleInput(), [0x71, C, 0x72]), { send: [0x71], exit: true });
});
