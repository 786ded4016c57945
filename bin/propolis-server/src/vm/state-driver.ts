// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The state driver (the seed's state_driver.rs): the one task that changes
// a VM's state. It takes inputs from two sources — guest events (power-off,
// reset, failure) reported by the Machine, and external requests accepted
// by the request queue — always preferring guest events, and runs each to
// completion, publishing the instance states on the way:
//
//   Start            Starting → Running            (start fails: → Failed after rundown)
//   Stop, power-off  Stopping → Stopped            (→ Destroyed after rundown)
//   Stop during a blocked start          Stopped   (→ Destroyed; nothing is paused)
//   Reboot, reset    Rebooting → Running
//   guest failure    Stopping              (→ Failed after rundown)
//
// `run` resolves when the VM has halted, with the state to publish once
// rundown completes. The driver never destroys the machine: rundown does.
//
// Threading: main thread.

import type { Machine, MachineEvent } from '../../../../lib/propolis/src/vmm/machine.js';
import type { Logger } from '../log.js';
import { RequestQueue, type Disposition, type StateChangeRequest } from './request-queue.js';
import type { StatePublisher } from './state-publisher.js';

/** The state published after rundown. */
export type DriverOutcome = 'Destroyed' | 'Failed';

export interface DriverHooks {
  /**
   * Awaited after `Starting` is published and before the machine starts:
   * lets tests hold a start open, as a Crucible activation can upstream.
   */
  beforeStart?: () => Promise<void>;
}

type GuestInput = { kind: 'halt' | 'reset' | 'failure'; reason: string };

/** Guest events by precedence: a halt makes a pending reset moot, a failure both. */
const GUEST_RANK: Record<GuestInput['kind'], number> = { failure: 3, halt: 2, reset: 1 };

/** A wake-up that is not lost when it comes before the wait. */
class Signal {
  private pending = false;
  private waiter: (() => void) | undefined;

  notify(): void {
    this.pending = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  wait(): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((r) => {
      this.waiter = () => {
        this.pending = false;
        r();
      };
    });
  }
}

export class StateDriver {
  readonly queue = new RequestQueue();
  private readonly wake = new Signal();
  /** Set when a Stop is queued, so a blocked start can give way to it. */
  private readonly stopQueued = new Signal();
  private guest: GuestInput | undefined;
  /** The guest event being handled: duplicates reported by other vCPUs meanwhile are dropped. */
  private handling: GuestInput['kind'] | undefined;
  private started = false;
  private finished = false;
  /** Completed reboots, guest- or API-initiated (metrics). */
  reboots = 0;

  constructor(
    private readonly machine: Machine,
    private readonly publisher: StatePublisher,
    private readonly log: Logger,
    private readonly hooks: DriverHooks = {},
  ) {}

  /** Whether the machine's vCPUs were ever started. */
  get hasStarted(): boolean {
    return this.started;
  }

  /** An external request; answered at once, carried out in order by `run`. */
  request(req: StateChangeRequest): Disposition {
    const d = this.queue.tryQueue(req);
    this.log.info('state change requested', {
      request: req,
      disposition: d.kind,
      ...(d.kind === 'denied' ? { reason: d.reason } : {}),
    });
    if (d.kind === 'enqueued') {
      if (req === 'Stop') this.stopQueued.notify();
      this.wake.notify();
    }
    return d;
  }

  /** A guest event from the Machine (any vCPU, or a device on the main thread). */
  guestEvent(e: MachineEvent): void {
    if (this.finished) return;
    if (this.handling === e.type && e.type !== 'failure') {
      this.log.debug('duplicate guest event dropped', { event: e.type, vcpu: e.vcpu, reason: e.reason });
      return;
    }
    if (!this.guest || GUEST_RANK[e.type] > GUEST_RANK[this.guest.kind]) {
      this.guest = { kind: e.type, reason: e.reason };
    }
    this.log.info('guest event', { event: e.type, vcpu: e.vcpu, reason: e.reason });
    this.wake.notify();
  }

