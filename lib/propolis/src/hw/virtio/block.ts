// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// virtio-block (virtio 1.2 §5.2) on the PCI transport: the seed's
// `pci-virtio-block` — 1AF4:1001, subsystem 1AF4:0002, class 01/00,
// revision 0, legacy by default (BAR0 I/O 0x200, BAR1 MSI-X with a vector
// for configuration changes and one per queue), one queue of 256 entries.
// Transitional and modern layouts and several queues (VIRTIO_BLK_F_MQ) are
// options.
//
// Features: BLK_SIZE, SEG_MAX (126), FLUSH, RO when read-only, and when
// writable WRITE_ZEROES and — if the backend can — DISCARD (one segment of
// at most 2048 sectors per request, aligned to the block size); MQ with
// more than one queue. GET_ID answers the serial (20 bytes, NUL-padded).
//
// A request is a chain: a 16-byte header {type u32, reserved u32, sector
// u64} at the start of the device-readable part, data, and the status byte
// as the last byte of the device-writable part. Answers:
//   IN/OUT            read/write at sector*512, data a multiple of 512 in
//                     the right direction (IN: nothing readable after the
//                     header; OUT: nothing writable before the status);
//                     past capacity → IOERR; OUT on read-only → IOERR
//   FLUSH (and the legacy FLUSH_OUT synonym)
//   GET_ID            the serial into the writable data (at most 4 KiB)
//   DISCARD           UNSUPP unless offered; WRITE_ZEROES; both: segments of
//                     16 bytes, unknown flags (or unmap on discard) → UNSUPP,
//                     too many segments or sectors, past capacity → IOERR,
//                     read-only → IOERR
//   anything else     UNSUPP
//   a header shorter than 16 bytes, or outside guest RAM, or data buffers
//   outside guest RAM (or not writable for IN) → IOERR
//   no device-writable byte at all → no status can be given: the chain is
//   returned used with length 0.
// Malformed chains themselves (loops, bad indices, …) never get here: the
// queue faults and the device reports DEVICE_NEEDS_RESET (queue.ts).
// The used length is the number of bytes known written from the start of
// the writable part: the whole part (data and status) for a successful IN
// or GET_ID, 1 when the status is the only writable byte, 0 otherwise (an
// underestimate, which the spec allows; drivers read the status anyway).
//
// Requests run synchronously against a BlockTarget on the thread that
// processes the queue — the machine's I/O thread when notifies are
// doorbells, else the vCPU thread that took the notify. Adjacent reads or
// writes queued together run as one vectored call (see "request merging").
// Each thread opens its own target from the backend descriptor (block
// layer contract, block/types.ts): the descriptor names a module and an
// export `(BackendDescriptor) => BlockTarget`; vCPU workers import it
// before attaching (`PciVirtioBlockLoader`), other threads open lazily if
// `loadBlockOpener` ran there, and tests hand a target in directly.
//
// Threading: per-thread instance over shared state (transport words, queue
// words, configuration bytes, counters); see pci.ts for the locks.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { BackendDescriptor, BlockTarget, DeviceInfo } from '../../block/types.js';
import { BlockResult } from '../../block/types.js';
import type { Lifecycle } from '../../lifecycle.js';
import type { Migrate, Payload, PayloadOffers } from '../../migrate.js';
import type { GuestMemory } from '../../vmm/memory.js';
import type { PciPath } from '../pci/path.js';
import { VIRTIO_ID, VirtioMode, featureBit } from './bits.js';
import { VirtioPciTransport, type VirtioDevice, type VirtioPciShared } from './pci.js';
import type { Chain, SplitQueue } from './queue.js';

/** Block feature bit numbers (spec §5.2.3). */
export const VIRTIO_BLK_F = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Request types (spec §5.2.6). */
export const VIRTIO_BLK_T = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  /** Legacy synonym of FLUSH. */
  FLUSH_OUT: 5,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
} as const;

export const VIRTIO_BLK_S = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** struct virtio_blk_config, as far as the seed exposes it (through write_zeroes_may_unmap). */
export const BLK_CFG = {
  CAPACITY: 0x00,
  SIZE_MAX: 0x08,
  SEG_MAX: 0x0c,
  GEOMETRY: 0x10,
  BLK_SIZE: 0x14,
  TOPOLOGY: 0x18,
  WRITEBACK: 0x20,
  NUM_QUEUES: 0x22,
  MAX_DISCARD_SECTORS: 0x24,
  MAX_DISCARD_SEG: 0x28,
  DISCARD_SECTOR_ALIGNMENT: 0x2c,
  MAX_WRITE_ZEROES_SECTORS: 0x30,
  MAX_WRITE_ZEROES_SEG: 0x34,
  WRITE_ZEROES_MAY_UNMAP: 0x38,
  SIZE: 0x3c,
} as const;

