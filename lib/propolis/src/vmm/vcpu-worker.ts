// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Entry point of a vCPU worker thread: KVM_RUN in a loop, with every exit
// handled here, on the thread that took it.
//
// Threading: this thread owns its vCPU fd while the worker lives (the main
// thread touches the vCPU only while this worker is parked in PAUSED) and
// its own instances of every device (see device.ts). The exit loop
// allocates nothing per exit: the decoder reuses its objects and the data
// of port and MMIO exits is read from the kvm_run page through one DataView.

import { parentPort, workerData } from 'node:worker_threads';
import { VcpuFd } from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import { KvmRun } from '../../../kvm/src/structs.js';
import { attachFromDescriptor, type GuestEvents } from '../device.js';
import { assertNever, ExitDecoder } from '../exits.js';
import type { AccessSize } from '../pio.js';
import { SharedMutex } from '../sync/mutex.js';
import { CoalescedRing } from './coalesced.js';
import { memoryFromLayout, ThreadHost } from './host.js';
import {
  CTL_ACK,
  CTL_CMD,
  CTL_NMI,
  CTL_STATE,
  REQ_EXIT,
  REQ_RUN,
  STAT,
  STATE_EXITED,
  STATE_PAUSED,
  STATE_RUNNING,
  awaitAttach,
  type VcpuMessage,
  type VcpuWorkerData,
} from './vcpu-control.js';

const data = workerData as VcpuWorkerData;
const port = parentPort;
if (!port) throw new Error('vcpu-worker must run in a worker thread');

const post = (m: VcpuMessage): void => port.postMessage(m);
const id = data.id;
const ctl = new Int32Array(data.ctl);
const stats = new Float64Array(data.stats);

const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
const KVM_SYSTEM_EVENT_RESET = 2;

// A guest event stops this vCPU at once (it parks until the main thread
// decides), so that e.g. nothing runs after the guest asked to power off.
let parkRequested = false;
const events: GuestEvents = {
  halt(reason, status) {
    parkRequested = true;
    post(status === undefined ? { type: 'halt', id, reason } : { type: 'halt', id, reason, status });
  },
  reset(reason) {
    parkRequested = true;
    post({ type: 'reset', id, reason });
  },
};

const mem = memoryFromLayout(data.memory);
// Wait for the device list (Machine.start); meanwhile warm device modules.
const attach = await awaitAttach(port);
const host = new ThreadHost('vcpu', id, data.vmFd, mem, events, attach.tables);
for (const d of attach.devices) await attachFromDescriptor(d, host);

const vcpu = VcpuFd.fromRaw(data.vcpuFd, id);
// The kvm_run mapping outlives this thread: the Machine unmaps it only after
// this worker has exited.
const runBuf = libc.view(data.runAddr, data.runSize);
const run = new DataView(runBuf);
const runBytes = new Uint8Array(runBuf);
const decoder = new ExitDecoder(run);
const IMMEDIATE_EXIT = KvmRun.fields.immediateExit.offset;
const MMIO_DATA = KvmRun.fields.mmioData.offset;
const pio = host.pio;
const mmio = host.mmio;
const coalesced = data.coalesced
  ? new CoalescedRing(
      new DataView(runBuf, data.coalesced.pageOffset, 4096),
      new SharedMutex(new Int32Array(data.coalesced.lock)),
      pio,
      mmio,
    )
  : undefined;

post({ type: 'ready', id, tid: libc.gettid() });

let firstDeviceError = true;
function deviceError(e: unknown, what: string): void {
  // A device model threw: our bug, not the guest's. The access is treated as
  // unclaimed so the guest continues; the first one is logged.
  stats[STAT.deviceErrors]!++;
  if (firstDeviceError) {
    firstDeviceError = false;
    post({ type: 'log', id, level: 'error', msg: `device error on ${what}: ${(e as Error)?.stack ?? String(e)}` });
  }
}

function handleIo(portNo: number, size: AccessSize, out: boolean, count: number, dataOffset: number): void {
  if (dataOffset < 0 || dataOffset + count * size > data.runSize) {
    throw new Error(`vCPU ${id}: I/O data outside kvm_run (${dataOffset}+${count}*${size})`);
  }
  let off = dataOffset;
  for (let i = 0; i < count; i++, off += size) {
    try {
      if (out) {
        const v =
          size === 1 ? (runBytes[off] as number) : size === 2 ? run.getUint16(off, true) : run.getUint32(off, true);
        pio.write(portNo, size, v);
      } else {
        const v = pio.read(portNo, size);
        if (size === 1) runBytes[off] = v;
        else if (size === 2) run.setUint16(off, v, true);
        else run.setUint32(off, v >>> 0, true);
      }
    } catch (e) {
      deviceError(e, `port 0x${portNo.toString(16)}`);
      if (!out) run.setUint32(off, 0xffff_ffff, true);
    }
  }
}

function handleMmio(addr: number, size: AccessSize, write: boolean): void {
  try {
    if (write) {
      const v =
        size === 8
          ? run.getBigUint64(MMIO_DATA, true)
          : size === 4
            ? run.getUint32(MMIO_DATA, true)
            : size === 2
              ? run.getUint16(MMIO_DATA, true)
              : run.getUint8(MMIO_DATA);
      mmio.write(addr, size, v);
    } else {
      const v = mmio.read(addr, size);
      if (size === 8) run.setBigUint64(MMIO_DATA, BigInt.asUintN(64, BigInt(v)), true);
      else if (size === 4) run.setUint32(MMIO_DATA, Number(v) >>> 0, true);
      else if (size === 2) run.setUint16(MMIO_DATA, Number(v), true);
      else run.setUint8(MMIO_DATA, Number(v));
    }
  } catch (e) {
    deviceError(e, `MMIO 0x${addr.toString(16)}`);
    if (!write) run.setBigUint64(MMIO_DATA, 0xffff_ffff_ffff_ffffn, true);
  }
}

