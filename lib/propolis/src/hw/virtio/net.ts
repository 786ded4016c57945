// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// virtio-net (virtio 1.2 §5.1) on the PCI transport, backed by a Linux tap:
// the seed's `pci-virtio-viona`, whose illumos original hands the rings to
// the in-kernel viona driver. Here the device moves frames itself between
// guest buffers and a tap (lib/dladm), which speaks the same virtio-net
// header, so frames cross without being rewritten.
//
// Identity and layout: transitional by default — 1AF4:1000, subsystem
// 1AF4:0001, class 02/00; BAR0 legacy I/O, BAR1 MSI-X (configuration + one
// vector per queue), BAR2 modern. Queues: receiveq1 (0), transmitq1 (1),
// controlq (2); sizes 2048/256/32 by default (the seed's RX/TX sizes). One
// queue pair: VIRTIO_NET_F_MQ is not offered (max_virtqueue_pairs reads 1).
//
// Features: MAC, STATUS (always LINK_UP), CTRL_VQ, CTRL_RX (net-filter.ts:
// stored, not applied), MTU when the tap's MTU could be read, MRG_RXBUF,
// and the datapath offloads CSUM, HOST_TSO4/6, HOST_ECN (frames the guest
// sends may ask for them; the tap accepts them in the header) and
// GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN (mapped onto the tap with
// TUNSETOFFLOAD, so the kernel hands over partial-checksum and GSO frames
// only when the guest accepted them). Modern drivers are refused features
// whose prerequisites they left out (spec §5.1.3.1).
//
// The tap is configured lazily, at the first queue pass after DRIVER_OK
// (legacy drivers have no FEATURES_OK, so there is no earlier moment when
// the features are final): header size 12 with VERSION_1 or MRG_RXBUF,
// else 10; offloads per the GUEST_* features. A device reset undoes it.
//
// TX (on the thread that takes the TX notify, a vCPU thread): each chain
// is header + frame in device-readable buffers, gathered straight from
// guest memory into one writev. A chain with a device-writable buffer or
// without a whole header, a frame longer than MAX_FRAME, buffers outside
// guest RAM, or a frame the tap refuses is dropped and counted; every
// chain is returned used with length 0.
//
// RX: a frame is read from the tap into a hold buffer in shared memory
// (one frame at a time), then copied into guest buffers. Without
// MRG_RXBUF it takes one chain, which must hold header and frame (else the
// frame is dropped and the chain returned empty); with MRG_RXBUF it is
// spread over as many chains as it needs, each filled completely but the
// last, and num_buffers in the first says how many. If the driver has
// posted no (or not enough) buffers, the frame stays held — and the rest
// stay in the tap — until the driver posts more and notifies the RX queue.
// Chains that cannot take data (a device-readable buffer, smaller than the
// header where the header goes, outside guest RAM) are returned used with
// length 0, which drivers count as a short packet. Headers are sanitised:
// flags are cleared without GUEST_CSUM, and a frame carrying offload
// requests the driver did not negotiate is dropped (only possible while
// the tap's offloads are being changed under queued frames).
//
// RX and who waits. Someone must block on the tap for frames to arrive
// without a guest notify. The shared ARMED word says "wait for the tap":
// an RX pass that drains the tap arms it; a pass that runs out of guest
// buffers disarms it (then the guest's RX notify restarts RX, on the vCPU
// thread that takes it). The waiters:
//  - `runRxLoop(stop)` — for a dedicated I/O worker with its own instance:
//    blocks in poll on the tap (and an optional wake fd) while armed, runs
//    RX passes itself;
//  - the built-in fallback, started by the main thread's instance in
//    `start()` unless `rxThread: 'external'`: a small worker
//    (net-rx-poller.ts) blocks in poll on the tap fd and, when it is
//    readable, disarms and sets READY; the main thread waits for READY
//    with Atomics.waitAsync and runs the RX pass on its own instance. This
//    costs a thread hop per burst of frames, not per frame.
// Every RX pass, whoever starts it, goes through the transport's notify
// path, so the queue lock keeps two threads out of one queue; a pass
// handles at most RX_BUDGET frames, then leaves ARMED set so a waiter
// comes back for the rest (a vCPU thread never stays in RX for long).
//
// Control queue: CTRL_RX PROMISC/ALLMULTI, CTRL_MAC TABLE_SET and ADDR_SET
// (the address goes into the configuration space's mac), CTRL_MQ
// VQ_PAIRS_SET with 1 pair; anything else, malformed data or a class the
// driver did not negotiate → VIRTIO_NET_ERR. The ack is the first
// device-writable byte; a chain with none is returned with length 0.
//
// Malformed rings and chains fault the queue (DEVICE_NEEDS_RESET), as in
// queue.ts. Nothing here throws on guest input, and guest memory is only
// reached through GuestMemory, within the chains' buffers.
//
// State: `pci-virtio` + `pci-device` + `pci-virtio-viona` v1 (the filter).
// A frame held at pause is kept (on this host) if it owns no chains;
// chains held for a partly copied frame are returned empty at pause, so
// an export never leaves popped-but-unreturned RX buffers behind.
//
// Threading: per-thread instances over shared state (transport and queue
// words, configuration bytes, NW words, counters, filter, hold buffer).
// Each thread adopts the tap fd (fds are per process); the main thread's
// instance owns it and closes it at `halt`. Queue passes hold the queue's
// lock; the tap configuration takes NW.CFG_LOCK after a queue lock.

