// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A 16550 UART on the LPC bus: eight I/O ports, one ISA IRQ, and a host
// side (console output ring, input injection).
//
// Threading: one instance per vCPU thread plus one on the main thread, all
// over the same shared state (see device.ts). Every register access and
// host-side call takes the device mutex. Transmitted bytes go into a shared
// byte ring that the main thread drains to the console; while nobody is
// attached to the console the bytes are discarded (Propolis's autodiscard),
// so a guest never stalls on an unread serial port.

import { type DeviceDescriptor, type DeviceHost, type IrqLine, type MachineDevice } from '../../device.js';
import { type Lifecycle } from '../../lifecycle.js';
import { lockedMigrate, type Migrate } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { ByteRing } from '../../sync/byte-ring.js';
import { SharedMutex } from '../../sync/mutex.js';
import { UART_STATE_BYTES, Uart16550 } from './uart16550.js';

export const COM_PORTS = {
  com1: { port: 0x3f8, irq: 4 },
  com2: { port: 0x2f8, irq: 3 },
  com3: { port: 0x3e8, irq: 4 },
  com4: { port: 0x2e8, irq: 3 },
} as const;

export type ComPort = keyof typeof COM_PORTS;

interface UartShared {
  port: number;
  irq: number;
  state: SharedArrayBuffer;
  /** [0] mutex, [1] console attached, [2] IRQ line level as last driven. */
  ctl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

const CTL_LOCK = 0;
const CTL_SINK = 1;
const CTL_LEVEL = 2;
const RING_BYTES = 16384;

export class LpcUart implements MachineDevice, PioHandler, Lifecycle {
  readonly typeName = 'lpc-uart';
  private readonly model: Uart16550;
  private readonly lock: SharedMutex;
  private readonly ctl: Int32Array;
  private readonly irq: IrqLine;
  /** Transmitted bytes, read by the main thread. */
  readonly output: ByteRing;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as UartShared;
    this.model = new Uart16550(new Uint8Array(sh.state));
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.output = new ByteRing(sh.ring);
    this.irq = host.irqLine(sh.irq, descriptor.name);
    host.pio.register(sh.port, 8, this, this.descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /** Describe a new UART (allocates its shared state); attach it with the machine. */
  static describe(name: ComPort): DeviceDescriptor {
    const { port, irq } = COM_PORTS[name];
    const state = new SharedArrayBuffer(UART_STATE_BYTES);
    new Uart16550(new Uint8Array(state)).reset();
    const shared: UartShared = {
      port,
      irq,
      state,
      ctl: new SharedArrayBuffer(12),
      ring: new SharedArrayBuffer(8 + RING_BYTES),
    };
    return { module: import.meta.url, export: 'LpcUart', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): LpcUart {
    return new LpcUart(desc, host);
  }

  pioRead(port: number, size: AccessSize): number {
    const sh = this.descriptor.shared as UartShared;
    this.lock.lock();
    try {
      // Wider accesses read the first register; the 16550 is byte-wide.
      const v = this.model.regRead(port - sh.port);
      this.sync();
      return size === 1 ? v : v | (size === 2 ? 0xff00 : 0xffffff00);
    } finally {
      this.lock.unlock();
    }
  }

  pioWrite(port: number, _size: AccessSize, value: number): void {
    const sh = this.descriptor.shared as UartShared;
    this.lock.lock();
    try {
      this.model.regWrite(port - sh.port, value & 0xff);
      this.sync();
    } finally {
      this.lock.unlock();
    }
  }

  /** With the lock held: move transmitted bytes out and drive the IRQ line. */
  private sync(): void {
    if (this.model.txLen > 0) {
      const sink = Atomics.load(this.ctl, CTL_SINK) !== 0;
      while (this.model.txLen > 0 && (!sink || this.output.space > 0)) {
        const b = this.model.takeTx() as number;
        if (sink) this.output.push(b);
      }
    }
    const level = this.model.intrPending ? 1 : 0;
    if (Atomics.load(this.ctl, CTL_LEVEL) !== level) {
      Atomics.store(this.ctl, CTL_LEVEL, level);
      this.irq.set(level === 1);
    }
  }

  // ---- host side (main thread) ----

  /** Attach or detach the console. Detached output is discarded. */
  setSinkAttached(attached: boolean): void {
    Atomics.store(this.ctl, CTL_SINK, attached ? 1 : 0);
    this.pump();
  }

  /**
   * Host → guest: queue input bytes. Returns how many were accepted (the
   * receive FIFO holds 16); the caller retries the rest later.
   */
  sendInput(bytes: Uint8Array): number {
    return this.lock.with(() => {
      let n = 0;
      while (n < bytes.length && this.model.rxSpace > 0) this.model.receive(bytes[n++] as number);
      this.sync();
      return n;
    });
  }

  /** Free space in the receive FIFO. */
  get inputSpace(): number {
    return this.lock.with(() => this.model.rxSpace);
  }

  /** After draining `output`: move held transmit bytes into the ring (and raise THRE). */
  pump(): void {
    this.lock.with(() => this.sync());
  }

  reset(): void {
    this.lock.with(() => {
      this.model.reset();
      this.sync();
    });
  }

  migrate(): Migrate {
    return lockedMigrate(this.lock, this.model, () => this.sync());
  }
}
