// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Entry point of one BlockWorkerPool worker thread: opens the backend and
// its own view of guest memory, then takes requests from the shared
// submission ring and runs them synchronously, one at a time, until it
// reads an exit marker.
//
// Guest buffers arrive as (gpa, length) pairs from the frontend and are
// untrusted: each must lie wholly inside one region of guest RAM with the
// access the operation needs (a read writes guest memory, a write reads
// it), or the request fails without touching the backend.
//
// Threading: this thread owns its BlockTarget and its GuestMemory views.
// The views are over the Machine's mappings, which outlive the pool: the
// pool is stopped (and this thread has exited) before guest memory is
// unmapped. postMessage is used only to report readiness or an open error.

import { parentPort, workerData } from 'node:worker_threads';
import * as libc from '../../../kvm/src/libc.js';
import { memoryFromLayout } from '../vmm/host.js';
import { Prot, type GuestMemory } from '../vmm/memory.js';
import type { MemoryLayoutEntry } from '../vmm/vcpu-control.js';
import { openBackend } from './backend.js';
import { BlockBackendError } from './errors.js';
import { EXIT_MARKER, PoolShared, type PoolGeometry } from './pool-shared.js';
import { BlockOp, BlockResult, type BackendDescriptor, type BlockTarget } from './types.js';

export interface PoolWorkerData {
  index: number;
  desc: BackendDescriptor;
  layout: MemoryLayoutEntry[];
  sab: SharedArrayBuffer;
  geometry: PoolGeometry;
  /** Signalled when completions become pending; -1 for none. */
  eventfd: number;
}

export type PoolWorkerMessage =
  { type: 'ready' } | { type: 'error'; error: { code: BlockBackendError['code']; message: string } };

const data = workerData as PoolWorkerData;
const port = parentPort;
if (!port) throw new Error('pool-worker must run in a worker thread');

function run(target: BlockTarget, mem: GuestMemory, shared: PoolShared): void {
  const bufs: Uint8Array[] = [];
  const segs = shared.segs;

  const execute = (slot: number): BlockResult => {
    const op = shared.op(slot);
    switch (op) {
      case BlockOp.Read:
      case BlockOp.Write: {
        // A read fills guest memory, so its buffers must be writable.
        const need = op === BlockOp.Read ? Prot.Write : Prot.Read;
        const n = shared.nseg(slot);
        const base = shared.segBase(slot);
        bufs.length = 0;
        for (let i = 0; i < n; i++) {
          const s = mem.slice(segs[base + 2 * i]!, segs[base + 2 * i + 1]!, need);
          if (!s) return BlockResult.Failure;
          bufs.push(s.bytes);
        }
        return op === BlockOp.Read ? target.read(shared.offset(slot), bufs) : target.write(shared.offset(slot), bufs);
      }
      case BlockOp.Flush:
        return target.flush();
      case BlockOp.Discard:
        return target.discard(shared.offset(slot), shared.len(slot));
      case BlockOp.WriteZeroes:
        return target.writeZeroes(shared.offset(slot), shared.len(slot));
      default:
        return BlockResult.Failure;
    }
  };

  for (;;) {
    const slot = shared.take();
    if (slot === EXIT_MARKER) break;
    let r: BlockResult;
    try {
      r = execute(slot);
    } catch {
      // A backend that throws is our bug; the request still completes.
      r = BlockResult.Failure;
    }
    bufs.length = 0; // drop the views of guest memory between requests
    shared.setResult(slot, r);
    if (shared.complete(data.index, slot) && data.eventfd >= 0) libc.eventfdSignal(data.eventfd);
  }
}

let target: BlockTarget | undefined;
try {
  target = openBackend(data.desc);
  const mem = memoryFromLayout(data.layout);
  const shared = new PoolShared(data.sab, data.geometry);
  port.postMessage({ type: 'ready' } satisfies PoolWorkerMessage);
  run(target, mem, shared);
} catch (e) {
  const error =
    e instanceof BlockBackendError
      ? e.toWire()
      : { code: 'BLOCK_POOL' as const, message: `block pool worker ${data.index}: ${(e as Error).message}` };
  port.postMessage({ type: 'error', error } satisfies PoolWorkerMessage);
} finally {
  target?.close();
}
