// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// `pci-nvme`: the NVMe controller on PCI — 01DE:0000, class 01/08/02,
// BAR0 (64-bit, 16 KiB) with the registers and doorbells, 1024 MSI-X
// vectors in BAR4, INTx as a fallback — and its block backend.
//
//   const desc = PciNvme.describe({ name: 'disk0', pciPath: '0.4.0', serial: 'disk0', backend });
//   machine.addDevice(PciNvme, desc);
//
// The backend. A BlockTarget executes requests synchronously on the thread
// that opened it, so every thread's instance opens its own at attach:
//  - a `BackendDescriptor` (structured-cloneable, works on every thread) is
//    opened with the block layer's `openBackend` (tests may install another
//    opener with `setNvmeBackendOpener`);
//  - a `BlockTargetFactory` function cannot travel to another thread, so it
//    serves only instances attached on the thread that described the device
//    (unit tests, single-threaded tools); elsewhere attach fails, naming why.
//
// Doorbells. Every doorbell is a 32-bit register at a fixed BAR0 offset
// (`PciNvme.doorbells()`), so the machine can later bind them to
// KVM_IOEVENTFD and let an I/O thread call `processQueue(qid)` /
// `kickCompletionQueue(qid)`. An ioeventfd swallows the value written, so
// bind a queue's doorbells only while `controller.shadowDoorbells` is true
// (the values are then read from the guest's shadow buffer) and only for
// I/O queues (1–15): drivers keep ringing the admin doorbells by MMIO.
//
// Threading: one instance per thread (device.ts). The controller's state is
// shared (controller.ts, state.ts); the BlockTarget, identify pages and ring
// views are per thread.

