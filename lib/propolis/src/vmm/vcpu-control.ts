// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The contract between the main thread and one vCPU worker.
//
// Control is a small Int32Array in shared memory:
//   REQ   what the main thread wants: RUN, PAUSE or EXIT;
//   STATE what the worker is doing: STARTING, RUNNING, PAUSED, EXITED;
//   GEN   bumped with every request; a parked worker sleeps on it;
//   ACK   the GEN of the last request the worker acted on (the main thread
//         waits for ACK to reach the GEN of its request).
// To make a vCPU leave KVM_RUN the main thread sets REQ, bumps GEN, sets
// `immediate_exit` in the vCPU's kvm_run page and sends SIGUSR2 to the
// worker's kernel thread (see Machine.kick). KVM_RUN then returns EINTR —
// at once if the worker was about to enter it — and the worker re-reads REQ.
//
// Events (guest halt/reset requests, failures) travel as postMessage: they
// are rare and may take the slow path.

import type { DeviceDescriptor } from '../device.js';
import type { IrqSourceAlloc } from './irq-lines.js';
import type { Prot } from './memory.js';

export const CTL_REQ = 0;
export const CTL_STATE = 1;
export const CTL_GEN = 2;
export const CTL_ACK = 3;
export const CTL_WORDS = 4;

export const REQ_RUN = 0;
export const REQ_PAUSE = 1;
export const REQ_EXIT = 2;

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
  devices: DeviceDescriptor[];
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** Shared IRQ line state and the source bits the main thread allocated. */
  irqs: SharedArrayBuffer;
  irqAllocs: IrqSourceAlloc[];
}

export type VcpuMessage =
  | { type: 'ready'; id: number; tid: number }
  | { type: 'halt'; id: number; reason: string; status?: number }
  | { type: 'reset'; id: number; reason: string }
  | { type: 'failure'; id: number; reason: string }
  | { type: 'log'; id: number; level: 'warn' | 'error'; msg: string };