export const SECTOR_SIZE = 512;
/** The seed copies QEMU's limit: 128 segments minus header and status. */
export const SEG_MAX = 126;
/** Per-request limit of DISCARD and WRITE_ZEROES (1 MiB, as the seed's discard). */
export const MAX_DISCARD_SECTORS = 2048;
export const MAX_WRITE_ZEROES_SECTORS = 2048;
export const ID_BYTES = 20;
const REQ_HEADER = 16;
const SEGMENT = 16;
/** GET_ID data larger than this is refused (the spec says 20 bytes). */
const MAX_ID_DATA = 4096;
const DEFAULT_QUEUE_SIZE = 256;

export class VirtioBlockConfigError extends Error {
  readonly code = 'VIRTIO_BLOCK_CONFIG';
}

/** How each thread opens the device's backend. */
export interface BlockBackendRef {
  /** Module URL (e.g. `import.meta.url` of the backend's file). */
  module: string;
  /** Name of an export `(descriptor: BackendDescriptor) => BlockTarget`. */
  export: string;
  descriptor: BackendDescriptor;
}

export type BlockOpener = (descriptor: BackendDescriptor) => BlockTarget;

export interface VirtioBlockOptions {
  path: PciPath;
  /** The backend; undefined when every instance gets its target from `attachWithTarget`. */
  backend?: BlockBackendRef;
  /** The backend's geometry (block size, capacity, read-only, discard). */
  info: DeviceInfo;
  /** Present the disk read-only even if the backend is writable. */
  readOnly?: boolean;
  /** GET_ID string: up to 20 ASCII characters. */
  serial?: string;
  /** Request queues (more than one offers VIRTIO_BLK_F_MQ). Default 1. */
  queues?: number;
  /** Entries per queue, a power of two up to 32768. Default 256. */
  queueSize?: number;
  /** Default Legacy, as the seed. */
  mode?: VirtioMode;
  /** Offer VIRTIO_F_EVENT_IDX. Default true. */
  eventIdx?: boolean;
}

interface BlockShared {
  transport: VirtioPciShared;
  backend: BlockBackendRef | undefined;
  /** Device configuration bytes (BLK_CFG). */
  config: SharedArrayBuffer;
  readOnly: boolean;
  discard: boolean;
  capacityBytes: number;
  id: Uint8Array;
  /** Counters (see STAT). */
  stats: SharedArrayBuffer;
  /** Bytes read and written successfully (BigInt64: [read, write]). */
  ioBytes: SharedArrayBuffer;
}

const STAT = {
  REQUESTS: 0,
  IOERR: 1,
  UNSUPP: 2,
  NO_STATUS: 3,
  BACKEND_ERRORS: 4,
  MERGED: 5,
  CALLS: 6,
  WORDS: 7,
} as const;

/** A merged backend call carries at most this many buffers (the kernel's IOV_MAX)… */
const MERGE_MAX_BUFS = 1024;
/** …and at most this many bytes (merging pays for small requests; big ones gain nothing). */
const MERGE_MAX_BYTES = 4 * 1024 * 1024;

/** One request of a run being merged: where its status goes and its used length on success. */
interface RunMember {
  head: number;
  status: Uint8Array;
  okUsed: number;
  off: number;
  bufs: Uint8Array[];
}

// Openers this thread has loaded, by `module#export`.
const openers = new Map<string, BlockOpener>();
const openerKey = (r: BlockBackendRef): string => `${r.module}#${r.export}`;

/** Import a backend's opener on this thread, so instances here can open their targets. */
export async function loadBlockOpener(ref: BlockBackendRef): Promise<void> {
  const key = openerKey(ref);
  if (openers.has(key)) return;
  const mod = (await import(ref.module)) as Record<string, unknown>;
  const fn = mod[ref.export];
  if (typeof fn !== 'function') {
    throw new VirtioBlockConfigError(`block backend ${ref.module} has no opener export ${ref.export}`);
  }
  openers.set(key, fn as BlockOpener);
}

