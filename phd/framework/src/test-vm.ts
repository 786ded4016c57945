// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// `TestVm`: one VM under its own propolis-server, driven through the API
// (propolis-client) and its serial console, as the original PHD's TestVm:
// launch, run, stop, reset, state waits, boot waits, shell commands
// (shell.ts). Teardown stops the instance, waits up to 5 s for Destroyed,
// ends the server process and releases the disks.
//
// Threading: main thread.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type {
  InstanceEnsureRequest,
  InstanceGetResponse,
  InstanceSpec,
  InstanceSpecGetResponse,
  InstanceState,
} from '../../../lib/api-types/src/index.js';
import { PropolisApiError, PropolisClient, type WebSocketClass } from '../../../lib/propolis-client/src/index.js';
import type { DiskSet } from './disks.js';
import { PhdAssertion } from './errors.js';
import type { GuestOs, GuestStep } from './guest-os/guest-os.js';
import { SerialReader } from './serial/console.js';
import type { ServerProcess } from './server-process.js';
import { DEFAULT_WAIT_MS, GuestShell, ShellCommand } from './shell.js';

export interface TestVmInit {
  name: string;
  logDir: string;
  server: ServerProcess;
  spec: InstanceSpec;
  guestOs: GuestOs;
  disks: DiskSet;
  /** Called before each API reset is requested (the framework's own tests inject faults here). */
  beforeReset?: (vm: TestVm) => void | Promise<void>;
}

