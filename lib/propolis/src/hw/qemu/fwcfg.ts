// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// QEMU fw_cfg, legacy I/O interface: a 16-bit selector at 0x510 and a byte
// data port at 0x511 that reads the selected item sequentially (reads past
// the end return 0; data writes are ignored, as in QEMU ≥ 2.4).
//
// This first version carries the signature, the interface ID and the vCPU
// count (legacy item 0x05), which test guests and firmware use to find the
// other CPUs. The file directory, DMA and the firmware tables follow with
// the PC platform.
//
// Threading: shared selector/offset state under a shared mutex; the items
// themselves are immutable and copied into every thread's instance.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { Migrate, Payload, PayloadOffers } from '../../migrate.js';
import { MigrateError, schema, t } from '../../migrate.js';
import type { AccessSize, PioHandler } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';

export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;

export const FwCfgItem = {
  SIGNATURE: 0x0000,
  ID: 0x0001,
  NB_CPUS: 0x0005,
} as const;

/** Interface ID bit 0: the traditional (I/O port) interface. */
const ID_TRADITIONAL = 1;

export const FwCfgLegacyV1 = schema('qemu-fwcfg-legacy', 1, {
  selector: t.u16,
  offset: t.u32,
});

interface FwCfgShared {
  /** [0] mutex, [1] selector, [2] offset within the item. */
  ctl: SharedArrayBuffer;
  items: [number, Uint8Array][];
}

export class QemuFwCfg implements MachineDevice, PioHandler {
  readonly typeName = 'qemu-fwcfg';
  private readonly ctl: Int32Array;
  private readonly lock: SharedMutex;
  private readonly items: Map<number, Uint8Array>;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as FwCfgShared;
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(0, 1));
    this.items = new Map(sh.items);
    host.pio.register(FW_CFG_PORT_SEL, 2, this, descriptor.name);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(opts: { cpus: number }): DeviceDescriptor {
    const cpus = new Uint8Array(2);
    new DataView(cpus.buffer).setUint16(0, opts.cpus, true);
    const id = new Uint8Array(4);
    new DataView(id.buffer).setUint32(0, ID_TRADITIONAL, true);
    const shared: FwCfgShared = {
      ctl: new SharedArrayBuffer(12),
      items: [
        [FwCfgItem.SIGNATURE, new TextEncoder().encode('QEMU')],
        [FwCfgItem.ID, id],
        [FwCfgItem.NB_CPUS, cpus],
      ],
    };
    return { module: import.meta.url, export: 'QemuFwCfg', name: 'qemu-fwcfg', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): QemuFwCfg {
    return new QemuFwCfg(desc, host);
  }

  pioRead(port: number, size: AccessSize): number {
    if (port !== FW_CFG_PORT_DATA) return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
    return this.lock.with(() => {
      // The data port is byte-wide; wider reads return successive bytes, LSB first.
      let v = 0;
      for (let i = 0; i < Math.min(size, 4); i++) v |= this.nextByte() << (8 * i);
      return v >>> 0;
    });
  }

  pioWrite(port: number, _size: AccessSize, value: number): void {
    if (port !== FW_CFG_PORT_SEL) return;
    this.lock.with(() => {
      Atomics.store(this.ctl, 1, value & 0xffff);
      Atomics.store(this.ctl, 2, 0);
    });
  }

  private nextByte(): number {
    const item = this.items.get(this.ctl[1] as number);
    const off = this.ctl[2] as number;
    if (!item || off >= item.length) return 0;
    this.ctl[2] = off + 1;
    return item[off] as number;
  }

  reset(): void {
    this.lock.with(() => {
      this.ctl[1] = 0;
      this.ctl[2] = 0;
    });
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] =>
        this.lock.with(() => [
          FwCfgLegacyV1.encode({ selector: this.ctl[1] as number, offset: this.ctl[2] as number }),
        ]),
      import: (offers: PayloadOffers): void => {
        const v = offers.take(FwCfgLegacyV1);
        offers.finish();
        const item = this.items.get(v.selector);
        if (v.offset > (item?.length ?? 0)) {
          throw new MigrateError(
            'ImportFailed',
            `qemu-fwcfg: offset ${v.offset} past item 0x${v.selector.toString(16)}`,
          );
        }
        this.lock.with(() => {
          this.ctl[1] = v.selector;
          this.ctl[2] = v.offset;
        });
      },
    };
  }
}
