// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A pool of worker threads in front of one backend, for frontends that
// submit requests and take completions asynchronously (Propolis's backend
// workers): each worker opens the backend with `openBackend` and builds
// its own view of guest memory from the machine's layout.
//
// Data path: requests go into shared slots and a submission ring; workers
// hand slots back through per-worker completion rings (pool-shared.ts).
// The submitter learns of completions two ways, both cheap for a worker:
//   - an eventfd (`pool.eventfd`), readable when completions are pending,
//     for a device I/O thread blocked in epoll; it then calls `reap()`;
//   - with `autoReap` (the default), the pool waits on the pending count
//     with Atomics.waitAsync and reaps from its thread's event loop.
// `reap()` calls `onComplete(tag, result)` for each finished request.
//
// Ordering: requests run concurrently and complete in any order, except
// that a flush is started only after every write, discard and write-zeroes
// submitted before it has completed, so it covers all of them (see
// barriers.ts); requests submitted after a flush do not wait for it.
//
// Lifecycle: `start()` spawns the workers and resolves when each has opened
// the backend (or rejects with the first open error). `pause()` holds new
// submissions (they are accepted and queued, not run); `paused()` resolves
// once everything submitted before the pause has completed and been
// reaped; `resume()` releases the held requests in order. `stop()` drains,
// completes held requests with Failure, ends the workers and closes the
// eventfd.
//
// Threading: a pool belongs to the thread that created it (the submitter);
// submit, reap and the lifecycle calls are made there only. The guest
// memory mappings named in `layout` must outlive the pool (stop it first).

import { Worker } from 'node:worker_threads';
import * as libc from '../../../kvm/src/libc.js';
import type { MemoryLayoutEntry } from '../vmm/vcpu-control.js';
import { backendInfo, backendWorkers } from './backend.js';
import { FlushBarriers } from './barriers.js';
import { BlockBackendError } from './errors.js';
import { MAX_WORKERS } from './options.js';
import { CQ_PENDING, EXIT_MARKER, PoolShared, poolGeometry } from './pool-shared.js';
import type { PoolWorkerData, PoolWorkerMessage } from './pool-worker.js';
import { BlockOp, BlockResult, type BackendDescriptor, type DeviceInfo } from './types.js';

export interface BlockWorkerPoolOptions {
  /** Guest memory as the Machine mapped it; buffers outside it fail. */
  layout: MemoryLayoutEntry[];
  /** Worker threads; default: the backend's configured `workers`. At most 32. */
  workers?: number;
  /** Requests in flight at once (slots). Default 256. */
  queueDepth?: number;
  /** Guest buffers per request. Default 256 (1 MiB of 4 KiB pages). */
  maxSegments?: number;
  /** Called from `reap()` for each completion submitted with `submit`; should not throw. */
  onComplete?: (tag: number, result: BlockResult) => void;
  /** Reap from this thread's event loop as completions arrive. Default true. */
  autoReap?: boolean;
  /**
   * A worker died unexpectedly (a bug; the pool then fails every new
   * request), or an `onComplete` threw during automatic reaping.
   */
  onError?: (err: Error) => void;
  /** Thread names are `<name>-<n>`; default `block-<backend name>`. */
  name?: string;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

interface Waiting {
  op: BlockOp;
  offset: number;
  len: number;
  segs: ArrayLike<number> | undefined;
  nseg: number;
  resolve: (r: BlockResult) => void;
}

const noop = (): void => {};

export class BlockWorkerPool {
  readonly info: DeviceInfo;
  readonly workers: number;
  readonly queueDepth: number;
  readonly maxSegments: number;
  private readonly shared: PoolShared;
  private readonly barriers = new FlushBarriers();
  private readonly onComplete: (tag: number, result: BlockResult) => void;
  private readonly threads: Worker[] = [];
  private readonly exits: Promise<void>[] = [];
  private state: State = 'new';
  private efd = -1;
  private broken: Error | undefined;

  // Per slot, on this thread only.
  private readonly free: number[] = [];
  private readonly tags: Float64Array;
  /** The epoch of a write-type request (FlushBarriers), or -1. */
  private readonly epochs: Float64Array;
  private readonly resolvers: (((r: BlockResult) => void) | undefined)[];

