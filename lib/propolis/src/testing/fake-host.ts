// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A DeviceHost for unit tests: real buses, guest memory over a plain
// buffer, IRQ lines that record their levels, events that record calls.

import type { DeviceHost, GuestEvents, IrqLine } from '../device.js';
import { MmioBus, PioBus } from '../pio.js';
import { GuestMemory } from '../vmm/memory.js';

export class RecordingIrqLine implements IrqLine {
  level = false;
  readonly history: boolean[] = [];
  constructor(readonly gsi: number) {}
  set(level: boolean): void {
    this.level = level;
    this.history.push(level);
  }
  pulse(): void {
    this.set(true);
    this.set(false);
  }
}

export class FakeHost implements DeviceHost {
  readonly thread = 'vcpu' as const;
  readonly vcpuId = 0;
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly mem: GuestMemory;
  readonly lines = new Map<number, RecordingIrqLine>();
  readonly halts: { reason: string; status: number | undefined }[] = [];
  readonly resets: string[] = [];
  readonly events: GuestEvents = {
    halt: (reason, status) => void this.halts.push({ reason, status }),
    reset: (reason) => void this.resets.push(reason),
  };

  constructor(ramBytes = 1 << 20) {
    this.mem = GuestMemory.fromBuffers([{ gpa: 0, bytes: new Uint8Array(ramBytes) }]);
  }

  readonly msis: { address: bigint; data: number }[] = [];
  private readonly singletons = new Map<string, unknown>();

  msi(address: bigint, data: number): void {
    this.msis.push({ address, data });
  }

  singleton<T>(key: string, create: () => T): T {
    if (!this.singletons.has(key)) this.singletons.set(key, create());
    return this.singletons.get(key) as T;
  }

  /** Records the last level set by any source on the line (no wired-OR here). */
  irqLine(gsi: number, _owner?: string): RecordingIrqLine {
    let l = this.lines.get(gsi);
    if (!l) {
      l = new RecordingIrqLine(gsi);
      this.lines.set(gsi, l);
    }
    return l;
  }
}
