// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Name and MAC rules, as pure functions (no privileges needed).
//
// Threading: main thread.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LinkNameError, NetnsNameError } from './errors.js';
import { checkLinkName, checkNetnsName, formatMac, parseMac } from './names.js';

test('link names: 1..15 bytes of [A-Za-z0-9_.-], not an option, not a template', () => {
  for (const good of ['tap0', 'vm-1_net.0', 'x', 'fifteen-bytes-x', 'A.b']) assert.equal(checkLinkName(good), good);
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['sixteen-bytes-xx', /16 bytes; at most 15/],
    ['a b', /only ASCII/],
    ['a/b', /only ASCII/],
    ['a:b', /only ASCII/],
    ['tap%d', /only ASCII/],
    ['ünï', /only ASCII/],
    ['tap\n0', /only ASCII/],
    ['-up', /must not start with "-"/],
    ['.', /reserved/],
    ['..', /reserved/],
  ];
  for (const [name, why] of bad) {
    assert.throws(
      () => checkLinkName(name),
      (e: unknown) =>
        e instanceof LinkNameError && e.code === 'LINK_NAME_INVALID' && e.link === name && why.test(e.message),
      JSON.stringify(name),
    );
  }
});

test('namespace names', () => {
  for (const good of ['ptsns-1-1', 'a', 'x'.repeat(64)]) assert.equal(checkNetnsName(good), good);
  for (const bad of ['', '../etc', 'a/b', '-n', '.hidden', 'x'.repeat(65), 'a b']) {
    assert.throws(() => checkNetnsName(bad), NetnsNameError, JSON.stringify(bad));
  }
});

test('MAC text round-trips and rejects malformed input', () => {
  assert.deepEqual(parseMac('02:00:5E:00:00:0a'), Uint8Array.of(2, 0, 0x5e, 0, 0, 10));
  assert.equal(formatMac(Uint8Array.of(2, 0, 0x5e, 0, 0, 10)), '02:00:5e:00:00:0a');
  for (const bad of ['', '02:00:5e:00:00', '02-00-5e-00-00-0a', '02:00:5e:00:00:0g', '002:00:5e:00:00:0a']) {
    assert.throws(() => parseMac(bad), RangeError, bad);
  }
  assert.throws(() => formatMac(new Uint8Array(5)), RangeError);
});
