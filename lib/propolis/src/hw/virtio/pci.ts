// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The virtio PCI transport (virtio 1.2 §4.1), shared by every virtio
// device: registers, feature negotiation, the status state machine,
// queue set-up, notifications and interrupts. A device type (block.ts)
// supplies a `VirtioDeviceSpec` when it is described and a `VirtioDevice`
// (configuration space and queue processing) on every thread.
//
// Layout, as the seed's (docs: shared/reference/propolis.md §7):
//  - BAR0 (legacy and transitional): I/O, 0x200 bytes — the legacy header
//    (0x14 bytes, 0x18 while MSI-X is enabled: the two vector registers)
//    followed by the device configuration;
//  - BAR1: MSI-X table and PBA, one vector for configuration changes plus
//    one per queue (PciFunction handles it);
//  - BAR2 (modern and transitional): 16 KiB memory — common configuration
//    at 0x0000, device configuration at 0x1000, notify at 0x2000 (4 bytes,
//    multiplier 0: every queue notifies at the same address by writing its
//    index), ISR at 0x3000 (read-clears); found through vendor
//    capabilities (common, notify, ISR, device, PCI-config access);
//  - INTx (the bus-0 chipset rule picks the pin) while MSI-X is disabled,
//    with ISR semantics: a queue or configuration event sets an ISR bit and
//    raises the pin; reading ISR returns and clears the bits and lowers it.
// PCI IDs per bits.ts (`virtioPciIdent`).
//
// Feature negotiation: the device offers its features plus INDIRECT_DESC,
// EVENT_IDX (unless the device spec turns it off) and, with a modern
// interface, VERSION_1; legacy drivers see the low 32 bits. A legacy
// driver's features take effect as written (masked to the offer). A modern
// driver's are checked when it sets FEATURES_OK: bits not offered, a
// missing VERSION_1, or the device's own refusal leave FEATURES_OK clear
// (spec §3.1.1), and once FEATURES_OK is set they are frozen. The driver
// may only add status bits; clearing one is a protocol error
// (DEVICE_NEEDS_RESET, as the seed does). Writing 0 resets the device:
// queues, features, vectors, ISR, status.
//
// Queue processing. A notify (a legacy or modern notify write, or the
// machine's I/O thread later, via `notify()`) is handled on the thread
// that receives it: the queue's lock is taken with tryLock; if another
// thread holds it, the notify only marks the queue pending and returns,
// and the holder runs another pass before it lets go — so two threads
// never process one queue at once and no notify is lost. Processing
// requires DRIVER_OK, no FAILED or DEVICE_NEEDS_RESET, and a mapped (and,
// modern-only, enabled) queue; other notifies are dropped and counted. A
// queue fault (queue.ts) sets DEVICE_NEEDS_RESET and, after DRIVER_OK,
// sends a configuration-change interrupt.
//
// Threading: the transport's registers live in shared words (`T`), the
// queues' in queue.ts's; every thread has its own VirtioPciTransport over
// them. Locks, in the order they may be taken: queue locks (ascending
// index) → the transport lock → the PciFunction's lock → INTx router →
// IRQ lines. Register accesses take only the transport lock; the two that
// need more (a reset takes every queue lock first; a notify processes with
// a queue lock and no transport lock) are recorded during the access and
// carried out after the transport lock is released.

import type { DeviceHost, Doorbell } from '../../device.js';
import { MigrateError, schema, t, type Payload, type PayloadOffers } from '../../migrate.js';
import type { AccessSize } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import type { GuestMemory } from '../../vmm/memory.js';
import { RegBlock, type Reg } from '../chipset/regs.js';
import { CAP_ID, INTX_PIN } from '../pci/bits.js';
import { PciBuilder, type PciSpec } from '../pci/builder.js';
import { PciFunction, type PciBarHandler, type PciFunctionShared } from '../pci/function.js';
import type { PciPath } from '../pci/path.js';
import { record } from '../pci/state.js';
import {
  CAP,
  COMMON,
  ISR,
  LEGACY,
  LEGACY_BAR_SIZE,
  MODERN,
  STATUS,
  STATUS_DEFINED,
  VIRTIO_BAR,
  VIRTIO_F,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP,
  VirtioMode,
  featureBit,
  hasLegacy,
  hasModern,
  virtioPciIdent,
} from './bits.js';
import { SplitQueue, VirtQueueV1, type QueueStateV1Shape } from './queue.js';

/** What a device type declares once, when it is described. */
export interface VirtioDeviceSpec {
  /** Virtio device ID (bits.ts VIRTIO_ID). */
  type: number;
  mode: VirtioMode;
  /** Device-type feature bits (the transport adds the ring and version bits). */
  features: bigint;
  /** Maximum size of each queue (powers of two). */
  queueSizes: number[];
  /** Bytes of device configuration space (< 4 KiB, and fits in BAR0 after the legacy header). */
  configSize: number;
  /** Offer VIRTIO_F_EVENT_IDX (default true; the seed never offers it). */
  eventIdx?: boolean;
  /**
   * Queue notifies ring doorbells served by the machine's I/O thread
   * (KVM_IOEVENTFD) instead of exiting to the vCPU that wrote them (default
   * true; ignored on hosts without an I/O thread).
   */
  doorbells?: boolean;
}

/** What a device type does, on every thread. */
export interface VirtioDevice {
  /** Device configuration space, `off` from its start, `size` 1, 2 or 4 (transport lock held). */
  configRead(off: number, size: 1 | 2 | 4): number;
  configWrite(off: number, size: 1 | 2 | 4, value: number): void;
  /** At FEATURES_OK, with the features the driver accepted (all offered): false refuses them. */
  acceptFeatures?(features: bigint): boolean;
  /**
   * Process the queue: pop available chains and push them used. Runs on
   * the thread that took the notify, with the queue's lock held (not the
   * transport's); must not throw on any guest input. The transport calls
   * again while the driver keeps adding chains, unless this returns
   * 'idle': chains remain that the device cannot use now (an RX queue's
   * buffers waiting for frames); it will be notified when it can.
   */
  onQueueNotify(q: SplitQueue, mem: GuestMemory): void | 'idle';
  /** Device reset (driver wrote 0 to status, or machine reset), every lock held. */
  onReset?(): void;
}

