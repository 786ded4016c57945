// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The request queue's rules one by one (with the seed's denial texts,
// spelled out here so a wrong constant in the code cannot hide), then
// random sequences of requests and completions checked against invariants
// of the seed's queue.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DENIED, RequestQueue, type Completion, type StateChangeRequest } from './request-queue.js';

const denied = (reason: string): { kind: 'denied'; reason: string } => ({ kind: 'denied', reason });
const Q = { kind: 'enqueued' };
const I = { kind: 'ignored' };

function running(): RequestQueue {
  const q = new RequestQueue();
  assert.deepEqual(q.tryQueue('Start'), Q);
  assert.equal(q.pop(), 'Start');
  q.complete({ kind: 'Start', ok: true });
  assert.equal(q.state, 'Running');
  return q;
}

describe('RequestQueue rules', () => {
  it('has the seed’s denial texts', () => {
    assert.deepEqual(Object.values(DENIED).sort(), [
      'Instance failed to start or halted due to a failure',
      'Instance has already halted',
      'Instance has migrated out and is being torn down',
      'Instance is already a migration source',
      'Instance is currently starting',
      'Instance is preparing to stop',
      'Operation cannot be performed on a migration source',
      'Operation requires an active instance',
    ]);
  });

  it('Run: queued once; a second one while starting or running is ignored', () => {
    const q = new RequestQueue();
    assert.deepEqual(q.tryQueue('Start'), Q);
    assert.equal(q.state, 'StartPending');
    assert.deepEqual(q.tryQueue('Start'), I);
    assert.equal(q.length, 1);
    assert.deepEqual(running().tryQueue('Start'), I);
  });

  it('Run after a Stop was queued is refused: the instance is preparing to stop', () => {
    const q = new RequestQueue();
    assert.deepEqual(q.tryQueue('Stop'), Q);
    assert.deepEqual(q.tryQueue('Start'), denied('Instance is preparing to stop'));
  });

  it('Stop: queued in every live state, duplicates ignored', () => {
    for (const q of [new RequestQueue(), new RequestQueue('StartPending'), running()]) {
      assert.deepEqual(q.tryQueue('Stop'), Q);
      assert.deepEqual(q.tryQueue('Stop'), I);
    }
  });

  it('Reboot: needs a running instance, ignored when one is pending', () => {
    assert.deepEqual(new RequestQueue().tryQueue('Reboot'), denied('Operation requires an active instance'));
    const starting = new RequestQueue();
    starting.tryQueue('Start');
    assert.deepEqual(starting.tryQueue('Reboot'), denied('Instance is currently starting'));
    const q = running();
    assert.deepEqual(q.tryQueue('Reboot'), Q);
    assert.deepEqual(q.tryQueue('Reboot'), I);
    assert.equal(q.pop(), 'Reboot');
    assert.deepEqual(q.tryQueue('Reboot'), I, 'still pending until the driver completes it');
    q.complete({ kind: 'Reboot' });
    assert.deepEqual(q.tryQueue('Reboot'), Q);
    assert.deepEqual(q.tryQueue('Stop'), Q);
    assert.deepEqual(q.tryQueue('Reboot'), denied('Instance is preparing to stop'));
  });

  it('migration out: one at a time, not before starting; reboots refused on a source', () => {
    assert.deepEqual(new RequestQueue().tryQueue('MigrateAsSource'), denied('Operation requires an active instance'));
    const q = running();
    assert.deepEqual(q.tryQueue('MigrateAsSource'), Q);
    assert.deepEqual(q.tryQueue('MigrateAsSource'), denied('Instance is already a migration source'));
    assert.deepEqual(q.tryQueue('Reboot'), denied('Operation cannot be performed on a migration source'));
    // As upstream: accepted while a start is pending.
    const s = new RequestQueue();
    s.tryQueue('Start');
    assert.deepEqual(s.tryQueue('MigrateAsSource'), Q);
  });

  it('terminal states: Stop is ignored, anything else refused with the state’s reason', () => {
    const cases: [Completion[], string][] = [
      [[{ kind: 'Stop' }], 'Instance has already halted'],
      [[{ kind: 'Failed' }], 'Instance failed to start or halted due to a failure'],
      [[{ kind: 'MigrateAsSource', ok: true }], 'Instance has migrated out and is being torn down'],
    ];
    for (const [completions, reason] of cases) {
      const q = running();
      for (const c of completions) q.complete(c);
      assert.deepEqual(q.tryQueue('Stop'), I);
      for (const r of ['Start', 'Reboot', 'MigrateAsSource'] as const) assert.deepEqual(q.tryQueue(r), denied(reason));
      assert.equal(q.pop(), undefined);
    }
    const failedStart = new RequestQueue();
    failedStart.tryQueue('Start');
    failedStart.pop();
    failedStart.complete({ kind: 'Start', ok: false });
    assert.deepEqual(failedStart.tryQueue('Start'), denied('Instance failed to start or halted due to a failure'));
  });

  it('a stop taken out of order (a blocked start) leaves nothing behind', () => {
    const q = new RequestQueue();
    q.tryQueue('Start');
    assert.equal(q.pop(), 'Start');
    q.tryQueue('Stop');
    assert.equal(q.take('Stop'), true);
    assert.equal(q.take('Stop'), false);
    q.complete({ kind: 'Stop' });
    assert.equal(q.state, 'Stopped');
    assert.equal(q.length, 0);
  });
});

describe('RequestQueue under random operation sequences', () => {
  it('keeps the seed’s invariants', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 48271) % 0x7fffffff;
      return seed % n;
    };
    const reqs: StateChangeRequest[] = ['Start', 'Stop', 'Reboot', 'MigrateAsSource'];
    const reasons = new Set<string>(Object.values(DENIED));
    for (let run = 0; run < 200; run++) {
      const q = new RequestQueue(rand(5) === 0 ? 'StartPending' : 'NotStarted');
      let stopSeen = false;
      let inFlight: StateChangeRequest | undefined;
      for (let step = 0; step < 60; step++) {
        const before = q.state;
        const r = rand(3);
        if (r < 2) {
          const req = reqs[rand(reqs.length)]!;
          const stopPending = q.isStopPending;
          const d = q.tryQueue(req);
          if (d.kind === 'denied') assert.ok(reasons.has(d.reason), d.reason);
          const terminal = before === 'Stopped' || before === 'Failed' || before === 'MigratedOut';
          if (terminal) assert.notEqual(d.kind, 'enqueued', `${req} queued in ${before}`);
          if (req === 'Stop' && !terminal) assert.equal(d.kind, stopPending ? 'ignored' : 'enqueued');
          if (req === 'Stop' && terminal) assert.equal(d.kind, 'ignored');
          if (stopPending && req !== 'Stop') assert.equal(d.kind, 'denied', `${req} accepted after a stop`);
          if (req === 'Reboot' && d.kind === 'enqueued') assert.equal(before, 'Running');
          if (req === 'Start' && d.kind === 'enqueued') assert.equal(before, 'NotStarted');
          if (d.kind === 'enqueued' && req === 'Stop') stopSeen = true;
        } else if (inFlight === undefined) {
          inFlight = q.pop();
        } else {
          // The driver completes what it popped.
          const c: Completion =
            inFlight === 'Start'
              ? { kind: 'Start', ok: rand(8) !== 0 }
              : inFlight === 'MigrateAsSource'
                ? { kind: 'MigrateAsSource', ok: rand(2) === 0 }
                : { kind: inFlight };
          q.complete(c);
          inFlight = undefined;
        }
        if (q.state === 'Stopped') assert.ok(stopSeen, 'stopped without a stop');
      }
    }
  });
});
