// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The state publisher: generations, long-poll waits, the end of a VM's
// publisher (the API's 410), withdrawn waits, and the transition table.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StatePublisher, TRANSITIONS } from './state-publisher.js';

describe('StatePublisher', () => {
  it('starts at generation 1 and counts every change', () => {
    const p = new StatePublisher('Creating');
    assert.deepEqual(p.value, { gen: 1, state: 'Creating', migration: { migration_in: null, migration_out: null } });
    p.publish('Starting');
    p.publish('Running');
    assert.equal(p.value.gen, 3);
    assert.equal(p.value.state, 'Running');
  });

  it('answers a reached generation at once with the current state, waits for a later one', async () => {
    const p = new StatePublisher('Creating');
    p.publish('Starting');
    assert.deepEqual(await p.waitFor(0), { kind: 'state', value: p.value });
    assert.deepEqual(await p.waitFor(2), { kind: 'state', value: p.value });
    const later = p.waitFor(4);
    assert.equal(p.waiting, 1);
    p.publish('Running');
    assert.equal(p.waiting, 1, 'generation 3 is not 4');
    p.publish('Stopping');
    const r = await later;
    assert.equal(r.kind === 'state' && r.value.state, 'Stopping');
    assert.equal(p.waiting, 0);
  });

  it('ends waits for generations it will never reach when it closes', async () => {
    const p = new StatePublisher('Creating');
    const w = p.waitFor(5);
    p.publish('Failed');
    p.close();
    assert.deepEqual(await w, { kind: 'closed' });
    assert.deepEqual(await p.waitFor(9), { kind: 'closed' });
    assert.equal((await p.waitFor(2)).kind, 'state', 'the final state stays readable');
    assert.throws(() => p.publish('Creating'), /after the publisher closed/);
  });

  it('withdraws a wait whose client went away', async () => {
    const p = new StatePublisher('Creating');
    const ac = new AbortController();
    const w = p.waitFor(10, ac.signal);
    assert.equal(p.waiting, 1);
    ac.abort();
    assert.deepEqual(await w, { kind: 'aborted' });
    assert.equal(p.waiting, 0);
  });

  it('refuses transitions the lifecycle does not have', () => {
    const p = new StatePublisher('Creating');
    assert.throws(() => p.publish('Running'), /Creating cannot be followed by Running/);
    p.publish('Starting');
    p.publish('Stopped'); // a stop while the start was held
    p.publish('Destroyed');
    assert.throws(() => p.publish('Failed'), /Destroyed cannot be followed by Failed/);
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      if (from !== 'Failed' && from !== 'Destroyed') assert.ok(tos.includes('Failed'), `${from} can fail`);
    }
    assert.deepEqual(TRANSITIONS.Failed, []);
    assert.deepEqual(TRANSITIONS.Destroyed, []);
  });
});
