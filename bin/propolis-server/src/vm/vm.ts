// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The server's one instance, through its whole life (the seed's vm/mod.rs):
//
//   NoVm ─ensure→ WaitingForInit ─objects built→ Active ─driver exits→ Rundown ─machine destroyed→ RundownComplete
//                        └──────── creation fails ───────────────────────────────────────────────────────┘
//   RundownComplete ─ensure→ WaitingForInit …   (a fresh VM: new publisher, gen from 1)
//
// Ensure is not idempotent: while a VM is being created, is active or is
// running down, another ensure is refused (409). Endpoints that need the
// VM's objects (state changes, serial console, NMI, disks) answer 424
// unless a VM is Active; the instance, its spec, the state monitor and the
// migration status answer for the latest VM, even after it is gone, and
// 424 only before any VM existed.
//
// Rundown closes the serial clients (1001 "VM stopped"), destroys the
// machine and then publishes the final state (Destroyed, or Failed) and
// closes the publisher, so state-monitor waits for later generations end.
//
// Threading: main thread.

import type {
  InstanceEnsureRequest,
  InstanceEnsureResponse,
  InstanceGetResponse,
  InstanceMigrateStatusResponse,
  InstanceProperties,
  InstanceSpec,
  InstanceSpecGetResponse,
  InstanceStateMonitorResponse,
  InstanceStateRequested,
} from '../../../../lib/api-types/src/index.js';
import {
  cpuidToSpec,
  InstanceSpecError,
  pcConfigFromSpec,
  validateInstanceSpec,
} from '../../../../lib/propolis/src/platform/from-spec.js';
import type { DirectBootConfig } from '../../../../lib/propolis/src/platform/direct-boot.js';
import { PcPlatform } from '../../../../lib/propolis/src/platform/pc.js';
import { errors } from '../errors.js';
import type { Logger } from '../log.js';
import { SerialConsole } from '../serial/console.js';
import { SerialHistoryError, type HistoryOffset } from '../serial/history.js';
import type { WebSocket } from 'ws';
import { StateDriver, type DriverHooks, type DriverOutcome } from './state-driver.js';
import { StatePublisher } from './state-publisher.js';

export interface VmOptions {
  bootrom: Uint8Array;
  bootromVersion?: string;
  kvmPath?: string;
  /** Boot this Linux kernel directly in every VM (propolis-server --kernel; an extension). */
  directBoot?: DirectBootConfig;
  log: Logger;
  hooks?: DriverHooks;
}

/** What is kept of a VM from ensure on, including after it is gone. */
interface VmRecord {
  properties: InstanceProperties;
  /** The spec as read back (host CPUID filled in once the machine exists). */
  spec: InstanceSpec;
  publisher: StatePublisher;
}

/** A VM's live objects. */
export interface ActiveVm {
  readonly pc: PcPlatform;
  readonly driver: StateDriver;
  readonly serial: SerialConsole;
}

export type VmPhase =
  | { kind: 'NoVm' }
  | { kind: 'WaitingForInit'; record: VmRecord; created: Promise<unknown> }
  | { kind: 'Active'; record: VmRecord; active: ActiveVm; rundown: Promise<void> }
  | { kind: 'Rundown'; record: VmRecord; active: ActiveVm; rundown: Promise<void> }
  | { kind: 'RundownComplete'; record: VmRecord };

const REQUESTS: Record<InstanceStateRequested, 'Start' | 'Stop' | 'Reboot'> = {
  Run: 'Start',
  Stop: 'Stop',
  Reboot: 'Reboot',
};

/** Serial history reads return at most this much unless asked for less. */
export const DEFAULT_HISTORY_BYTES = 16 * 1024;

/** The spec as the seed reads it back: host CPUID when none was given, no default hypervisor interface. */
function readbackSpec(spec: InstanceSpec, pc: PcPlatform | undefined): InstanceSpec {
  const board = { ...spec.board };
  if (board.guest_hv_interface?.type === 'bhyve') delete board.guest_hv_interface;
  if (!board.cpuid && pc) board.cpuid = cpuidToSpec(pc.machine.baseCpuid);
  return { ...spec, board };
}

export class Vm {
  private phase: VmPhase = { kind: 'NoVm' };
  private shuttingDown = false;
  /** VMs created since the server started (metrics, logs). */
  created = 0;

  constructor(private readonly opts: VmOptions) {}

  get state(): VmPhase {
    return this.phase;
  }

  /** The live VM, when there is one. */
  get active(): ActiveVm | undefined {
    return this.phase.kind === 'Active' || this.phase.kind === 'Rundown' ? this.phase.active : undefined;
  }