  async run(): Promise<DriverOutcome> {
    try {
      for (;;) {
        const g = this.guest;
        if (g) {
          this.guest = undefined;
          this.handling = g.kind;
          try {
            const out = await this.onGuestEvent(g);
            if (out) return out;
          } finally {
            this.handling = undefined;
          }
          continue;
        }
        const req = this.queue.pop();
        if (req) {
          const out = await this.onRequest(req);
          if (out) return out;
          continue;
        }
        await this.wake.wait();
      }
    } finally {
      this.finished = true;
    }
  }

  private async onGuestEvent(g: GuestInput): Promise<DriverOutcome | undefined> {
    switch (g.kind) {
      case 'halt':
        return this.halt(() => this.queue.complete({ kind: 'Stop' }));
      case 'reset':
        await this.reboot();
        return undefined;
      case 'failure':
        this.log.error('the VM failed', { reason: g.reason });
        await this.halt(() => this.queue.complete({ kind: 'Failed' }), false);
        return 'Failed';
    }
  }

  private async onRequest(req: StateChangeRequest): Promise<DriverOutcome | undefined> {
    switch (req) {
      case 'Start':
        return this.start();
      case 'Stop':
        return this.halt(() => this.queue.complete({ kind: 'Stop' }));
      case 'Reboot':
        await this.reboot();
        this.queue.complete({ kind: 'Reboot' });
        return undefined;
      case 'MigrateAsSource':
        // Never queued: the API answers migration requests itself.
        this.queue.complete({ kind: 'MigrateAsSource', ok: false });
        return undefined;
    }
  }

  private async start(): Promise<DriverOutcome | undefined> {
    this.publisher.publish('Starting');
    let abandoned = false;
    let machineStarting = false;
    const starting = (async () => {
      await this.hooks.beforeStart?.();
      // A stop that came while the hook held the start: do not start at all.
      if (abandoned) return 'abandoned' as const;
      machineStarting = true;
      this.started = true;
      await this.machine.start();
      return 'started' as const;
    })();
    // Whichever comes first: the start finishing, or a stop being queued.
    const stop = this.stopQueued.wait().then(() => 'stop' as const);
    let first: 'started' | 'abandoned' | 'stop';
    try {
      first = await Promise.race([starting, stop]);
    } catch (e) {
      this.log.error('the VM failed to start', { err: e });
      this.queue.complete({ kind: 'Start', ok: false });
      return 'Failed';
    }
    if (first === 'started') {
      this.publisher.publish('Running');
      this.queue.complete({ kind: 'Start', ok: true });
      return undefined;
    }
    // A stop while the start was blocked: no pause or halt of half-started
    // parts; the VM is Stopped and rundown destroys it. A start held before
    // the machine (the hook) is dropped; one inside Machine.start, which
    // does not block for long, is let finish so that rundown does not
    // destroy the machine under it.
    abandoned = true;
    this.log.info('stop requested while the VM was starting; abandoning the start');
    this.queue.take('Stop');
    this.publisher.publish('Stopped');
    this.queue.complete({ kind: 'Stop' });
    if (machineStarting) await starting.catch(() => {});
    else starting.catch(() => {});
    return 'Destroyed';
  }

  private async reboot(): Promise<void> {
    this.publisher.publish('Rebooting');
    await this.machine.reset();
    this.reboots++;
    this.publisher.publish('Running');
  }

  /** Stopping → (vCPUs and devices paused) → Stopped. */
  private async halt(complete: () => void, publishStopped = true): Promise<DriverOutcome> {
    this.publisher.publish('Stopping');
    if (this.started) {
      try {
        await this.machine.pause();
      } catch (e) {
        this.log.error('pausing the VM to halt it failed', { err: e });
      }
    }
    complete();
    if (publishStopped) this.publisher.publish('Stopped');
    return 'Destroyed';
  }
}
