// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The external request queue (the seed's request_queue.rs): decides, from
// what the VM is doing and what is already queued, whether a state change
// an API client asks for is queued for the state driver, ignored as a
// duplicate, or denied with a reason. The driver pops requests and reports
// back when one completes, which moves the queue's own state.
//
// A pure class: no I/O, no timers. Threading: main thread.

/** State changes a client (or the server itself) can ask for. */
export type StateChangeRequest = 'Start' | 'Stop' | 'Reboot' | 'MigrateAsSource';

/** What the queue believes the VM is doing. */
export type QueueState = 'NotStarted' | 'StartPending' | 'Running' | 'MigratedOut' | 'Stopped' | 'Failed';

/** Why a request was denied; the text is the seed's, which clients may match. */
export const DENIED = {
  InstanceNotActive: 'Operation requires an active instance',
  StartInProgress: 'Instance is currently starting',
  AlreadyMigrationSource: 'Instance is already a migration source',
  InvalidRequestForMigrationSource: 'Operation cannot be performed on a migration source',
  HaltPending: 'Instance is preparing to stop',
  InstanceMigratedOut: 'Instance has migrated out and is being torn down',
  InstanceHalted: 'Instance has already halted',
  InstanceFailed: 'Instance failed to start or halted due to a failure',
} as const;

export type DeniedReason = (typeof DENIED)[keyof typeof DENIED];

export type Disposition = { kind: 'enqueued' } | { kind: 'ignored' } | { kind: 'denied'; reason: DeniedReason };

/** Completions the state driver reports. */
export type Completion =
  | { kind: 'Start'; ok: boolean }
  | { kind: 'Reboot' }
  | { kind: 'Stop' }
  | { kind: 'MigrateAsSource'; ok: boolean }
  /** The VM failed outside any request (a guest or host failure). */
  | { kind: 'Failed' };

const ENQUEUED: Disposition = { kind: 'enqueued' };
const IGNORED: Disposition = { kind: 'ignored' };
const deny = (reason: DeniedReason): Disposition => ({ kind: 'denied', reason });

export class RequestQueue {
  private readonly queue: StateChangeRequest[] = [];
  private st: QueueState;
  private stopPending = false;
  private rebootPending = false;
  private migrateOutPending = false;

  /** `StartPending` for a VM that starts on its own (a migration target). */
  constructor(initial: 'NotStarted' | 'StartPending' = 'NotStarted') {
    this.st = initial;
  }

  get state(): QueueState {
    return this.st;
  }

  get isStopPending(): boolean {
    return this.stopPending;
  }

  get length(): number {
    return this.queue.length;
  }

  /** Decide on a request and queue it if it is accepted. */
  tryQueue(req: StateChangeRequest): Disposition {
    const d = this.decide(req);
    if (d.kind === 'enqueued') {
      this.queue.push(req);
      switch (req) {
        case 'Start':
          this.st = 'StartPending';
          break;
        case 'Stop':
          this.stopPending = true;
          break;
        case 'Reboot':
          this.rebootPending = true;
          break;
        case 'MigrateAsSource':
          this.migrateOutPending = true;
          break;
      }
    }
    return d;
  }

  private decide(req: StateChangeRequest): Disposition {
    // Terminal states first: a stop is moot, anything else is refused.
    const terminal = this.terminalReason();
    if (terminal !== undefined) return req === 'Stop' ? IGNORED : deny(terminal);
    switch (req) {
      case 'Start':
        if (this.stopPending) return deny(DENIED.HaltPending);
        if (this.st === 'StartPending' || this.st === 'Running') return IGNORED;
        return ENQUEUED;
      case 'Stop':
        return this.stopPending ? IGNORED : ENQUEUED;
      case 'Reboot':
        if (this.migrateOutPending) return deny(DENIED.InvalidRequestForMigrationSource);
        if (this.stopPending) return deny(DENIED.HaltPending);
        if (this.st === 'NotStarted') return deny(DENIED.InstanceNotActive);
        if (this.st === 'StartPending') return deny(DENIED.StartInProgress);
        if (this.rebootPending) return IGNORED;
        return ENQUEUED;
      case 'MigrateAsSource':
        if (this.migrateOutPending) return deny(DENIED.AlreadyMigrationSource);
        if (this.stopPending) return deny(DENIED.HaltPending);
        if (this.st === 'NotStarted') return deny(DENIED.InstanceNotActive);
        // As in the seed, a migration out is accepted while a start is
        // pending; the state driver refuses to begin one before it runs.
        return ENQUEUED;
    }
  }

  private terminalReason(): DeniedReason | undefined {
    switch (this.st) {
      case 'MigratedOut':
        return DENIED.InstanceMigratedOut;
      case 'Stopped':
        return DENIED.InstanceHalted;
      case 'Failed':
        return DENIED.InstanceFailed;
      default:
        return undefined;
    }
  }

  /** The next request for the state driver, oldest first. */
  pop(): StateChangeRequest | undefined {
    return this.queue.shift();
  }

  /** Remove a queued request (the driver took a stop out of order, while a start was blocked). */
  take(req: StateChangeRequest): boolean {
    const i = this.queue.indexOf(req);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  /** The driver finished a request (or the VM failed): move the queue's state. */
  complete(c: Completion): void {
    switch (c.kind) {
      case 'Start':
        this.st = c.ok ? 'Running' : 'Failed';
        break;
      case 'Reboot':
        this.rebootPending = false;
        break;
      case 'Stop':
        this.stopPending = false;
        this.st = 'Stopped';
        this.queue.length = 0;
        break;
      case 'MigrateAsSource':
        this.migrateOutPending = false;
        if (c.ok) {
          this.st = 'MigratedOut';
          this.queue.length = 0;
        }
        break;
      case 'Failed':
        this.st = 'Failed';
        this.queue.length = 0;
        break;
    }
  }
}