  /** The latest VM's publisher (also after rundown). */
  get publisher(): StatePublisher | undefined {
    return this.phase.kind === 'NoVm' ? undefined : this.phase.record.publisher;
  }

  private record(): VmRecord {
    if (this.phase.kind === 'NoVm') throw errors.noInstance();
    return this.phase.record;
  }

  private activeVm(): ActiveVm {
    if (this.phase.kind !== 'Active') throw errors.noInstance();
    return this.phase.active;
  }

  // ---- ensure ----

  async ensure(req: InstanceEnsureRequest, log: Logger): Promise<InstanceEnsureResponse> {
    if (req.init.method === 'MigrationTarget') {
      if (this.busy()) throw errors.alreadyInitialized();
      throw errors.migrationNotImplemented();
    }
    const spec = req.init.value.spec;
    try {
      validateInstanceSpec(spec);
    } catch (e) {
      if (e instanceof InstanceSpecError) {
        throw errors.badRequest(`failed to generate internal instance spec: ${e.message}`, e);
      }
      throw e;
    }
    if (this.busy()) throw errors.alreadyInitialized();
    if (this.shuttingDown) throw errors.shuttingDown();

    const record: VmRecord = {
      properties: req.properties,
      spec: readbackSpec(spec, undefined),
      publisher: new StatePublisher('Creating'),
    };
    const vmLog = this.opts.log.child({ component: 'vm', instance: req.properties.id });
    record.publisher.onChange((s) => vmLog.info('instance state published', { state: s.state, gen: s.gen }));
    const created = this.create(record, spec, vmLog);
    this.phase = { kind: 'WaitingForInit', record, created };
    this.created++;
    log.info('creating instance', { name: req.properties.name, id: req.properties.id });
    let active: ActiveVm;
    try {
      active = await created;
    } catch (e) {
      // Creation failed: the instance is Failed and a new ensure may follow.
      record.publisher.publish('Failed');
      record.publisher.close();
      this.phase = { kind: 'RundownComplete', record };
      vmLog.error('instance creation failed', { err: e });
      throw errors.createFailed(e instanceof Error ? e.message : String(e), e);
    }
    record.spec = readbackSpec(spec, active.pc);
    const rundown = this.drive(record, active, vmLog);
    this.phase = { kind: 'Active', record, active, rundown };
    return { migrate: null };
  }

  /** A VM is being created, is active or is running down. */
  private busy(): boolean {
    const k = this.phase.kind;
    return k === 'WaitingForInit' || k === 'Active' || k === 'Rundown';
  }

  private async create(record: VmRecord, spec: InstanceSpec, log: Logger): Promise<ActiveVm> {
    const id = record.properties.id;
    const config = pcConfigFromSpec(spec, {
      // The kernel VM is named after the instance, as upstream.
      name: id,
      uuid: id,
      bootrom: this.opts.bootrom,
      ...(this.opts.bootromVersion === undefined ? {} : { bootromVersion: this.opts.bootromVersion }),
      ...(this.opts.kvmPath === undefined ? {} : { kvmPath: this.opts.kvmPath }),
    });
    if (this.opts.directBoot) config.directBoot = this.opts.directBoot;
    const pc = await PcPlatform.create(config);
    try {
      return this.attach(record, pc, log);
    } catch (e) {
      await pc.machine.destroy().catch(() => {});
      throw e;
    }
  }

  private attach(record: VmRecord, pc: PcPlatform, log: Logger): ActiveVm {
    const driver = new StateDriver(pc.machine, record.publisher, log.child({ component: 'state-driver' }), {
      ...this.opts.hooks,
    });
    pc.machine.onEvent((e) => driver.guestEvent(e));
    const serial = new SerialConsole(pc.com.com1, log.child({ component: 'serial' }));
    serial.start();
    pc.pvpanic?.onPanic((counts) => log.warn('guest reported a panic (pvpanic)', { counts }));
    if (log.enabled('trace')) {
      // Firmware's debug-port log, line by line, only when someone reads it.
      let line = '';
      pc.debugPort.pipeTo((bytes) => {
        line += Buffer.from(bytes).toString('latin1');
        const parts = line.split('\n');
        line = parts.pop() ?? '';
        for (const p of parts) log.trace('guest debug port', { line: p.replace(/\r$/, '') });
      });
    }
    return { pc, driver, serial };
  }

