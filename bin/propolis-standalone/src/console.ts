// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial console of propolis-standalone: COM1 on a unix socket (`./ttya`
// as in the seed; one client at a time, a stale socket file is replaced),
// and optionally mirrored to this process's stdout.
//
// Threading: main thread only. Output is drained from the UART's shared
// ring whenever it signals data; input from the client is fed to the UART
// as its 16-byte receive FIFO has room, and the socket is paused meanwhile,
// so no byte a client sent is dropped.

import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { LpcUart } from '../../../lib/propolis/src/hw/uart/lpc-uart.js';

export class ConsoleError extends Error {
  readonly code = 'CONSOLE';
}

export class SerialConsole {
  private server: Server | undefined;
  private client: Socket | undefined;
  private closed = false;
  private pendingInput: Buffer[] = [];
  private inputTimer: NodeJS.Timeout | undefined;
  private readonly clientWaiters: (() => void)[] = [];

  constructor(
    private readonly uart: LpcUart,
    private readonly opts: { socketPath: string; stdout: boolean },
  ) {
    uart.setSinkAttached(opts.stdout);
  }

  async listen(): Promise<void> {
    const path = this.opts.socketPath;
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket())
        throw new ConsoleError(`${path} exists and is not a socket; refusing to replace it`);
      unlinkSync(path);
    }
    const server = createServer((sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new ConsoleError(`cannot listen on ${path}: ${e.message}`)));
      server.listen(path, () => resolve());
    });
    void this.pumpOutput();
  }

  /** Resolves when a console client is connected. */
  waitForClient(): Promise<void> {
    if (this.client) return Promise.resolve();
    return new Promise((resolve) => this.clientWaiters.push(resolve));
  }

  private accept(sock: Socket): void {
    if (this.client) {
      sock.end('propolis-standalone: another console client is already attached\r\n');
      return;
    }
    this.client = sock;
    this.uart.setSinkAttached(true);
    sock.on('data', (d: Buffer) => {
      this.pendingInput.push(d);
      this.feedInput();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.client === sock) this.client = undefined;
      this.uart.setSinkAttached(this.opts.stdout);
    });
    for (const w of this.clientWaiters.splice(0)) w();
  }

  private feedInput(): void {
    while (this.pendingInput.length > 0) {
      const head = this.pendingInput[0] as Buffer;
      const n = this.uart.sendInput(head);
      if (n < head.length) {
        this.pendingInput[0] = head.subarray(n);
        // The guest has not read its FIFO yet: stop reading the socket and
        // retry shortly (a guest polls its UART far faster than this).
        this.client?.pause();
        this.inputTimer ??= setTimeout(() => {
          this.inputTimer = undefined;
          this.feedInput();
        }, 2);
        return;
      }
      this.pendingInput.shift();
    }
    this.client?.resume();
  }

  private async pumpOutput(): Promise<void> {
    const ring = this.uart.output;
    while (!this.closed) {
      await ring.waitReadable();
      const bytes = ring.drain();
      if (bytes.length > 0) {
        if (this.opts.stdout) process.stdout.write(bytes);
        this.client?.write(bytes);
        // Bytes the UART held while the ring was full can move now.
        this.uart.pump();
      }
    }
  }

  /** Flush what the guest wrote and close the socket. */
  async close(): Promise<void> {
    const rest = this.uart.output.drain();
    if (rest.length > 0) {
      if (this.opts.stdout) process.stdout.write(rest);
      this.client?.write(rest);
    }
    this.closed = true;
    this.uart.output.wake();
    if (this.inputTimer) clearTimeout(this.inputTimer);
    this.client?.end();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    try {
      unlinkSync(this.opts.socketPath);
    } catch {
      // already gone
    }
  }
}
