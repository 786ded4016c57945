// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PciFunction: one PCI function as a device uses it — configuration space,
// MSI-X, INTx and BAR dispatch — placed in this thread's PCI topology.
//
// A device describes itself with a PciSpec (builder.ts) and a path, gets a
// structured-cloneable `PciFunctionShared` from `PciFunction.share()` to put
// in its descriptor, and on every thread calls `PciFunction.attach()` with
// it, passing its BAR handler. The guest reaches the function through the
// topology (configuration cycles) and the BAR router (I/O and MMIO).
//
// Threading: configuration space, the MSI-X table and PBA, the INTx state
// and a generation counter live in SharedArrayBuffers; every access takes
// the function's SharedMutex. Lock order: a device's own lock (if it holds
// one when it calls notify/setIntx) → this function's lock → the INTx
// router's (PIIX3) lock → the machine's IRQ-line lock. Nothing here calls
// the device while holding the lock, except `onConfigWrite`, which must not
// call back into this function. The generation counter is bumped on every
// write that can move or (dis)able a BAR, so each thread's BAR router knows
// when its cached map is stale.

import type { DeviceHost } from '../../device.js';
import { MigrateError, type Payload, type PayloadOffers } from '../../migrate.js';
import type { AccessSize } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { CFG, COMMAND, MSIX, PCI_CFG_SIZE, STATUS } from './bits.js';
import type { BarSpec, PciSpec } from './builder.js';
import { cfgAccessOk, cfgAllOnes, PciConfigSpace } from './config-space.js';
import { Msix, type MsixNotifyResult } from './msix.js';
import { PciPath } from './path.js';
import { PciDeviceV1, type PciDeviceState } from './state.js';
import { PciTopology, intxPinFor } from './topology.js';

export interface PciFunctionShared {
  spec: PciSpec;
  /** Placement, `b.d.f`. */
  path: string;
  /** Power-on configuration space for this placement (the spec's, with the INTx pin chosen for the path). */
  init: Uint8Array;
  cfg: SharedArrayBuffer;
  /** MSI-X table and PBA, when the spec has MSI-X. */
  msix: SharedArrayBuffer | undefined;
  ctl: SharedArrayBuffer;
}

// ctl words
const CTL_LOCK = 0;
/** Bumped on writes that can move or (dis)able a BAR. */
const CTL_GEN = 1;
/** The device's INTx request (Status.Interrupt). */
const CTL_INTX_REQ = 2;
/** What this function last drove onto its INTx pin (request gated by command and MSI-X). */
const CTL_INTX_DRIVEN = 3;
const CTL_WORDS = 4;

/** A device's BAR accesses; `off` is relative to the BAR's base. */
export interface PciBarHandler {
  barRead(bar: number, off: number, size: AccessSize): number | bigint;
  barWrite(bar: number, off: number, size: AccessSize, value: number | bigint): void;
}

export interface PciAttachOptions {
  /** The device's name (errors and IRQ owners). */
  name: string;
  /** Handles the BARs (other than the MSI-X table and PBA, which the function handles). */
  bars?: PciBarHandler;
  /** After a guest configuration write, with the function's lock held; must not call back into the function. */
  onConfigWrite?: (off: number, size: number) => void;
  /**
   * After a BAR may have moved or been (dis)abled (a guest write, reset or
   * import), on the thread that made the change, with no lock held.
   */
  onDecodeChange?: () => void;
}

/** One BAR as it currently decodes. */
export interface DecodedBar {
  bar: number;
  kind: BarSpec['kind'];
  base: number;
  size: number;
}

function allOnes(size: AccessSize): number | bigint {
  return size === 8 ? 0xffff_ffff_ffff_ffffn : cfgAllOnes(size);
}

export class PciFunction {
  readonly path: PciPath;
  readonly spec: PciSpec;
  readonly lock: SharedMutex;
  readonly config: PciConfigSpace;
  readonly msix: Msix | undefined;
  private readonly ctl: Int32Array;
  private readonly topology: PciTopology;
  private readonly bars: PciBarHandler | undefined;
  private readonly onConfigWrite: ((off: number, size: number) => void) | undefined;
  private readonly onDecodeChange: (() => void) | undefined;
  private readonly barEnd: number;

  private constructor(
    sh: PciFunctionShared,
    host: DeviceHost,
    readonly name: string,
    opts: PciAttachOptions,
  ) {
    this.path = PciPath.parse(sh.path);
    this.spec = sh.spec;
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.config = new PciConfigSpace(sh.spec, new Uint8Array(sh.cfg), sh.init);
    this.msix =
      sh.spec.msix && sh.msix
        ? new Msix(sh.spec.msix, this.config.bytes, new Uint8Array(sh.msix), (a, d) => host.msi(a, d))
        : undefined;
    this.bars = opts.bars;
    this.onConfigWrite = opts.onConfigWrite;
    this.onDecodeChange = opts.onDecodeChange;
    this.barEnd = CFG.BAR0 + 4 * (sh.spec.headerType === 1 ? 2 : 6);
    this.topology = PciTopology.of(host);
    this.topology.add(this);
  }