/** Where a queue's notify lands, for binding it to KVM_IOEVENTFD. */
export interface NotifyBinding {
  queue: number;
  space: 'io' | 'mmio';
  /** Guest address (port or physical address). */
  addr: number;
  /** Access length drivers use (Linux and SeaBIOS write the queue index as 16 bits). */
  size: 2;
  /** The value written (the queue index). */
  datamatch: number;
}

/** How a queue's used-buffer notification reaches the guest now. */
export type QueueInterruptRoute = { kind: 'msix'; vector: number } | { kind: 'intx' } | { kind: 'none' };

export interface VirtioPciShared {
  pci: PciFunctionShared;
  type: number;
  mode: VirtioMode;
  /** Every feature offered (device's plus transport's). */
  offered: bigint;
  queueSizes: number[];
  configSize: number;
  doorbells: boolean;
  regs: SharedArrayBuffer;
  queues: SharedArrayBuffer;
}

/** Transport words. */
const T = {
  LOCK: 0,
  STATUS: 1,
  QUEUE_SELECT: 2,
  DEVICE_FEATURE_SELECT: 3,
  DRIVER_FEATURE_SELECT: 4,
  /** The driver's features as it wrote them (legacy: masked to the offer). */
  DRIVER_FEATURES_LO: 5,
  DRIVER_FEATURES_HI: 6,
  /** DRIVER_FEATURES_LO & offered: what the queues honour. */
  RING_FEATURES: 7,
  CONFIG_GENERATION: 8,
  CONFIG_GENERATION_SEEN: 9,
  CONFIG_MSIX_VECTOR: 10,
  ISR: 11,
  // counters
  NOTIFIES: 12,
  DROPPED_NOTIFIES: 13,
  NEEDS_RESET_EVENTS: 14,
  DEVICE_ERRORS: 15,
  /** Notifies that arrived as doorbells (the I/O thread), not register writes. */
  DOORBELL_NOTIFIES: 16,
  WORDS: 17,
} as const;

const U32 = 0xffff_ffff;

function merge(old: number, v: number, m: number): number {
  return ((old & ~m) | (v & m)) >>> 0;
}

function lo32(v: bigint): number {
  return Number(v & 0xffff_ffffn);
}

function hi32(v: bigint): number {
  return Number((v >> 32n) & 0xffff_ffffn);
}

// ---- the pci-virtio v1 payload (the seed's PciVirtioStateV1) ----

export const VirtioDeviceStateV1 = record({
  status: t.u8,
  queue_select: t.u16,
  negotiated_features: t.u64,
  device_feature_select: t.u32,
  driver_feature_select: t.u32,
  config_generation: t.u8,
  config_generation_seen: t.bool,
  device_config_size: t.u64,
  mode: t.u32,
  msix_cfg_vec: t.u16,
  msix_queue_vec: t.array(t.u16, 1024),
  isr_queue: t.bool,
  isr_cfg: t.bool,
});

export const VirtQueuesV1 = record({ len: t.u64, peak: t.u64, queues: t.array(VirtQueueV1, 1024) });

export const PciVirtioV1 = schema('pci-virtio', 1, { device: VirtioDeviceStateV1, queues: VirtQueuesV1 });
export type PciVirtioState = ReturnType<typeof PciVirtioV1.decode>;

/** The PCI function of a virtio device: identity, BARs, MSI-X and the vendor capabilities. */
export function virtioPciSpec(spec: VirtioDeviceSpec): PciSpec {
  const b = new PciBuilder(virtioPciIdent(spec.type, spec.mode)).intxPin(INTX_PIN.INTA);
  if (hasLegacy(spec.mode)) b.barIo(VIRTIO_BAR.LEGACY, LEGACY_BAR_SIZE);
  b.msix(VIRTIO_BAR.MSIX, 1 + spec.queueSizes.length);
  if (hasModern(spec.mode)) {
    b.barMmio32(VIRTIO_BAR.MODERN, MODERN.BAR_SIZE);
    const cap = (type: number, bar: number, off: number, len: number, extra?: number) => {
      const size = extra === undefined ? CAP.SIZE : CAP.SIZE_EXTRA;
      const body = new Uint8Array(size - 2);
      const dv = new DataView(body.buffer);
      body[CAP.LEN - 2] = size;
      body[CAP.CFG_TYPE - 2] = type;
      body[CAP.BAR - 2] = bar;
      dv.setUint32(CAP.OFFSET - 2, off, true);
      dv.setUint32(CAP.LENGTH - 2, len, true);
      if (extra !== undefined) dv.setUint32(CAP.EXTRA - 2, extra, true);
      const writable = new Uint8Array(size - 2);
      if (type === VIRTIO_PCI_CAP.PCI_CFG) {
        // The access window's bar, offset and length are the driver's to set;
        // the data window reads 0 (the seed does not implement it either).
        writable[CAP.BAR - 2] = 0xff;
        writable.fill(0xff, CAP.OFFSET - 2, CAP.LENGTH + 4 - 2);
      }
      b.capability(CAP_ID.VENDOR, size, { body, writable });
    };
    const bar = VIRTIO_BAR.MODERN;
    cap(VIRTIO_PCI_CAP.COMMON_CFG, bar, MODERN.COMMON, COMMON.SIZE);
    cap(VIRTIO_PCI_CAP.NOTIFY_CFG, bar, MODERN.NOTIFY, MODERN.NOTIFY_LEN, MODERN.NOTIFY_MULTIPLIER);
    cap(VIRTIO_PCI_CAP.ISR_CFG, bar, MODERN.ISR, MODERN.ISR_LEN);
    cap(VIRTIO_PCI_CAP.DEVICE_CFG, bar, MODERN.DEVICE, spec.configSize);
    cap(VIRTIO_PCI_CAP.PCI_CFG, 0, 0, 0, 0);
  }
  return b.finish();
}