import { openBackend } from '../../block/backend.js';
import type { BackendDescriptor, BlockTarget } from '../../block/types.js';
import { DeviceAttachError, type DeviceDescriptor, type DeviceHost, type MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import type { Migrate, Payload, PayloadOffers } from '../../migrate.js';
import type { AccessSize } from '../../pio.js';
import { PciBuilder } from '../pci/builder.js';
import { PciFunction, type PciBarHandler, type PciFunctionShared } from '../pci/function.js';
import { PciPath, pciUnit } from '../pci/path.js';
import { BAR0_SIZE, doorbellOffset, ID_CTRL, MAX_QUEUES, MSIX_BAR, MSIX_VECTORS, PCI_IDENT } from './bits.js';
import { NvmeController } from './controller.js';
import { asciiField, NvmeIdentityError, type NvmeIdentity } from './identify.js';
import { importError, NvmeCtrlV1 } from './state.js';

/** Where a backend is opened, for factories that care. */
export interface NvmeThreadInfo {
  thread: 'main' | 'vcpu' | 'io';
  vcpuId: number | undefined;
}

export type BlockTargetFactory = (where: NvmeThreadInfo) => BlockTarget;
export type BackendOpener = (desc: BackendDescriptor) => BlockTarget;

export interface PciNvmeConfig {
  /** Device key, e.g. `disk0`. */
  name: string;
  pciPath: PciPath | string;
  /** Up to 20 ASCII characters (space-padded), or up to 20 raw bytes (zero-padded). */
  serial: string | Uint8Array;
  /** Up to 40 bytes; default all zeros, as the seed reports. */
  model?: string | Uint8Array;
  /** Up to 8 bytes; default all zeros, as the seed reports. */
  firmware?: string | Uint8Array;
  backend: BackendDescriptor | BlockTargetFactory;
}

type BackendRef = { kind: 'descriptor'; desc: BackendDescriptor } | { kind: 'factory'; id: number };

interface NvmeShared {
  pci: PciFunctionShared;
  state: SharedArrayBuffer;
  identity: NvmeIdentity;
  backend: BackendRef;
  /** Bytes read and written (BigInt64: [read, write]). */
  ioBytes: SharedArrayBuffer;
}

export class PciNvmeConfigError extends Error {
  readonly code = 'NVME_CONFIG';
}

/** Factories live in the module instance of the thread that described the device. */
const factories = new Map<number, BlockTargetFactory>();
let nextFactory = 1;
let opener: BackendOpener | undefined = openBackend;

/** Install (or remove) this thread's way of opening backend descriptors. */
export function setNvmeBackendOpener(fn: BackendOpener | undefined): void {
  opener = fn;
}

/** One doorbell register, for binding to an ioeventfd. */
export interface NvmeDoorbell {
  qid: number;
  kind: 'sq' | 'cq';
  bar: 0;
  /** Offset in BAR0 (4 bytes wide). */
  offset: number;
}

function pciSpec() {
  return new PciBuilder(PCI_IDENT).barMmio64(0, BAR0_SIZE).msix(MSIX_BAR, MSIX_VECTORS).intxPin(1).finish();
}

export class PciNvme implements MachineDevice, PciBarHandler, Lifecycle {
  readonly typeName = 'pci-nvme';
  readonly pci: PciFunction;
  readonly controller: NvmeController;
  private readonly block: BlockTarget;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as NvmeShared;
    this.ioBytes = new BigInt64Array(sh.ioBytes);
    this.block = openBlock(descriptor.name, sh.backend, { thread: host.thread, vcpuId: host.vcpuId });
    let pci: PciFunction;
    try {
      pci = PciFunction.attach(sh.pci, host, { name: descriptor.name, bars: this });
    } catch (e) {
      this.block.close();
      throw e;
    }
    this.pci = pci;
    host.atThreadExit?.(() => this.block.close());
    this.controller = new NvmeController(sh.state, sh.identity, {
      mem: host.mem,
      block: this.block,
      busMaster: () => pci.busMaster,
      msixEnabled: () => pci.msixEnabled,
      notify: (v) => void pci.notify(v),
      setIntx: (level) => pci.setIntx(level),
      countIo: (write, bytes) => void Atomics.add(this.ioBytes, write ? 1 : 0, BigInt(bytes)),
    });
  }

  private readonly ioBytes: BigInt64Array;

  /** Bytes the guest read and wrote through this controller. */
  get ioStats(): { readBytes: number; writeBytes: number } {
    return { readBytes: Number(Atomics.load(this.ioBytes, 0)), writeBytes: Number(Atomics.load(this.ioBytes, 1)) };
  }

  get name(): string {
    return this.descriptor.name;
  }

  /** Describe a controller (allocates its shared state); attach it with the machine. */
  static describe(cfg: PciNvmeConfig): DeviceDescriptor {
    let identity: NvmeIdentity;
    try {
      identity = {
        serial: asciiField(cfg.serial, ID_CTRL.SN_LEN, 'serial'),
        model: asciiField(cfg.model ?? new Uint8Array(0), ID_CTRL.MN_LEN, 'model'),
        firmware: asciiField(cfg.firmware ?? new Uint8Array(0), ID_CTRL.FR_LEN, 'firmware revision'),
      };
    } catch (e) {
      if (e instanceof NvmeIdentityError) {
        throw new PciNvmeConfigError(`NVMe ${cfg.name}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    const path = typeof cfg.pciPath === 'string' ? PciPath.parse(cfg.pciPath) : cfg.pciPath;
    let backend: BackendRef;
    if (typeof cfg.backend === 'function') {
      const id = nextFactory++;
      factories.set(id, cfg.backend);
      backend = { kind: 'factory', id };
    } else {
      backend = { kind: 'descriptor', desc: cfg.backend };
    }
    const shared: NvmeShared = {
      pci: PciFunction.share(pciSpec(), path),
      state: NvmeController.createState(),
      identity,
      backend,
      ioBytes: new SharedArrayBuffer(16),
    };
    return { module: import.meta.url, export: 'PciNvme', name: cfg.name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): PciNvme {
    return new PciNvme(desc, host);
  }

  /** Every doorbell register: SQ y tail and CQ y head for y = 0–15. */
  static doorbells(): NvmeDoorbell[] {
    const out: NvmeDoorbell[] = [];
    for (let qid = 0; qid < MAX_QUEUES; qid++) {
      for (const kind of ['sq', 'cq'] as const) out.push({ qid, kind, bar: 0, offset: doorbellOffset(qid, kind) });
    }
    return out;
  }

  // ---- guest side ----

  barRead(bar: number, off: number, size: AccessSize): number | bigint {
    if (bar !== 0) return size === 8 ? 0xffff_ffff_ffff_ffffn : size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    return this.controller.regRead(off, size);
  }

  barWrite(bar: number, off: number, size: AccessSize, value: number | bigint): void {
    if (bar === 0) this.controller.regWrite(off, size, value);
  }

  // ---- data-path hooks (any thread with an instance) ----

  /** Execute what is pending on submission queue `qid`. */
  processQueue(qid: number): void {
    this.controller.processQueue(qid);
  }

  /** Completion queue `qid`'s head moved without an MMIO doorbell write. */
  kickCompletionQueue(qid: number): void {
    this.controller.kickCompletionQueue(qid);
  }

  // ---- lifecycle (main thread, vCPUs paused) ----

  reset(): void {
    this.controller.powerOn();
    this.pci.reset();
  }

  halt(): void {
    this.block.close();
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] => [this.pci.exportState(), this.controller.exportPayload()],
      import: (offers: PayloadOffers): void => {
        const pci = this.pci.takeState(offers);
        const s = offers.take(NvmeCtrlV1);
        const why = this.controller.checkImport(s);
        if (why) throw importError(this.name, why);
        offers.finish();
        this.pci.applyState(pci);
        this.controller.importState(s);
      },
    };
  }
}

/**
 * The firmware boot-order path of namespace 1 of a controller at `path` on
 * bus 0, as the seed writes it into fw_cfg `bootorder` (device and function
 * in hex; OVMF needs the `pci8086,5845` id). Devices behind a bridge have no
 * such path here: undefined.
 */

export { pciUnit };

export function nvmeBootPath(path: PciPath): string | undefined {
  if (path.bus !== 0) return undefined;
  return `/pci@i0cf8/pci8086,5845@${pciUnit(path)}/namespace@1,0`;
}

function openBlock(name: string, ref: BackendRef, where: NvmeThreadInfo): BlockTarget {
  let t: BlockTarget;
  if (ref.kind === 'factory') {
    const f = factories.get(ref.id);
    if (!f) {
      throw new DeviceAttachError(
        `NVMe ${name}: its backend is a function, usable only on the thread that described the device; ` +
          'give a BackendDescriptor to use it on vCPU threads',
      );
    }
    t = f(where);
  } else {
    if (!opener) {
      throw new DeviceAttachError(
        `NVMe ${name}: no block backend opener on this thread for backend ${ref.desc.name} (${ref.desc.kind})`,
      );
    }
    t = opener(ref.desc);
  }
  const { blockSize, totalBlocks } = t.info;
  if (!Number.isInteger(blockSize) || blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
    t.close();
    throw new DeviceAttachError(`NVMe ${name}: block size ${blockSize} is not a power of two in 512..65536`);
  }
  if (!Number.isSafeInteger(totalBlocks) || totalBlocks < 0) {
    t.close();
    throw new DeviceAttachError(`NVMe ${name}: capacity ${totalBlocks} blocks is not a block count`);
  }
  return t;
}