import { Worker } from 'node:worker_threads';
import { parseMac, Tap, TapReady, type TapHandle, type TapMode } from '../../../../dladm/src/index.js';
import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { MigrateError, type Migrate, type Payload, type PayloadOffers } from '../../migrate.js';
import { SharedMutex } from '../../sync/mutex.js';
import type { GuestMemory } from '../../vmm/memory.js';
import type { PciPath } from '../pci/path.js';
import { STATUS, VIRTIO_F, VIRTIO_ID, VirtioMode, featureBit } from './bits.js';
import {
  ETH_ALEN,
  MAX_FRAME,
  NET_CFG,
  NS,
  NS_NAMES,
  NW,
  RX_WAIT_SLICE_MS,
  VIRTIO_NET_CTRL,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F,
  VIRTIO_NET_HDR_F,
  VIRTIO_NET_HDR_GSO,
  VIRTIO_NET_OK,
  VIRTIO_NET_S_LINK_UP,
  VNET_HDR,
  type VirtioNetStats,
} from './net-bits.js';
import { PciVirtioVionaV1, RxFilter, type RxFilterShared } from './net-filter.js';
import { VirtioPciTransport, type VirtioDevice, type VirtioPciShared } from './pci.js';
import type { Chain, SplitQueue } from './queue.js';

/** Queue indices with one queue pair. */
export const NET_QUEUE = { RX: 0, TX: 1, CTRL: 2 } as const;

export const DEFAULT_RX_QUEUE_SIZE = 2048;
export const DEFAULT_TX_QUEUE_SIZE = 256;
export const CTRL_QUEUE_SIZE = 32;
/** Frames one RX pass moves before it gives the thread back. */
export const RX_BUDGET = 64;
/** Control command data beyond this is refused (a MAC table of ~2700 addresses). */
const MAX_CTRL_DATA = 16384;
/** writev(2) takes at most this many pieces; longer TX chains go through a bounce buffer. */
const IOV_MAX = 1024;
const HOLD_BYTES = VNET_HDR.LEN + MAX_FRAME;

export class VirtioNetConfigError extends Error {
  readonly code = 'VIRTIO_NET_CONFIG';
}

export interface VirtioNetTapOptions {
  /** Link name of the tap (the seed's `vnic`). */
  name: string;
  /** Create it, attach to an existing one, or either (dladm's TapMode). */
  mode: TapMode;
  /** `ip netns` name the tap lives in; default this process's namespace. */
  netns?: string;
}

export interface VirtioNetOptions {
  /** Device key, e.g. `net0`. */
  name: string;
  pciPath: PciPath;
  tap: VirtioNetTapOptions;
  /**
   * The guest's MAC (`aa:bb:cc:dd:ee:ff` or 6 bytes). Default: a locally
   * administered address derived from `name`. (The tap's own MAC belongs
   * to the host side of the link, so it is not used.)
   */
  mac?: string | Uint8Array;
  /** Default Transitional, as the seed. */
  mode?: VirtioMode;
  /** Entries of the receive queue (power of two, 2..32768). Default 2048. */
  rxQueueSize?: number;
  /** Entries of the transmit queue (power of two, 2..32768). Default 256. */
  txQueueSize?: number;
  /** Offer MRG_RXBUF. Default true. */
  mergeableRxBuffers?: boolean;
  /** Offer the checksum and segmentation offloads. Default true. */
  offloads?: boolean;
  /** Offer VIRTIO_F_EVENT_IDX. Default true. */
  eventIdx?: boolean;
  /**
   * Who waits on the tap: 'poller' (default) — the main thread's instance
   * starts net-rx-poller.ts at `start()`; 'external' — the machine runs
   * `runRxLoop` on a thread of its own.
   */
  rxThread?: 'poller' | 'external';
}

interface NetShared {
  transport: VirtioPciShared;
  tap: TapHandle;
  /** The MAC the device was described with (reset restores it). */
  mac: Uint8Array;
  config: SharedArrayBuffer;
  words: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  filter: RxFilterShared;
  /** One frame read from the tap, vnet header first. */
  hold: SharedArrayBuffer;
  /** Chains held for a partly copied frame: heads then used lengths, rxQueueSize Int32s each. */
  held: SharedArrayBuffer;
  /** Guest addresses of num_buffers' two bytes in the first held chain. */
  heldGpa: SharedArrayBuffer;
  rxQueueSize: number;
  pairs: number;
  rxThread: 'poller' | 'external';
}

/** Taps the describing (main) thread opened, by fd: its instance owns and closes them. */
const ownedTaps = new Map<number, Tap>();

const has = (lo: number, bit: number): boolean => (lo & (1 << bit)) !== 0;

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** A locally administered unicast MAC from a name (two FNV-1a hashes): stable across runs. */
export function macFromName(name: string): Uint8Array {
  const fnv = (s: string): number => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    return h;
  };
  const a = fnv(name);
  const b = fnv(`${name}/mac`);
  return Uint8Array.of(0x02, a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff, b & 0xff);
}

function netFeatures(mtu: number | undefined, mrg: boolean, offloads: boolean): bigint {
  const F = VIRTIO_NET_F;
  const bits: number[] = [F.MAC, F.STATUS, F.CTRL_VQ, F.CTRL_RX];
  if (mtu !== undefined) bits.push(F.MTU);
  if (mrg) bits.push(F.MRG_RXBUF);
  if (offloads) {
    bits.push(F.CSUM, F.HOST_TSO4, F.HOST_TSO6, F.HOST_ECN, F.GUEST_CSUM, F.GUEST_TSO4, F.GUEST_TSO6, F.GUEST_ECN);
  }
  return bits.reduce((f, b) => f | featureBit(b), 0n);
}