/** An API call that failed: the server's status and error code, when it answered. */
export class VmApiError extends PhdAssertion {
  constructor(
    message: string,
    /** HTTP status; 0 when the server did not answer. */
    readonly status: number,
    readonly errorCode: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class TestVm {
  readonly name: string;
  readonly client: PropolisClient;
  readonly spec: InstanceSpec;
  readonly guestOs: GuestOs;
  readonly disks: DiskSet;
  readonly server: ServerProcess;
  readonly logDir: string;
  private serial: SerialReader | undefined;
  private guestShell: GuestShell | undefined;
  private tornDown = false;
  private readonly beforeReset: TestVmInit['beforeReset'];
  readonly instanceId = randomUUID();

  constructor(init: TestVmInit) {
    this.name = init.name;
    this.server = init.server;
    this.spec = init.spec;
    this.guestOs = init.guestOs;
    this.disks = init.disks;
    this.logDir = init.logDir;
    this.beforeReset = init.beforeReset;
    this.client = new PropolisClient(init.server.baseUrl, { WebSocket: WebSocket as unknown as WebSocketClass });
  }

  get serialLogPath(): string {
    return join(this.logDir, `${this.name}.serial.log`);
  }

  // ---- the instance through the API ----

  /** PUT /instance (retried for 2 s while the server is unreachable), then attach the serial console. */
  async instanceEnsure(): Promise<void> {
    const body: InstanceEnsureRequest = {
      properties: {
        id: this.instanceId,
        name: this.name,
        description: 'a PHD test VM',
        metadata: {
          project_id: randomUUID(),
          silo_id: randomUUID(),
          sled_id: randomUUID(),
          sled_model: 'phd',
          sled_revision: 1,
          sled_serial: 'phd-sled',
        },
      },
      init: { method: 'Spec', value: { spec: this.spec } },
    };
    const deadline = Date.now() + 2000;
    for (;;) {
      try {
        await this.client.instanceEnsure(body);
        break;
      } catch (e) {
        if (!(e instanceof PropolisApiError) || e.status !== 0 || Date.now() > deadline) {
          throw this.apiError('instance ensure', e);
        }
        await sleep(100);
      }
    }
    await this.attachSerial();
  }

  private async attachSerial(): Promise<void> {
    // From offset 0: anything the guest printed before we attached is replayed.
    const source = this.client.serialConsole({ fromStart: 0 });
    await source.opened;
    this.serial = new SerialReader(source, {
      name: `${this.name}'s serial console`,
      kind: this.guestOs.bufferKind,
      logPath: this.serialLogPath,
      ...(this.guestOs.crashPattern ? { crashPattern: this.guestOs.crashPattern } : {}),
    });
    this.guestShell = new GuestShell(this.serial, this.guestOs, this.name);
  }

  /** Ensure and run. */
  async launch(): Promise<void> {
    await this.instanceEnsure();
    await this.run();
  }

  async run(): Promise<void> {
    await this.putState('Run');
  }

  async stop(): Promise<void> {
    await this.putState('Stop');
  }

  /** Ask for a reboot through the API (the original's `reset`). The console's unconsumed text is dropped. */
  async reset(): Promise<void> {
    await this.beforeReset?.(this);
    this.serial?.clear();
    await this.putState('Reboot');
  }

  private async putState(s: 'Run' | 'Stop' | 'Reboot'): Promise<void> {
    try {
      await this.client.instanceStatePut(s);
    } catch (e) {
      throw this.apiError(`state change to ${s}`, e);
    }
  }

  get(): Promise<InstanceGetResponse> {
    return this.client.instanceGet();
  }

  getSpec(): Promise<InstanceSpecGetResponse> {
    return this.client.instanceSpecGet();
  }

  async state(): Promise<InstanceState> {
    return (await this.get()).instance.state;
  }

  /** The state monitor's current generation. */
  async stateGeneration(): Promise<number> {
    return (await this.client.instanceStateMonitor(0)).gen;
  }

  /**
   * Wait until the instance is in `state` (at generation `fromGen` or
   * later); fails on timeout or when it ends in another terminal state.
   */
  async waitForState(state: InstanceState, timeoutMs = DEFAULT_WAIT_MS, fromGen = 0): Promise<number> {
    try {
      return (await this.client.waitForState(state, { timeoutMs, fromGen })).gen;
    } catch (e) {
      throw this.apiError(`waiting for ${state}`, e);
    }
  }

  private apiError(what: string, e: unknown): Error {
    if (e instanceof PropolisApiError) {
      return new VmApiError(
        `${this.name}: ${what}: ${e.status ? `${e.status} ` : ''}${e.errorCode ? `${e.errorCode}: ` : ''}${e.message}`,
        e.status,
        e.errorCode,
        { cause: e },
      );
    }
    return e instanceof Error ? e : new Error(String(e));
  }

  // ---- the serial console ----

  private console(): SerialReader {
    if (!this.serial) throw new PhdAssertion(`${this.name}: no serial console (the instance was not ensured)`);
    return this.serial;
  }

  /** The guest's shell over the console. */
  shell(): GuestShell {
    if (!this.guestShell) throw new PhdAssertion(`${this.name}: no serial console (the instance was not ensured)`);
    return this.guestShell;
  }

  /**
   * Wait for the guest to boot to its shell prompt (the adapter's boot
   * sequence, then its after-boot commands); the boot output.
   */
  waitToBoot(timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return this.shell().waitToBoot(timeoutMs);
  }

  /** Run scripted console steps (the original's serial sequences). */
  runSteps(steps: readonly GuestStep[], timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return this.shell().runSteps(steps, timeoutMs);
  }

  /** Type `text` on the console as is. */
  async sendSerialStr(text: string): Promise<void> {
    await this.console().write(text);
  }

  /** Wait for `text` (last occurrence; consumed); the text before it. */
  waitForSerialOutput(text: string | RegExp, timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return this.console().waitFor(text, timeoutMs);
  }

  /** Drop the console's unconsumed text. */
  clearSerialBuffer(): void {
    this.serial?.clear();
  }

  /** Everything COM1 has said, from the server's history (GET /instance/serial/history). */
  async serialHistory(): Promise<string> {
    let text = '';
    let offset = 0;
    for (;;) {
      const h = await this.client.instanceSerialHistoryGet({ fromStart: offset, maxBytes: 256 * 1024 });
      if (h.data.length === 0) return text;
      text += Buffer.from(h.data).toString('latin1');
      offset = h.last_byte_offset;
    }
  }

  /** Run a shell command (shell.ts); await it for the output. */
  runShellCommand(command: string): ShellCommand {
    return new ShellCommand(() => this.shell(), command);
  }

  /** Reboot from inside the guest and wait for it to come back (the original's `graceful_reboot`). */
  gracefulReboot(timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    return this.shell().reboot(timeoutMs);
  }

  // ---- teardown ----

  get isTornDown(): boolean {
    return this.tornDown;
  }

  /**
   * Stop the instance (a 424 — no instance — is fine), wait up to 5 s for
   * Destroyed, end the server process and release the disks. Never throws.
   */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    if (this.server.running) {
      try {
        await this.client.instanceStatePut('Stop');
        await this.client.waitForState('Destroyed', { timeoutMs: 5000 });
      } catch {
        // No instance, already Failed, or slow to stop: the kill below ends it anyway.
      }
    }
    await this.serial?.close();
    await this.server.kill();
    this.disks.release();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