export class VirtioPciTransport implements PciBarHandler {
  readonly pci: PciFunction;
  readonly queues: SplitQueue[];
  readonly lock: SharedMutex;
  readonly mode: VirtioMode;
  readonly offered: bigint;
  readonly configSize: number;
  /** Why the device last needed a reset (this thread; diagnostics). */
  lastFault: string | undefined;
  private readonly r: Int32Array;
  private readonly offeredLo: number;
  private readonly offeredHi: number;
  private readonly mem: GuestMemory;
  private readonly legacyRegs: RegBlock;
  private readonly legacyMsixRegs: RegBlock;
  private readonly commonRegs: RegBlock;
  private readonly notifyRegs: RegBlock;
  private readonly isrRegs: RegBlock;
  // Actions recorded during a register access, run after the transport lock is released.
  private deferredNotify = -1;
  private deferredReset = false;
  /** One per queue when notifies go through the I/O thread, else empty. */
  private readonly doorbells: Doorbell[] = [];

  private constructor(
    sh: VirtioPciShared,
    host: DeviceHost,
    private readonly device: VirtioDevice,
    readonly name: string,
  ) {
    this.r = new Int32Array(sh.regs);
    this.lock = new SharedMutex(this.r.subarray(T.LOCK, T.LOCK + 1));
    this.mode = sh.mode;
    this.offered = sh.offered;
    this.offeredLo = lo32(sh.offered);
    this.offeredHi = hi32(sh.offered);
    this.configSize = sh.configSize;
    this.mem = host.mem;
    const ring = this.r.subarray(T.RING_FEATURES, T.RING_FEATURES + 1);
    this.queues = sh.queueSizes.map(
      (size, i) =>
        new SplitQueue(i, size, SplitQueue.words(sh.queues, i), ring, (q, why) =>
          this.needsReset(`queue ${q.index}: ${why}`),
        ),
    );
    this.pci = PciFunction.attach(sh.pci, host, { name, bars: this, onDecodeChange: () => this.bindDoorbells() });
    if (sh.doorbells && host.doorbell) {
      for (let i = 0; i < this.queues.length; i++) {
        const db = host.doorbell(name, i);
        if (!db) {
          this.doorbells.length = 0;
          break;
        }
        db.serve(() => {
          this.count(T.DOORBELL_NOTIFIES);
          this.notify(i);
        });
        this.doorbells.push(db);
      }
    }
    this.legacyRegs = new RegBlock(LEGACY.HEADER, this.legacyTable(false));
    this.legacyMsixRegs = new RegBlock(LEGACY.HEADER_MSIX, this.legacyTable(true));
    this.commonRegs = new RegBlock(COMMON.SIZE, this.commonTable());
    this.notifyRegs = new RegBlock(MODERN.NOTIFY_LEN, [
      { off: 0, size: 4, write: (v, m) => void (this.deferredNotify = v & m & 0xffff) },
    ]);
    this.isrRegs = new RegBlock(MODERN.ISR_LEN, [{ off: 0, size: 1, read: () => this.readIsr() }]);
  }

  /** Allocate a device's shared state at power-on values, placed at `path`. */
  static share(spec: VirtioDeviceSpec, path: PciPath): VirtioPciShared {
    if (spec.queueSizes.length < 1 || spec.queueSizes.length > 1024) {
      throw new RangeError(`a virtio device has 1..1024 queues, not ${spec.queueSizes.length}`);
    }
    const header = hasLegacy(spec.mode) ? LEGACY.HEADER_MSIX : 0;
    if (!Number.isInteger(spec.configSize) || spec.configSize < 0 || spec.configSize + header > LEGACY_BAR_SIZE) {
      throw new RangeError(`device configuration of ${spec.configSize} bytes does not fit the BARs`);
    }
    let offered = spec.features | featureBit(VIRTIO_F.INDIRECT_DESC);
    if (spec.eventIdx ?? true) offered |= featureBit(VIRTIO_F.EVENT_IDX);
    if (hasModern(spec.mode)) offered |= featureBit(VIRTIO_F.VERSION_1);
    const sh: VirtioPciShared = {
      pci: PciFunction.share(virtioPciSpec(spec), path),
      type: spec.type,
      mode: spec.mode,
      offered,
      queueSizes: [...spec.queueSizes],
      configSize: spec.configSize,
      doorbells: spec.doorbells ?? true,
      regs: new SharedArrayBuffer(4 * T.WORDS),
      queues: SplitQueue.allocate(spec.queueSizes.length),
    };
    const r = new Int32Array(sh.regs);
    r[T.CONFIG_MSIX_VECTOR] = VIRTIO_MSI_NO_VECTOR;
    const noFeatures = new Int32Array(1);
    spec.queueSizes.forEach((size, i) => new SplitQueue(i, size, SplitQueue.words(sh.queues, i), noFeatures).reset());
    return sh;
  }

  /** This thread's instance over `sh`, registered in this thread's PCI topology. */
  static attach(sh: VirtioPciShared, host: DeviceHost, device: VirtioDevice, name: string): VirtioPciTransport {
    return new VirtioPciTransport(sh, host, device, name);
  }

  // ---- shared words ----

  private get(i: number): number {
    return Atomics.load(this.r, i);
  }

  private set(i: number, v: number): void {
    Atomics.store(this.r, i, v);
  }