/** Why a set of driver features breaks a dependency of spec §5.1.3.1, or undefined. */
export function featureConflict(f: bigint): string | undefined {
  const F = VIRTIO_NET_F;
  const on = (b: number): boolean => (f & featureBit(b)) !== 0n;
  const needs: [number, number[], string][] = [
    [F.GUEST_TSO4, [F.GUEST_CSUM], 'GUEST_TSO4 needs GUEST_CSUM'],
    [F.GUEST_TSO6, [F.GUEST_CSUM], 'GUEST_TSO6 needs GUEST_CSUM'],
    [F.GUEST_UFO, [F.GUEST_CSUM], 'GUEST_UFO needs GUEST_CSUM'],
    [F.GUEST_ECN, [F.GUEST_TSO4, F.GUEST_TSO6], 'GUEST_ECN needs GUEST_TSO4 or GUEST_TSO6'],
    [F.HOST_TSO4, [F.CSUM], 'HOST_TSO4 needs CSUM'],
    [F.HOST_TSO6, [F.CSUM], 'HOST_TSO6 needs CSUM'],
    [F.HOST_UFO, [F.CSUM], 'HOST_UFO needs CSUM'],
    [F.HOST_ECN, [F.HOST_TSO4, F.HOST_TSO6], 'HOST_ECN needs HOST_TSO4 or HOST_TSO6'],
    [F.CTRL_RX, [F.CTRL_VQ], 'CTRL_RX needs CTRL_VQ'],
    [F.MQ, [F.CTRL_VQ], 'MQ needs CTRL_VQ'],
    [F.CTRL_MAC_ADDR, [F.CTRL_VQ], 'CTRL_MAC_ADDR needs CTRL_VQ'],
  ];
  for (const [bit, any, why] of needs) if (on(bit) && !any.some(on)) return why;
  return undefined;
}

