// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Fakes for the framework's unit tests: a serial source whose "guest" is a
// function, and a small imitation of the test OS's shell protocol (echo,
// Enter → `\r\n`, output lines, prompt, `status`), so the console and
// shell logic can be tested without a VM.
//
// Threading: main thread.

import type { SerialSource } from './serial/console.js';
import { TESTOS_PROMPT } from './guest-os/testos.js';

export class FakeSerialSource implements SerialSource {
  readonly closed: Promise<{ code: number; reason: string }>;
  private dataFns: ((b: Uint8Array) => void)[] = [];
  private closeFn: (v: { code: number; reason: string }) => void = () => {};
  private isOpen = true;
  /** Everything typed. */
  typed = '';
  /** Called with typed input; may call `emit`. */
  onInput: (text: string) => void = () => {};

  constructor() {
    this.closed = new Promise((r) => (this.closeFn = r));
  }

  onData(fn: (b: Uint8Array) => void): void {
    this.dataFns.push(fn);
  }

  write(input: string | Uint8Array): boolean {
    if (!this.isOpen) return false;
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
    this.typed += text;
    this.onInput(text);
    return true;
  }

  /** Guest output (latin1). */
  emit(text: string): void {
    const b = new Uint8Array(Buffer.from(text, 'latin1'));
    for (const fn of this.dataFns) fn(b);
  }

  /** The server closing the socket (as on VM stop: 1001). */
  serverClose(code = 1001, reason = 'VM stopped'): void {
    this.isOpen = false;
    this.closeFn({ code, reason });
  }

  close(): void {
    this.serverClose(1000, 'client closed');
  }
}

/**
 * An imitation of the test OS's shell on a FakeSerialSource: echoes input
 * (asynchronously, a character at a time, as a UART would), runs a line on
 * CR, and answers with `commands[name](args)` — lines to print, or an
 * `error: …` string for a failure. `status` prints the last status.
 */
export class FakeTestOs {
  private line = '';
  private lastStatus = 0;
  readonly source = new FakeSerialSource();

  constructor(private readonly commands: Record<string, (args: string[]) => string[] | string>) {
    this.source.onInput = (text) => {
      for (const ch of text) setImmediate(() => this.key(ch));
    };
  }

  boot(via: 'rom' | 'disk' = 'rom'): void {
    this.source.emit(`testos: booted via ${via}\r\ntestos: ready\r\n${TESTOS_PROMPT}`);
  }

  private key(ch: string): void {
    if (ch === '\r') {
      this.source.emit('\r\n');
      const [name = '', ...args] = this.line.trim().split(/\s+/);
      this.line = '';
      let out: string[];
      if (name === '') {
        out = [];
      } else if (name === 'status') {
        out = [String(this.lastStatus)];
      } else {
        const fn = this.commands[name];
        const r = fn ? fn(args) : `error: unknown command ${name}`;
        this.lastStatus = typeof r === 'string' ? 1 : 0;
        out = typeof r === 'string' ? [r] : r;
      }
      this.source.emit(out.map((l) => `${l}\r\n`).join('') + TESTOS_PROMPT);
    } else if (ch === '\b' || ch === '\x7f') {
      if (this.line.length > 0) {
        this.line = this.line.slice(0, -1);
        this.source.emit('\b \b');
      }
    } else {
      this.line += ch;
      this.source.emit(ch);
    }
  }
}