/** The command word the vCPU runs under; any other value stops it. */
let runningCmd = -1;

/** Act on the current command: true to run, false to exit; parks while paused. */
function waitForRun(): boolean {
  for (;;) {
    const cmd = Atomics.load(ctl, CTL_CMD);
    const req = cmd & 3;
    const gen = cmd >>> 2;
    if (req === REQ_EXIT) return false;
    if (req === REQ_RUN && !parkRequested) {
      runningCmd = cmd;
      setState(STATE_RUNNING, gen);
      return true;
    }
    // Everything this vCPU wrote reaches its device before it reports paused.
    if (coalesced?.pending) coalesced.drain();
    // Paused, or parked after a guest event until the main thread sends a
    // new command (which means it has seen the event). A park under an
    // unchanged RUN command acknowledges nothing new.
    setState(STATE_PAUSED, req === REQ_RUN ? Atomics.load(ctl, CTL_ACK) : gen);
    Atomics.wait(ctl, CTL_CMD, cmd);
    if (Atomics.load(ctl, CTL_CMD) !== cmd) parkRequested = false;
  }
}

function setState(state: number, ack: number): void {
  Atomics.store(ctl, CTL_STATE, state);
  Atomics.store(ctl, CTL_ACK, ack);
  Atomics.notify(ctl, CTL_ACK);
}

function loop(): void {
  if (!waitForRun()) return;
  for (;;) {
    if (parkRequested || Atomics.load(ctl, CTL_CMD) !== runningCmd) {
      if (!waitForRun()) return;
    }
    // KVM_NMI is a vCPU ioctl: only this thread may issue it without waiting for KVM_RUN to end.
    if (Atomics.load(ctl, CTL_NMI) !== 0 && Atomics.exchange(ctl, CTL_NMI, 0) !== 0) injectNmi();
    const r = vcpu.run();
    // Writes the kernel queued instead of exiting happened before this exit.
    if (coalesced?.pending) coalesced.drain();
    if (r < 0) {
      // Kicked (EINTR) or asked to retry (EAGAIN): clear the kick and re-check REQ.
      runBytes[IMMEDIATE_EXIT] = 0;
      stats[STAT.intr]!++;
      continue;
    }
    const exit = decoder.decode();
    switch (exit.kind) {
      case 'io':
        stats[STAT.io]!++;
        handleIo(exit.port, exit.size, exit.out, exit.count, exit.dataOffset);
        break;
      case 'mmio':
        stats[STAT.mmio]!++;
        handleMmio(exit.addr, exit.size, exit.write);
        break;
      case 'intr':
        stats[STAT.intr]!++;
        break;
      case 'irq-window-open':
        stats[STAT.other]!++;
        break;
      case 'hlt':
        // Only without an in-kernel irqchip; the machine always creates one,
        // so a HLT exit means the guest stopped for good.
        stats[STAT.hlt]!++;
        events.halt('vCPU halted with no in-kernel irqchip');
        break;
      case 'shutdown':
        stats[STAT.shutdown]!++;
        events.reset(`triple fault on vCPU ${id}`);
        break;
      case 'system-event':
        stats[STAT.systemEvent]!++;
        if (exit.type === KVM_SYSTEM_EVENT_SHUTDOWN) events.halt(`system event: shutdown (vCPU ${id})`);
        else if (exit.type === KVM_SYSTEM_EVENT_RESET) events.reset(`system event: reset (vCPU ${id})`);
        else {
          parkRequested = true;
          post({ type: 'failure', id, reason: `system event type ${exit.type} on vCPU ${id}` });
        }
        break;
      case 'internal-error':
      case 'fail-entry':
      case 'unknown':
      case 'exception': {
        stats[STAT.failure]!++;
        parkRequested = true;
        const regs = safeRegs();
        post({ type: 'failure', id, reason: `vCPU ${id}: ${exit.kind}: ${exit.detail}${regs}` });
        break;
      }
      case 'unhandled':
        stats[STAT.failure]!++;
        parkRequested = true;
        post({ type: 'failure', id, reason: `vCPU ${id}: unhandled exit reason ${exit.reason}` });
        break;
      default:
        assertNever(exit);
    }
  }
}

function injectNmi(): void {
  try {
    vcpu.nmi();
  } catch (e) {
    post({ type: 'log', id, level: 'warn', msg: `NMI not injected: ${(e as Error).message}` });
  }
}

function safeRegs(): string {
  try {
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    return ` (rip 0x${r.get('rip').toString(16)}, cs.base 0x${s.sub('cs').get('base').toString(16)}, cr0 0x${s.get('cr0').toString(16)})`;
  } catch {
    return '';
  }
}

try {
  loop();
} catch (e) {
  post({ type: 'failure', id, reason: `vCPU ${id} thread failed: ${(e as Error)?.message ?? String(e)}` });
} finally {
  host.runExitHooks();
  stats[STAT.unclaimedPio] = pio.unhandledReads + pio.unhandledWrites;
  stats[STAT.unclaimedMmio] = mmio.unhandledReads + mmio.unhandledWrites;
  // Waiters check STATE before ACK, so an exited worker releases every request.
  Atomics.store(ctl, CTL_STATE, STATE_EXITED);
  Atomics.notify(ctl, CTL_ACK);
}
