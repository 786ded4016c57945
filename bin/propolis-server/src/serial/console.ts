// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The server's COM1 console: drains what the guest writes into the history
// and out to every websocket client, and feeds what clients send into the
// UART's receive FIFO.
//
// Nothing here may stall the guest. COM1 stays attached for the VM's whole
// life and its output ring is drained on every wake-up, so the UART never
// holds bytes for long (the history takes everything; the ring is the only
// back-pressure the guest ever sees, for as long as one event-loop turn).
// Clients get output through their own socket buffers: a client whose
// buffered output passes CLIENT_BACKLOG_LIMIT (a dead or slow reader) is
// closed rather than allowed to grow without bound, and never slows the
// others. Input is bounded per client the other way: a client with more
// than INPUT_BACKLOG_LIMIT bytes waiting for the FIFO is paused (its socket
// stops being read) until they are in.
//
// Threading: main thread.

import type { WebSocket } from 'ws';
import type { LpcUart } from '../../../../lib/propolis/src/hw/uart/lpc-uart.js';
import type { Logger } from '../log.js';
import { SerialHistory, type HistoryOffset } from './history.js';

/** History replayed to a new client goes in frames of at most this many bytes. */
export const REPLAY_FRAME_BYTES = 16 * 1024;
/** Live output goes in frames of at most this many bytes. */
export const LIVE_FRAME_BYTES = 1024;
/** A client with more output than this buffered (replay included) is closed. */
export const CLIENT_BACKLOG_LIMIT = 4 * 1024 * 1024;
/** A client with more input than this waiting for the UART is paused. */
export const INPUT_BACKLOG_LIMIT = 4096;
/** How often input waiting for a full receive FIFO is retried. */
const INPUT_RETRY_MS = 5;

/** Close codes (RFC 6455). */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TRY_AGAIN_LATER = 1013;

interface Client {
  ws: WebSocket;
  id: number;
  /** Input bytes received and not yet in the FIFO. */
  pendingInput: number;
}

export class SerialConsole {
  readonly history = new SerialHistory();
  private readonly clients = new Set<Client>();
  private readonly input: { client: Client; bytes: Uint8Array }[] = [];
  private inputTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private nextId = 1;
  private pump: Promise<void> | undefined;
  /** Clients closed for falling behind (metrics). */
  droppedClients = 0;

  private readonly backlogLimit: number;
  private readonly inputLimit: number;

