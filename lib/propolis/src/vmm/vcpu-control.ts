// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The contract between the main thread and one vCPU worker.
//
// Control is a small Int32Array in shared memory:
//   CMD   what the main thread wants, one word: (generation << 2) | request,
//         request being RUN, PAUSE or EXIT. Request and generation change in
//         one store, so the worker can never pair a new request with an old
//         generation (which once left start() waiting forever);
//   STATE what the worker is doing: STARTING, RUNNING, PAUSED, EXITED;
//   ACK   the generation of the last command the worker acted on.
// To make a vCPU leave KVM_RUN the main thread publishes a command, sets
// `immediate_exit` in the vCPU's kvm_run page and sends SIGUSR2 to the
// worker's kernel thread (see Machine.kick). KVM_RUN then returns EINTR —
// at once if the worker was about to enter it — and the worker compares the
// command word with the one it is running under.
//
// Events (guest halt/reset requests, failures) travel as postMessage: they
// are rare and may take the slow path.

import type { MessagePort } from 'node:worker_threads';
import type { DeviceDescriptor } from '../device.js';
import type { SharedHostTables } from './host.js';
import type { Prot } from './memory.js';

export const CTL_CMD = 0;
export const CTL_STATE = 1;
export const CTL_ACK = 2;
/** Non-zero: an NMI is waiting to be injected (the worker issues KVM_NMI before its next KVM_RUN). */
export const CTL_NMI = 3;
export const CTL_WORDS = 4;

export const REQ_RUN = 0;
export const REQ_PAUSE = 1;
export const REQ_EXIT = 2;

/** Generations live in 29 bits (the command word keeps the request in the low 2). */
export const GEN_MASK = 0x1fff_ffff;

export function cmdWord(gen: number, req: number): number {
  return ((gen & GEN_MASK) << 2) | req;
}

/** Has a worker that acknowledged `ack` acted on generation `gen` (modulo wrap-around)? */
export function acked(ack: number, gen: number): boolean {
  return ((ack - gen) & GEN_MASK) < GEN_MASK >>> 1;
}

export const STATE_STARTING = 0;
export const STATE_RUNNING = 1;
export const STATE_PAUSED = 2;
export const STATE_EXITED = 3;

/** Per-vCPU exit counters (Float64Array indices), written only by the vCPU's thread. */
export const STAT = {
  io: 0,
  mmio: 1,
  intr: 2,
  hlt: 3,
  shutdown: 4,
  systemEvent: 5,
  failure: 6,
  other: 7,
  deviceErrors: 8,
  unclaimedPio: 9,
  unclaimedMmio: 10,
} as const;
export const STAT_WORDS = 11;

export interface MemoryLayoutEntry {
  gpa: number;
  size: number;
  hostAddr: bigint;
  prot: Prot;
}

export interface VcpuWorkerData {
  id: number;
  vmFd: number;
  vcpuFd: number;
  /** The vCPU's kvm_run mapping, made by the main thread (which unmaps it after the worker exits). */
  runAddr: bigint;
  runSize: number;
  memory: MemoryLayoutEntry[];
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** The coalesced-I/O ring, when ports are coalesced: its page in the kvm_run mapping and the drain lock. */
  coalesced: { pageOffset: number; lock: SharedArrayBuffer } | undefined;
}

/**
 * Main → worker. Workers are spawned when the Machine is created, so their
 * start-up overlaps the main thread's; `preload` warms a device module as
 * soon as a device is added, and `attach` (at Machine.start) hands over the
 * final device list and IRQ source table.
 */
export type VcpuCommand =
  | { type: 'preload'; module: string }
  | { type: 'attach'; devices: DeviceDescriptor[]; tables: SharedHostTables }
  /** The machine is destroyed before it started: end the thread (see Machine.destroy). */
  | { type: 'exit' };

/**
 * The I/O thread (io-worker.ts) runs under the same control words, woken
 * from epoll by `controlFd` (an eventfd) instead of a signal.
 */
export interface IoWorkerData {
  vmFd: number;
  memory: MemoryLayoutEntry[];
  ctl: SharedArrayBuffer;
  controlFd: number;
}

export type VcpuMessage =
  | { type: 'ready'; id: number; tid: number }
  | { type: 'halt'; id: number; reason: string; status?: number }
  | { type: 'reset'; id: number; reason: string }
  | { type: 'failure'; id: number; reason: string }
  | { type: 'log'; id: number; level: 'warn' | 'error'; msg: string };

/**
 * In a worker: wait for the `attach` command (Machine.start), warming the
 * device modules named by `preload` meanwhile. No more commands come by
 * message after it, so the port is unref'd: the thread ends with its loop.
 */
export function awaitAttach(port: MessagePort): Promise<Extract<VcpuCommand, { type: 'attach' }>> {
  return new Promise((resolve) => {
    const onMessage = (m: VcpuCommand): void => {
      if (m.type === 'preload') {
        import(m.module).catch(() => {
          // Reported properly when the device attaches.
        });
      } else if (m.type === 'exit') {
        // Ends this worker thread only (process.exit in a worker stops the worker).
        process.exit(0);
      } else {
        port.off('message', onMessage);
        port.unref();
        resolve(m);
      }
    };
    port.on('message', onMessage);
  });
}