  private count(i: number): void {
    Atomics.add(this.r, i, 1);
  }

  get status(): number {
    return this.get(T.STATUS);
  }

  /** The features the driver selected (modern: checked at FEATURES_OK; legacy: masked on write). */
  get driverFeatures(): bigint {
    return (BigInt(this.get(T.DRIVER_FEATURES_HI) >>> 0) << 32n) | BigInt(this.get(T.DRIVER_FEATURES_LO) >>> 0);
  }

  get isr(): number {
    return this.get(T.ISR);
  }

  get configGeneration(): number {
    return this.get(T.CONFIG_GENERATION);
  }

  /** Counters: notifies seen, notifies dropped (device not ready, queue not set up), reset requests, device bugs. */
  get stats(): {
    notifies: number;
    doorbellNotifies: number;
    droppedNotifies: number;
    needsReset: number;
    deviceErrors: number;
  } {
    return {
      notifies: this.get(T.NOTIFIES),
      doorbellNotifies: this.get(T.DOORBELL_NOTIFIES),
      droppedNotifies: this.get(T.DROPPED_NOTIFIES),
      needsReset: this.get(T.NEEDS_RESET_EVENTS),
      deviceErrors: this.get(T.DEVICE_ERRORS),
    };
  }

  private selectedQueue(): SplitQueue | undefined {
    return this.queues[this.get(T.QUEUE_SELECT)];
  }

  private vectorValue(v: number): number {
    const m = this.pci.msix;
    return m !== undefined && v < m.vectors ? v : VIRTIO_MSI_NO_VECTOR;
  }

  private setDriverFeatureWord(sel: number, v: number): void {
    this.set(sel === 0 ? T.DRIVER_FEATURES_LO : T.DRIVER_FEATURES_HI, v | 0);
    this.set(T.RING_FEATURES, this.get(T.DRIVER_FEATURES_LO) & this.offeredLo);
  }

  // ---- register tables ----

  private legacyTable(msix: boolean): Reg[] {
    const regs: Reg[] = [
      { off: LEGACY.DEVICE_FEATURES, size: 4, read: () => this.offeredLo },
      {
        off: LEGACY.DRIVER_FEATURES,
        size: 4,
        read: () => this.get(T.DRIVER_FEATURES_LO) >>> 0,
        write: (v, m) => {
          // No FEATURES_OK in the legacy protocol: what is written (and offered) is in effect.
          this.setDriverFeatureWord(0, merge(this.get(T.DRIVER_FEATURES_LO) >>> 0, v, m) & this.offeredLo);
          this.setDriverFeatureWord(1, 0);
        },
      },
      {
        off: LEGACY.QUEUE_ADDRESS,
        size: 4,
        read: () => this.selectedQueue()?.legacyPfn ?? 0,
        write: (v, m) => {
          const q = this.selectedQueue();
          if (!q) return;
          const pfn = merge(q.legacyPfn, v, m);
          q.setLegacyPfn(pfn);
          if (pfn !== 0) this.checkQueue(q);
        },
      },
      { off: LEGACY.QUEUE_SIZE, size: 2, read: () => this.selectedQueue()?.currentSize ?? 0 },
      {
        off: LEGACY.QUEUE_SELECT,
        size: 2,
        read: () => this.get(T.QUEUE_SELECT),
        write: (v, m) => this.set(T.QUEUE_SELECT, merge(this.get(T.QUEUE_SELECT), v, m) & 0xffff),
      },
      { off: LEGACY.QUEUE_NOTIFY, size: 2, write: (v, m) => void (this.deferredNotify = v & m) },
      {
        off: LEGACY.DEVICE_STATUS,
        size: 1,
        read: () => this.get(T.STATUS),
        write: (v) => this.writeStatus(v),
      },
      { off: LEGACY.ISR_STATUS, size: 1, read: () => this.readIsr() },
    ];
    if (msix) regs.push(...this.vectorRegs(LEGACY.CONFIG_MSIX_VECTOR, LEGACY.QUEUE_MSIX_VECTOR));
    return regs;
  }

  private vectorRegs(cfgOff: number, queueOff: number): Reg[] {
    return [
      {
        off: cfgOff,
        size: 2,
        read: () => this.get(T.CONFIG_MSIX_VECTOR),
        write: (v, m) => this.set(T.CONFIG_MSIX_VECTOR, this.vectorValue(merge(this.get(T.CONFIG_MSIX_VECTOR), v, m))),
      },
      {
        off: queueOff,
        size: 2,
        read: () => this.selectedQueue()?.msixVector ?? VIRTIO_MSI_NO_VECTOR,
        write: (v, m) => {
          const q = this.selectedQueue();
          if (q) q.msixVector = this.vectorValue(merge(q.msixVector, v, m));
        },
      },
    ];
  }