  /** Run the state driver, then run the VM down. Resolves at RundownComplete. */
  private async drive(record: VmRecord, active: ActiveVm, log: Logger): Promise<void> {
    let outcome: DriverOutcome;
    try {
      outcome = await active.driver.run();
    } catch (e) {
      log.error('the state driver failed', { err: e });
      outcome = 'Failed';
    }
    if (this.phase.kind === 'Active') this.phase = { ...this.phase, kind: 'Rundown' };
    log.info('running the VM down', { outcome });
    await active.serial.close().catch((e: unknown) => log.warn('closing the serial console failed', { err: e }));
    await active.pc.machine.destroy().catch((e: unknown) => log.error('destroying the VM failed', { err: e }));
    try {
      record.publisher.publish(outcome);
    } catch (e) {
      log.error('publishing the final state failed', { err: e, outcome });
    }
    record.publisher.close();
    this.phase = { kind: 'RundownComplete', record };
  }

  // ---- instance and spec ----

  get(): InstanceGetResponse {
    const r = this.record();
    return { instance: { properties: r.properties, state: r.publisher.value.state } };
  }

  spec(): InstanceSpecGetResponse {
    const r = this.record();
    return { properties: r.properties, state: r.publisher.value.state, spec: { type: 'Present', value: r.spec } };
  }

  migrationStatus(): InstanceMigrateStatusResponse {
    return this.record().publisher.value.migration;
  }

  /**
   * The state once its generation reaches `gen`; undefined when the client
   * went away first (`signal`). 410 if the VM's publisher closes first.
   */
  async monitor(gen: number, signal?: AbortSignal): Promise<InstanceStateMonitorResponse | undefined> {
    const r = await this.record().publisher.waitFor(gen, signal);
    switch (r.kind) {
      case 'state':
        return { gen: r.value.gen, state: r.value.state, migration: r.value.migration };
      case 'closed':
        throw errors.neverReaches(gen);
      case 'aborted':
        return undefined;
    }
  }

  // ---- state changes ----

  requestState(s: InstanceStateRequested): void {
    const d = this.activeVm().driver.request(REQUESTS[s]);
    if (d.kind === 'denied') throw errors.stateChangeDenied(d.reason);
  }

  // ---- serial console ----

  serialHistory(q: { from_start?: number; most_recent?: number; max_bytes?: number }): {
    data: number[];
    last_byte_offset: number;
  } {
    const serial = this.activeVm().serial;
    const at = historyOffset(q);
    if (at === undefined) throw errors.badRequest("Exactly one of 'from_start' or 'most_recent' must be specified.");
    try {
      const { data, lastByteOffset } = serial.history.read(at, q.max_bytes ?? DEFAULT_HISTORY_BYTES);
      return { data: Array.from(data), last_byte_offset: lastByteOffset };
    } catch (e) {
      if (e instanceof SerialHistoryError) throw errors.badRequest(e.message, e);
      throw e;
    }
  }

  /** 424 unless active; the caller upgrades, then calls `attachSerial`. */
  checkSerial(): void {
    this.activeVm();
  }

  attachSerial(ws: WebSocket, q: { from_start?: number; most_recent?: number }): void {
    const active = this.active;
    if (!active || this.phase.kind !== 'Active') {
      ws.close(1001, 'VM stopped');
      return;
    }
    active.serial.attach(ws, historyOffset(q));
  }

  // ---- NMI, disks ----

  async nmi(): Promise<void> {
    const a = this.activeVm();
    if (!a.driver.hasStarted) throw errors.notRunning('an NMI');
    await a.pc.machine.injectNmi(0);
  }

  /** Crucible disk endpoints: no backend here is a Crucible backend. */
  crucibleDisk(id: string): never {
    this.activeVm();
    throw errors.noSuchDisk(id);
  }

  // ---- shutdown ----

  /** Stop the VM (if any) in order and wait for its rundown; refuse new ensures. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (;;) {
      const p = this.phase;
      switch (p.kind) {
        case 'NoVm':
        case 'RundownComplete':
          return;
        case 'WaitingForInit':
          await p.created.catch(() => {});
          // Let ensure move the phase on before looking again.
          await new Promise<void>((r) => setImmediate(r));
          continue;
        case 'Active':
          p.active.driver.request('Stop');
          await p.rundown;
          continue;
        case 'Rundown':
          await p.rundown;
          continue;
      }
    }
  }
}

/** Exactly one of from_start/most_recent, as the history takes it. */
function historyOffset(q: { from_start?: number; most_recent?: number }): HistoryOffset | undefined {
  const a = q.from_start !== undefined;
  const b = q.most_recent !== undefined;
  if (a === b) return undefined;
  return a ? { fromStart: q.from_start! } : { mostRecent: q.most_recent! };
}
