// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The 8042 PS/2 controller on the LPC bus (`lpc-ps2ctrl`): data port 0x60,
// status/command port 0x64, IRQ 1 (keyboard) and IRQ 12 (mouse) as edge
// pulses, a system-reset request to the machine, and a host side that
// types keys and moves the mouse.
//
// Threading: one instance per vCPU thread plus one on the main thread, all
// over the same shared state (see device.ts); every access and host-side
// call takes the device mutex. Whoever moves a byte into the output buffer
// (a vCPU reading 0x60, or the main thread injecting a key) pulses the IRQ.
// A reset request (output port bit 0 written 0, or a pulse command) goes to
// `host.events.reset` after the mutex is released.
//
// Host input (main thread only): key events wait in a host-side queue and
// enter the keyboard only when its 16-byte buffer has room for the whole
// key's bytes, so typing a long string loses nothing. When they do not fit,
// the main thread sets a flag in shared memory and sleeps in
// `Atomics.waitAsync`; a vCPU that reads the data port while the flag is set
// bumps a counter and notifies, and a 20 ms timeout covers the rest. While
// paused, key events wait and mouse movement is dropped. The host queue is
// not part of the migrated state.

import type { DeviceDescriptor, DeviceHost, GuestEvents, IrqLine, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { lockedMigrate, type Migrate } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { I8042, I8042_STATE_BYTES } from './i8042.js';
import { isPs2Key, textToKeyEvents, type Ps2Key } from './scancodes.js';

export const PS2_DATA_PORT = 0x60;
export const PS2_STATUS_PORT = 0x64;
export const PS2_KBD_IRQ = 1;
export const PS2_AUX_IRQ = 12;

/** Key events the host may have waiting; more are dropped. */
export const HOST_KEY_QUEUE = 4096;
const HOST_RETRY_MS = 20;

interface Ps2Shared {
  state: SharedArrayBuffer;
  /** [0] mutex, [1] data-port reads while the host waits, [2] host is waiting for room. */
  ctl: SharedArrayBuffer;
}

const CTL_LOCK = 0;
const CTL_DRAINED = 1;
const CTL_WANT = 2;

interface PendingKey {
  key: Ps2Key;
  down: boolean;
  /** Resolves a `typeText` promise once its last event is in the keyboard (or dropped). */
  done?: () => void;
}

export class Ps2HostInputError extends Error {
  readonly code = 'PS2_HOST_INPUT';
}

export class LpcPs2Ctrl implements MachineDevice, PioHandler, Lifecycle {
  readonly typeName = 'lpc-ps2ctrl';
  private readonly model: I8042;
  private readonly lock: SharedMutex;
  private readonly ctl: Int32Array;
  private readonly irqKbd: IrqLine;
  private readonly irqAux: IrqLine;
  private readonly events: GuestEvents;
  // Host side (main thread).
  private readonly pending: PendingKey[] = [];
  private waiting = false;
  private paused = false;
  private halted = false;
  /** Key events dropped because the host queue was full. */
  droppedKeys = 0;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as Ps2Shared;
    this.model = new I8042(new Uint8Array(sh.state));
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.irqKbd = host.irqLine(PS2_KBD_IRQ, descriptor.name);
    this.irqAux = host.irqLine(PS2_AUX_IRQ, descriptor.name);
    this.events = host.events;
    host.pio.register(PS2_DATA_PORT, 1, this, descriptor.name);
    host.pio.register(PS2_STATUS_PORT, 1, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /** Describe a new controller with keyboard and mouse (allocates its shared state). */
  static describe(name = 'lpc-ps2ctrl'): DeviceDescriptor {
    const state = new SharedArrayBuffer(I8042_STATE_BYTES);
    new I8042(new Uint8Array(state)).powerOn();
    const shared: Ps2Shared = { state, ctl: new SharedArrayBuffer(12) };
    return { module: import.meta.url, export: 'LpcPs2Ctrl', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): LpcPs2Ctrl {
    return new LpcPs2Ctrl(desc, host);
  }

  // ---- guest side ----

  pioRead(port: number, size: AccessSize): number {
    // Wider accesses are byte cycles at consecutive ports; only 0x60 and
    // 0x64 are ours, the other bytes read as an empty bus.
    let v = 0;
    let drained = false;
    let reset: string | undefined;
    this.lock.lock();
    try {
      for (let i = 0; i < size; i++) {
        const p = port + i;
        let b = 0xff;
        if (p === PS2_DATA_PORT) {
          b = this.model.readData();
          drained = true;
        } else if (p === PS2_STATUS_PORT) {
          b = this.model.readStatus();
        }
        v |= b << (8 * i);
      }
      reset = this.sync();
      if (drained && Atomics.load(this.ctl, CTL_WANT) !== 0) {
        Atomics.add(this.ctl, CTL_DRAINED, 1);
        Atomics.notify(this.ctl, CTL_DRAINED);
      }
    } finally {
      this.lock.unlock();
    }
    if (reset !== undefined) this.events.reset(reset);
    return v >>> 0;
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    let reset: string | undefined;
    this.lock.lock();
    try {
      for (let i = 0; i < size; i++) {
        const p = port + i;
        const b = (value >>> (8 * i)) & 0xff;
        if (p === PS2_DATA_PORT) this.model.writeData(b);
        else if (p === PS2_STATUS_PORT) this.model.writeCommand(b);
      }
      reset = this.sync();
    } finally {
      this.lock.unlock();
    }
    if (reset !== undefined) this.events.reset(reset);
  }

  /** With the lock held: pulse the IRQs for new output; return a reset request, if any. */
  private sync(): string | undefined {
    const e = this.model.takeIrqEdges();
    if (e & 1) this.irqKbd.pulse();
    if (e & 2) this.irqAux.pulse();
    return this.model.takeResetRequest();
  }

  // ---- host side (main thread) ----

  /** A key goes down (W3C `KeyboardEvent.code` name, e.g. `KeyA`, `Enter`, `ArrowUp`). */
  keyDown(key: Ps2Key): void {
    this.enqueue([{ key: this.checkKey(key), down: true }]);
  }

  keyUp(key: Ps2Key): void {
    this.enqueue([{ key: this.checkKey(key), down: false }]);
  }

  /**
   * Type a string on a US layout (press and release, Shift where needed).
   * Resolves when the last key is in the keyboard's buffer (or was dropped
   * by a halt, reset or a full host queue). Characters without a key are
   * skipped; the count of skipped characters is the result.
   */
  typeText(text: string): Promise<number> {
    const { events, skipped } = textToKeyEvents(text);
    return new Promise<number>((resolve) => {
      const last = events.at(-1);
      if (!last) {
        resolve(skipped);
        return;
      }
      const keys: PendingKey[] = events.map((e) => ({ ...e }));
      (keys[keys.length - 1] as PendingKey).done = () => resolve(skipped);
      this.enqueue(keys);
    });
  }

  /**
   * Move the mouse by (dx, dy) screen pixels (dy positive = down, as on
   * screen; PS/2 reports up as positive and the sign is turned here) with
   * these buttons held (bit 0 left, bit 1 right, bit 2 middle).
   */
  mouseMove(dx: number, dy: number, buttons: number): void {
    if (this.paused || this.halted) return;
    this.lock.lock();
    try {
      this.model.mouseMove(dx, -dy, buttons);
      this.sync();
    } finally {
      this.lock.unlock();
    }
  }

  /** Key events waiting on the host side. */
  get pendingKeys(): number {
    return this.pending.length;
  }

  /** The A20 bit of the output port (informational: KVM does not gate A20). */
  get a20(): boolean {
    return this.lock.with(() => this.model.a20);
  }

  private checkKey(key: string): Ps2Key {
    if (!isPs2Key(key)) throw new Ps2HostInputError(`${this.name}: no key named ${JSON.stringify(key)}`);
    return key;
  }

  private enqueue(keys: PendingKey[]): void {
    if (this.halted || this.pending.length + keys.length > HOST_KEY_QUEUE) {
      this.droppedKeys += keys.length;
      for (const k of keys) k.done?.();
      return;
    }
    this.pending.push(...keys);
    this.feed();
  }

  /** Move waiting key events into the keyboard while they fit. */
  private feed(): void {
    if (this.paused || this.halted || this.pending.length === 0) return;
    this.lock.lock();
    try {
      for (let k = this.pending[0]; k !== undefined; k = this.pending[0]) {
        if (!this.model.keyFits(k.key, k.down)) break;
        this.model.keyEvent(k.key, k.down);
        this.pending.shift();
        k.done?.();
      }
      this.sync();
    } finally {
      this.lock.unlock();
    }
    if (this.pending.length > 0) this.waitForRoom();
  }

  private waitForRoom(): void {
    if (this.waiting) return;
    this.waiting = true;
    const seen = Atomics.load(this.ctl, CTL_DRAINED);
    Atomics.store(this.ctl, CTL_WANT, 1);
    const again = (): void => {
      this.waiting = false;
      Atomics.store(this.ctl, CTL_WANT, 0);
      this.feed();
    };
    const w = Atomics.waitAsync(this.ctl, CTL_DRAINED, seen, HOST_RETRY_MS);
    if (w.async) void w.value.then(again);
    else again();
  }

  private dropPending(): void {
    const keys = this.pending.splice(0);
    for (const k of keys) k.done?.();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.feed();
  }

  /** Machine reset: controller, keyboard and mouse to power-on; waiting host keys dropped. */
  reset(): void {
    this.dropPending();
    this.lock.with(() => this.model.powerOn());
  }

  halt(): void {
    this.halted = true;
    this.dropPending();
  }

  migrate(): Migrate {
    return lockedMigrate(this.lock, this.model);
  }
}