  private commonTable(): Reg[] {
    const featOk = (): boolean => (this.get(T.STATUS) & STATUS.FEATURES_OK) !== 0;
    const addr = (off: number, part: 'desc' | 'avail' | 'used'): Reg[] =>
      ([0, 1] as const).map((half) => ({
        off: off + 4 * half,
        size: 4 as const,
        read: () => this.selectedQueue()?.addrWord(part, half) ?? 0,
        write: (v: number, m: number) => {
          const q = this.selectedQueue();
          if (q) q.setAddrWord(part, half, merge(q.addrWord(part, half), v, m));
        },
      }));
    return [
      {
        off: COMMON.DEVICE_FEATURE_SELECT,
        size: 4,
        read: () => this.get(T.DEVICE_FEATURE_SELECT) >>> 0,
        write: (v, m) => this.set(T.DEVICE_FEATURE_SELECT, merge(this.get(T.DEVICE_FEATURE_SELECT), v, m) | 0),
      },
      {
        off: COMMON.DEVICE_FEATURE,
        size: 4,
        read: () => {
          const sel = this.get(T.DEVICE_FEATURE_SELECT);
          return sel === 0 ? this.offeredLo : sel === 1 ? this.offeredHi : 0;
        },
      },
      {
        off: COMMON.DRIVER_FEATURE_SELECT,
        size: 4,
        read: () => this.get(T.DRIVER_FEATURE_SELECT) >>> 0,
        write: (v, m) => this.set(T.DRIVER_FEATURE_SELECT, merge(this.get(T.DRIVER_FEATURE_SELECT), v, m) | 0),
      },
      {
        off: COMMON.DRIVER_FEATURE,
        size: 4,
        read: () => {
          const sel = this.get(T.DRIVER_FEATURE_SELECT);
          return sel === 0 || sel === 1 ? this.get(sel === 0 ? T.DRIVER_FEATURES_LO : T.DRIVER_FEATURES_HI) >>> 0 : 0;
        },
        write: (v, m) => {
          const sel = this.get(T.DRIVER_FEATURE_SELECT);
          // Frozen once negotiation completed; only the two defined words exist.
          if (featOk() || (sel !== 0 && sel !== 1)) return;
          const w = sel === 0 ? T.DRIVER_FEATURES_LO : T.DRIVER_FEATURES_HI;
          this.setDriverFeatureWord(sel, merge(this.get(w) >>> 0, v, m));
        },
      },
      ...this.vectorRegs(COMMON.CONFIG_MSIX_VECTOR, COMMON.QUEUE_MSIX_VECTOR),
      { off: COMMON.NUM_QUEUES, size: 2, read: () => this.queues.length },
      { off: COMMON.DEVICE_STATUS, size: 1, read: () => this.get(T.STATUS), write: (v) => this.writeStatus(v) },
      {
        off: COMMON.CONFIG_GENERATION,
        size: 1,
        read: () => {
          this.set(T.CONFIG_GENERATION_SEEN, 1);
          return this.get(T.CONFIG_GENERATION);
        },
      },
      {
        off: COMMON.QUEUE_SELECT,
        size: 2,
        read: () => this.get(T.QUEUE_SELECT),
        write: (v, m) => this.set(T.QUEUE_SELECT, merge(this.get(T.QUEUE_SELECT), v, m) & 0xffff),
      },
      {
        off: COMMON.QUEUE_SIZE,
        size: 2,
        read: () => this.selectedQueue()?.currentSize ?? 0,
        write: (v, m) => {
          const q = this.selectedQueue();
          if (!q) return;
          const n = merge(q.currentSize, v, m) & 0xffff;
          if (!q.setSize(n))
            this.needsResetLocked(`queue ${q.index}: size ${n} is not a power of two up to ${q.maxSize}`);
        },
      },
      {
        off: COMMON.QUEUE_ENABLE,
        size: 2,
        read: () => (this.selectedQueue()?.enabled ? 1 : 0),
        write: (v, m) => {
          const q = this.selectedQueue();
          // Writing 0 is not how a queue is disabled (that is queue_reset); ignore it.
          if (!q || (v & m & 0xffff) === 0) return;
          if (this.checkQueue(q)) q.enable();
        },
      },
      { off: COMMON.QUEUE_NOTIFY_OFF, size: 2, read: () => 0 },
      ...addr(COMMON.QUEUE_DESC, 'desc'),
      ...addr(COMMON.QUEUE_DRIVER, 'avail'),
      ...addr(COMMON.QUEUE_DEVICE, 'used'),
      { off: COMMON.QUEUE_NOTIFY_DATA, size: 2, read: () => this.get(T.QUEUE_SELECT) },
      {
        off: COMMON.QUEUE_RESET,
        size: 2,
        read: () => 0,
        // VIRTIO_F_RING_RESET is not offered: using it is a protocol error (as the seed treats it).
        write: (v, m) => {
          if ((v & m) !== 0) this.needsResetLocked('queue_reset without VIRTIO_F_RING_RESET');
        },
      },
    ];
  }

  /** With the transport lock held: is `q`'s geometry usable? Sets DEVICE_NEEDS_RESET if not. */
  private checkQueue(q: SplitQueue): boolean {
    const why = q.validate(this.mem);
    if (why === undefined) return true;
    this.needsResetLocked(`queue ${q.index}: ${why}`);
    return false;
  }

  // ---- status and interrupts (transport lock held unless noted) ----

  private writeStatus(value: number): void {
    const v = value & 0xff;
    if (v === 0) {
      this.deferredReset = true;
      return;
    }
    const old = this.get(T.STATUS);
    // DEVICE_NEEDS_RESET is the device's to set; reserved bits are dropped.
    let next = (v & STATUS_DEFINED & ~STATUS.DEVICE_NEEDS_RESET) | (old & STATUS.DEVICE_NEEDS_RESET);
    if ((old & ~next) !== 0) {
      this.needsResetLocked(`driver cleared status bits 0x${(old & ~next).toString(16)}`);
      return;
    }
    if (next & ~old & STATUS.FEATURES_OK) {
      const why = this.refuseFeatures();
      if (why !== undefined) {
        this.lastFault = why;
        next &= ~STATUS.FEATURES_OK;
      }
    }
    this.set(T.STATUS, next);
  }

  /** Why the driver's features cannot be accepted at FEATURES_OK, or undefined. */
  private refuseFeatures(): string | undefined {
    const f = this.driverFeatures;
    const extra = f & ~this.offered;
    if (extra !== 0n) return `driver selected features 0x${extra.toString(16)} the device does not offer`;
    const v1 = featureBit(VIRTIO_F.VERSION_1);
    if ((this.offered & v1) !== 0n && (f & v1) === 0n) return 'driver did not accept VIRTIO_F_VERSION_1';
    if (this.device.acceptFeatures && !this.device.acceptFeatures(f))
      return `device refused features 0x${f.toString(16)}`;
    return undefined;
  }

