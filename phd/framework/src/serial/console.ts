// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A guest's serial console as a test sees it: output fed through a terminal
// model (terminal.ts), waits for text, and typed input.
//
// The matching rule is the original PHD's: a wait is satisfied by the LAST
// occurrence of its pattern in the text not yet consumed; it resolves with
// the text before that occurrence, and everything up to the end of the
// occurrence is consumed, so the same output can never satisfy two waits.
// Taking the last occurrence means that a prompt printed several times (a
// guest that redraws, or stale prompts from earlier commands) matches the
// newest one. Only one wait runs at a time; starting a second while one is
// pending is a bug in the test and throws.
//
// Every byte the guest sends is also appended, unmodified, to the VM's
// serial log file, so a failed test's transcript can be read afterwards.
//
// Threading: main thread.

import { createWriteStream, type WriteStream } from 'node:fs';
import { makeTerminalBuffer, type BufferKind, type TerminalBuffer } from './terminal.js';

/** Where console bytes come from and typed input goes: propolis-client's SerialConsole fits. */
export interface SerialSource {
  onData(fn: (bytes: Uint8Array) => void): void;
  /** False if the input could not be sent (the connection is gone). */
  write(input: string | Uint8Array): boolean;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export class SerialTimeoutError extends Error {
  readonly code = 'SERIAL_TIMEOUT';
}

export class SerialClosedError extends Error {
  readonly code = 'SERIAL_CLOSED';
}

/** The guest printed what its adapter calls a crash (a panic, an exception report). */
export class GuestCrashError extends Error {
  readonly code = 'GUEST_CRASH';
}

interface Waiter {
  pattern: string | RegExp;
  resolve: (before: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** How much unconsumed raw text is kept when nobody waits for it (a flood must not grow without bound). */
const UNCONSUMED_LIMIT = 4 * 1024 * 1024;
const UNCONSUMED_KEEP = 1024 * 1024;

/** Find the last occurrence of `pattern` in `text`: its start and length. */
export function findLast(text: string, pattern: string | RegExp): { index: number; length: number } | undefined {
  if (typeof pattern === 'string') {
    const i = text.lastIndexOf(pattern);
    return i < 0 ? undefined : { index: i, length: pattern.length };
  }
  const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '') + 'g');
  let last: { index: number; length: number } | undefined;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    last = { index: m.index, length: m[0].length };
    if (m[0].length === 0) re.lastIndex++;
  }
  return last;
}

const show = (p: string | RegExp): string => (typeof p === 'string' ? JSON.stringify(p) : String(p));

export interface SerialReaderOptions {
  /** Names the console in errors ("vm0's serial console"). */
  name: string;
  kind?: BufferKind;
  /** The raw byte log. */
  logPath?: string;
  /**
   * Output that means the guest has crashed (e.g. a kernel panic): a wait
   * in progress fails at once with that line instead of timing out.
   */
  crashPattern?: RegExp;
}

export class SerialReader {
  private buffer: TerminalBuffer;
  private waiter: Waiter | undefined;
  private closedWith: string | undefined;
  private readonly log: WriteStream | undefined;
  private readonly decoder = new TextDecoder('latin1');
  private fedSinceTrim = 0;
  /** Delay between two identical characters typed in a row (0: none); some guests drop repeats. */
  private repeatDebounceMs = 0;

