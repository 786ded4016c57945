// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial console websocket (GET /instance/serial), as the server
// speaks it: Binary frames carry guest output (history first, when an
// offset was asked for), Binary frames from us are keyboard input, a Text
// frame `{"Migrating":{"destination","from_start"}}` announces that the
// instance moves to another server, and the server closes with 1001 when
// the VM stops.
//
// Works over the browser's WebSocket or `ws` in Node.js: only the common
// subset (binaryType 'arraybuffer', on* handlers, send, close) is used.

/** The part of the WebSocket interface used here (browsers' and `ws`'s). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketClass = new (url: string) => WebSocketLike;

/** Where history replay starts: an absolute offset, or bytes back from the newest. */
export interface SerialOffset {
  fromStart?: number;
  mostRecent?: number;
}

export interface MigratingNotice {
  destination: string;
  fromStart: number;
}

const OPEN = 1;

export class SerialConsole implements AsyncIterable<Uint8Array> {
  /** Resolves once connected; rejects if the connection fails first. */
  readonly opened: Promise<void>;
  /** Resolves with the close code and reason (1006 for a connection that broke). */
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly ws: WebSocketLike;
  private readonly dataFns: ((b: Uint8Array) => void)[] = [];
  private readonly migratingFns: ((m: MigratingNotice) => void)[] = [];
  private readonly queue: Uint8Array[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  private readonly encoder = new TextEncoder();

  constructor(
    WS: WebSocketClass,
    readonly url: string,
  ) {
    const ws = new WS(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let opened = false;
    this.opened = new Promise<void>((resolve, reject) => {
      ws.onopen = (): void => {
        opened = true;
        resolve();
      };
      ws.onerror = (): void => {
        if (!opened) reject(new Error(`serial console: cannot connect to ${url}`));
      };
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      ws.onclose = (ev): void => {
        this.done = true;
        this.wake?.();
        resolve({ code: ev.code, reason: ev.reason });
      };
    });
    ws.onmessage = (ev): void => this.onMessage(ev.data);
  }

  private onMessage(data: unknown): void {
    if (typeof data === 'string') {
      try {
        const m = JSON.parse(data) as { Migrating?: { destination: string; from_start: number } };
        if (m.Migrating) {
          const n = { destination: m.Migrating.destination, fromStart: m.Migrating.from_start };
          for (const fn of this.migratingFns) fn(n);
        }
      } catch {
        // Text frames other than the migration notice carry nothing for us.
      }
      return;
    }
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else return;
    for (const fn of this.dataFns) fn(bytes);
    this.queue.push(bytes);
    this.wake?.();
  }

  /** Call `fn` with every chunk of guest output (in addition to iteration). */
  onData(fn: (bytes: Uint8Array) => void): void {
    this.dataFns.push(fn);
  }

  onMigrating(fn: (m: MigratingNotice) => void): void {
    this.migratingFns.push(fn);
  }

  /** Send keyboard input (a string is sent as UTF-8). False if the socket is not open. */
  write(input: Uint8Array | string): boolean {
    if (this.ws.readyState !== OPEN) return false;
    this.ws.send(typeof input === 'string' ? this.encoder.encode(input) : input);
    return true;
  }

  close(): void {
    this.ws.close(1000, 'client closed');
  }

  /** Guest output chunks until the socket closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const b = this.queue.shift();
      if (b) {
        yield b;
        continue;
      }
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  /**
   * Read output until `pattern` matches the text received so far (latin1),
   * or reject after `timeoutMs`. Resolves with everything received.
   */
  async readUntil(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    let text = '';
    const decoder = new TextDecoder('latin1');
    // A global or sticky pattern would carry lastIndex from one test to the next.
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    return new Promise<string>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`serial: no ${pattern} within ${timeoutMs} ms; got: ${text}`)),
        timeoutMs,
      );
      const check = (b: Uint8Array): void => {
        text += decoder.decode(b);
        if (re.test(text)) {
          clearTimeout(t);
          resolve(text);
        }
      };
      for (const b of this.queue) check(b);
      this.onData(check);
      void this.closed.then(() => {
        clearTimeout(t);
        if (!re.test(text)) reject(new Error(`serial: closed before ${pattern}; got: ${text}`));
      });
    });
  }
}