  /** Submitted while paused; routed on resume. */
  private held: number[] = [];
  private holding = false;
  /** Routed (in a ring, running, or a flush at its barrier) and not yet reaped. */
  private routed = 0;
  /** Completions decided on this thread (bad requests, a broken pool), delivered by `reap`. */
  private local: number[] = [];
  private readonly waiting: Waiting[] = [];
  private drainWaiters: (() => void)[] = [];
  private reaping = false;
  private callbackError: { e: unknown } | undefined;
  private reaper: Promise<void> | undefined;

  constructor(
    readonly desc: BackendDescriptor,
    private readonly opts: BlockWorkerPoolOptions,
  ) {
    this.info = backendInfo(desc);
    const workers = opts.workers ?? backendWorkers(desc);
    const depth = opts.queueDepth ?? 256;
    const segs = opts.maxSegments ?? 256;
    const check = (ok: boolean, what: string): void => {
      if (!ok) throw new BlockBackendError('BLOCK_BAD_OPTION', `block pool for "${desc.name}": ${what}`);
    };
    check(Number.isInteger(workers) && workers >= 1 && workers <= MAX_WORKERS, `workers must be 1..32, got ${workers}`);
    check(Number.isInteger(depth) && depth >= 1 && depth <= 65536, `queueDepth must be 1..65536, got ${depth}`);
    check(Number.isInteger(segs) && segs >= 1 && segs <= 4096, `maxSegments must be 1..4096, got ${segs}`);
    check(Array.isArray(opts.layout), 'layout must be the guest memory layout');
    this.workers = workers;
    this.queueDepth = depth;
    this.maxSegments = segs;
    this.shared = PoolShared.create(poolGeometry(depth, workers, segs));
    this.onComplete = opts.onComplete ?? noop;
    this.tags = new Float64Array(depth);
    this.epochs = new Float64Array(depth).fill(-1);
    this.resolvers = new Array<undefined>(depth).fill(undefined);
    for (let i = depth - 1; i >= 0; i--) this.free.push(i);
  }

  /** Readable when completions are pending; valid from `start()` until `stop()`. Never read it yourself: `reap()` does. */
  get eventfd(): number {
    return this.efd;
  }

  /** Requests submitted and not yet reaped (held ones included). */
  get inFlight(): number {
    return this.routed + this.held.length + this.local.length;
  }

  async start(): Promise<void> {
    if (this.state !== 'new')
      throw new BlockBackendError('BLOCK_POOL', `block pool "${this.desc.name}" already started`);
    this.state = 'starting';
    const efd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    if (efd < 0) {
      this.state = 'stopped';
      throw new BlockBackendError(
        'BLOCK_POOL',
        `block pool "${this.desc.name}": eventfd: ${libc.errnoName(libc.errno())}`,
      );
    }
    this.efd = efd;
    const url = new URL('./pool-worker.js', import.meta.url);
    const name = this.opts.name ?? `block-${this.desc.name}`;
    const ready = [];
    for (let i = 0; i < this.workers; i++) {
      const wd: PoolWorkerData = {
        index: i,
        desc: this.desc,
        layout: this.opts.layout,
        sab: this.shared.sab,
        geometry: this.shared.geo,
        eventfd: efd,
      };
      const w = new Worker(url, { workerData: wd, name: `${name}-${i}` });
      this.threads.push(w);
      this.exits.push(new Promise<void>((r) => w.once('exit', () => r())));
      ready.push(
        new Promise<void>((resolve, reject) => {
          w.on('message', (m: PoolWorkerMessage) => {
            if (m.type === 'ready') resolve();
            else {
              const err = BlockBackendError.fromWire(m.error);
              reject(err);
              this.workerDied(err);
            }
          });
          w.once('error', (e) => {
            const err = new BlockBackendError('BLOCK_POOL', `block pool "${name}" worker ${i}: ${e.message}`, {
              cause: e,
            });
            reject(err);
            this.workerDied(err);
          });
          w.once('exit', (code) => {
            const err = new BlockBackendError('BLOCK_POOL', `block pool "${name}" worker ${i} exited (${code})`);
            reject(err);
            if (this.state === 'running') this.workerDied(err);
          });
        }),
      );
    }
    const results = await Promise.allSettled(ready);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.state = 'stopping';
      await Promise.all(this.threads.map((t) => t.terminate()));
      this.closeEventfd();
      this.state = 'stopped';
      throw failed.reason;
    }
    this.state = 'running';
    if (this.opts.autoReap ?? true) this.runReaper();
  }