  /** Set DEVICE_NEEDS_RESET (once) and, after DRIVER_OK, tell the driver. Transport lock held. */
  private needsResetLocked(why: string): void {
    this.lastFault = why;
    const s = this.get(T.STATUS);
    if (s & STATUS.DEVICE_NEEDS_RESET) return;
    this.set(T.STATUS, s | STATUS.DEVICE_NEEDS_RESET);
    this.count(T.NEEDS_RESET_EVENTS);
    if (s & STATUS.DRIVER_OK) this.configInterruptLocked();
  }

  /** The device hit an error it cannot report otherwise (any thread; not with the transport lock held). */
  needsReset(why: string): void {
    this.lock.with(() => this.needsResetLocked(why));
  }

  private configInterruptLocked(): void {
    this.set(T.ISR, this.get(T.ISR) | ISR.CONFIG);
    if (this.pci.msixEnabled) {
      const v = this.get(T.CONFIG_MSIX_VECTOR);
      if (v !== VIRTIO_MSI_NO_VECTOR) this.pci.notify(v);
    } else {
      this.pci.setIntx(true);
    }
  }

  /** The device configuration changed: bump the generation and interrupt (any thread, transport lock not held). */
  configChanged(): void {
    this.lock.with(() => {
      if (this.get(T.CONFIG_GENERATION_SEEN) !== 0) {
        this.set(T.CONFIG_GENERATION, (this.get(T.CONFIG_GENERATION) + 1) & 0xff);
        this.set(T.CONFIG_GENERATION_SEEN, 0);
      }
      if (this.get(T.STATUS) & STATUS.DRIVER_OK) this.configInterruptLocked();
    });
  }

  private readIsr(): number {
    const v = this.get(T.ISR);
    if (v !== 0) {
      this.set(T.ISR, 0);
      this.pci.setIntx(false);
    }
    return v;
  }

  /** Send `q`'s used-buffer notification (queue lock held, transport lock not). */
  private interruptQueue(q: SplitQueue): void {
    if (this.pci.msixEnabled) {
      const v = q.msixVector;
      if (v !== VIRTIO_MSI_NO_VECTOR) this.pci.notify(v);
      return;
    }
    this.lock.with(() => {
      this.set(T.ISR, this.get(T.ISR) | ISR.QUEUE);
      this.pci.setIntx(true);
    });
  }

  /** How `q`'s notifications are delivered now (for binding irqfds later). */
  queueInterruptRoute(q: number): QueueInterruptRoute {
    const queue = this.queues[q];
    if (!queue) return { kind: 'none' };
    if (this.pci.msixEnabled) {
      const v = queue.msixVector;
      return v === VIRTIO_MSI_NO_VECTOR ? { kind: 'none' } : { kind: 'msix', vector: v };
    }
    return this.pci.intxPin === 0 ? { kind: 'none' } : { kind: 'intx' };
  }

  // ---- notifications and processing ----

  private canProcess(q: SplitQueue): boolean {
    const s = this.get(T.STATUS);
    if ((s & STATUS.DRIVER_OK) === 0 || (s & (STATUS.DEVICE_NEEDS_RESET | STATUS.FAILED)) !== 0) return false;
    if (!q.mapped || q.broken) return false;
    return this.mode !== VirtioMode.Modern || q.enabled;
  }

  /**
   * The driver notified queue `qi` (a notify register write on this
   * thread, or later the I/O thread's eventfd). Processes the queue here
   * unless another thread is already doing so (see the file comment).
   * Never throws.
   */
  notify(qi: number): void {
    this.count(T.NOTIFIES);
    const q = this.queues[qi];
    if (!q) {
      this.count(T.DROPPED_NOTIFIES);
      return;
    }
    q.markLive();
    if (!this.canProcess(q)) {
      this.count(T.DROPPED_NOTIFIES);
      return;
    }
    q.markPending();
    while (q.isPending && q.tryLock()) {
      try {
        while (q.takePending()) if (this.canProcess(q)) this.process(q);
      } catch (e) {
        // Our bug, not the guest's: keep the vCPU running and make the guest reset the device.
        this.count(T.DEVICE_ERRORS);
        this.needsReset(`queue ${q.index}: device error: ${(e as Error).message}`);
      } finally {
        q.lock.unlock();
      }
    }
  }

  private process(q: SplitQueue): void {
    const mem = this.mem;
    for (;;) {
      q.suppressNotify(mem);
      const idle = this.device.onQueueNotify(q, mem) === 'idle';
      // resumeNotify always runs on a healthy queue: it re-enables notifications.
      if (q.broken || !q.resumeNotify(mem) || idle) break;
    }
    if (q.takeSignal(mem)) this.interruptQueue(q);
  }

  /**
   * Where each queue's notify lands with the BARs as the guest programmed
   * them now (empty before the BARs decode): the legacy Queue Notify port
   * and the modern notify address, each with the queue index as the
   * datamatch. Re-query when `pci.generation` changes.
   */
  notifyBindings(): NotifyBinding[] {
    const out: NotifyBinding[] = [];
    for (const d of this.pci.decodedBars()) {
      let space: 'io' | 'mmio';
      let addr: number;
      if (d.bar === VIRTIO_BAR.LEGACY && d.kind === 'io') {
        space = 'io';
        addr = d.base + LEGACY.QUEUE_NOTIFY;
      } else if (d.bar === VIRTIO_BAR.MODERN && d.kind !== 'io') {
        space = 'mmio';
        addr = d.base + MODERN.NOTIFY;
      } else {
        continue;
      }
      this.queues.forEach((_, queue) => out.push({ queue, space, addr, size: 2, datamatch: queue }));
    }
    return out;
  }

