// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// QEMU's firmware configuration device (fw_cfg) on the x86 I/O ports, with
// both interfaces of the specification (QEMU docs/specs/fw_cfg.rst):
//
// - traditional: a 16-bit selector at 0x510 picks an item and rewinds it;
//   reads of the data port 0x511 return its bytes in order, then zeros.
//   Data-port writes are ignored (as in QEMU since 2.4).
// - DMA: the guest writes the guest-physical address of a 16-byte
//   descriptor {control, length, address} (all big-endian) to 0x514 (high
//   half) and 0x518 (low half; this write starts the operation and clears
//   the register). The operation may select an item, then reads (READ),
//   writes (WRITE, writable items only) or skips (SKIP) `length` bytes at
//   the current offset; when several are set READ wins over WRITE over
//   SKIP. Reads past the end of an item are zero-filled. The device writes
//   the control word back as 0 on success or ERROR.
//
// Guest-supplied descriptor addresses, lengths and buffer addresses are
// untrusted: a buffer must lie wholly in guest RAM with the needed access or
// the operation fails with ERROR before any byte moves. Nothing a guest
// writes makes this code throw.
//
// Threading: one instance per vCPU thread plus one on the main thread (see
// device.ts). The selection, offset, DMA address high half and writable
// items' bytes are shared; every port access, DMA operation and host-side
// call holds the device's SharedMutex. Item contents live in one
// SharedArrayBuffer built on the main thread (fwcfg-builder.ts), shared by
// all instances, and only writable items ever change.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import { MigrateError, schema, t, type Migrate, type Payload, type PayloadOffers } from '../../migrate.js';
import { allOnes, type AccessSize, type PioHandler } from '../../pio.js';
import { SharedMutex } from '../../sync/mutex.js';
import { Prot, type GuestMemory, type MemSlice } from '../../vmm/memory.js';
import {
  FW_CFG_DMA_DESC,
  FW_CFG_DMA_PORTS,
  FW_CFG_DMA_SIGNATURE,
  FW_CFG_PORT_DATA,
  FW_CFG_PORT_DMA_HI,
  FW_CFG_PORT_DMA_LO,
  FW_CFG_PORT_SEL,
  FwCfgDmaCtl,
  FwCfgSelector,
} from './fwcfg-abi.js';
import {
  FW_CFG_MAX_FILES,
  FW_CFG_WRITABLE_MAX,
  FwCfgBuilder,
  type FwCfgImage,
  type FwCfgItemMeta,
} from './fwcfg-builder.js';

export * from './fwcfg-abi.js';
export { FwCfgBuilder, FwCfgConfigError, type E820Entry, type FwCfgImage } from './fwcfg-builder.js';
export { FwCfgKernelError, type LinuxBootOptions } from './linux-boot.js';

/** One writable item's contents in the state payload. */
const entryCodec = {
  decode(v: unknown, path: string): { selector: number; name: string; value: Uint8Array } {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new MigrateError('DeserializationFailed', `${path}: expected an object`);
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (k !== 'selector' && k !== 'name' && k !== 'value') {
        throw new MigrateError('DeserializationFailed', `${path}.${k}: unknown field`);
      }
    }
    if (typeof o['name'] !== 'string' || o['name'].length > 55) {
      throw new MigrateError('DeserializationFailed', `${path}.name: expected a file name`);
    }
    return {
      selector: t.u16.decode(o['selector'], `${path}.selector`),
      name: o['name'],
      value: t.bytes(FW_CFG_WRITABLE_MAX).decode(o['value'], `${path}.value`),
    };
  },
  encode(v: { selector: number; name: string; value: Uint8Array }): unknown {
    return { selector: v.selector, name: v.name, value: Array.from(v.value) };
  },
};

/** State, as Propolis's `qemu-fwcfg` v2 carries it: DMA address, selection, writable items. */
export const QemuFwCfgV2 = schema('qemu-fwcfg', 2, {
  /** The DMA address register between its two halves' writes (the low half is always 0 at rest). */
  dmaAddr: t.u64,
  selector: t.u16,
  offset: t.u32,
  /** Contents of every writable item. */
  entries: t.array(entryCodec, FW_CFG_MAX_FILES),
});

/** The seed's payload (selection only); imported by upgrading it. */
export const FwCfgLegacyV1 = schema('qemu-fwcfg-legacy', 1, {
  selector: t.u16,
  offset: t.u32,
});

// Shared control words (Int32). Offsets and the address half are u32 bit patterns.
const CTL_LOCK = 0;
const CTL_SEL = 1;
const CTL_OFF = 2;
const CTL_DMA_HI = 3;
const CTL_DMA_OPS = 4;
const CTL_DMA_ERRORS = 5;
const CTL_IGNORED = 6;
/** Then one word per item: how many DMA writes it has taken. */
const CTL_WRITES = 7;