  /**
   * Allocate the shared state of a function placed at `path`, at its
   * power-on values. On bus 0 the reported INTx pin is the chipset's choice
   * (see topology.ts), elsewhere the spec's.
   */
  static share(spec: PciSpec, path: PciPath): PciFunctionShared {
    const init = spec.init.slice(0, PCI_CFG_SIZE);
    if (spec.intxPin !== 0) init[CFG.INTERRUPT_PIN] = intxPinFor(path, spec.intxPin);
    const cfg = new SharedArrayBuffer(PCI_CFG_SIZE);
    new Uint8Array(cfg).set(init);
    let msix: SharedArrayBuffer | undefined;
    if (spec.msix) {
      msix = new SharedArrayBuffer(Msix.stateBytes(spec.msix));
      new Msix(spec.msix, new Uint8Array(cfg), new Uint8Array(msix), () => {}).reset();
    }
    return { spec, path: path.toString(), init, cfg, msix, ctl: new SharedArrayBuffer(4 * CTL_WORDS) };
  }

  /** This thread's instance of the function, registered in this thread's topology. */
  static attach(sh: PciFunctionShared, host: DeviceHost, opts: PciAttachOptions): PciFunction {
    return new PciFunction(sh, host, opts.name, opts);
  }

  /** Changes whenever a BAR may have moved or been (dis)abled. */
  get generation(): number {
    return Atomics.load(this.ctl, CTL_GEN);
  }

  private bump(): void {
    Atomics.add(this.ctl, CTL_GEN, 1);
  }

  /** The pin this function reports (1–4, 0 for none). */
  get intxPin(): number {
    return this.config.init[CFG.INTERRUPT_PIN] as number;
  }

  // ---- configuration space (guest side) ----

  cfgRead(off: number, size: number): number {
    if (!cfgAccessOk(off, size)) return cfgAllOnes(size);
    this.lock.lock();
    try {
      return this.config.read(off, size);
    } finally {
      this.lock.unlock();
    }
  }

  cfgWrite(off: number, size: number, value: number): void {
    if (!cfgAccessOk(off, size)) return;
    let moved = false;
    this.lock.lock();
    try {
      const cmdBefore = this.config.command;
      const ctrlBefore = this.msix?.control ?? 0;
      this.config.write(off, size, value);
      const ov = PciConfigSpace.overlaps;
      if (ov(off, size, CFG.COMMAND, 2) || ov(off, size, CFG.BAR0, this.barEnd - CFG.BAR0)) {
        this.bump();
        moved = true;
      }
      if (this.msix && ov(off, size, this.msix.spec.capOffset + MSIX.CTRL, 2)) this.msix.controlWritten(ctrlBefore);
      const cmdAfter = this.config.command;
      if (((cmdBefore ^ cmdAfter) & COMMAND.INTX_DISABLE) !== 0 || (this.msix?.control ?? 0) !== ctrlBefore) {
        this.updateIntx();
      }
      this.onConfigWrite?.(off, size);
    } finally {
      this.lock.unlock();
    }
    if (moved) this.onDecodeChange?.();
  }

  // ---- BARs (called by the router with `off` relative to the BAR) ----

  barRead(bar: number, off: number, size: AccessSize): number | bigint {
    const m = this.msix;
    if (m && bar === m.spec.bar) {
      this.lock.lock();
      try {
        return m.barRead(off, size);
      } finally {
        this.lock.unlock();
      }
    }
    return this.bars ? this.bars.barRead(bar, off, size) : allOnes(size);
  }

  barWrite(bar: number, off: number, size: AccessSize, value: number | bigint): void {
    const m = this.msix;
    if (m && bar === m.spec.bar) {
      this.lock.with(() => m.barWrite(off, size, value));
      return;
    }
    this.bars?.barWrite(bar, off, size, value);
  }

  /** The BARs this function decodes now (decode enabled and an address assigned). */
  decodedBars(): DecodedBar[] {
    return this.lock.with(() => {
      const out: DecodedBar[] = [];
      for (const b of this.spec.bars) {
        if (!this.config.decodes(b)) continue;
        const base = this.config.barBase(b);
        if (base !== undefined) out.push({ bar: b.index, kind: b.kind, base, size: b.size });
      }
      return out;
    });
  }

  // ---- device side ----

  // Single-byte flags are read without the lock: a byte load cannot tear,
  // and a caller racing a guest write sees the value before or after it.

  /** Bus Master Enable: the device may do DMA only while this is set. */
  get busMaster(): boolean {
    return ((this.config.bytes[CFG.COMMAND] as number) & COMMAND.BUS_MASTER) !== 0;
  }

  get msixEnabled(): boolean {
    return this.msix !== undefined && this.msix.enabled;
  }

