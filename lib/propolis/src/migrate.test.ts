// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers, schema, t } from './migrate.js';

const V1 = schema('test-dev', 1, { a: t.u8, b: t.u64, c: t.bool, d: t.bytes(4), e: t.array(t.u16, 2) });

describe('schema', () => {
  it('round-trips through JSON, 64-bit values intact', () => {
    const v = { a: 7, b: 0xffff_ffff_ffff_fffen, c: true, d: new Uint8Array([1, 2]), e: [65535, 0] };
    const p = JSON.parse(JSON.stringify(V1.encode(v)));
    assert.deepEqual(p.kind, 'test-dev');
    assert.deepEqual(V1.decode(p.data), v);
  });

  it('names the bad field', () => {
    const ok = V1.encode({ a: 1, b: 2n, c: false, d: new Uint8Array(0), e: [] }).data as Record<string, unknown>;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...ok, a: 256 }, /test-dev\.v1\.a/],
      [{ ...ok, b: '18446744073709551616' }, /\.b: u64 out of range/],
      [{ ...ok, b: 5 }, /\.b/],
      [{ ...ok, d: [1, 2, 3, 4, 5] }, /\.d/],
      [{ ...ok, e: [1, 70000] }, /\.e\[1\]/],
      [{ ...ok, z: 1 }, /\.z: unknown field/],
      [{ a: 1 }, /\.b: missing/],
    ];
    for (const [data, re] of cases)
      assert.throws(
        () => V1.decode(data),
        (e: unknown) => e instanceof MigrateError && re.test(e.message),
      );
  });
});

describe('PayloadOffers', () => {
  it('requires each known payload exactly once and refuses leftovers', () => {
    const p = V1.encode({ a: 1, b: 2n, c: false, d: new Uint8Array(0), e: [] });
    const o = new PayloadOffers([p]);
    o.take(V1);
    o.finish();
    assert.throws(
      () => new PayloadOffers([]).take(V1),
      (e: unknown) => e instanceof MigrateError && e.code === 'DataMissing',
    );
    const extra = new PayloadOffers([p, { kind: 'other', version: 1, data: {} }]);
    extra.take(V1);
    assert.throws(
      () => extra.finish(),
      (e: unknown) => e instanceof MigrateError && e.code === 'UnexpectedPayload',
    );
  });
});