interface FwCfgShared {
  ctl: SharedArrayBuffer;
  image: FwCfgImage;
}

/**
 * Guest RAM pieces that make up [gpa, gpa+len). The Machine maps RAM in
 * views of at most 1 GiB, each its own region, so a buffer that spans a
 * 1 GiB boundary is split there; anything not wholly in RAM is undefined.
 */
const DMA_SPLIT = 1 << 30;
function guestRange(mem: GuestMemory, gpa: number, len: number, prot: Prot): MemSlice[] | undefined {
  if (len === 0) return [];
  const whole = mem.slice(gpa, len, prot);
  if (whole) return [whole];
  if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(gpa + len)) return undefined;
  const out: MemSlice[] = [];
  for (let a = gpa, left = len; left > 0;) {
    const n = Math.min(left, DMA_SPLIT - (a % DMA_SPLIT));
    const s = mem.slice(a, n, prot);
    if (!s) return undefined;
    out.push(s);
    a += n;
    left -= n;
  }
  return out;
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

const DMA_SIG = new TextEncoder().encode(FW_CFG_DMA_SIGNATURE);

export interface FwCfgStats {
  dmaOps: number;
  dmaErrors: number;
  /** Accesses the device ignores: data-port writes, odd-sized selector or DMA register writes. */
  ignored: number;
}

