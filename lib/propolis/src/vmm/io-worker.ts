// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Entry point of the machine's I/O thread: serves doorbells (doorbells.ts).
//
// Guest writes to a device's doorbell (a virtio queue notify, for example)
// are turned by the kernel into eventfd signals (KVM_IOEVENTFD): the vCPU
// does not exit to userspace and carries on running guest code, while this
// thread, blocked in epoll_wait on every doorbell's eventfd, wakes and runs
// the device's handler (which processes the queue and interrupts the guest
// through an irqfd). It holds its own instance of every device, like a vCPU
// worker, and obeys the same control words (vcpu-control.ts): paused, it
// runs no device code, and doorbells rung meanwhile stay pending in their
// eventfds until it resumes.
//
// Threading: this thread only. The epoll_wait call blocks this thread (it
// has nothing else to do); the main thread wakes it through `controlFd`.

import { parentPort, workerData } from 'node:worker_threads';
import * as libc from '../../../kvm/src/libc.js';
import { attachFromDescriptor, type GuestEvents } from '../device.js';
import { memoryFromLayout, ThreadHost } from './host.js';
import {
  CTL_ACK,
  CTL_CMD,
  CTL_STATE,
  REQ_EXIT,
  REQ_PAUSE,
  STATE_EXITED,
  STATE_PAUSED,
  STATE_RUNNING,
  awaitAttach,
  type IoWorkerData,
  type VcpuMessage,
} from './vcpu-control.js';

const data = workerData as IoWorkerData;
const port = parentPort;
if (!port) throw new Error('io-worker must run in a worker thread');

/** Messages from this thread carry this in place of a vCPU id. */
const IO_THREAD_ID = -1;
const post = (m: VcpuMessage): void => port.postMessage(m);
const ctl = new Int32Array(data.ctl);

const events: GuestEvents = {
  halt(reason, status) {
    post(
      status === undefined
        ? { type: 'halt', id: IO_THREAD_ID, reason }
        : { type: 'halt', id: IO_THREAD_ID, reason, status },
    );
  },
  reset(reason) {
    post({ type: 'reset', id: IO_THREAD_ID, reason });
  },
};

const mem = memoryFromLayout(data.memory);
const attach = await awaitAttach(port);
const host = new ThreadHost('io', undefined, data.vmFd, mem, events, attach.tables);
for (const d of attach.devices) await attachFromDescriptor(d, host);

const CONTROL = 0xffff_ffff;
const MAX_EVENTS = 64;
const ep = libc.epollCreate1(libc.EPOLL_CLOEXEC);
if (ep < 0) throw new Error(`io thread: epoll_create1: ${libc.errnoName(libc.errno())}`);
const evbuf = new Uint8Array(libc.EPOLL_EVENT_SIZE * MAX_EVENTS);
const evview = new DataView(evbuf.buffer);

function watch(fd: number, key: number): void {
  const ev = new Uint8Array(libc.EPOLL_EVENT_SIZE);
  const v = new DataView(ev.buffer);
  v.setUint32(0, libc.EPOLLIN, true);
  v.setBigUint64(4, BigInt(key), true);
  if (libc.epollCtl(ep, libc.EPOLL_CTL_ADD, fd, ev) < 0) {
    throw new Error(`io thread: epoll_ctl(${fd}): ${libc.errnoName(libc.errno())}`);
  }
}

const doorbells = host.doorbells.allocations;
const fds: number[] = [];
for (const a of doorbells) {
  fds[a.slot] = a.fd;
  watch(a.fd, a.slot);
}
watch(data.controlFd, CONTROL);

post({ type: 'ready', id: IO_THREAD_ID, tid: libc.gettid() });

let firstError = true;
function serve(slot: number): void {
  const fd = fds[slot];
  if (fd === undefined) return;
  libc.eventfdRead(fd);
  const fn = host.doorbells.handler(slot);
  if (!fn) return;
  try {
    fn();
  } catch (e) {
    // A handler must not throw on guest input: this is our bug. Keep serving.
    if (firstError) {
      firstError = false;
      post({ type: 'log', id: IO_THREAD_ID, level: 'error', msg: `doorbell handler: ${(e as Error)?.stack ?? e}` });
    }
  }
}

function setState(state: number, ack: number): void {
  Atomics.store(ctl, CTL_STATE, state);
  Atomics.store(ctl, CTL_ACK, ack);
  Atomics.notify(ctl, CTL_ACK);
}

function loop(): void {
  let running = -1;
  for (;;) {
    const cmd = Atomics.load(ctl, CTL_CMD);
    const req = cmd & 3;
    const gen = cmd >>> 2;
    if (req === REQ_EXIT) return;
    if (req === REQ_PAUSE) {
      setState(STATE_PAUSED, gen);
      running = -1;
      Atomics.wait(ctl, CTL_CMD, cmd);
      continue;
    }
    if (cmd !== running) {
      running = cmd;
      setState(STATE_RUNNING, gen);
    }
    const n = libc.epollWait(ep, evbuf, MAX_EVENTS, -1);
    for (let i = 0; i < n; i++) {
      const key = Number(evview.getBigUint64(i * libc.EPOLL_EVENT_SIZE + 4, true));
      if (key === CONTROL) libc.eventfdRead(data.controlFd);
      else serve(key);
    }
  }
}

try {
  loop();
} catch (e) {
  post({ type: 'failure', id: IO_THREAD_ID, reason: `I/O thread failed: ${(e as Error)?.message ?? String(e)}` });
} finally {
  libc.close(ep);
  host.runExitHooks();
  Atomics.store(ctl, CTL_STATE, STATE_EXITED);
  Atomics.notify(ctl, CTL_ACK);
}
