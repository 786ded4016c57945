// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Driving a guest's shell over its serial console, as the original PHD's
// `run_shell_command`: clear the console, type the command, wait for its
// echo, press Enter, wait for the prompt, and return the output between
// the two (leading line breaks and trailing whitespace trimmed). Then the
// guest's status command runs, and the command fails unless the status is
// 0 — or, with `.checkErr()`, unless it is non-zero; `.ignoreStatus()`
// skips the check. Commands on one guest run one at a time.
//
// Threading: main thread.

import { PhdAssertion } from './errors.js';
import type { GuestOs, GuestStep } from './guest-os/guest-os.js';
import type { SerialReader } from './serial/console.js';

/** Default time for a boot step or a shell command. */
export const DEFAULT_WAIT_MS = 60_000;

export class ShellCommandError extends PhdAssertion {}

export type StatusMode = 'ok' | 'err' | 'ignore';

/**
 * A shell command to run; await it for the output. `ignoreStatus()`,
 * `checkErr()` and `timeout()` adjust it before it is awaited.
 */
export class ShellCommand implements PromiseLike<string> {
  private mode: StatusMode = 'ok';
  private waitMs = DEFAULT_WAIT_MS;
  private running: Promise<string> | undefined;

  constructor(
    private readonly shell: () => GuestShell,
    readonly command: string,
  ) {}

  /** Do not look at the command's status. */
  ignoreStatus(): this {
    this.mode = 'ignore';
    return this;
  }

  /** The command must fail (non-zero status); its output (the error) is returned. */
  checkErr(): this {
    this.mode = 'err';
    return this;
  }

  timeout(ms: number): this {
    this.waitMs = ms;
    return this;
  }

  then<A = string, B = never>(
    onFulfilled?: ((v: string) => A | PromiseLike<A>) | null,
    onRejected?: ((e: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    if (!this.running) {
      try {
        this.running = this.shell().run(this.command, this.mode, this.waitMs);
      } catch (e) {
        this.running = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return this.running.then(onFulfilled, onRejected);
  }
}

export class GuestShell {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly serial: SerialReader,
    readonly os: GuestOs,
    /** Names the guest in errors. */
    readonly name: string,
  ) {}

  /** Run a command (one at a time); see the file comment. */
  run(command: string, mode: StatusMode, timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    const go = async (): Promise<string> => {
      const output = await this.type(command, timeoutMs);
      if (mode === 'ignore') return output;
      const statusText = await this.type(this.os.statusCommand, timeoutMs);
      const status = /^\s*(\d+)\s*$/.exec(statusText)?.[1];
      if (status === undefined) {
        throw new ShellCommandError(
          `${this.name}: \`${this.os.statusCommand}\` after \`${command}\` printed ${JSON.stringify(statusText)}, not a status`,
        );
      }
      if (mode === 'ok' && status !== '0') {
        throw new ShellCommandError(`${this.name}: \`${command}\` failed (status ${status}): ${output}`);
      }
      if (mode === 'err' && status === '0') {
        throw new ShellCommandError(`${this.name}: \`${command}\` was expected to fail but succeeded: ${output}`);
      }
      return output;
    };
    const p = this.chain.then(go, go);
    this.chain = p.catch(() => {});
    return p;
  }

  /** Type a command and Enter; the output up to the next prompt. */
  private async type(command: string, timeoutMs: number): Promise<string> {
    // We are at a prompt, which an earlier wait consumed: anything left is noise.
    this.serial.clear();
    await this.serial.write(command);
    await this.serial.waitFor(command, timeoutMs);
    await this.serial.write(this.os.enter);
    const out = await this.serial.waitFor(this.os.prompt, timeoutMs);
    return out.replace(/^[\r\n]+/, '').trimEnd();
  }

  /** Run scripted console steps; the text each wait matched, with what preceded it, concatenated. */
  async runSteps(steps: readonly GuestStep[], timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    let seen = '';
    for (const s of steps) {
      switch (s.kind) {
        case 'wait': {
          const before = await this.serial.waitFor(s.text, s.timeoutMs ?? timeoutMs);
          seen += before + (typeof s.text === 'string' ? s.text : '');
          break;
        }
        case 'write':
          await this.serial.write(s.text);
          break;
        case 'clear':
          this.serial.clear();
          break;
        case 'buffer':
          this.serial.setBufferKind(s.buffer);
          break;
        case 'debounce':
          this.serial.setRepeatedCharacterDebounce(s.ms);
          break;
      }
    }
    return seen;
  }

  /** From power-on to the prompt: the boot sequence, then the after-boot commands; the boot output. */
  async waitToBoot(timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    const out = await this.runSteps(this.os.bootSequence, timeoutMs);
    for (const cmd of this.os.afterBootCommands) await this.run(cmd, 'ok', timeoutMs);
    return out;
  }

  /** Type the reboot command and wait for the guest to boot again. */
  async reboot(timeoutMs = DEFAULT_WAIT_MS): Promise<string> {
    this.serial.clear();
    await this.serial.write(this.os.rebootCommand);
    await this.serial.waitFor(this.os.rebootCommand, timeoutMs);
    await this.serial.write(this.os.enter);
    return this.waitToBoot(timeoutMs);
  }
}