  constructor(
    private readonly uart: LpcUart,
    private readonly log: Logger,
    limits: { clientBacklog?: number; inputBacklog?: number } = {},
  ) {
    this.backlogLimit = limits.clientBacklog ?? CLIENT_BACKLOG_LIMIT;
    this.inputLimit = limits.inputBacklog ?? INPUT_BACKLOG_LIMIT;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Attach COM1 and start draining it. */
  start(): void {
    this.uart.setSinkAttached(true);
    this.pump = this.pumpOutput();
  }

  private async pumpOutput(): Promise<void> {
    const ring = this.uart.output;
    while (!this.closed) {
      await ring.waitReadable();
      if (this.closed) break;
      this.takeOutput();
      // A guest writing without pause would otherwise keep this loop in
      // microtasks and starve the event loop (HTTP, websockets): yield a
      // whole turn per batch. The ring holds the next batch meanwhile.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private takeOutput(): void {
    const bytes = this.uart.output.drain();
    if (bytes.length === 0) return;
    this.history.append(bytes);
    // Bytes the UART held while the ring was full can move now.
    this.uart.pump();
    for (const c of this.clients) this.sendLive(c, bytes);
  }

  private sendLive(c: Client, bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; off += LIVE_FRAME_BYTES) {
      if (!this.send(c, bytes.subarray(off, Math.min(bytes.length, off + LIVE_FRAME_BYTES)))) return;
    }
  }

  /** Queue one Binary frame; false if the client was dropped instead. */
  private send(c: Client, frame: Uint8Array): boolean {
    if (c.ws.readyState !== c.ws.OPEN) return false;
    if (c.ws.bufferedAmount + frame.length > this.backlogLimit) {
      this.droppedClients++;
      this.log.warn('serial client fell too far behind; closing it', {
        client: c.id,
        buffered: c.ws.bufferedAmount,
      });
      this.remove(c);
      c.ws.close(CLOSE_TRY_AGAIN_LATER, 'serial console client fell too far behind');
      return false;
    }
    c.ws.send(frame, { binary: true });
    return true;
  }

  /**
   * Serve a websocket client: replay history from `replay` (when given),
   * then live output. The replay and the switch to live output happen in
   * one turn of the event loop, so no byte is lost or sent twice.
   */
  attach(ws: WebSocket, replay: HistoryOffset | undefined): void {
    if (this.closed) {
      ws.close(CLOSE_GOING_AWAY, 'VM stopped');
      return;
    }
    const c: Client = { ws, id: this.nextId++, pendingInput: 0 };
    this.clients.add(c);
    this.log.debug('serial client attached', { client: c.id, replay });
    ws.on('message', (data, isBinary) => {
      // Text frames carry nothing for the guest (the seed ignores them too).
      if (!isBinary) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (buf.length > 0) this.queueInput(c, buf);
    });
    ws.on('close', () => {
      this.remove(c);
      this.log.debug('serial client detached', { client: c.id });
    });
    ws.on('error', (e) => {
      this.log.debug('serial client error', { client: c.id, err: e });
      this.remove(c);
    });
    // Whatever is still in the ring belongs before the replay's end.
    this.takeOutput();
    if (replay !== undefined) {
      const h = this.history;
      let pos = h.firstAvailable(h.resolve(replay));
      while (pos < h.total) {
        const { data, lastByteOffset } = h.read({ fromStart: pos }, REPLAY_FRAME_BYTES);
        if (data.length === 0) break;
        if (!this.send(c, data)) return;
        pos = h.firstAvailable(lastByteOffset);
      }
    }
  }

  private remove(c: Client): void {
    if (!this.clients.delete(c)) return;
    // Input it sent and the guest has not read yet is dropped with it.
    for (let i = this.input.length - 1; i >= 0; i--) if (this.input[i]?.client === c) this.input.splice(i, 1);
  }

  private queueInput(c: Client, bytes: Uint8Array): void {
    if (this.closed) return;
    this.input.push({ client: c, bytes });
    c.pendingInput += bytes.length;
    if (c.pendingInput > this.inputLimit && !c.ws.isPaused) c.ws.pause();
    this.feedInput();
  }

  private feedInput(): void {
    while (this.input.length > 0) {
      const head = this.input[0]!;
      const n = this.uart.sendInput(head.bytes);
      head.client.pendingInput -= n;
      if (n < head.bytes.length) {
        head.bytes = head.bytes.subarray(n);
        // The guest has not read its FIFO yet (or is not running): retry.
        this.inputTimer ??= setTimeout(() => {
          this.inputTimer = undefined;
          this.feedInput();
        }, INPUT_RETRY_MS);
        return;
      }
      this.input.shift();
      if (head.client.pendingInput <= this.inputLimit / 2 && head.client.ws.isPaused) head.client.ws.resume();
    }
  }

  /**
   * The VM is going away: take the last output, close every client (1001
   * "VM stopped") and stop draining.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.takeOutput();
    this.closed = true;
    this.uart.output.wake();
    if (this.inputTimer) clearTimeout(this.inputTimer);
    this.input.length = 0;
    for (const c of [...this.clients]) {
      this.clients.delete(c);
      if (c.ws.readyState === c.ws.OPEN || c.ws.readyState === c.ws.CONNECTING) {
        c.ws.close(CLOSE_GOING_AWAY, 'VM stopped');
      }
    }
    await this.pump;
  }
}