  /**
   * Point each queue's doorbell at where its notifies land now. Called on
   * the thread that moved a BAR (or reset/imported the function); a
   * notify that still exits (a doorbell the kernel refused, a driver
   * writing another width) is handled by `notify` as before.
   */
  private bindDoorbells(): void {
    if (this.doorbells.length === 0) return;
    const all = this.notifyBindings();
    this.doorbells.forEach((db, q) =>
      db.bind(
        all
          .filter((b) => b.queue === q)
          .map((b) => ({ space: b.space, addr: b.addr, size: b.size, datamatch: b.datamatch })),
      ),
    );
  }

  /** Whether queue notifies are served by the I/O thread (doorbells allocated). */
  get usesDoorbells(): boolean {
    return this.doorbells.length > 0;
  }

  // ---- BAR accesses (any vCPU thread) ----

  barRead(bar: number, off: number, size: AccessSize): number | bigint {
    if (size === 8) {
      const lo = this.barRead(bar, off, 4) as number;
      const hi = this.barRead(bar, off + 4, 4) as number;
      return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    }
    this.lock.lock();
    try {
      if (bar === VIRTIO_BAR.LEGACY && hasLegacy(this.mode)) return this.legacyAccess(off, size, undefined);
      if (bar === VIRTIO_BAR.MODERN && hasModern(this.mode)) return this.modernAccess(off, size, undefined);
      return size === 4 ? U32 : (1 << (8 * size)) - 1;
    } finally {
      this.lock.unlock();
      this.runDeferred();
    }
  }

  barWrite(bar: number, off: number, size: AccessSize, value: number | bigint): void {
    if (size === 8) {
      const v = BigInt.asUintN(64, BigInt(value));
      this.barWrite(bar, off, 4, Number(v & 0xffff_ffffn));
      this.barWrite(bar, off + 4, 4, Number(v >> 32n));
      return;
    }
    const v = Number(value);
    this.lock.lock();
    try {
      if (bar === VIRTIO_BAR.LEGACY && hasLegacy(this.mode)) this.legacyAccess(off, size, v);
      else if (bar === VIRTIO_BAR.MODERN && hasModern(this.mode)) this.modernAccess(off, size, v);
    } finally {
      this.lock.unlock();
      this.runDeferred();
    }
  }

  /** What a register access asked for that needs other locks than the transport's. */
  private runDeferred(): void {
    if (this.deferredReset) {
      this.deferredReset = false;
      this.resetVirtio();
    }
    const n = this.deferredNotify;
    if (n >= 0) {
      this.deferredNotify = -1;
      this.notify(n);
    }
  }

  /** A legacy BAR access: a read when `value` is undefined. */
  private legacyAccess(off: number, size: 1 | 2 | 4, value: number | undefined): number {
    const msix = this.pci.msixEnabled;
    const header = msix ? LEGACY.HEADER_MSIX : LEGACY.HEADER;
    return this.split(off, size, value, header, msix ? this.legacyMsixRegs : this.legacyRegs, this.configSize);
  }

  /** A modern BAR access: one page per structure, unclaimed bytes read 0 and ignore writes. */
  private modernAccess(off: number, size: 1 | 2 | 4, value: number | undefined): number {
    const page = off - (off % MODERN.PAGE);
    const inner = off - page;
    if (inner + size > MODERN.PAGE) return 0; // straddles two structures: reads 0, writes dropped
    switch (page) {
      case MODERN.COMMON:
        return this.split(inner, size, value, COMMON.SIZE, this.commonRegs, 0);
      case MODERN.DEVICE:
        return this.split(inner, size, value, 0, undefined, this.configSize);
      case MODERN.NOTIFY:
        return this.split(inner, size, value, MODERN.NOTIFY_LEN, this.notifyRegs, 0);
      case MODERN.ISR:
        return this.split(inner, size, value, MODERN.ISR_LEN, this.isrRegs, 0);
      default:
        return 0;
    }
  }

