// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// QEMU's paravirtual panic device (`pvpanic`), ISA flavour: one I/O port
// (0x505) through which a guest kernel reports that it panicked. Reading
// the port gives the events the device understands; writing reports them:
//
//   bit 0  PANICKED      the guest panicked and leaves the rest to the host
//   bit 1  CRASH_LOADED  the guest panicked and is loading its crash kernel
//
// As in Propolis, an event only counts (the VM keeps running); each bit of
// a write counts on its own. The host side reads the counters and may ask
// for a callback on the main thread. Propolis migrates no pvpanic state, so
// neither do we: the counters describe this host's observations.
//
// Threading: one instance per vCPU thread plus one on the main thread (see
// device.ts). The counters are shared words updated with atomics, so no
// lock is needed. The callback runs on the main thread, which sleeps on the
// event sequence word with Atomics.waitAsync; a vCPU pays one notify.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { AccessSize, PioHandler } from '../../pio.js';

export const PVPANIC_PORT = 0x505;

export const PvpanicEvent = {
  PANICKED: 1 << 0,
  CRASH_LOADED: 1 << 1,
} as const;

/** Read from the port: every event this device understands. */
export const PVPANIC_CAPABILITIES = PvpanicEvent.PANICKED | PvpanicEvent.CRASH_LOADED;

export interface PvpanicCounts {
  /** Writes with PANICKED set. */
  panicked: number;
  /** Writes with CRASH_LOADED set. */
  crashLoaded: number;
}

interface PvpanicShared {
  enableIsa: boolean;
  /** Int32 words: [0] panicked, [1] crash-loaded, [2] event sequence. */
  counts: SharedArrayBuffer;
}

const C_PANICKED = 0;
const C_CRASH_LOADED = 1;
const C_SEQ = 2;

export class QemuPvpanic implements MachineDevice, PioHandler {
  readonly typeName = 'qemu-pvpanic';
  private readonly words: Int32Array;
  private stopWatch: (() => void) | undefined;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as PvpanicShared;
    this.words = new Int32Array(sh.counts);
    if (sh.enableIsa) host.pio.register(PVPANIC_PORT, 1, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /** `enableIsa`: expose the ISA port (the standalone's `enable_isa`); without it the device is inert. */
  static describe(opts: { enableIsa: boolean; name?: string }): DeviceDescriptor {
    const shared: PvpanicShared = { enableIsa: opts.enableIsa, counts: new SharedArrayBuffer(12) };
    return { module: import.meta.url, export: 'QemuPvpanic', name: opts.name ?? 'qemu-pvpanic', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): QemuPvpanic {
    return new QemuPvpanic(desc, host);
  }

  pioRead(_port: number, size: AccessSize): number {
    // A wider read's upper bytes belong to the unclaimed ports above: all-ones.
    return size === 1 ? PVPANIC_CAPABILITIES : (PVPANIC_CAPABILITIES | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  pioWrite(_port: number, _size: AccessSize, value: number): void {
    let events = 0;
    if (value & PvpanicEvent.PANICKED) {
      Atomics.add(this.words, C_PANICKED, 1);
      events++;
    }
    if (value & PvpanicEvent.CRASH_LOADED) {
      Atomics.add(this.words, C_CRASH_LOADED, 1);
      events++;
    }
    if (events > 0) {
      Atomics.add(this.words, C_SEQ, 1);
      Atomics.notify(this.words, C_SEQ);
    }
  }

  // ---- host side (main thread) ----

  counts(): PvpanicCounts {
    return {
      panicked: Atomics.load(this.words, C_PANICKED) >>> 0,
      crashLoaded: Atomics.load(this.words, C_CRASH_LOADED) >>> 0,
    };
  }

  /**
   * Call `fn` on the main thread after guest panic reports, with the totals
   * and what is new since the last call (reports that arrive together come
   * as one call). Returns a function that stops the calls; `halt()` stops
   * them too. One callback at a time. An exception from `fn` stops the
   * calls and surfaces as an unhandled rejection: it is the host's bug.
   */
  onPanic(fn: (counts: PvpanicCounts, added: PvpanicCounts) => void): () => void {
    if (this.stopWatch) throw new Error(`${this.name}: a panic callback is already registered`);
    let active = true;
    let seen = this.counts();
    let seq = Atomics.load(this.words, C_SEQ);
    const stop = (): void => {
      if (!active) return;
      active = false;
      if (this.stopWatch === stop) this.stopWatch = undefined;
      Atomics.notify(this.words, C_SEQ); // wake the watcher so that it sees `active`
    };
    this.stopWatch = stop;
    const watch = async (): Promise<void> => {
      try {
        while (active) {
          const r = Atomics.waitAsync(this.words, C_SEQ, seq);
          if (r.async) await r.value;
          if (!active) return;
          seq = Atomics.load(this.words, C_SEQ);
          const now = this.counts();
          const added = { panicked: now.panicked - seen.panicked, crashLoaded: now.crashLoaded - seen.crashLoaded };
          seen = now;
          if (added.panicked > 0 || added.crashLoaded > 0) fn(now, added);
        }
      } finally {
        stop();
      }
    };
    void watch();
    return stop;
  }

  halt(): void {
    this.stopWatch?.();
  }

  migrate(): 'empty' {
    return 'empty';
  }
}