export class PciVirtioNet implements MachineDevice, VirtioDevice, Lifecycle {
  readonly typeName = 'pci-virtio-viona';
  readonly transport: VirtioPciTransport;
  private readonly sh: NetShared;
  private readonly w: Int32Array;
  private readonly stat: Float64Array;
  private readonly cfg: Uint8Array;
  private readonly filter: RxFilter;
  private readonly hold: Uint8Array;
  private readonly heldHeads: Int32Array;
  private readonly heldLens: Int32Array;
  private readonly heldGpa: Float64Array;
  private readonly cfgLock: SharedMutex;
  private readonly tap: Tap;
  private readonly ownsTap: boolean;
  // Per-thread scratch: TX allocates only the views of guest memory it hands to writev.
  private readonly txBufs: Uint8Array[] = [];
  private txBounce: Uint8Array | undefined;
  private ctrlBuf: Uint8Array | undefined;
  private poller: Worker | undefined;
  private readonly mem: GuestMemory;
  /** Set by an RX pass that stopped for want of buffers with a frame waiting (see `attachRxQueue`). */
  private rxWantsBuffers = false;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as NetShared;
    this.sh = sh;
    this.mem = host.mem;
    this.w = new Int32Array(sh.words);
    this.stat = new Float64Array(sh.stats);
    this.cfg = new Uint8Array(sh.config);
    this.filter = new RxFilter(sh.filter);
    this.hold = new Uint8Array(sh.hold);
    this.heldHeads = new Int32Array(sh.held, 0, sh.rxQueueSize);
    this.heldLens = new Int32Array(sh.held, 4 * sh.rxQueueSize, sh.rxQueueSize);
    this.heldGpa = new Float64Array(sh.heldGpa);
    this.cfgLock = new SharedMutex(this.w.subarray(NW.CFG_LOCK, NW.CFG_LOCK + 1));
    // Only the thread that opened the tap finds it here (the map is per thread).
    const owned = ownedTaps.get(sh.tap.fd);
    this.ownsTap = owned !== undefined && owned.name === sh.tap.name;
    this.tap = this.ownsTap ? (owned as Tap) : Tap.adopt(sh.tap);
    if (this.ownsTap) ownedTaps.delete(sh.tap.fd);
    this.transport = VirtioPciTransport.attach(sh.transport, host, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /**
   * Describe a virtio-net device: opens the tap (on this thread, which
   * then owns it), reads its MTU, and allocates the shared state. Add it
   * to the machine with the returned descriptor.
   */
  static describe(opts: VirtioNetOptions): DeviceDescriptor {
    const name = opts.name;
    const bad = (why: string): never => {
      throw new VirtioNetConfigError(`virtio-net ${name}: ${why}`);
    };
    if (typeof name !== 'string' || name === '') bad('a device name is required');
    const rxSize = opts.rxQueueSize ?? DEFAULT_RX_QUEUE_SIZE;
    const txSize = opts.txQueueSize ?? DEFAULT_TX_QUEUE_SIZE;
    for (const [what, n] of [
      ['rx-queue-size', rxSize],
      ['tx-queue-size', txSize],
    ] as const) {
      if (!isPow2(n) || n < 2 || n > 32768) bad(`${what} ${n} is not a power of two from 2 to 32768`);
    }
    let mac: Uint8Array;
    if (opts.mac === undefined) {
      mac = macFromName(name);
    } else if (typeof opts.mac === 'string') {
      try {
        mac = parseMac(opts.mac);
      } catch (e) {
        return bad(`mac ${JSON.stringify(opts.mac)} is not aa:bb:cc:dd:ee:ff (${(e as Error).message})`);
      }
    } else {
      mac = Uint8Array.from(opts.mac);
    }
    if (mac.length !== ETH_ALEN) bad(`mac has ${mac.length} bytes, not ${ETH_ALEN}`);
    if (((mac[0] as number) & 1) !== 0) bad('mac is a multicast address');
    if (mac.every((b) => b === 0)) bad('mac is all zeros');

    const tap = Tap.open({ name: opts.tap.name, mode: opts.tap.mode, netns: opts.tap.netns, vnetHdrLen: 12 });
    try {
      let mtu: number | undefined;
      try {
        const m = tap.info().mtu;
        mtu = m >= 68 && m <= 65535 ? m : undefined;
      } catch {
        mtu = undefined; // e.g. the tap was moved to another namespace: MTU not offered
      }
      const features = netFeatures(mtu, opts.mergeableRxBuffers ?? true, opts.offloads ?? true);
      const config = new SharedArrayBuffer(NET_CFG.SIZE);
      const cv = new DataView(config);
      new Uint8Array(config).set(mac, NET_CFG.MAC);
      cv.setUint16(NET_CFG.STATUS, VIRTIO_NET_S_LINK_UP, true);
      cv.setUint16(NET_CFG.MAX_VIRTQUEUE_PAIRS, 1, true);
      cv.setUint16(NET_CFG.MTU, mtu ?? 0, true);
      const words = new SharedArrayBuffer(4 * NW.WORDS);
      Atomics.store(new Int32Array(words), NW.ACTIVE_PAIRS, 1);
      const shared: NetShared = {
        transport: VirtioPciTransport.share(
          {
            type: VIRTIO_ID.NET,
            mode: opts.mode ?? VirtioMode.Transitional,
            features,
            queueSizes: [rxSize, txSize, CTRL_QUEUE_SIZE],
            configSize: NET_CFG.SIZE,
            eventIdx: opts.eventIdx ?? true,
          },
          opts.pciPath,
        ),
        tap: tap.handle(),
        mac,
        config,
        words,
        stats: new SharedArrayBuffer(8 * NS.COUNT),
        filter: RxFilter.allocate(),
        hold: new SharedArrayBuffer(HOLD_BYTES),
        held: new SharedArrayBuffer(8 * rxSize),
        heldGpa: new SharedArrayBuffer(16),
        rxQueueSize: rxSize,
        pairs: 1,
        rxThread: opts.rxThread ?? 'poller',
      };
      ownedTaps.set(tap.fd, tap);
      return { module: import.meta.url, export: 'PciVirtioNet', name, shared };
    } catch (e) {
      tap.close();
      throw e;
    }
  }

  /** This thread's instance (the describing thread's first instance owns the tap). */
  static attach(desc: DeviceDescriptor, host: DeviceHost): PciVirtioNet {
    return new PciVirtioNet(desc, host);
  }

  /** Counters, summed over every thread. */
  get stats(): VirtioNetStats {
    const out = {} as VirtioNetStats;
    NS_NAMES.forEach((n, i) => (out[n] = this.stat[i] as number));
    return out;
  }

  /** The MAC the guest is told (configuration space). */
  get mac(): Uint8Array {
    return this.cfg.slice(NET_CFG.MAC, NET_CFG.MAC + ETH_ALEN);
  }

  /** The receive filter the driver programmed (stored, not applied). */
  get rxFilter(): RxFilter {
    return this.filter;
  }

  get tapName(): string {
    return this.sh.tap.name;
  }

  private count(i: number, n = 1): void {
    this.stat[i] = (this.stat[i] as number) + n;
  }

  // ---- VirtioDevice ----

  configRead(off: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + ((this.cfg[off + i] as number | undefined) ?? 0);
    return v;
  }

  /** Only the legacy interface may write (the mac, spec §5.1.4.3); everything else is read-only. */
  configWrite(off: number, size: 1 | 2 | 4, value: number): void {
    if (off + size > NET_CFG.MAC + ETH_ALEN) return;
    if ((this.transport.driverFeatures & featureBit(VIRTIO_F.VERSION_1)) !== 0n) return;
    for (let i = 0; i < size; i++) this.cfg[off + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  }

  acceptFeatures(features: bigint): boolean {
    return featureConflict(features) === undefined;
  }

  onQueueNotify(q: SplitQueue, mem: GuestMemory): void | 'idle' {
    switch (q.index) {
      case NET_QUEUE.RX:
        this.rxPass(q, mem);
        // Buffers waiting for frames are not work: another pass only when
        // this one stopped for want of buffers with a frame waiting.
        return this.rxWantsBuffers ? undefined : 'idle';
      case NET_QUEUE.TX:
        this.txPass(q, mem);
        return;
      case NET_QUEUE.CTRL:
        this.ctrlPass(q, mem);
        return;
      default:
        return;
    }
  }

  /** Every lock held: forget frames and chains in flight, the filter, the tap configuration. */
  onReset(): void {
    const w = this.w;
    if (Atomics.load(w, NW.HOLD_LEN) !== 0) this.count(NS.RX_FLUSHED);
    Atomics.store(w, NW.HOLD_LEN, 0);
    Atomics.store(w, NW.HOLD_DONE, 0);
    Atomics.store(w, NW.HOLD_CHAINS, 0);
    Atomics.store(w, NW.CONFIGURED, 0);
    Atomics.store(w, NW.ACTIVE_PAIRS, 1);
    Atomics.store(w, NW.ARMED, 0);
    this.cfg.set(this.sh.mac, NET_CFG.MAC);
    this.filter.reset();
  }

  // ---- the tap's configuration ----

  /** Make the tap follow the negotiated features once per negotiation (a queue lock held). */
  private configure(): void {
    if (Atomics.load(this.w, NW.CONFIGURED) !== 0) return;
    this.cfgLock.with(() => {
      if (Atomics.load(this.w, NW.CONFIGURED) !== 0) return;
      const f = this.transport.driverFeatures;
      const lo = Number(f & 0xffff_ffffn);
      const v1 = (f & featureBit(VIRTIO_F.VERSION_1)) !== 0n;
      const F = VIRTIO_NET_F;
      const hdrLen = v1 || has(lo, F.MRG_RXBUF) ? VNET_HDR.LEN : VNET_HDR.LEN_LEGACY;
      // Legacy drivers are not checked at FEATURES_OK: keep only combinations the tap accepts.
      const csum = has(lo, F.GUEST_CSUM);
      const tso4 = csum && has(lo, F.GUEST_TSO4);
      const tso6 = csum && has(lo, F.GUEST_TSO6);
      try {
        this.tap.setVnetHdrLen(hdrLen);
        this.tap.setOffloads({ csum, tso4, tso6, tsoEcn: (tso4 || tso6) && has(lo, F.GUEST_ECN) });
      } catch {
        // The tap is gone or refuses: its reads and writes will fail and be counted too.
        this.count(NS.TAP_CONFIG_ERRORS);
      }
      Atomics.store(this.w, NW.HDR_LEN, hdrLen);
      Atomics.store(this.w, NW.FEATURES_LO, lo);
      Atomics.store(this.w, NW.VERSION_1, v1 ? 1 : 0);
      Atomics.store(this.w, NW.CONFIGURED, 1);
    });
  }

  // ---- TX (TX queue lock held) ----

  private txPass(q: SplitQueue, mem: GuestMemory): void {
    this.configure();
    const hdrLen = Atomics.load(this.w, NW.HDR_LEN);
    let c: Chain | undefined;
    while ((c = q.popAvail(mem)) !== undefined) {
      this.transmit(c, mem, hdrLen);
      // Nothing is written to a TX chain: used length 0 (spec §2.7.8.1 allows it; drivers ignore it).
      q.pushUsed(mem, c.head, 0);
    }
  }

  private transmit(c: Chain, mem: GuestMemory, hdrLen: number): void {
    if (c.writeBytes !== 0 || c.readBytes < hdrLen) {
      this.count(NS.TX_BAD_CHAIN);
      return;
    }
    if (c.readBytes - hdrLen > MAX_FRAME) {
      this.count(NS.TX_TOO_LONG);
      return;
    }
    const bufs = this.txBufs;
    bufs.length = 0;
    if (!c.views(mem, false, 0, c.readBytes, bufs)) {
      bufs.length = 0;
      this.count(NS.TX_FAULT);
      return;
    }
    let n: number;
    if (bufs.length <= IOV_MAX) {
      n = this.tap.sendv(bufs);
    } else {
      const b = (this.txBounce ??= new Uint8Array(HOLD_BYTES));
      let at = 0;
      for (const v of bufs) {
        b.set(v, at);
        at += v.length;
      }
      n = this.tap.send(b.subarray(0, at));
    }
    bufs.length = 0;
    if (n < 0) {
      this.count(NS.TX_TAP_ERRORS);
      return;
    }
    this.count(NS.TX_FRAMES);
    this.count(NS.TX_BYTES, n - hdrLen);
  }

  // ---- RX (RX queue lock held) ----

  private arm(): void {
    if (Atomics.compareExchange(this.w, NW.ARMED, 0, 1) === 0) Atomics.notify(this.w, NW.ARMED);
  }

  private disarm(): void {
    Atomics.store(this.w, NW.ARMED, 0);
  }

  private rxPass(q: SplitQueue, mem: GuestMemory): void {
    const w = this.w;
    this.rxWantsBuffers = false;
    if (Atomics.load(w, NW.PAUSED) !== 0) {
      this.disarm();
      return;
    }
    this.configure();
    const hdrLen = Atomics.load(w, NW.HDR_LEN);
    const lo = Atomics.load(w, NW.FEATURES_LO);
    const mrg = has(lo, VIRTIO_NET_F.MRG_RXBUF);
    for (let budget = RX_BUDGET; budget > 0; budget--) {
      let len = Atomics.load(w, NW.HOLD_LEN);
      if (len === 0) {
        const n = this.tap.recv(this.hold);
        if (n === 0) {
          this.arm(); // drained: wait for the next frame
          return;
        }
        if (n < 0 || n < hdrLen) {
          // The tap failed (deleted: -EBADFD); whoever waits on it sees it gone.
          this.count(NS.RX_TAP_ERRORS);
          this.arm();
          return;
        }
        if (!this.sanitize(hdrLen, lo, mrg)) {
          this.count(NS.RX_OFFLOAD_DROPS);
          continue;
        }
        len = n;
        Atomics.store(w, NW.HOLD_LEN, n);
        Atomics.store(w, NW.HOLD_DONE, 0);
        Atomics.store(w, NW.HOLD_CHAINS, 0);
      }
      if (!(mrg ? this.deliverMerged(q, mem, len, hdrLen) : this.deliverOne(q, mem, len, hdrLen))) {
        // No (more) buffers: the frame stays held, the rest stay in the tap, until the driver refills.
        this.count(NS.RX_STARVED);
        this.disarm();
        this.rxWantsBuffers = true;
        return;
      }
    }
    this.arm(); // budget spent: a waiter comes back for the rest
  }

  /**
   * Make the header of the held frame what this driver may see (spec
   * §5.1.6.4.1): false if the frame carries offload requests it did not
   * negotiate.
   */
  private sanitize(hdrLen: number, lo: number, mrg: boolean): boolean {
    const h = this.hold;
    const F = VIRTIO_NET_F;
    const gso = h[VNET_HDR.GSO_TYPE] as number;
    const base = gso & ~VIRTIO_NET_HDR_GSO.ECN;
    if (base !== VIRTIO_NET_HDR_GSO.NONE) {
      const ok =
        (base === VIRTIO_NET_HDR_GSO.TCPV4 && has(lo, F.GUEST_TSO4)) ||
        (base === VIRTIO_NET_HDR_GSO.TCPV6 && has(lo, F.GUEST_TSO6)) ||
        (base === VIRTIO_NET_HDR_GSO.UDP && has(lo, F.GUEST_UFO));
      if (!ok || (gso & VIRTIO_NET_HDR_GSO.ECN && !has(lo, F.GUEST_ECN))) return false;
    } else {
      h[VNET_HDR.GSO_TYPE] = VIRTIO_NET_HDR_GSO.NONE;
    }
    const flags = h[VNET_HDR.FLAGS] as number;
    if (!has(lo, F.GUEST_CSUM)) {
      if (flags & VIRTIO_NET_HDR_F.NEEDS_CSUM) return false;
      h[VNET_HDR.FLAGS] = 0;
    } else {
      h[VNET_HDR.FLAGS] = flags & (VIRTIO_NET_HDR_F.NEEDS_CSUM | VIRTIO_NET_HDR_F.DATA_VALID);
    }
    if (hdrLen === VNET_HDR.LEN && !mrg) {
      h[VNET_HDR.NUM_BUFFERS] = 1;
      h[VNET_HDR.NUM_BUFFERS + 1] = 0;
    }
    return true;
  }

  /** Give back a chain that cannot take data, empty. */
  private returnBad(q: SplitQueue, mem: GuestMemory, c: Chain): void {
    this.count(NS.RX_BAD_CHAIN);
    q.pushUsed(mem, c.head, 0);
  }

  private delivered(len: number, hdrLen: number): void {
    this.count(NS.RX_FRAMES);
    this.count(NS.RX_BYTES, len - hdrLen);
    Atomics.store(this.w, NW.HOLD_LEN, 0);
  }

  /** Without MRG_RXBUF: the held frame into one chain. False if the driver has posted none. */
  private deliverOne(q: SplitQueue, mem: GuestMemory, len: number, hdrLen: number): boolean {
    for (;;) {
      const c = q.popAvail(mem);
      if (c === undefined) return false;
      if (c.readable !== 0 || c.writeBytes < hdrLen) {
        this.returnBad(q, mem, c);
        continue;
      }
      if (c.writeBytes < len) {
        // Too small for this frame: the frame is dropped, the buffer comes back empty.
        this.count(NS.RX_TOO_BIG);
        q.pushUsed(mem, c.head, 0);
        Atomics.store(this.w, NW.HOLD_LEN, 0);
        return true;
      }
      if (!c.write(mem, 0, this.hold.subarray(0, len))) {
        this.returnBad(q, mem, c);
        continue;
      }
      q.pushUsed(mem, c.head, len);
      this.delivered(len, hdrLen);
      return true;
    }
  }

  /** The guest address of byte `off` of `c`'s writable part, or -1. */
  private static writableGpa(c: Chain, off: number): number {
    let skip = off;
    for (let i = c.readable; i < c.count; i++) {
      const b = c.buffer(i);
      if (skip < b.len) return b.addr + skip;
      skip -= b.len;
    }
    return -1;
  }

  /**
   * With MRG_RXBUF: continue spreading the held frame over chains. False
   * when the ring ran dry before the frame was placed (the chains taken so
   * far stay held, in shared state, for the next pass).
   */
  private deliverMerged(q: SplitQueue, mem: GuestMemory, len: number, hdrLen: number): boolean {
    const w = this.w;
    const heads = this.heldHeads;
    const lens = this.heldLens;
    let done = Atomics.load(w, NW.HOLD_DONE);
    let k = Atomics.load(w, NW.HOLD_CHAINS);
    while (done < len) {
      const c = k < heads.length ? q.popAvail(mem) : undefined;
      if (c === undefined) {
        if (k < q.currentSize && k < heads.length) {
          Atomics.store(w, NW.HOLD_DONE, done);
          Atomics.store(w, NW.HOLD_CHAINS, k);
          return false;
        }
        // Every buffer the ring can hold is taken and the frame still does not fit.
        this.count(NS.RX_TOO_BIG);
        this.releaseHeld(q, mem, k);
        return true;
      }
      if (c.readable !== 0 || c.writeBytes === 0 || (k === 0 && c.writeBytes < hdrLen)) {
        this.returnBad(q, mem, c);
        continue;
      }
      const n = Math.min(c.writeBytes, len - done);
      if (!c.write(mem, 0, this.hold.subarray(done, done + n))) {
        this.returnBad(q, mem, c);
        continue;
      }
      if (k === 0) {
        this.heldGpa[0] = PciVirtioNet.writableGpa(c, VNET_HDR.NUM_BUFFERS);
        this.heldGpa[1] = PciVirtioNet.writableGpa(c, VNET_HDR.NUM_BUFFERS + 1);
      }
      heads[k] = c.head;
      lens[k] = n;
      k++;
      done += n;
    }
    // Placed: num_buffers into the first chain's header, then all chains used together.
    mem.writeU8(this.heldGpa[0] as number, k & 0xff);
    mem.writeU8(this.heldGpa[1] as number, k >>> 8);
    for (let i = 0; i < k; i++) q.pushUsed(mem, heads[i] as number, lens[i] as number);
    Atomics.store(w, NW.HOLD_DONE, 0);
    Atomics.store(w, NW.HOLD_CHAINS, 0);
    this.delivered(len, hdrLen);
    return true;
  }

  /** Return `k` held chains empty and drop the frame they were for (RX lock held). */
  private releaseHeld(q: SplitQueue, mem: GuestMemory, k: number): void {
    for (let i = 0; i < k; i++) q.pushUsed(mem, this.heldHeads[i] as number, 0);
    Atomics.store(this.w, NW.HOLD_LEN, 0);
    Atomics.store(this.w, NW.HOLD_DONE, 0);
    Atomics.store(this.w, NW.HOLD_CHAINS, 0);
  }

  // ---- control queue (its lock held) ----

  private ctrlPass(q: SplitQueue, mem: GuestMemory): void {
    this.configure();
    let c: Chain | undefined;
    while ((c = q.popAvail(mem)) !== undefined) {
      const ack = this.control(c, mem);
      if (c.writeBytes === 0 || !c.writeU8(mem, 0, ack)) {
        this.count(NS.CTRL_NO_ACK);
        q.pushUsed(mem, c.head, 0);
        continue;
      }
      this.count(ack === VIRTIO_NET_OK ? NS.CTRL_OK : NS.CTRL_ERR);
      q.pushUsed(mem, c.head, 1);
    }
  }

  /** One command: class, command, data in the readable part. The ack. */
  private control(c: Chain, mem: GuestMemory): number {
    if (c.readBytes < 2 || c.readBytes > 2 + MAX_CTRL_DATA) return VIRTIO_NET_ERR;
    const buf = (this.ctrlBuf ??= new Uint8Array(2 + MAX_CTRL_DATA)).subarray(0, c.readBytes);
    if (!c.read(mem, 0, buf)) return VIRTIO_NET_ERR;
    const cls = buf[0] as number;
    const cmd = buf[1] as number;
    const data = buf.subarray(2);
    const ctrlRx = has(Atomics.load(this.w, NW.FEATURES_LO), VIRTIO_NET_F.CTRL_RX);
    switch (cls) {
      case VIRTIO_NET_CTRL.RX:
        return ctrlRx ? this.filter.rxMode(cmd, data) : VIRTIO_NET_ERR;
      case VIRTIO_NET_CTRL.MAC:
        if (!ctrlRx) return VIRTIO_NET_ERR;
        if (cmd === VIRTIO_NET_CTRL_MAC.TABLE_SET) return this.filter.macTable(data);
        if (cmd === VIRTIO_NET_CTRL_MAC.ADDR_SET) {
          if (data.length !== ETH_ALEN || ((data[0] as number) & 1) !== 0) return VIRTIO_NET_ERR;
          // The spec wants the configuration space to show it before the command completes.
          this.transport.lock.with(() => this.cfg.set(data, NET_CFG.MAC));
          return VIRTIO_NET_OK;
        }
        return VIRTIO_NET_ERR;
      case VIRTIO_NET_CTRL.MQ: {
        if (cmd !== VIRTIO_NET_CTRL_MQ.VQ_PAIRS_SET || data.length !== 2) return VIRTIO_NET_ERR;
        const pairs = (data[0] as number) | ((data[1] as number) << 8);
        if (pairs < 1 || pairs > this.sh.pairs) return VIRTIO_NET_ERR;
        Atomics.store(this.w, NW.ACTIVE_PAIRS, pairs);
        return VIRTIO_NET_OK;
      }
      default:
        // VLAN, ANNOUNCE, GUEST_OFFLOADS and anything unknown: not offered.
        return VIRTIO_NET_ERR;
    }
  }

  // ---- RX waiting (see the file comment) ----

  /** Could the RX queue be processed now (the transport's conditions)? */
  private rxProcessable(): boolean {
    const s = this.transport.status;
    if ((s & STATUS.DRIVER_OK) === 0 || (s & (STATUS.DEVICE_NEEDS_RESET | STATUS.FAILED)) !== 0) return false;
    const q = this.transport.queues[NET_QUEUE.RX] as SplitQueue;
    if (!q.mapped || q.broken) return false;
    return this.transport.mode !== VirtioMode.Modern || q.enabled;
  }

  /**
   * Move what the tap has into the buffers the driver posted, without
   * blocking, and interrupt as the queue's suppression rules say. Any
   * thread; if another thread is inside the RX queue it does this pass
   * for us. Does nothing (and stops waiters) until the driver is ready.
   */
  pollRx(): void {
    if (!this.rxProcessable() || Atomics.load(this.w, NW.PAUSED) !== 0) {
      this.disarm();
      return;
    }
    // The transport's notify path: queue lock, suppression, interrupt. (It counts as a notify.)
    this.transport.notify(NET_QUEUE.RX);
  }

  /**
   * The RX loop of a dedicated I/O thread with its own instance: while
   * armed, block in poll on the tap (at most RX_WAIT_SLICE_MS at a time)
   * and run RX passes; while disarmed, sleep until an RX pass arms again.
   * Returns when `stop[0]` (or the device's STOP word, set by `halt`)
   * becomes non-zero — seen within RX_WAIT_SLICE_MS — or at once when
   * `wakeFd` becomes readable (the caller drains it), or when the tap is
   * gone. Blocks the calling thread: never call it on the main thread.
   */
  runRxLoop(stop: Int32Array, wakeFd?: number): 'stopped' | 'gone' {
    const w = this.w;
    const stopped = (): boolean => Atomics.load(stop, 0) !== 0 || Atomics.load(w, NW.STOP) !== 0;
    this.pollRx();
    while (!stopped()) {
      if (Atomics.load(w, NW.ARMED) === 0) {
        Atomics.wait(w, NW.ARMED, 0, RX_WAIT_SLICE_MS);
        continue;
      }
      const r = this.tap.waitReadable(RX_WAIT_SLICE_MS, wakeFd);
      if (r & TapReady.Wake) return 'stopped';
      if (r & TapReady.Gone) {
        Atomics.store(w, NW.GONE, 1);
        return 'gone';
      }
      if (r & TapReady.Readable) this.pollRx();
    }
    return 'stopped';
  }

  /** The tap reported an error or hang-up to a waiter (deleted, or its namespace destroyed). */
  get tapGone(): boolean {
    return Atomics.load(this.w, NW.GONE) !== 0;
  }

  private startPoller(): void {
    if (this.poller) return;
    const w = this.w;
    Atomics.store(w, NW.STOP, 0);
    const poller = new Worker(new URL('./net-rx-poller.js', import.meta.url), {
      workerData: { role: 'virtio-net-rx-poller', tap: this.sh.tap, words: this.sh.words },
      name: `${this.name}-rx`,
    });
    // The machine ends it with `halt`; a forgotten device must not keep the process alive.
    poller.unref();
    poller.on('error', () => Atomics.store(w, NW.GONE, 1));
    this.poller = poller;
    void this.serveRx();
  }

  /** Main thread: run an RX pass whenever the poller says the tap is readable. */
  private async serveRx(): Promise<void> {
    const w = this.w;
    while (Atomics.load(w, NW.STOP) === 0) {
      const r = Atomics.waitAsync(w, NW.READY, 0);
      if (r.async) await r.value;
      if (Atomics.load(w, NW.STOP) !== 0) break;
      Atomics.store(w, NW.READY, 0);
      this.pollRx();
    }
  }

  // ---- lifecycle (main thread) ----

  start(): void {
    if (this.sh.rxThread === 'poller') this.startPoller();
    this.arm();
  }

  /** vCPUs are paused: stop RX and return the chains a partly copied frame holds. */
  pause(): void {
    Atomics.store(this.w, NW.PAUSED, 1);
    this.flushHeldChains();
  }

  resume(): void {
    Atomics.store(this.w, NW.PAUSED, 0);
    this.arm();
    this.pollRx();
  }

  private flushHeldChains(): void {
    const q = this.transport.queues[NET_QUEUE.RX] as SplitQueue;
    q.lock.with(() => {
      const k = Atomics.load(this.w, NW.HOLD_CHAINS);
      if (k === 0) return;
      this.count(NS.RX_FLUSHED);
      this.releaseHeld(q, this.mem, k);
    });
  }

  reset(): void {
    this.transport.reset();
  }

  /** Stop the RX waiters and close the tap (if this instance owns it). */
  halt(): void {
    const w = this.w;
    Atomics.store(w, NW.STOP, 1);
    Atomics.notify(w, NW.ARMED);
    Atomics.notify(w, NW.READY);
    const p = this.poller;
    this.poller = undefined;
    // The poller sees STOP within one wait slice; terminate makes sure.
    if (p) void p.terminate();
    if (this.ownsTap) this.tap.close();
  }

  migrate(): Migrate {
    const tr = this.transport;
    return {
      export: (): Payload[] => {
        this.flushHeldChains();
        const ctrl = tr.queues[NET_QUEUE.CTRL] as SplitQueue;
        const net = ctrl.lock.with(() => this.filter.exportState());
        return [tr.exportState(), tr.pci.exportState(), PciVirtioVionaV1.encode(net)];
      },
      import: (offers: PayloadOffers): void => {
        const v = tr.takeState(offers);
        const p = tr.pci.takeState(offers);
        const n = offers.take(PciVirtioVionaV1);
        const why = RxFilter.check(n);
        if (why !== undefined) throw new MigrateError('ImportFailed', `${this.name}: pci-virtio-viona: ${why}`);
        offers.finish();
        tr.applyState(v);
        tr.pci.applyState(p);
        const w = this.w;
        const ctrl = tr.queues[NET_QUEUE.CTRL] as SplitQueue;
        ctrl.lock.with(() => this.filter.importState(n));
        // The tap follows the imported features at the next pass; nothing is in flight.
        Atomics.store(w, NW.CONFIGURED, 0);
        Atomics.store(w, NW.HOLD_LEN, 0);
        Atomics.store(w, NW.HOLD_DONE, 0);
        Atomics.store(w, NW.HOLD_CHAINS, 0);
        this.cfg.set(this.sh.mac, NET_CFG.MAC);
        tr.syncIntx();
      },
    };
  }
}
