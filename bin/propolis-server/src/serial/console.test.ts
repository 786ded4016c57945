// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The serial console over the real UART model (a "guest" writing its
// registers through a FakeHost) and real websockets on loopback: replay and
// live framing, input into the receive FIFO, text frames ignored, closing
// on VM stop, and a client that stops reading being dropped without
// holding up the others or the guest.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { LpcUart } from '../../../../lib/propolis/src/hw/uart/lpc-uart.js';
import { FakeHost } from '../../../../lib/propolis/src/testing/fake-host.js';
import { Logger } from '../log.js';
import { SerialConsole } from './console.js';

const THR = 0x3f8;
const LSR = 0x3fd;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;

const log = Logger.create({ level: 'error', sink: () => {} });

function uartPair(): { uart: LpcUart; guest: FakeHost } {
  const desc = LpcUart.describe('com1');
  const uart = LpcUart.attach(desc, new FakeHost());
  const guest = new FakeHost();
  LpcUart.attach(desc, guest);
  return { uart, guest };
}

const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

/** The guest writes `bytes`, waiting (as a driver polling THRE would) while the console drains. */
async function guestWrite(guest: FakeHost, bytes: Uint8Array): Promise<void> {
  for (const b of bytes) {
    let spins = 0;
    while ((guest.pio.read(LSR, 1) & LSR_THRE) === 0) {
      if (++spins > 10000) throw new Error('THRE never came back: the console stopped draining');
      await turn();
    }
    guest.pio.write(THR, 1, b);
  }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await turn();
  }
}

interface Client {
  ws: WebSocket;
  frames: Buffer[];
  text(): string;
  closed: Promise<[number, string]>;
}

let wss: WebSocketServer;
let port: number;
let onConnect: (ws: WebSocket) => void = () => {};

before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (ws) => onConnect(ws));
  await once(wss, 'listening');
  port = (wss.address() as AddressInfo).port;
});
after(() => {
  for (const c of wss.clients) c.terminate();
  wss.close();
});

/** Connect a client that the console attaches with `replay`. */
async function connect(console_: SerialConsole, replay?: Parameters<SerialConsole['attach']>[1]): Promise<Client> {
  const attached = new Promise<void>((resolve) => {
    onConnect = (ws) => {
      console_.attach(ws, replay);
      resolve();
    };
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const frames: Buffer[] = [];
  ws.on('message', (d, isBinary) => {
    assert.ok(isBinary, 'the console sends Binary frames only');
    frames.push(d as Buffer);
  });
  const closed = new Promise<[number, string]>((r) => ws.on('close', (code, reason) => r([code, reason.toString()])));
  await once(ws, 'open');
  await attached;
  return { ws, frames, text: () => Buffer.concat(frames).toString('latin1'), closed };
}

describe('SerialConsole', () => {
  it('keeps history, replays it in ≤16 KiB frames and sends live output in ≤1 KiB frames', async () => {
    const { uart, guest } = uartPair();
    const sc = new SerialConsole(uart, log);
    sc.start();
    const early = Buffer.alloc(40 * 1024, 'a');
    await guestWrite(guest, early);
    await until(() => sc.history.total === early.length, 'history');
    const replayed = await connect(sc, { fromStart: 0 });
    const tail = await connect(sc, { mostRecent: 5 });
    const live = await connect(sc);
    await until(() => replayed.text().length === early.length, 'replay');
    assert.ok(replayed.frames.every((f) => f.length <= 16 * 1024));
    assert.equal(replayed.frames.length, 3);
    await until(() => tail.text() === 'aaaaa', 'tail replay');
    const more = Buffer.from('x'.repeat(3000));
    await guestWrite(guest, more);
    await until(() => live.text() === more.toString(), 'live output');
    assert.ok(
      live.frames.every((f) => f.length <= 1024),
      'live frames at most 1 KiB',
    );
    await until(() => replayed.text() === early.toString() + more.toString(), 'replay then live, no gap or repeat');
    assert.equal(tail.text(), `aaaaa${more.toString()}`);

    // Stop: every client is closed with 1001 "VM stopped".
    await sc.close();
    for (const c of [replayed, tail, live]) assert.deepEqual(await c.closed, [1001, 'VM stopped']);
  });

  it('feeds Binary frames to the UART, ignores Text frames', async () => {
    const { uart, guest } = uartPair();
    const sc = new SerialConsole(uart, log);
    sc.start();
    const c = await connect(sc);
    c.ws.send('text is ignored');
    c.ws.send(Buffer.from('input bytes that overflow the 16-byte FIFO'), { binary: true });
    let got = '';
    await until(() => {
      while (guest.pio.read(LSR, 1) & LSR_DR) got += String.fromCharCode(guest.pio.read(THR, 1));
      return got.length >= 42;
    }, 'guest input');
    assert.equal(got, 'input bytes that overflow the 16-byte FIFO');
    await sc.close();
    assert.deepEqual(await c.closed, [1001, 'VM stopped']);
  });

  it('closes a client that stops reading, without stalling the guest or the other clients', async () => {
    const { uart, guest } = uartPair();
    const sc = new SerialConsole(uart, log, { clientBacklog: 64 * 1024 });
    sc.start();
    const reader = await connect(sc);
    // A client that never reads: ws counts what it has not handed to the
    // kernel; this one's count only grows.
    let sent = 0;
    const stuck = {
      OPEN: 1,
      CONNECTING: 0,
      readyState: 1,
      isPaused: false,
      get bufferedAmount(): number {
        return sent;
      },
      send(data: Uint8Array): void {
        sent += data.length;
      },
      closedWith: undefined as [number, string] | undefined,
      close(code: number, reason: string): void {
        this.closedWith = [code, reason];
        this.readyState = 3;
      },
      on(): void {},
      pause(): void {},
      resume(): void {},
    };
    sc.attach(stuck as unknown as WebSocket, undefined);
    assert.equal(sc.clientCount, 2);
    const out = Buffer.alloc(100 * 1024, 'z');
    await guestWrite(guest, out);
    await until(() => reader.text().length === out.length, 'the reading client gets everything');
    assert.deepEqual(stuck.closedWith, [1013, 'serial console client fell too far behind']);
    assert.ok(sent <= 64 * 1024);
    assert.equal(sc.clientCount, 1);
    assert.equal(sc.droppedClients, 1);
    await sc.close();
  });

  it('a client disconnecting mid-stream is forgotten', async () => {
    const { uart, guest } = uartPair();
    const sc = new SerialConsole(uart, log);
    sc.start();
    const a = await connect(sc);
    const b = await connect(sc);
    await guestWrite(guest, Buffer.from('one'));
    await until(() => a.text() === 'one' && b.text() === 'one', 'first output');
    a.ws.terminate();
    await until(() => sc.clientCount === 1, 'the server side notices');
    await guestWrite(guest, Buffer.from('two'));
    await until(() => b.text() === 'onetwo', 'the other client carries on');
    await sc.close();
  });
});