  private workerDied(err: Error): void {
    if (this.broken || this.state !== 'running') return;
    this.broken = err;
    this.opts.onError?.(err);
  }

  // --- submission ----------------------------------------------------------

  /**
   * Queue one request; returns its slot, or -1 when every slot is taken
   * (or earlier `submitAsync` calls still wait for one). For Read and Write,
   * `segs` holds `nseg` (gpa, length) pairs and `len` is ignored; Discard
   * and WriteZeroes act on `len` bytes at `offset`; Flush uses neither.
   * `tag` comes back in `onComplete`. A malformed request (too many
   * segments, a bad number) is not refused here: it completes with Failure.
   */
  submit(
    op: BlockOp,
    offset: number,
    len: number,
    segs: ArrayLike<number> | undefined,
    nseg: number,
    tag: number,
  ): number {
    if (this.state !== 'running') {
      throw new BlockBackendError('BLOCK_POOL', `block pool "${this.desc.name}" is not running (${this.state})`);
    }
    if (this.waiting.length > 0) return -1;
    return this.place(op, offset, len, segs, nseg, tag, undefined);
  }

  /** `submit` as a promise; waits for a free slot instead of returning -1, keeping submission order. */
  submitAsync(op: BlockOp, offset: number, len = 0, segs?: ArrayLike<number>, nseg?: number): Promise<BlockResult> {
    if (this.state !== 'running') {
      return Promise.reject(
        new BlockBackendError('BLOCK_POOL', `block pool "${this.desc.name}" is not running (${this.state})`),
      );
    }
    const n = nseg ?? (segs ? segs.length >> 1 : 0);
    return new Promise((resolve) => {
      if (this.waiting.length > 0 || this.place(op, offset, len, segs, n, 0, resolve) < 0) {
        this.waiting.push({ op, offset, len, segs, nseg: n, resolve });
      }
    });
  }

  private place(
    op: BlockOp,
    offset: number,
    len: number,
    segs: ArrayLike<number> | undefined,
    nseg: number,
    tag: number,
    resolve: ((r: BlockResult) => void) | undefined,
  ): number {
    const slot = this.free.pop();
    if (slot === undefined) return -1;
    this.tags[slot] = tag;
    this.resolvers[slot] = resolve;
    const sh = this.shared;
    if (this.broken || !this.fill(slot, op, offset, len, segs, nseg)) {
      sh.setRequest(slot, op, 0, 0, 0);
      sh.setResult(slot, BlockResult.Failure);
      this.local.push(slot);
      if (sh.raisePending() && this.efd >= 0) libc.eventfdSignal(this.efd);
      return slot;
    }
    if (this.holding) this.held.push(slot);
    else this.route(slot);
    return slot;
  }

  /** Copy a request into its slot; false if it is malformed. */
  private fill(
    slot: number,
    op: BlockOp,
    offset: number,
    len: number,
    segs: ArrayLike<number> | undefined,
    nseg: number,
  ): boolean {
    const sh = this.shared;
    const num = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    switch (op) {
      case BlockOp.Read:
      case BlockOp.Write: {
        if (!num(offset) || !Number.isInteger(nseg) || nseg < 0 || nseg > this.maxSegments) return false;
        if (nseg > 0 && (!segs || segs.length < 2 * nseg)) return false;
        const base = sh.segBase(slot);
        for (let i = 0; i < 2 * nseg; i++) {
          const v = segs![i];
          if (!num(v)) return false;
          sh.segs[base + i] = v;
        }
        sh.setRequest(slot, op, offset, 0, nseg);
        return true;
      }
      case BlockOp.Discard:
      case BlockOp.WriteZeroes:
        if (!num(offset) || !num(len)) return false;
        sh.setRequest(slot, op, offset, len, 0);
        return true;
      case BlockOp.Flush:
        sh.setRequest(slot, op, 0, 0, 0);
        return true;
      default:
        return false;
    }
  }

  /** Send a filled slot towards the workers, through the flush barrier. */
  private route(slot: number): void {
    this.routed++;
    const op = this.shared.op(slot);
    if (op === BlockOp.Flush) {
      if (this.barriers.flush(slot)) this.shared.push(slot);
      return;
    }
    if (op === BlockOp.Write || op === BlockOp.Discard || op === BlockOp.WriteZeroes) {
      this.epochs[slot] = this.barriers.write();
    }
    this.shared.push(slot);
  }

  // --- completion ----------------------------------------------------------

