// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Raw mode for the interactive serial console, with the promise that the
// terminal is given back as it was however the program ends:
//
//   - normal return and errors: the caller's `finally` calls restore();
//   - process.exit and uncaught exceptions: the 'exit' handler (synchronous,
//     as setRawMode is) restores;
//   - SIGTERM, SIGHUP, SIGQUIT: handled here: restore, then the signal is
//     raised again with its default action so the parent sees it;
//   - SIGINT cannot come from the keyboard in raw mode (Ctrl-C is a byte);
//     one sent by `kill` is handled like SIGTERM.
//
// Only SIGKILL (which nothing can catch) leaves the terminal raw; `reset`
// or `stty sane` repairs it.
//
// Main thread only; at most one RawTerminal is entered at a time.

import { spawnSync } from 'node:child_process';
import type { ReadStream } from 'node:tty';

const SIGNALS = ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGINT'] as const;

export class RawTerminal {
  private entered = false;
  private readonly onExit = (): void => this.restore();
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.restore();
    // Die of the signal, as if no handler had been installed.
    process.kill(process.pid, sig);
  };

  constructor(private readonly input: ReadStream) {}

  enter(): void {
    if (this.entered) return;
    this.input.setRawMode(true);
    this.entered = true;
    // Node's raw mode keeps output processing (a guest's "\n" reaches the
    // screen as "\r\n"); the original's cfmakeraw turns it off, so the guest's
    // bytes reach the terminal unchanged. stty acts on its stdin, which is
    // this terminal. Leaving raw mode restores the whole termios Node saved
    // when entering it, OPOST included. Best effort: without stty the
    // console still works.
    spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
    process.on('exit', this.onExit);
    for (const s of SIGNALS) process.on(s, this.onSignal);
  }

  /** Idempotent; safe from any exit path. */
  restore(): void {
    if (!this.entered) return;
    this.entered = false;
    process.removeListener('exit', this.onExit);
    for (const s of SIGNALS) process.removeListener(s, this.onSignal);
    try {
      this.input.setRawMode(false);
    } catch {
      // The terminal is gone (hangup); nothing left to restore.
    }
  }
}
