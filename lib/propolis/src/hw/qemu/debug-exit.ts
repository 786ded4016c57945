// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// QEMU's `isa-debug-exit`: a guest write of v to its port ends the VM with
// exit status (v << 1) | 1. Test guests use it to report a result; it is
// present only when configured (standalone `driver = "qemu-isa-debug-exit"`).
// Reads return all-ones. Stateless, so any thread may handle it.

import type { DeviceDescriptor, DeviceHost, GuestEvents, MachineDevice } from '../../device.js';
import type { AccessSize, PioHandler } from '../../pio.js';

export const DEBUG_EXIT_DEFAULT_PORT = 0x501;

interface DebugExitShared {
  port: number;
  size: number;
}

export class QemuDebugExit implements MachineDevice, PioHandler {
  readonly typeName = 'qemu-isa-debug-exit';
  private readonly events: GuestEvents;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as DebugExitShared;
    this.events = host.events;
    host.pio.register(sh.port, sh.size, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(name: string, port = DEBUG_EXIT_DEFAULT_PORT, size = 1): DeviceDescriptor {
    if (!Number.isInteger(port) || port < 0 || port + size > 0x10000) {
      throw new RangeError(`${name}: iobase ${port} is not a valid I/O port`);
    }
    const shared: DebugExitShared = { port, size };
    return { module: import.meta.url, export: 'QemuDebugExit', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): QemuDebugExit {
    return new QemuDebugExit(desc, host);
  }

  pioRead(_port: number, size: AccessSize): number {
    return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  }

  pioWrite(_port: number, size: AccessSize, value: number): void {
    const v = size >= 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1);
    this.events.halt('guest wrote to the debug-exit port', ((v << 1) | 1) >>> 0);
  }

  migrate(): 'empty' {
    return 'empty';
  }
}