function blockFeatures(readOnly: boolean, discard: boolean, queues: number): bigint {
  let f = [VIRTIO_BLK_F.BLK_SIZE, VIRTIO_BLK_F.SEG_MAX, VIRTIO_BLK_F.FLUSH].reduce((a, b) => a | featureBit(b), 0n);
  if (readOnly) f |= featureBit(VIRTIO_BLK_F.RO);
  else f |= featureBit(VIRTIO_BLK_F.WRITE_ZEROES);
  if (discard) f |= featureBit(VIRTIO_BLK_F.DISCARD);
  if (queues > 1) f |= featureBit(VIRTIO_BLK_F.MQ);
  return f;
}

function blockConfig(info: DeviceInfo, capacitySectors: number, discard: boolean, queues: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(BLK_CFG.SIZE);
  const dv = new DataView(sab);
  dv.setBigUint64(BLK_CFG.CAPACITY, BigInt(capacitySectors), true);
  dv.setUint32(BLK_CFG.SEG_MAX, SEG_MAX, true);
  dv.setUint32(BLK_CFG.BLK_SIZE, info.blockSize, true);
  dv.setUint16(BLK_CFG.NUM_QUEUES, queues, true);
  if (discard) {
    dv.setUint32(BLK_CFG.MAX_DISCARD_SECTORS, Math.min(MAX_DISCARD_SECTORS, capacitySectors), true);
    dv.setUint32(BLK_CFG.MAX_DISCARD_SEG, 1, true);
    dv.setUint32(BLK_CFG.DISCARD_SECTOR_ALIGNMENT, info.blockSize / SECTOR_SIZE, true);
  }
  dv.setUint32(BLK_CFG.MAX_WRITE_ZEROES_SECTORS, Math.min(MAX_WRITE_ZEROES_SECTORS, capacitySectors), true);
  dv.setUint32(BLK_CFG.MAX_WRITE_ZEROES_SEG, 1, true);
  return sab;
}