  /**
   * An access to a register block of `blockLen` bytes at offset 0 followed
   * by `cfgLen` bytes of device configuration; bytes past both read 0 and
   * ignore writes. Accesses wholly inside one part go to it in one piece
   * (registers with read side effects are read once); others byte by byte.
   */
  private split(
    off: number,
    size: 1 | 2 | 4,
    value: number | undefined,
    blockLen: number,
    block: RegBlock | undefined,
    cfgLen: number,
  ): number {
    if (block && off + size <= blockLen) {
      if (value === undefined) return block.read(off, size);
      block.write(off, size, value);
      return 0;
    }
    if (off >= blockLen && off + size <= blockLen + cfgLen) {
      if (value === undefined) return this.device.configRead(off - blockLen, size);
      this.device.configWrite(off - blockLen, size, value);
      return 0;
    }
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = off + i;
      const b = value === undefined ? 0 : Math.floor(value / 2 ** (8 * i)) & 0xff;
      if (block && o < blockLen) {
        if (value === undefined) v += block.read(o, 1) * 2 ** (8 * i);
        else block.write(o, 1, b);
      } else if (o >= blockLen && o < blockLen + cfgLen) {
        if (value === undefined) v += this.device.configRead(o - blockLen, 1) * 2 ** (8 * i);
        else this.device.configWrite(o - blockLen, 1, b);
      }
    }
    return v;
  }

  // ---- reset and state (reset: any thread; export/import: main thread, vCPUs paused) ----

  private lockAll(): void {
    for (const q of this.queues) q.lock.lock();
    this.lock.lock();
  }

  private unlockAll(): void {
    this.lock.unlock();
    for (let i = this.queues.length - 1; i >= 0; i--) (this.queues[i] as SplitQueue).lock.unlock();
  }

  /** The virtio part of a reset (the driver wrote 0 to status). PCI configuration stays. */
  resetVirtio(): void {
    this.lockAll();
    try {
      for (const q of this.queues) q.reset();
      for (const i of [
        T.STATUS,
        T.QUEUE_SELECT,
        T.DEVICE_FEATURE_SELECT,
        T.DRIVER_FEATURE_SELECT,
        T.DRIVER_FEATURES_LO,
        T.DRIVER_FEATURES_HI,
        T.RING_FEATURES,
        T.CONFIG_GENERATION,
        T.CONFIG_GENERATION_SEEN,
        T.ISR,
      ]) {
        this.set(i, 0);
      }
      this.set(T.CONFIG_MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
      this.pci.setIntx(false);
      this.device.onReset?.();
    } finally {
      this.unlockAll();
    }
  }

  /** Machine reset (main thread, vCPUs paused): virtio state and the PCI function to power-on. */
  reset(): void {
    this.resetVirtio();
    this.pci.reset();
  }

  exportState(): Payload {
    this.lockAll();
    try {
      const isr = this.get(T.ISR);
      return PciVirtioV1.encode({
        device: {
          status: this.get(T.STATUS),
          queue_select: this.get(T.QUEUE_SELECT),
          negotiated_features: this.driverFeatures,
          device_feature_select: this.get(T.DEVICE_FEATURE_SELECT) >>> 0,
          driver_feature_select: this.get(T.DRIVER_FEATURE_SELECT) >>> 0,
          config_generation: this.get(T.CONFIG_GENERATION),
          config_generation_seen: this.get(T.CONFIG_GENERATION_SEEN) !== 0,
          device_config_size: BigInt(this.configSize),
          mode: this.mode,
          msix_cfg_vec: this.get(T.CONFIG_MSIX_VECTOR),
          msix_queue_vec: this.queues.map((q) => q.msixVector),
          isr_queue: (isr & ISR.QUEUE) !== 0,
          isr_cfg: (isr & ISR.CONFIG) !== 0,
        },
        queues: {
          len: BigInt(this.queues.length),
          peak: BigInt(this.queues.length),
          queues: this.queues.map((q) => q.exportState()),
        },
      });
    } finally {
      this.unlockAll();
    }
  }

  /** Take and validate this device's `pci-virtio` payload; nothing changes yet. */
  takeState(offers: PayloadOffers): PciVirtioState {
    const s = offers.take(PciVirtioV1);
    const bad = (why: string): never => {
      throw new MigrateError('ImportFailed', `${this.name}: pci-virtio: ${why}`);
    };
    const d = s.device;
    const n = this.queues.length;
    if ((d.status & ~STATUS_DEFINED) !== 0) bad(`status 0x${d.status.toString(16)} has reserved bits`);
    if (d.mode !== this.mode) bad(`mode ${d.mode}, this device is ${VirtioMode[this.mode]} (${this.mode})`);
    if (d.device_config_size !== BigInt(this.configSize)) {
      bad(`device configuration of ${d.device_config_size} bytes, this device has ${this.configSize}`);
    }
    if (d.status & STATUS.FEATURES_OK && (d.negotiated_features & ~this.offered) !== 0n) {
      bad(`negotiated features 0x${d.negotiated_features.toString(16)} exceed the offer`);
    }
    const vectors = this.pci.msix?.vectors ?? 0;
    const vecOk = (v: number): boolean => v === VIRTIO_MSI_NO_VECTOR || v < vectors;
    if (!vecOk(d.msix_cfg_vec)) bad(`configuration vector ${d.msix_cfg_vec} out of range`);
    if (d.msix_queue_vec.length !== n) bad(`${d.msix_queue_vec.length} queue vectors for ${n} queues`);
    d.msix_queue_vec.forEach((v, i) => vecOk(v) || bad(`queue ${i} vector ${v} out of range`));
    const qs = s.queues;
    if (qs.len !== BigInt(n) || qs.peak !== BigInt(n) || qs.queues.length !== n) {
      bad(`queue counts len ${qs.len}/peak ${qs.peak}/${qs.queues.length} saved, this device has ${n}`);
    }
    qs.queues.forEach((q, i) => {
      const why = (this.queues[i] as SplitQueue).checkImport(q, this.mode === VirtioMode.Legacy);
      if (why) bad(why);
    });
    return s;
  }

  /** Apply a state from takeState (vCPUs paused). Call `syncIntx()` once PCI state is applied too. */
  applyState(s: PciVirtioState): void {
    const d = s.device;
    this.lockAll();
    try {
      this.set(T.STATUS, d.status);
      this.set(T.QUEUE_SELECT, d.queue_select);
      this.set(T.DEVICE_FEATURE_SELECT, d.device_feature_select | 0);
      this.set(T.DRIVER_FEATURE_SELECT, d.driver_feature_select | 0);
      this.setDriverFeatureWord(0, lo32(d.negotiated_features));
      this.setDriverFeatureWord(1, hi32(d.negotiated_features));
      this.set(T.CONFIG_GENERATION, d.config_generation);
      this.set(T.CONFIG_GENERATION_SEEN, d.config_generation_seen ? 1 : 0);
      this.set(T.CONFIG_MSIX_VECTOR, d.msix_cfg_vec);
      this.set(T.ISR, (d.isr_queue ? ISR.QUEUE : 0) | (d.isr_cfg ? ISR.CONFIG : 0));
      s.queues.queues.forEach((q: QueueStateV1Shape, i) =>
        (this.queues[i] as SplitQueue).importState(q, d.msix_queue_vec[i] as number),
      );
    } finally {
      this.unlockAll();
    }
  }

  /** Drive INTx from the ISR (after an import: the PCI payload does not carry the request). */
  syncIntx(): void {
    this.lock.with(() => this.pci.setIntx(this.get(T.ISR) !== 0 && !this.pci.msixEnabled));
  }
}