  /** Signal MSI-X vector `v` (delivered, or left pending while masked). Allocates nothing. */
  notify(v: number): MsixNotifyResult {
    const m = this.msix;
    if (!m) return 'invalid';
    this.lock.lock();
    try {
      return m.notify(v);
    } finally {
      this.lock.unlock();
    }
  }

  /** The device's INTx request. The pin is driven while requested, not disabled by INTX_DISABLE, and MSI-X is off. */
  setIntx(level: boolean): void {
    if (this.intxPin === 0) return;
    this.lock.lock();
    try {
      Atomics.store(this.ctl, CTL_INTX_REQ, level ? 1 : 0);
      this.updateIntx();
    } finally {
      this.lock.unlock();
    }
  }

  get intxRequested(): boolean {
    return Atomics.load(this.ctl, CTL_INTX_REQ) !== 0;
  }

  /** With the lock held: reflect the request in Status and drive the pin if its level changed. */
  private updateIntx(): void {
    if (this.intxPin === 0) return;
    const req = Atomics.load(this.ctl, CTL_INTX_REQ) !== 0;
    this.config.setBits16(CFG.STATUS, STATUS.INTERRUPT, req);
    const drive =
      req && (this.config.command & COMMAND.INTX_DISABLE) === 0 && !(this.msix !== undefined && this.msix.enabled);
    if ((Atomics.load(this.ctl, CTL_INTX_DRIVEN) !== 0) !== drive) {
      Atomics.store(this.ctl, CTL_INTX_DRIVEN, drive ? 1 : 0);
      this.topology.routeIntx(this, drive);
    }
  }

  // ---- lifecycle and state (main thread, vCPUs paused) ----

  /** Power-on state: configuration space, MSI-X table, INTx released. */
  reset(): void {
    this.lock.with(() => {
      Atomics.store(this.ctl, CTL_INTX_REQ, 0);
      this.updateIntx();
      this.config.reset();
      this.msix?.reset();
      this.bump();
    });
    this.onDecodeChange?.();
  }

  exportState(): Payload {
    return this.lock.with(() => {
      const c = this.config;
      const m = this.msix?.export();
      return PciDeviceV1.encode({
        command: c.command,
        intr_line: c.u8(CFG.INTERRUPT_LINE),
        bars: this.spec.bars.map((b) => ({ index: b.index, value: c.barValue(b) })),
        msix: m && { count: m.count, enabled: m.enabled, func_masked: m.funcMasked, entries: m.entries },
      });
    });
  }

  /** Take and validate this function's `pci-device` payload; nothing changes yet. */
  takeState(offers: PayloadOffers): PciDeviceState {
    const s = offers.take(PciDeviceV1);
    const bad = (why: string): never => {
      throw new MigrateError('ImportFailed', `${this.name} (PCI ${this.path}): ${why}`);
    };
    const cmdMask = this.spec.wmask[CFG.COMMAND]! | (this.spec.wmask[CFG.COMMAND + 1]! << 8);
    if ((s.command & ~cmdMask) !== 0) bad(`command 0x${s.command.toString(16)} has bits this function lacks`);
    const want = this.spec.bars.map((b) => b.index).join(',');
    if (s.bars.map((b) => b.index).join(',') !== want) bad(`BARs [${s.bars.map((b) => b.index)}], expected [${want}]`);
    // Check each value on a scratch copy of config space: the masks decide what a guest could have written.
    const scratch = new PciConfigSpace(this.spec, new Uint8Array(PCI_CFG_SIZE), this.config.init);
    scratch.reset();
    s.bars.forEach((b, i) => {
      if (!scratch.setBarValue(this.spec.bars[i] as BarSpec, b.value)) {
        bad(`BAR${b.index} value 0x${b.value.toString(16)} is not one this BAR can hold`);
      }
    });
    if ((s.msix === undefined) !== (this.msix === undefined)) bad('MSI-X state present on one side only');
    if (s.msix && this.msix) {
      const why = this.msix.checkImport(s.msix);
      if (why) bad(why);
    }
    return s;
  }

  /** Apply a state from takeState (vCPUs paused). */
  applyState(s: PciDeviceState): void {
    this.lock.with(() => {
      const c = this.config;
      c.bytes[CFG.COMMAND] = s.command & 0xff;
      c.bytes[CFG.COMMAND + 1] = s.command >> 8;
      c.bytes[CFG.INTERRUPT_LINE] = s.intr_line;
      s.bars.forEach((b, i) => c.setBarValue(this.spec.bars[i] as BarSpec, b.value));
      if (s.msix && this.msix) {
        this.msix.import({ enabled: s.msix.enabled, funcMasked: s.msix.func_masked, entries: s.msix.entries });
      }
      this.bump();
      this.updateIntx();
    });
    this.onDecodeChange?.();
  }

  /** Take, validate and apply in one step (for devices with no other state to check first). */
  importState(offers: PayloadOffers): void {
    this.applyState(this.takeState(offers));
  }
}
