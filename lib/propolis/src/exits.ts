// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// VM exits, decoded from a vCPU's kvm_run page into a discriminated union.
//
// Hot path: the decoder owns one preallocated object per exit kind and
// refills it in place, so decoding allocates nothing; a decoded exit is valid
// until the next KVM_RUN on the same vCPU. Threading: one decoder per vCPU
// thread, over that vCPU's kvm_run mapping.

import * as K from '../../kvm/src/index.js';

const R = K.structs.KvmRun.fields;

export interface ExitIo {
  kind: 'io';
  port: number;
  size: 1 | 2 | 4;
  out: boolean;
  /** Repetitions (string I/O); data for all of them is at `dataOffset`. */
  count: number;
  dataOffset: number;
}
export interface ExitMmio {
  kind: 'mmio';
  addr: number;
  size: 1 | 2 | 4 | 8;
  write: boolean;
}
export interface ExitSimple {
  kind: 'hlt' | 'shutdown' | 'intr' | 'irq-window-open';
}
export interface ExitSystemEvent {
  kind: 'system-event';
  type: number;
}
export interface ExitFailure {
  kind: 'internal-error' | 'fail-entry' | 'unknown' | 'exception';
  /** Suberror or hardware reason, for the log. */
  detail: string;
}
export interface ExitUnhandled {
  kind: 'unhandled';
  reason: number;
}

export type VmExit = ExitIo | ExitMmio | ExitSimple | ExitSystemEvent | ExitFailure | ExitUnhandled;

export function assertNever(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}

export class ExitDecoder {
  private readonly io: ExitIo = { kind: 'io', port: 0, size: 1, out: false, count: 0, dataOffset: 0 };
  private readonly mmio: ExitMmio = { kind: 'mmio', addr: 0, size: 1, write: false };
  private readonly simple: ExitSimple = { kind: 'hlt' };
  private readonly sysev: ExitSystemEvent = { kind: 'system-event', type: 0 };
  private readonly failure: ExitFailure = { kind: 'unknown', detail: '' };
  private readonly unhandled: ExitUnhandled = { kind: 'unhandled', reason: 0 };

  /** `run` is a view of the kvm_run mapping; it must not outlive that mapping. */
  constructor(private readonly run: DataView) {}

  get reason(): number {
    return this.run.getUint32(R.exitReason.offset, true);
  }

  decode(): VmExit {
    const run = this.run;
    const reason = run.getUint32(R.exitReason.offset, true);
    switch (reason) {
      case K.KVM_EXIT_IO: {
        const e = this.io;
        e.out = run.getUint8(R.ioDirection.offset) === K.KVM_EXIT_IO_OUT;
        e.size = run.getUint8(R.ioSize.offset) as 1 | 2 | 4;
        e.port = run.getUint16(R.ioPort.offset, true);
        e.count = run.getUint32(R.ioCount.offset, true);
        // data_offset is a u64 but always inside the kvm_run mapping: read the
        // low word (no BigInt on the hot path); a non-zero high word is
        // turned into an offset the caller rejects.
        e.dataOffset =
          run.getUint32(R.ioDataOffset.offset + 4, true) === 0 ? run.getUint32(R.ioDataOffset.offset, true) : -1;
        return e;
      }
      case K.KVM_EXIT_MMIO: {
        const e = this.mmio;
        e.addr = run.getUint32(R.mmioPhysAddr.offset, true) + run.getUint32(R.mmioPhysAddr.offset + 4, true) * 2 ** 32;
        e.size = run.getUint32(R.mmioLen.offset, true) as 1 | 2 | 4 | 8;
        e.write = run.getUint8(R.mmioIsWrite.offset) !== 0;
        return e;
      }
      case K.KVM_EXIT_HLT:
        this.simple.kind = 'hlt';
        return this.simple;
      case K.KVM_EXIT_SHUTDOWN:
        this.simple.kind = 'shutdown';
        return this.simple;
      case K.KVM_EXIT_INTR:
        this.simple.kind = 'intr';
        return this.simple;
      case K.KVM_EXIT_IRQ_WINDOW_OPEN:
        this.simple.kind = 'irq-window-open';
        return this.simple;
      case K.KVM_EXIT_SYSTEM_EVENT:
        this.sysev.type = run.getUint32(R.systemEventType.offset, true);
        return this.sysev;
      case K.KVM_EXIT_INTERNAL_ERROR: {
        const sub = run.getUint32(R.internalSuberror.offset, true);
        const n = Math.min(run.getUint32(R.internalNdata.offset, true), 16);
        const data: string[] = [];
        for (let i = 0; i < n; i++) data.push(run.getBigUint64(R.internalData.offset + 8 * i, true).toString(16));
        this.failure.kind = 'internal-error';
        this.failure.detail = `suberror ${sub}${sub === 1 ? ' (instruction emulation failed)' : ''} data [${data.join(', ')}]`;
        return this.failure;
      }
      case K.KVM_EXIT_FAIL_ENTRY:
        this.failure.kind = 'fail-entry';
        this.failure.detail = `hardware entry failure reason 0x${run.getBigUint64(R.failEntryReason.offset, true).toString(16)}`;
        return this.failure;
      case K.KVM_EXIT_UNKNOWN:
        this.failure.kind = 'unknown';
        this.failure.detail = 'KVM_EXIT_UNKNOWN';
        return this.failure;
      case K.KVM_EXIT_EXCEPTION:
        this.failure.kind = 'exception';
        this.failure.detail = `exception ${run.getUint32(R.exException.offset, true)}`;
        return this.failure;
      default:
        this.unhandled.reason = reason;
        return this.unhandled;
    }
  }
}
