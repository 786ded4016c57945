// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// QEMU's debug console port (`isa-debugcon`; Propolis's `qemu-lpc-debug`):
// firmware such as SeaBIOS writes its log one byte at a time to port 0x402,
// and probes for the port by reading it (0xE9, Bochs's historic value).
//
// Written bytes go into a shared byte ring that the host side drains (the
// standalone appends them to `debug.out`). When no consumer is attached,
// or the ring is full, bytes are dropped and counted: the guest never
// waits on its debug log. The device has no state worth migrating.
//
// Threading: one instance per vCPU thread plus one on the main thread (see
// device.ts). The ring has one producer at a time because every vCPU's
// write holds the device's SharedMutex; the consumer is the main thread.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { ByteRing } from '../../sync/byte-ring.js';
import { SharedMutex } from '../../sync/mutex.js';

export const DEBUG_PORT_DEFAULT = 0x402;
/** What a read of the port returns: the guest's test that the port is there. */
export const DEBUG_PORT_READBACK = 0xe9;
const RING_BYTES = 16384;

interface DebugPortShared {
  port: number;
  /** [0] mutex, [1] consumer attached, [2] bytes dropped. */
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

const CTL_LOCK = 0;
const CTL_SINK = 1;
const CTL_DROPPED = 2;

export class QemuDebugPort implements MachineDevice, PioHandler {
  readonly typeName = 'qemu-lpc-debug';
  private readonly ctl: Int32Array;
  private readonly lock: SharedMutex;
  /** Bytes the guest wrote, for the main thread to drain. */
  readonly output: ByteRing;
  private piping = false;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as DebugPortShared;
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.output = new ByteRing(sh.ring);
    host.pio.register(sh.port, 1, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(opts: { name?: string; port?: number } = {}): DeviceDescriptor {
    const name = opts.name ?? 'qemu-lpc-debug';
    const port = opts.port ?? DEBUG_PORT_DEFAULT;
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
      throw new RangeError(`${name}: ${port} is not an I/O port`);
    }
    const shared: DebugPortShared = {
      port,
      ctl: new SharedArrayBuffer(12),
      ring: new SharedArrayBuffer(8 + RING_BYTES),
    };
    return { module: import.meta.url, export: 'QemuDebugPort', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): QemuDebugPort {
    return new QemuDebugPort(desc, host);
  }

  pioRead(_port: number, size: AccessSize): number {
    // A wider read's upper bytes belong to the unclaimed ports above: all-ones.
    return size === 1 ? DEBUG_PORT_READBACK : (DEBUG_PORT_READBACK | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  pioWrite(_port: number, _size: AccessSize, value: number): void {
    // Only the low byte lands on this port; the others would go to the ports above.
    if (Atomics.load(this.ctl, CTL_SINK) === 0) {
      Atomics.add(this.ctl, CTL_DROPPED, 1);
      return;
    }
    this.lock.lock();
    try {
      if (!this.output.push(value & 0xff)) Atomics.add(this.ctl, CTL_DROPPED, 1);
    } finally {
      this.lock.unlock();
    }
  }

  // ---- host side (main thread) ----

  /** Attach or detach the consumer of `output`. Detached, written bytes are dropped. */
  setSinkAttached(attached: boolean): void {
    Atomics.store(this.ctl, CTL_SINK, attached ? 1 : 0);
  }

  /** Bytes dropped because nobody consumed them or the ring was full. */
  get dropped(): number {
    return Atomics.load(this.ctl, CTL_DROPPED);
  }

  /**
   * Attach a consumer that receives the guest's bytes as they arrive
   * (e.g. appending them to `debug.out`). `close()` hands over what is left,
   * detaches and ends the pump. One consumer at a time.
   */
  pipeTo(write: (bytes: Uint8Array) => void): { close(): Promise<void> } {
    if (this.piping) throw new Error(`${this.name}: output already has a consumer`);
    this.piping = true;
    this.setSinkAttached(true);
    let open = true;
    let closed = false;
    let failure: Error | undefined;
    const pump = (async (): Promise<void> => {
      while (open) {
        await this.output.waitReadable();
        const bytes = this.output.drain();
        if (bytes.length > 0) write(bytes);
      }
    })().catch((e: unknown) => {
      // The consumer failed (e.g. the disk is full): stop taking bytes; close() reports it.
      failure = e instanceof Error ? e : new Error(String(e));
      open = false;
      this.setSinkAttached(false);
    });
    return {
      close: async (): Promise<void> => {
        if (closed) return;
        closed = true;
        open = false;
        this.setSinkAttached(false);
        this.output.wake();
        await pump;
        this.piping = false;
        if (failure !== undefined) throw failure;
        const rest = this.output.drain();
        if (rest.length > 0) write(rest);
      },
    };
  }

  migrate(): 'empty' {
    return 'empty';
  }
}