  /**
   * Deliver every completion that has arrived: flushes whose barrier has
   * cleared are started, slots are freed, then callbacks run. Returns how
   * many requests completed. Call it when `eventfd` is readable (or let
   * `autoReap` do it). A callback that throws does not stop the others:
   * the first error is rethrown once every completion has been delivered.
   */
  reap(): number {
    if (this.reaping) return 0; // called again from a callback: the outer call finishes the job
    this.reaping = true;
    let n = 0;
    this.callbackError = undefined;
    try {
      if (this.efd >= 0) libc.eventfdRead(this.efd);
      const local = this.local;
      if (local.length > 0) {
        this.local = [];
        for (const slot of local) this.finish(slot, false);
        n += local.length;
      }
      this.shared.drain((slot) => {
        this.finish(slot, true);
        n++;
      });
    } finally {
      this.reaping = false;
    }
    this.admitWaiting();
    if (this.routed === 0 && this.drainWaiters.length > 0) {
      const ws = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of ws) w();
    }
    const failed = this.callbackError as { e: unknown } | undefined; // set by finish()
    if (failed) throw failed.e;
    return n;
  }

  private finish(slot: number, routed: boolean): void {
    const result = this.shared.result(slot);
    if (routed) {
      this.routed--;
      const epoch = this.epochs[slot]!;
      if (epoch >= 0) {
        this.epochs[slot] = -1;
        const release = this.barriers.writeDone(epoch);
        if (release) for (const f of release) this.shared.push(f);
      }
    }
    const tag = this.tags[slot]!;
    const resolve = this.resolvers[slot];
    this.resolvers[slot] = undefined;
    this.free.push(slot);
    if (resolve) resolve(result);
    else {
      try {
        this.onComplete(tag, result);
      } catch (e) {
        this.callbackError ??= { e };
      }
    }
  }

  /** Give freed slots to `submitAsync` callers, oldest first. */
  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.free.length > 0 && this.state === 'running') {
      const w = this.waiting.shift()!;
      this.place(w.op, w.offset, w.len, w.segs, w.nseg, 0, w.resolve);
    }
  }

  private runReaper(): void {
    if (this.reaper) return;
    const hdr = this.shared.hdr;
    this.reaper = (async () => {
      while (this.state === 'running' || this.state === 'stopping') {
        const w = Atomics.waitAsync(hdr, CQ_PENDING, 0);
        if (w.async) await w.value;
        if ((this.state as State) === 'stopped') break; // set by stop() while we waited
        try {
          this.reap();
        } catch (e) {
          // A throwing onComplete is the caller's bug; report it, keep reaping.
          const err = e instanceof Error ? e : new Error(String(e));
          if (this.opts.onError) this.opts.onError(err);
          else
            queueMicrotask(() => {
              throw err;
            });
        }
      }
    })();
  }

  // --- lifecycle -----------------------------------------------------------

  /** Stop running new requests: later submissions are held until `resume()`. */
  pause(): void {
    this.holding = true;
  }

  /**
   * Resolves once every request submitted before `pause()` has completed
   * and been reaped. Reaps from the event loop meanwhile, even without
   * `autoReap`.
   */
  paused(): Promise<void> {
    if (this.routed === 0) return Promise.resolve();
    this.runReaper();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  resume(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const slot of held) this.route(slot);
  }

  /** Drain, fail held and waiting requests, end the workers, close the eventfd. */
  async stop(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    if (this.state !== 'running') return;
    this.pause();
    // A pool with a dead worker may never see that worker's request complete.
    if (!this.broken) await this.paused();
    this.state = 'stopping';
    const held = this.held;
    this.held = [];
    for (const slot of held) {
      this.shared.setResult(slot, BlockResult.Failure);
      this.finish(slot, false);
    }
    for (const w of this.waiting.splice(0)) w.resolve(BlockResult.Failure);
    this.reap(); // local completions
    for (let i = 0; i < this.threads.length; i++) this.shared.push(EXIT_MARKER);
    if (this.broken) await Promise.all(this.threads.map((t) => t.terminate()));
    await Promise.all(this.exits);
    this.state = 'stopped';
    Atomics.notify(this.shared.hdr, CQ_PENDING); // let the reaper see `stopped`
    await this.reaper;
    this.closeEventfd();
  }

  private closeEventfd(): void {
    if (this.efd >= 0) libc.close(this.efd);
    this.efd = -1;
  }
}
