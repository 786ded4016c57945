// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Guest OS adapters: what the framework must know about a guest to drive
// it over its serial console — how it boots to a shell (waits and typed
// input, including any login), what its prompt looks like, how Enter is
// typed, how to ask for the previous command's status, how to reboot it
// from inside, which terminal model suits its output, and whether it can
// run on this host at all. Tests talk to `TestVm`, which follows these.
//
// Threading: none; constant descriptions.

import type { HostInfo } from '../host.js';
import type { BufferKind } from '../serial/terminal.js';

/** One step of a scripted console interaction (the original's serial sequence steps). */
export type GuestStep =
  | { kind: 'wait'; text: string | RegExp; timeoutMs?: number }
  | { kind: 'write'; text: string }
  | { kind: 'clear' }
  | { kind: 'buffer'; buffer: BufferKind }
  | { kind: 'debounce'; ms: number };

export type GuestOsName = 'testos' | 'linux' | 'linux-disk';

export interface GuestOs {
  readonly name: GuestOsName;
  /** From power-on (or reset) to the first shell prompt, which the last step consumes. */
  readonly bootSequence: readonly GuestStep[];
  /** The shell prompt (matched at the end of each command). */
  readonly prompt: string;
  /** What typing Enter sends. */
  readonly enter: string;
  /** A command printing the previous command's exit status as a number. */
  readonly statusCommand: string;
  /** A command that reboots the guest from inside. */
  readonly rebootCommand: string;
  /** The terminal model for its console. */
  readonly bufferKind: BufferKind;
  /** Commands run once after every boot (e.g. widening the terminal), status checked. */
  readonly afterBootCommands: readonly string[];
  /** Output meaning the guest crashed: waits fail at once instead of timing out. */
  readonly crashPattern?: RegExp;
  /** Why this guest cannot run on `host`, or undefined. */
  unavailableOn(host: HostInfo): string | undefined;
}
