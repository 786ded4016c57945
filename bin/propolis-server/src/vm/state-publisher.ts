// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// One VM's published state: the instance state, the migration statuses and
// a generation number that goes up by one with every change (gen 1 is the
// first state). The state monitor long-polls it: a request for a generation
// already reached answers at once with the current state, a later one waits
// for it. When the VM has run down the publisher closes; a wait for a
// generation it never reached then ends with `closed` (the API's 410).
//
// Threading: main thread.

import assert from 'node:assert/strict';
import type { InstanceMigrateStatusResponse, InstanceState } from '../../../../lib/api-types/src/index.js';

/**
 * The published states each state may be followed by. `Failed` may follow
 * any state that is not final (a start, reset or the driver itself can
 * fail); `Destroyed` and `Failed` are final. Migrating and Repairing are
 * never published by this server.
 */
export const TRANSITIONS: Readonly<Record<InstanceState, readonly InstanceState[]>> = {
  Creating: ['Starting', 'Stopping', 'Failed'],
  Starting: ['Running', 'Stopped', 'Failed'],
  Running: ['Rebooting', 'Stopping', 'Failed'],
  Rebooting: ['Running', 'Failed'],
  Stopping: ['Stopped', 'Failed'],
  Stopped: ['Destroyed', 'Failed'],
  Migrating: ['Failed'],
  Repairing: ['Failed'],
  Failed: [],
  Destroyed: [],
};

export interface PublishedState {
  gen: number;
  state: InstanceState;
  migration: InstanceMigrateStatusResponse;
}

export type WaitResult = { kind: 'state'; value: PublishedState } | { kind: 'closed' } | { kind: 'aborted' };

interface Waiter {
  gen: number;
  resolve: (r: WaitResult) => void;
}

export class StatePublisher {
  private current: PublishedState;
  private closedFlag = false;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners: ((s: PublishedState) => void)[] = [];

  constructor(initial: InstanceState) {
    this.current = { gen: 1, state: initial, migration: { migration_in: null, migration_out: null } };
  }

  get value(): PublishedState {
    return this.current;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Called with every published state (logs, metrics). */
  onChange(fn: (s: PublishedState) => void): void {
    this.listeners.push(fn);
  }

  publish(state: InstanceState): void {
    assert(!this.closedFlag, `state ${state} published after the publisher closed`);
    assert(
      TRANSITIONS[this.current.state].includes(state),
      `instance state ${this.current.state} cannot be followed by ${state}`,
    );
    this.current = { ...this.current, gen: this.current.gen + 1, state };
    for (const fn of this.listeners) fn(this.current);
    for (const w of [...this.waiters]) {
      if (w.gen <= this.current.gen) {
        this.waiters.delete(w);
        w.resolve({ kind: 'state', value: this.current });
      }
    }
  }

  /** No more states: waiters for later generations get `closed`. */
  close(): void {
    this.closedFlag = true;
    for (const w of this.waiters) w.resolve({ kind: 'closed' });
    this.waiters.clear();
  }

  /** The current state once its generation is at least `gen`. */
  waitFor(gen: number, signal?: AbortSignal): Promise<WaitResult> {
    if (gen <= this.current.gen) return Promise.resolve({ kind: 'state', value: this.current });
    if (this.closedFlag) return Promise.resolve({ kind: 'closed' });
    if (signal?.aborted) return Promise.resolve({ kind: 'aborted' });
    return new Promise((resolve) => {
      const w: Waiter = { gen, resolve };
      this.waiters.add(w);
      signal?.addEventListener(
        'abort',
        () => {
          if (this.waiters.delete(w)) resolve({ kind: 'aborted' });
        },
        { once: true },
      );
    });
  }

  /** Waiters outstanding (tests: a disconnected client leaves none behind). */
  get waiting(): number {
    return this.waiters.size;
  }
}
