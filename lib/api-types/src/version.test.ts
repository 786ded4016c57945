// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_VERSION, API_VERSIONS, parseApiVersion } from './version.js';

test('the API version is 5.0.0, the newest published one', () => {
  assert.equal(API_VERSION, '5.0.0');
  assert.equal(Object.values(API_VERSIONS).at(-1), API_VERSION);
  assert.deepEqual(Object.values(API_VERSIONS), ['1.0.0', '2.0.0', '3.0.0', '4.0.0', '5.0.0']);
});

test('published versions are accepted as themselves', () => {
  for (const v of ['1.0.0', '2.0.0', '3.0.0', '4.0.0', '5.0.0']) {
    assert.deepEqual(parseApiVersion(v), { ok: true, version: v, effective: v });
  }
});

test('versions between published ones behave as the one below', () => {
  assert.deepEqual(parseApiVersion('4.2.1'), { ok: true, version: '4.2.1', effective: '4.0.0' });
  assert.deepEqual(parseApiVersion('1.0.7'), { ok: true, version: '1.0.7', effective: '1.0.0' });
  // A pre-release comes before its release.
  assert.deepEqual(parseApiVersion('3.0.0-rc.1'), { ok: true, version: '3.0.0-rc.1', effective: '2.0.0' });
  assert.deepEqual(parseApiVersion('5.0.0-alpha'), { ok: true, version: '5.0.0-alpha', effective: '4.0.0' });
  assert.deepEqual(parseApiVersion('2.0.0+build.7'), { ok: true, version: '2.0.0+build.7', effective: '2.0.0' });
});

test('a missing header is refused', () => {
  assert.deepEqual(parseApiVersion(undefined), { ok: false, message: 'missing expected header "api-version"' });
});

test('an unparsable header is refused', () => {
  for (const v of ['', 'abc', '5', '5.0', 'v5.0.0', '05.0.0', '5.0.0.0', ' 5.0.0', '5.0.0-', '5.0.0-01', '5.0.0+']) {
    assert.deepEqual(
      parseApiVersion(v),
      {
        ok: false,
        message: `bad value for header "api-version": expected a version like 5.0.0, got ${JSON.stringify(v)}`,
      },
      v,
    );
  }
});

test('a version newer than 5.0.0 is refused', () => {
  for (const v of ['5.0.1', '5.1.0', '6.0.0', '6.0.0-rc.1', '18446744073709551616.0.0']) {
    assert.deepEqual(
      parseApiVersion(v),
      { ok: false, message: `server does not support this API version: ${v} (the newest it supports is 5.0.0)` },
      v,
    );
  }
  // Build metadata counts (the semver crate orders it after none), so this is newer than 5.0.0.
  assert.equal(parseApiVersion('5.0.0+build').ok, false);
});

test('a version older than 1.0.0 is refused', () => {
  for (const v of ['0.9.0', '1.0.0-rc.1', '0.0.0']) {
    assert.deepEqual(
      parseApiVersion(v),
      { ok: false, message: `server does not support this API version: ${v} (the oldest it supports is 1.0.0)` },
      v,
    );
  }
});