  constructor(
    private readonly source: SerialSource,
    private readonly opts: SerialReaderOptions,
  ) {
    this.buffer = makeTerminalBuffer(opts.kind ?? 'raw');
    this.log = opts.logPath ? createWriteStream(opts.logPath, { flags: 'a' }) : undefined;
    this.log?.on('error', () => {}); // a log that cannot be written must not fail the test
    source.onData((b) => this.feed(b));
    void source.closed.then(({ code, reason }) => {
      this.closedWith = `${code}${reason ? ` ${reason}` : ''}`;
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        clearTimeout(w.timer);
        w.reject(
          new SerialClosedError(
            `${this.opts.name}: the console closed (${this.closedWith}) while waiting for ${show(w.pattern)}; ` +
              `unconsumed output ends: ${JSON.stringify(this.tail())}`,
          ),
        );
      }
    });
  }

  get bufferKind(): BufferKind {
    return this.buffer.kind;
  }

  /** Guest output: into the log and the terminal model, then the pending wait is checked. */
  feed(bytes: Uint8Array): void {
    this.log?.write(bytes);
    this.buffer.write(this.decoder.decode(bytes, { stream: true }));
    this.fedSinceTrim += bytes.length;
    if (this.waiter) this.check();
    else if (this.fedSinceTrim > UNCONSUMED_LIMIT) {
      const len = this.buffer.contents().length;
      if (len > UNCONSUMED_LIMIT) this.buffer.consume(len - UNCONSUMED_KEEP);
      this.fedSinceTrim = 0;
    }
  }

  /**
   * Wait for `pattern` (see the file comment); resolves with the text
   * before its last occurrence and consumes through its end.
   */
  waitFor(pattern: string | RegExp, timeoutMs: number): Promise<string> {
    if (this.waiter) throw new Error(`${this.opts.name}: already waiting for ${show(this.waiter.pattern)}`);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter?.timer !== timer) return;
        this.waiter = undefined;
        reject(
          new SerialTimeoutError(
            `${this.opts.name}: timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for ${show(pattern)}; ` +
              `unconsumed output ends: ${JSON.stringify(this.tail())}`,
          ),
        );
      }, timeoutMs);
      this.waiter = { pattern, resolve, reject, timer };
      this.check();
      if (this.waiter?.timer === timer && this.closedWith !== undefined) {
        this.waiter = undefined;
        clearTimeout(timer);
        reject(
          new SerialClosedError(
            `${this.opts.name}: the console is closed (${this.closedWith}); cannot wait for ${show(pattern)}; ` +
              `unconsumed output ends: ${JSON.stringify(this.tail())}`,
          ),
        );
      }
    });
  }

  private check(): void {
    const w = this.waiter;
    if (!w) return;
    const text = this.buffer.contents();
    const m = findLast(text, w.pattern);
    if (!m) {
      const crash = this.opts.crashPattern ? findLast(text.slice(-4096), this.opts.crashPattern) : undefined;
      if (crash) {
        const tail = text.slice(-4096);
        const lineEnd = tail.indexOf('\n', crash.index + crash.length);
        const line = tail.slice(tail.lastIndexOf('\n', crash.index) + 1, lineEnd < 0 ? undefined : lineEnd);
        this.waiter = undefined;
        clearTimeout(w.timer);
        w.reject(
          new GuestCrashError(`${this.opts.name}: the guest crashed while waiting for ${show(w.pattern)}: ${line}`),
        );
      }
      return;
    }
    this.waiter = undefined;
    clearTimeout(w.timer);
    this.buffer.consume(m.index + m.length);
    this.fedSinceTrim = 0;
    w.resolve(text.slice(0, m.index));
  }

  /** Type `text` on the console (honouring the repeated-character debounce). */
  async write(text: string): Promise<void> {
    const chunks: string[] = [];
    if (this.repeatDebounceMs > 0) {
      // Split between identical neighbours: "hello" → "hel", "lo".
      let start = 0;
      for (let i = 1; i < text.length; i++) {
        if (text[i] === text[i - 1]) {
          chunks.push(text.slice(start, i));
          start = i;
        }
      }
      chunks.push(text.slice(start));
    } else {
      chunks.push(text);
    }
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, this.repeatDebounceMs));
      if (!this.source.write(chunks[i]!)) {
        throw new SerialClosedError(`${this.opts.name}: cannot type ${JSON.stringify(text)}: the console is not open`);
      }
    }
  }

  /** Forget all unconsumed output. */
  clear(): void {
    this.buffer.clear();
    this.fedSinceTrim = 0;
  }

  /** Switch terminal models; the new one starts empty. */
  setBufferKind(kind: BufferKind): void {
    this.buffer = makeTerminalBuffer(kind);
  }

  setRepeatedCharacterDebounce(ms: number): void {
    this.repeatDebounceMs = ms;
  }

  /** The end of the unconsumed text (for error messages). */
  tail(chars = 400): string {
    const t = this.buffer.contents();
    return t.length > chars ? t.slice(-chars) : t;
  }

  /** Unconsumed text. */
  contents(): string {
    return this.buffer.contents();
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): Promise<void> {
    this.source.close();
    const log = this.log;
    if (!log) return Promise.resolve();
    return new Promise((r) => log.end(() => r()));
  }
}