export class QemuFwCfg implements MachineDevice, PioHandler {
  readonly typeName = 'qemu-fwcfg';
  private readonly ctl: Int32Array;
  private readonly lock: SharedMutex;
  private readonly data: Uint8Array;
  private readonly items: readonly FwCfgItemMeta[];
  private readonly byKey = new Map<number, number>(); // key → index in items
  private readonly mem: GuestMemory;
  private readonly desc = new Uint8Array(FW_CFG_DMA_DESC.size);
  private readonly descView = new DataView(this.desc.buffer);

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as FwCfgShared;
    this.ctl = new Int32Array(sh.ctl);
    this.lock = new SharedMutex(this.ctl.subarray(CTL_LOCK, CTL_LOCK + 1));
    this.data = new Uint8Array(sh.image.data);
    this.items = sh.image.items;
    this.items.forEach((it, i) => this.byKey.set(it.key, i));
    this.mem = host.mem;
    host.pio.register(FW_CFG_PORT_SEL, 2, this, descriptor.name);
    host.pio.register(FW_CFG_PORT_DMA_HI, FW_CFG_DMA_PORTS, this, `${descriptor.name}-dma`);
  }

  get name(): string {
    return this.descriptor.name;
  }

  /**
   * Describe the device with the items of `cfg` (built now). The older form
   * `{ cpus }` gives a device with just the vCPU count.
   */
  static describe(cfg: FwCfgBuilder | { cpus: number }): DeviceDescriptor {
    const builder = cfg instanceof FwCfgBuilder ? cfg : new FwCfgBuilder().cpus(cfg.cpus);
    const image = builder.build();
    const shared: FwCfgShared = {
      ctl: new SharedArrayBuffer(4 * (CTL_WRITES + image.items.length)),
      image,
    };
    return { module: import.meta.url, export: 'QemuFwCfg', name: 'qemu-fwcfg', shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): QemuFwCfg {
    return new QemuFwCfg(desc, host);
  }

  // ---- guest side ----

  pioRead(port: number, size: AccessSize): number {
    if (port === FW_CFG_PORT_DATA) {
      this.lock.lock();
      try {
        // The port is byte-wide; a wider read returns the next bytes in
        // increasing order (the specification's rule for wide data reads).
        let v = 0;
        for (let i = 0; i < size && i < 4; i++) v |= this.nextByte() << (8 * i);
        return v >>> 0;
      } finally {
        this.lock.unlock();
      }
    }
    if (port >= FW_CFG_PORT_DMA_HI && port < FW_CFG_PORT_DMA_HI + FW_CFG_DMA_PORTS) {
      // Reading the address register shows the DMA signature, byte by byte.
      let v = 0;
      for (let i = 0; i < size && i < 4; i++) {
        const at = port - FW_CFG_PORT_DMA_HI + i;
        v |= (at < DMA_SIG.length ? (DMA_SIG[at] as number) : 0xff) << (8 * i);
      }
      return v >>> 0;
    }
    return allOnes(size); // the selector is write-only
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    this.lock.lock();
    try {
      if (port === FW_CFG_PORT_SEL && size >= 2) {
        this.select(value & 0xffff);
      } else if (port === FW_CFG_PORT_DMA_HI && size === 4) {
        // The register is big-endian: the guest's `outl` of a byte-swapped value.
        this.ctl[CTL_DMA_HI] = bswap32(value);
      } else if (port === FW_CFG_PORT_DMA_LO && size === 4) {
        const addr = ((this.ctl[CTL_DMA_HI] as number) >>> 0) * 2 ** 32 + bswap32(value);
        this.ctl[CTL_DMA_HI] = 0;
        this.dma(addr);
      } else {
        Atomics.add(this.ctl, CTL_IGNORED, 1);
      }
    } finally {
      this.lock.unlock();
    }
  }

  // ---- with the lock held ----

  private select(selector: number): void {
    this.ctl[CTL_SEL] = selector;
    this.ctl[CTL_OFF] = 0;
  }

  /** Index of the selected item, or -1 when the selector names none. */
  private currentIndex(): number {
    return this.byKey.get((this.ctl[CTL_SEL] as number) & FwCfgSelector.KEY_MASK) ?? -1;
  }

  private current(): FwCfgItemMeta | undefined {
    return this.items[this.currentIndex()];
  }

  private nextByte(): number {
    const item = this.current();
    const off = (this.ctl[CTL_OFF] as number) >>> 0;
    if (!item || off >= item.length) return 0;
    this.ctl[CTL_OFF] = off + 1;
    return this.data[item.start + off] as number;
  }

  /** One DMA operation with its descriptor at `desc` (any number: it is guest input). */
  private dma(desc: number): void {
    Atomics.add(this.ctl, CTL_DMA_OPS, 1);
    let status = FwCfgDmaCtl.ERROR;
    if (this.mem.read(desc, this.desc)) {
      const dv = this.descView;
      const control = dv.getUint32(FW_CFG_DMA_DESC.control, false);
      const length = dv.getUint32(FW_CFG_DMA_DESC.length, false);
      // Above 2^53 this is no longer exact, and no longer a safe integer: guestRange refuses it.
      const address =
        dv.getUint32(FW_CFG_DMA_DESC.address, false) * 2 ** 32 + dv.getUint32(FW_CFG_DMA_DESC.address + 4, false);
      if (control & FwCfgDmaCtl.SELECT) this.select(control >>> 16);
      if (control & FwCfgDmaCtl.READ) status = this.dmaRead(address, length);
      else if (control & FwCfgDmaCtl.WRITE) status = this.dmaWrite(address, length);
      else if (control & FwCfgDmaCtl.SKIP) status = this.dmaSkip(length);
      else status = 0;
    }
    if (status !== 0) Atomics.add(this.ctl, CTL_DMA_ERRORS, 1);
    // Completion: the control word becomes 0 or ERROR. If the guest gave a
    // descriptor we cannot write, it will not see completion; nothing else breaks.
    this.mem.writeU32(desc, bswap32(status));
  }

  private dmaRead(address: number, length: number): number {
    const parts = guestRange(this.mem, address, length, Prot.Write);
    if (!parts) return FwCfgDmaCtl.ERROR;
    const item = this.current();
    const off = (this.ctl[CTL_OFF] as number) >>> 0;
    let avail = item ? Math.max(0, item.length - off) : 0;
    let src = item ? item.start + off : 0;
    let copied = 0;
    for (const p of parts) {
      const n = Math.min(p.length, avail);
      if (n > 0) p.bytes.set(this.data.subarray(src, src + n));
      if (n < p.length) p.bytes.fill(0, n);
      src += n;
      avail -= n;
      copied += n;
    }
    if (item) this.ctl[CTL_OFF] = off + copied;
    return 0;
  }

  private dmaWrite(address: number, length: number): number {
    if (length === 0) return 0;
    const index = this.currentIndex();
    const item = this.items[index];
    const off = (this.ctl[CTL_OFF] as number) >>> 0;
    // Writes never resize an item: one that would run past the end is refused whole.
    if (!item || !item.writable || off + length > item.length) return FwCfgDmaCtl.ERROR;
    const parts = guestRange(this.mem, address, length, Prot.Read);
    if (!parts) return FwCfgDmaCtl.ERROR;
    let dst = item.start + off;
    for (const p of parts) {
      this.data.set(p.bytes, dst);
      dst += p.length;
    }
    this.ctl[CTL_OFF] = off + length;
    Atomics.add(this.ctl, CTL_WRITES + index, 1);
    return 0;
  }

  private dmaSkip(length: number): number {
    const item = this.current();
    if (item) {
      const off = (this.ctl[CTL_OFF] as number) >>> 0;
      this.ctl[CTL_OFF] = Math.min(item.length, off + length);
    }
    return 0;
  }

  // ---- host side (main thread) ----

  /** The key a named item was given, if there is such a file. */
  fileKey(name: string): number | undefined {
    return this.items.find((it) => it.name === name)?.key;
  }

  /** A copy of a named item's current contents (writable items change as the guest writes them). */
  readFile(name: string): Uint8Array | undefined {
    const it = this.items.find((i) => i.name === name);
    if (!it) return undefined;
    return this.lock.with(() => this.data.slice(it.start, it.start + it.length));
  }

  /** How many DMA writes a named item has taken (a consumer polls this to see new contents). */
  fileWrites(name: string): number {
    const i = this.items.findIndex((it) => it.name === name);
    return i < 0 ? 0 : Atomics.load(this.ctl, CTL_WRITES + i);
  }

  stats(): FwCfgStats {
    return {
      dmaOps: Atomics.load(this.ctl, CTL_DMA_OPS),
      dmaErrors: Atomics.load(this.ctl, CTL_DMA_ERRORS),
      ignored: Atomics.load(this.ctl, CTL_IGNORED),
    };
  }

  /** Power-on state: item 0 selected, DMA register clear, writable items as built. */
  reset(): void {
    this.lock.with(() => {
      this.select(0);
      this.ctl[CTL_DMA_HI] = 0;
      for (const it of this.items) {
        if (it.writable) this.data.copyWithin(it.start, it.initStart, it.initStart + it.length);
      }
    });
  }

  migrate(): Migrate {
    return {
      export: (): Payload[] =>
        this.lock.with(() => [
          QemuFwCfgV2.encode({
            dmaAddr: BigInt((this.ctl[CTL_DMA_HI] as number) >>> 0) << 32n,
            selector: this.ctl[CTL_SEL] as number,
            offset: (this.ctl[CTL_OFF] as number) >>> 0,
            entries: this.items
              .filter((it) => it.writable)
              .map((it) => ({
                selector: it.key,
                name: it.name ?? '',
                value: this.data.slice(it.start, it.start + it.length),
              })),
          }),
        ]),
      import: (offers: PayloadOffers): void => this.import(offers),
    };
  }

  private import(offers: PayloadOffers): void {
    let v: ReturnType<typeof QemuFwCfgV2.decode> | undefined;
    try {
      v = offers.take(QemuFwCfgV2);
    } catch (e) {
      if (!(e instanceof MigrateError && e.code === 'DataMissing')) throw e;
    }
    // Upgrade from the seed's payload: selection only; writable items keep their contents.
    const legacy = v === undefined ? offers.take(FwCfgLegacyV1) : undefined;
    offers.finish();
    const fail = (what: string): never => {
      throw new MigrateError('ImportFailed', `qemu-fwcfg: ${what}`);
    };

    const selector = v?.selector ?? legacy!.selector;
    const offset = v?.offset ?? legacy!.offset;
    const dmaAddr = v?.dmaAddr ?? 0n;
    if ((dmaAddr & 0xffff_ffffn) !== 0n) fail('DMA address has a low half (it is cleared by every operation)');
    const i = this.byKey.get(selector & FwCfgSelector.KEY_MASK);
    const len = i === undefined ? 0 : (this.items[i] as FwCfgItemMeta).length;
    if (offset > len) fail(`offset ${offset} is past the end of item 0x${selector.toString(16)} (${len} bytes)`);

    const writes = new Map<number, Uint8Array>(); // item index → contents
    for (const e of v?.entries ?? []) {
      const j = this.items.findIndex((it) => it.writable && it.name === e.name);
      const it = this.items[j];
      if (!it) fail(`no writable item named ${JSON.stringify(e.name)}`);
      else if (it.key !== e.selector)
        fail(`item ${e.name} has key 0x${it.key.toString(16)}, not 0x${e.selector.toString(16)}`);
      else if (e.value.length !== it.length) fail(`item ${e.name} is ${it.length} bytes, not ${e.value.length}`);
      else if (writes.has(j)) fail(`item ${e.name} given twice`);
      writes.set(j, e.value);
    }
    if (v) {
      const missing = this.items.filter((it, j) => it.writable && !writes.has(j));
      if (missing.length > 0) fail(`no contents for writable item(s) ${missing.map((it) => it.name).join(', ')}`);
    }

    this.lock.with(() => {
      this.ctl[CTL_SEL] = selector;
      this.ctl[CTL_OFF] = offset;
      this.ctl[CTL_DMA_HI] = Number(dmaAddr >> 32n);
      for (const [j, value] of writes) this.data.set(value, (this.items[j] as FwCfgItemMeta).start);
    });
  }
}