export class PciVirtioBlock implements MachineDevice, VirtioDevice, Lifecycle {
  readonly typeName = 'pci-virtio-block';
  readonly transport: VirtioPciTransport;
  private readonly sh: BlockShared;
  private readonly cfg: Uint8Array;
  private readonly stat: Int32Array;
  private readonly ioBytes: BigInt64Array;
  private target: BlockTarget | undefined;
  private openTried = false;
  // Per-thread scratch: requests allocate only the views of guest memory they hand to the target.
  private readonly hdr = new Uint8Array(REQ_HEADER);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly seg = new Uint8Array(SEGMENT);
  private readonly segView = new DataView(this.seg.buffer);
  private readonly bufs: Uint8Array[] = [];
  /** Set by request(): the whole writable data area was written. */
  private filledData = false;
  /** Contiguous reads or writes popped in this pass, to run as one backend call (see `merge`). */
  private run: RunMember[] = [];
  private runWrite = false;
  private runEnd = 0;
  private runBufs = 0;
  private runBytes = 0;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
    target: BlockTarget | undefined,
  ) {
    this.sh = descriptor.shared as BlockShared;
    this.cfg = new Uint8Array(this.sh.config);
    this.stat = new Int32Array(this.sh.stats);
    this.ioBytes = new BigInt64Array(this.sh.ioBytes);
    if (target) {
      this.target = target;
      this.openTried = true;
    }
    this.transport = VirtioPciTransport.attach(this.sh.transport, host, this, descriptor.name);
    host.atThreadExit?.(() => this.halt());
  }

  get name(): string {
    return this.descriptor.name;
  }

  /** Describe a virtio-block device (allocates its shared state); add it with the machine. */
  static describe(name: string, opts: VirtioBlockOptions): DeviceDescriptor {
    const bad = (why: string): never => {
      throw new VirtioBlockConfigError(`virtio-block ${name}: ${why}`);
    };
    const { info } = opts;
    const bs = info.blockSize;
    if (!Number.isInteger(bs) || bs < SECTOR_SIZE || bs > 65536 || (bs & (bs - 1)) !== 0) {
      bad(`block size ${bs} is not a power of two from 512 to 65536`);
    }
    if (
      !Number.isSafeInteger(info.totalBlocks) ||
      info.totalBlocks < 0 ||
      !Number.isSafeInteger(info.totalBlocks * bs)
    ) {
      bad(`capacity of ${info.totalBlocks} blocks is out of range`);
    }
    const queues = opts.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > 64) bad(`${queues} queues (1 to 64)`);
    const queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 2 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      bad(`queue size ${queueSize} is not a power of two from 2 to 32768`);
    }
    const serial = opts.serial ?? '';
    if (serial.length > ID_BYTES || !/^[\x20-\x7e]*$/.test(serial)) {
      bad(`serial "${serial}" is not up to ${ID_BYTES} printable ASCII characters`);
    }
    const id = new Uint8Array(ID_BYTES);
    for (let i = 0; i < serial.length; i++) id[i] = serial.charCodeAt(i);
    const readOnly = (opts.readOnly ?? false) || info.readOnly;
    const discard = info.supportsDiscard && !readOnly;
    const capacityBytes = info.totalBlocks * bs;
    const capacitySectors = Math.floor(capacityBytes / SECTOR_SIZE);
    const mode = opts.mode ?? VirtioMode.Legacy;
    const shared: BlockShared = {
      transport: VirtioPciTransport.share(
        {
          type: VIRTIO_ID.BLOCK,
          mode,
          features: blockFeatures(readOnly, discard, queues),
          queueSizes: new Array<number>(queues).fill(queueSize),
          configSize: BLK_CFG.SIZE,
          eventIdx: opts.eventIdx ?? true,
        },
        opts.path,
      ),
      backend: opts.backend,
      config: blockConfig(info, capacitySectors, discard, queues),
      readOnly,
      discard,
      capacityBytes,
      id,
      stats: new SharedArrayBuffer(4 * STAT.WORDS),
      ioBytes: new SharedArrayBuffer(16),
    };
    return { module: import.meta.url, export: 'PciVirtioBlockLoader', name, shared };
  }

  /** This thread's instance; the target is opened on first use if this thread loaded the backend's opener. */
  static attach(desc: DeviceDescriptor, host: DeviceHost): PciVirtioBlock {
    return new PciVirtioBlock(desc, host, undefined);
  }

  /** This thread's instance, executing requests against `target` (tests; threads that open backends themselves). */
  static attachWithTarget(desc: DeviceDescriptor, host: DeviceHost, target: BlockTarget): PciVirtioBlock {
    return new PciVirtioBlock(desc, host, target);
  }

  /**
   * Counters: requests, answered IOERR, answered UNSUPP, returned without a
   * status, backend exceptions, requests merged into a neighbour's backend
   * call, and backend calls made for reads and writes.
   */
  get stats(): {
    requests: number;
    ioerr: number;
    unsupp: number;
    noStatus: number;
    backendErrors: number;
    merged: number;
    calls: number;
  } {
    const s = this.stat;
    return {
      merged: Atomics.load(s, STAT.MERGED),
      calls: Atomics.load(s, STAT.CALLS),
      requests: Atomics.load(s, STAT.REQUESTS),
      ioerr: Atomics.load(s, STAT.IOERR),
      unsupp: Atomics.load(s, STAT.UNSUPP),
      noStatus: Atomics.load(s, STAT.NO_STATUS),
      backendErrors: Atomics.load(s, STAT.BACKEND_ERRORS),
    };
  }

  private openTarget(): BlockTarget | undefined {
    if (this.target || this.openTried) return this.target;
    const ref = this.sh.backend;
    const opener = ref && openers.get(openerKey(ref));
    if (!ref || !opener) return undefined; // try again once the opener is loaded
    this.openTried = true;
    try {
      this.target = opener(ref.descriptor);
    } catch {
      Atomics.add(this.stat, STAT.BACKEND_ERRORS, 1);
    }
    return this.target;
  }

  // ---- VirtioDevice ----

  configRead(off: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + ((this.cfg[off + i] as number | undefined) ?? 0);
    return v;
  }

  configWrite(): void {
    // Read-only: no CONFIG_WCE, so not even `writeback` is writable.
  }

  onQueueNotify(q: SplitQueue, mem: GuestMemory): void {
    let c: Chain | undefined;
    while ((c = q.popAvail(mem)) !== undefined) {
      if (this.merge(c, mem, q)) continue;
      this.runMerged(q, mem);
      q.pushUsed(mem, c.head, this.execute(c, mem));
    }
    this.runMerged(q, mem);
  }

  // ---- request merging ----
  //
  // Reads (or writes) that the driver queued back to back and that touch
  // adjacent sectors run as one vectored backend call: one system call
  // instead of one per request, which is what a small sequential workload
  // costs most. Only well-formed IN/OUT requests join a run (anything else
  // first completes the run, so order against flushes and discards is kept);
  // a run ends at MERGE_MAX_BUFS buffers or MERGE_MAX_BYTES. If the merged
  // call fails, each request is retried alone, so only the ones that really
  // fail see IOERR.

  /** Add a well-formed IN/OUT request to the run (completing the run first if not adjacent); false if it is not one. */
  private merge(c: Chain, mem: GuestMemory, q: SplitQueue): boolean {
    if (c.writeBytes === 0 || c.readBytes < REQ_HEADER || !c.read(mem, 0, this.hdr)) return false;
    const h = this.hdrView;
    const type = h.getUint32(0, true);
    if (type !== VIRTIO_BLK_T.IN && type !== VIRTIO_BLK_T.OUT) return false;
    const write = type === VIRTIO_BLK_T.OUT;
    const sectorHi = h.getUint32(12, true);
    if (sectorHi >= 2 ** 12) return false;
    const sector = sectorHi * 2 ** 32 + h.getUint32(8, true);
    const statusOff = c.writeBytes - 1;
    const dataIn = statusOff;
    const dataOut = c.readBytes - REQ_HEADER;
    if (write ? this.sh.readOnly || dataIn !== 0 : dataOut !== 0) return false;
    const len = write ? dataOut : dataIn;
    if (len === 0 || len % SECTOR_SIZE !== 0 || !this.inRange(sector, len)) return false;
    const bufs: Uint8Array[] = [];
    const ok = write ? c.views(mem, false, REQ_HEADER, len, bufs) : c.views(mem, true, 0, len, bufs);
    const status: Uint8Array[] = [];
    if (!ok || !c.views(mem, true, statusOff, 1, status)) return false;
    const off = sector * SECTOR_SIZE;
    if (
      this.run.length > 0 &&
      (this.runWrite !== write ||
        this.runEnd !== off ||
        this.runBufs + bufs.length > MERGE_MAX_BUFS ||
        this.runBytes + len > MERGE_MAX_BYTES)
    ) {
      this.runMerged(q, mem);
    }
    if (this.run.length === 0) {
      this.runWrite = write;
      this.runBufs = 0;
      this.runBytes = 0;
    }
    // Used length on success: the data and status for a read, the status alone for a write.
    this.run.push({ head: c.head, status: status[0] as Uint8Array, okUsed: write ? 1 : c.writeBytes, off, bufs });
    this.runEnd = off + len;
    this.runBufs += bufs.length;
    this.runBytes += len;
    return true;
  }

  /** Run the pending run as one backend call (retrying its requests alone on failure) and complete them. */
  private runMerged(q: SplitQueue, mem: GuestMemory): void {
    const run = this.run;
    if (run.length === 0) return;
    this.run = [];
    const write = this.runWrite;
    const first = run[0] as RunMember;
    Atomics.add(this.stat, STAT.REQUESTS, run.length);
    let status: number;
    if (run.length === 1) {
      status = this.rw(write, first.off, first.bufs);
    } else {
      const all: Uint8Array[] = [];
      for (const m of run) for (const b of m.bufs) all.push(b);
      status = this.rw(write, first.off, all);
      if (status === VIRTIO_BLK_S.OK) Atomics.add(this.stat, STAT.MERGED, run.length - 1);
    }
    for (const m of run) {
      const st = status === VIRTIO_BLK_S.OK || run.length === 1 ? status : this.rw(write, m.off, m.bufs);
      if (st === VIRTIO_BLK_S.IOERR) Atomics.add(this.stat, STAT.IOERR, 1);
      m.status[0] = st;
      q.pushUsed(mem, m.head, st === VIRTIO_BLK_S.OK ? m.okUsed : m.okUsed === 1 ? 1 : 0);
    }
  }

  private rw(write: boolean, off: number, bufs: Uint8Array[]): number {
    Atomics.add(this.stat, STAT.CALLS, 1);
    const st = this.call((t) => (write ? t.write(off, bufs) : t.read(off, bufs)));
    if (st === VIRTIO_BLK_S.OK) {
      let n = 0;
      for (const b of bufs) n += b.length;
      Atomics.add(this.ioBytes, write ? 1 : 0, BigInt(n));
    }
    return st;
  }

  /** Bytes the guest read and wrote through this device. */
  get ioStats(): { readBytes: number; writeBytes: number } {
    return { readBytes: Number(Atomics.load(this.ioBytes, 0)), writeBytes: Number(Atomics.load(this.ioBytes, 1)) };
  }

  // ---- requests ----

  /** Run one request; the used length. */
  private execute(c: Chain, mem: GuestMemory): number {
    Atomics.add(this.stat, STAT.REQUESTS, 1);
    if (c.writeBytes === 0) {
      Atomics.add(this.stat, STAT.NO_STATUS, 1);
      return 0;
    }
    const statusOff = c.writeBytes - 1;
    const status = this.request(c, mem, statusOff);
    if (status === VIRTIO_BLK_S.IOERR) Atomics.add(this.stat, STAT.IOERR, 1);
    if (status === VIRTIO_BLK_S.UNSUPP) Atomics.add(this.stat, STAT.UNSUPP, 1);
    if (!c.writeU8(mem, statusOff, status)) {
      Atomics.add(this.stat, STAT.NO_STATUS, 1);
      return 0;
    }
    if (statusOff === 0) return 1;
    return status === VIRTIO_BLK_S.OK && this.filledData ? c.writeBytes : 0;
  }

  /** The status for one request whose status byte is the writable part's byte `statusOff`. */
  private request(c: Chain, mem: GuestMemory, statusOff: number): number {
    this.filledData = false;
    if (c.readBytes < REQ_HEADER || !c.read(mem, 0, this.hdr)) return VIRTIO_BLK_S.IOERR;
    const h = this.hdrView;
    const type = h.getUint32(0, true);
    const sectorHi = h.getUint32(12, true);
    // Sectors past 2^53 bytes cannot be inside any disk here.
    const sector = sectorHi < 2 ** 12 ? sectorHi * 2 ** 32 + h.getUint32(8, true) : Number.POSITIVE_INFINITY;
    const dataIn = statusOff; // writable bytes before the status
    const dataOut = c.readBytes - REQ_HEADER; // readable bytes after the header
    const ro = this.sh.readOnly;
    switch (type) {
      case VIRTIO_BLK_T.IN:
        if (dataOut !== 0) return VIRTIO_BLK_S.IOERR;
        return this.transfer(c, mem, false, sector, dataIn);
      case VIRTIO_BLK_T.OUT:
        if (ro || dataIn !== 0) return VIRTIO_BLK_S.IOERR;
        return this.transfer(c, mem, true, sector, dataOut);
      case VIRTIO_BLK_T.FLUSH:
      case VIRTIO_BLK_T.FLUSH_OUT:
        return this.call((t) => t.flush());
      case VIRTIO_BLK_T.GET_ID:
        return this.getId(c, mem, dataOut, dataIn);
      case VIRTIO_BLK_T.DISCARD:
        if (!this.sh.discard) return ro ? VIRTIO_BLK_S.IOERR : VIRTIO_BLK_S.UNSUPP;
        return this.segments(c, mem, true, dataIn, dataOut);
      case VIRTIO_BLK_T.WRITE_ZEROES:
        if (ro) return VIRTIO_BLK_S.IOERR;
        return this.segments(c, mem, false, dataIn, dataOut);
      default:
        return VIRTIO_BLK_S.UNSUPP;
    }
  }

  /** Is [sector*512, +len) inside the disk? */
  private inRange(sector: number, len: number): boolean {
    const off = sector * SECTOR_SIZE;
    return Number.isSafeInteger(off) && off + len <= this.sh.capacityBytes;
  }

  private transfer(c: Chain, mem: GuestMemory, write: boolean, sector: number, len: number): number {
    if (len % SECTOR_SIZE !== 0 || !this.inRange(sector, len)) return VIRTIO_BLK_S.IOERR;
    const bufs = this.bufs;
    bufs.length = 0;
    // IN fills the writable part from its start; OUT sends the readable part after the header.
    const ok = write ? c.views(mem, false, REQ_HEADER, len, bufs) : c.views(mem, true, 0, len, bufs);
    if (!ok) {
      bufs.length = 0;
      return VIRTIO_BLK_S.IOERR;
    }
    const off = sector * SECTOR_SIZE;
    const status = len === 0 ? VIRTIO_BLK_S.OK : this.rw(write, off, bufs);
    bufs.length = 0;
    this.filledData = !write && status === VIRTIO_BLK_S.OK;
    return status;
  }

  private getId(c: Chain, mem: GuestMemory, dataOut: number, dataIn: number): number {
    if (dataOut !== 0 || dataIn > MAX_ID_DATA) return VIRTIO_BLK_S.IOERR;
    // The ID, NUL-padded to fill the data area (normally exactly 20 bytes).
    const out = dataIn <= ID_BYTES ? this.sh.id.subarray(0, dataIn) : new Uint8Array(dataIn);
    if (dataIn > ID_BYTES) out.set(this.sh.id);
    if (!c.write(mem, 0, out)) return VIRTIO_BLK_S.IOERR;
    this.filledData = true;
    return VIRTIO_BLK_S.OK;
  }

  private segments(c: Chain, mem: GuestMemory, discard: boolean, dataIn: number, dataOut: number): number {
    if (dataIn !== 0 || dataOut === 0 || dataOut % SEGMENT !== 0) return VIRTIO_BLK_S.IOERR;
    const n = dataOut / SEGMENT;
    if (n > 1) return VIRTIO_BLK_S.IOERR; // max_discard_seg / max_write_zeroes_seg
    const max = discard ? MAX_DISCARD_SECTORS : MAX_WRITE_ZEROES_SECTORS;
    if (!c.read(mem, REQ_HEADER, this.seg)) return VIRTIO_BLK_S.IOERR;
    const s = this.segView;
    const hi = s.getUint32(4, true);
    const sector = hi < 2 ** 12 ? hi * 2 ** 32 + s.getUint32(0, true) : Number.POSITIVE_INFINITY;
    const count = s.getUint32(8, true);
    const flags = s.getUint32(12, true);
    const UNMAP = 1;
    if ((flags & ~UNMAP) !== 0 || (discard && flags & UNMAP)) return VIRTIO_BLK_S.UNSUPP;
    if (count > max || !this.inRange(sector, count * SECTOR_SIZE)) return VIRTIO_BLK_S.IOERR;
    if (count === 0) return VIRTIO_BLK_S.OK;
    const off = sector * SECTOR_SIZE;
    const len = count * SECTOR_SIZE;
    return this.call((t) => (discard ? t.discard(off, len) : t.writeZeroes(off, len)));
  }

  /** Run a backend operation; a backend exception is an I/O error, never an exception out of the exit. */
  private call(op: (t: BlockTarget) => BlockResult): number {
    const t = this.openTarget();
    if (!t) return VIRTIO_BLK_S.IOERR;
    let r: BlockResult;
    try {
      r = op(t);
    } catch {
      Atomics.add(this.stat, STAT.BACKEND_ERRORS, 1);
      return VIRTIO_BLK_S.IOERR;
    }
    switch (r) {
      case BlockResult.Success:
        return VIRTIO_BLK_S.OK;
      case BlockResult.Unsupported:
        return VIRTIO_BLK_S.UNSUPP;
      case BlockResult.Failure:
      case BlockResult.ReadOnly:
      default:
        return VIRTIO_BLK_S.IOERR;
    }
  }

  // ---- lifecycle (main thread) ----

  reset(): void {
    this.transport.reset();
  }

  /** Close this thread's target (the main thread's at machine halt, a worker's as it ends). */
  halt(): void {
    const t = this.target;
    this.target = undefined;
    t?.close();
  }

  migrate(): Migrate {
    const tr = this.transport;
    return {
      export: (): Payload[] => [tr.exportState(), tr.pci.exportState()],
      import: (offers: PayloadOffers): void => {
        const v = tr.takeState(offers);
        const p = tr.pci.takeState(offers);
        offers.finish();
        tr.applyState(v);
        tr.pci.applyState(p);
        tr.syncIntx();
      },
    };
  }
}

/**
 * The export vCPU workers attach through (the descriptor names it): loads
 * the backend's opener on the worker, then attaches. `attachFromDescriptor`
 * awaits the promise this returns.
 */
export const PciVirtioBlockLoader = {
  async attach(desc: DeviceDescriptor, host: DeviceHost): Promise<PciVirtioBlock> {
    const ref = (desc.shared as BlockShared).backend;
    if (ref) await loadBlockOpener(ref);
    return PciVirtioBlock.attach(desc, host);
  },
};
