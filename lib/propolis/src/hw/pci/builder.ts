// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PciBuilder: declares a PCI function — identity, BARs, MSI-X, INTx pin,
// capabilities and device-specific configuration registers — and produces
// a `PciSpec`: the power-on bytes of its configuration space plus, for
// every byte, which bits the guest may write and which are write-1-to-clear.
// Everything the configuration-space model needs is in that table, so the
// model itself has no per-register code paths for the plain registers.
//
//   const spec = new PciBuilder({ vendor: 0x1af4, device: 0x1001, class: 1, subclass: 0 })
//     .barIo(0, 0x40).msix(1, 2).intxPin(1).finish();
//
// Threading: a PciSpec is immutable once built and structured-cloneable; it
// travels in device descriptors and every thread's instance reads it.

import {
  BAR_BITS,
  BRIDGE_CONTROL_WRITABLE,
  CAP_ID,
  CFG,
  CFG0,
  CFG1,
  COMMAND_WRITABLE,
  HEADER_TYPE,
  MSIX,
  PCI_CFG_HEADER_END,
  PCI_CFG_SIZE,
  STATUS,
  STATUS_W1C,
} from './bits.js';

export class PciBuilderError extends Error {
  readonly code = 'PCI_BUILDER';
}

export interface PciIdent {
  vendor: number;
  device: number;
  class: number;
  subclass: number;
  progIf?: number;
  revision?: number;
  subVendor?: number;
  subDevice?: number;
}

export type BarKind = 'io' | 'mmio32' | 'mmio64';

export interface BarSpec {
  /** BAR number 0–5 (a 64-bit BAR also uses index + 1). */
  index: number;
  kind: BarKind;
  /** Bytes decoded; a power of two. */
  size: number;
  prefetch: boolean;
}

export interface MsixSpec {
  /** BAR holding the table and the PBA (a dedicated 32-bit memory BAR). */
  bar: number;
  vectors: number;
  /** Offset of the capability in configuration space. */
  capOffset: number;
  /** Offsets of the table and the pending-bit array inside the BAR. */
  tableOffset: number;
  pbaOffset: number;
  tableBytes: number;
  pbaBytes: number;
}

export interface CapSpec {
  id: number;
  offset: number;
  /** Bytes including the two-byte header. */
  length: number;
}

export interface PciSpec {
  ident: Required<PciIdent>;
  /** 0: endpoint; 1: PCI-to-PCI bridge. */
  headerType: 0 | 1;
  bars: BarSpec[];
  msix: MsixSpec | undefined;
  caps: CapSpec[];
  /** The pin the function declares (1–4, 0 = none); on bus 0 the chipset chooses (see topology.ts). */
  intxPin: number;
  /** Power-on configuration space. */
  init: Uint8Array;
  /** Per byte: bits the guest may write. */
  wmask: Uint8Array;
  /** Per byte: bits a guest write of 1 clears. */
  w1c: Uint8Array;
}

export interface CapOptions {
  /** Fixed offset (default: the first free 4-byte-aligned place at or above 0x40). */
  offset?: number;
  /** Power-on bytes of the body (after the two header bytes). */
  body?: Uint8Array;
  /** Writable bits of the body. */
  writable?: Uint8Array;
}

export interface RegisterOptions {
  /** Power-on value. */
  init?: number;
  /** Bits the guest may write. */
  writable?: number;
  /** Bits a guest write of 1 clears. */
  w1c?: number;
}

interface PendingCap {
  id: number;
  length: number;
  opts: CapOptions;
  msix: boolean;
}

interface PendingReg {
  offset: number;
  size: number;
  opts: RegisterOptions;
}

const isPow2 = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

function put(b: Uint8Array, off: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) b[off + i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
}

function u(v: number | undefined, bits: number, what: string): number {
  const x = v ?? 0;
  if (!Number.isInteger(x) || x < 0 || x >= 2 ** bits) throw new PciBuilderError(`${what} ${x} is not a u${bits}`);
  return x;
}

export class PciBuilder {
  private readonly ident: Required<PciIdent>;
  private headerType: 0 | 1 = 0;
  private readonly bars: (BarSpec | 'upper')[] = [];
  private readonly caps: PendingCap[] = [];
  private readonly regs: PendingReg[] = [];
  private msixReq: { bar: number; vectors: number } | undefined;
  private pin = 0;

  constructor(ident: PciIdent) {
    this.ident = {
      vendor: u(ident.vendor, 16, 'vendor'),
      device: u(ident.device, 16, 'device'),
      class: u(ident.class, 8, 'class'),
      subclass: u(ident.subclass, 8, 'subclass'),
      progIf: u(ident.progIf, 8, 'progIf'),
      revision: u(ident.revision, 8, 'revision'),
      subVendor: u(ident.subVendor, 16, 'subVendor'),
      subDevice: u(ident.subDevice, 16, 'subDevice'),
    };
  }

  /** Make this a PCI-to-PCI bridge (header type 1): bus numbers, windows, bridge control. */
  bridge(): this {
    if (this.bars.some((b) => b !== undefined && (b === 'upper' || b.index >= CFG1.BARS))) {
      throw new PciBuilderError('a bridge header has only BAR0 and BAR1');
    }
    this.headerType = 1;
    return this;
  }

  private get barCount(): number {
    return this.headerType === 1 ? CFG1.BARS : CFG0.BARS;
  }

  private addBar(spec: BarSpec): this {
    const { index, kind, size } = spec;
    const slots = kind === 'mmio64' ? 2 : 1;
    if (!Number.isInteger(index) || index < 0 || index + slots > this.barCount) {
      throw new PciBuilderError(`BAR${index} (${kind}) does not fit in the header's ${this.barCount} BARs`);
    }
    for (let i = index; i < index + slots; i++) {
      if (this.bars[i] !== undefined) throw new PciBuilderError(`BAR${i} is already defined`);
    }
    if (!isPow2(size)) throw new PciBuilderError(`BAR${index} size ${size} is not a power of two`);
    const [min, max] = kind === 'io' ? [4, 0x8000] : kind === 'mmio32' ? [16, 2 ** 31] : [16, 2 ** 48];
    if (size < min || size > max) {
      throw new PciBuilderError(`BAR${index} (${kind}) size ${size} is outside ${min}..${max}`);
    }
    this.bars[index] = spec;
    if (slots === 2) this.bars[index + 1] = 'upper';
    return this;
  }

  /** An I/O-space BAR of `size` bytes (4 to 32 KiB). */
  barIo(index: number, size: number): this {
    return this.addBar({ index, kind: 'io', size, prefetch: false });
  }

  /** A 32-bit memory BAR of `size` bytes (16 B to 2 GiB). */
  barMmio32(index: number, size: number, opts: { prefetch?: boolean } = {}): this {
    return this.addBar({ index, kind: 'mmio32', size, prefetch: opts.prefetch ?? false });
  }

  /** A 64-bit memory BAR (uses `index` and `index + 1`), 16 B to 256 TiB. */
  barMmio64(index: number, size: number, opts: { prefetch?: boolean } = {}): this {
    return this.addBar({ index, kind: 'mmio64', size, prefetch: opts.prefetch ?? false });
  }

  /**
   * MSI-X with `vectors` entries. The table (at offset 0) and the pending-bit
   * array (at the next 4 KiB boundary) get their own 32-bit memory BAR
   * `bar`, sized to the next power of two.
   */
  msix(bar: number, vectors: number): this {
    if (this.msixReq) throw new PciBuilderError('MSI-X is already defined');
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > MSIX.MAX_VECTORS) {
      throw new PciBuilderError(`MSI-X vectors ${vectors} outside 1..${MSIX.MAX_VECTORS}`);
    }
    const { pbaOffset, pbaBytes } = msixLayout(vectors);
    this.addBar({ index: bar, kind: 'mmio32', size: nextPow2(pbaOffset + alignUp(pbaBytes, 4096)), prefetch: false });
    this.msixReq = { bar, vectors };
    this.caps.push({ id: CAP_ID.MSIX, length: MSIX.CAP_LEN, opts: {}, msix: true });
    return this;
  }

  /** The function uses INTx; `pin` 1–4 is INTA–INTD (on bus 0 the chipset's rule picks the pin). */
  intxPin(pin: number): this {
    if (!Number.isInteger(pin) || pin < 1 || pin > 4) throw new PciBuilderError(`INTx pin ${pin} outside 1..4`);
    this.pin = pin;
    return this;
  }

  /** A capability of `length` bytes (header included), linked into the list. */
  capability(id: number, length: number, opts: CapOptions = {}): this {
    u(id, 8, 'capability id');
    if (!Number.isInteger(length) || length < 2 || length > PCI_CFG_SIZE - PCI_CFG_HEADER_END) {
      throw new PciBuilderError(`capability length ${length} out of range`);
    }
    this.caps.push({ id, length, opts, msix: false });
    return this;
  }

  /**
   * A device-specific register of `size` bytes (1, 2 or 4) at `offset` in
   * 0x40–0xFF: its power-on value and which bits the guest may write or
   * clear by writing 1. Unlisted bytes there read 0 and ignore writes.
   */
  register(offset: number, size: 1 | 2 | 4, opts: RegisterOptions = {}): this {
    if (!Number.isInteger(offset) || offset < PCI_CFG_HEADER_END || offset + size > PCI_CFG_SIZE) {
      throw new PciBuilderError(`register at 0x${offset.toString(16)} is outside 0x40..0xff`);
    }
    const bits = size * 8;
    u(opts.init, bits, 'register init');
    u(opts.writable, bits, 'register mask');
    u(opts.w1c, bits, 'register w1c mask');
    this.regs.push({ offset, size, opts });
    return this;
  }

  finish(): PciSpec {
    const init = new Uint8Array(PCI_CFG_SIZE);
    const wmask = new Uint8Array(PCI_CFG_SIZE);
    const w1c = new Uint8Array(PCI_CFG_SIZE);
    const used = new Uint8Array(PCI_CFG_SIZE);
    const id = this.ident;
    const bridge = this.headerType === 1;

    put(init, CFG.VENDOR_ID, 2, id.vendor);
    put(init, CFG.DEVICE_ID, 2, id.device);
    put(init, CFG.REVISION_ID, 1, id.revision);
    put(init, CFG.PROG_IF, 1, id.progIf);
    put(init, CFG.SUBCLASS, 1, id.subclass);
    put(init, CFG.CLASS, 1, id.class);
    put(init, CFG.HEADER_TYPE, 1, bridge ? HEADER_TYPE.BRIDGE : HEADER_TYPE.NORMAL);
    put(wmask, CFG.COMMAND, 2, COMMAND_WRITABLE);
    put(w1c, CFG.STATUS, 2, STATUS_W1C);
    // Interrupt Line is firmware's scratch register; 0xFF means "not connected" on PCs.
    put(init, CFG.INTERRUPT_LINE, 1, 0xff);
    put(wmask, CFG.INTERRUPT_LINE, 1, 0xff);
    put(init, CFG.INTERRUPT_PIN, 1, this.pin);
    if (!bridge) {
      put(init, CFG0.SUBSYSTEM_VENDOR_ID, 2, id.subVendor);
      put(init, CFG0.SUBSYSTEM_ID, 2, id.subDevice);
    } else {
      for (const r of [CFG1.PRIMARY_BUS, CFG1.SECONDARY_BUS, CFG1.SUBORDINATE_BUS]) put(wmask, r, 1, 0xff);
      // I/O window: 16-bit decode (low nibble 0), 4 KiB granules.
      put(wmask, CFG1.IO_BASE, 1, 0xf0);
      put(wmask, CFG1.IO_LIMIT, 1, 0xf0);
      put(w1c, CFG1.SEC_STATUS, 2, STATUS_W1C);
      // Memory window: 1 MiB granules. No prefetchable window (reads 0).
      put(wmask, CFG1.MEMORY_BASE, 2, 0xfff0);
      put(wmask, CFG1.MEMORY_LIMIT, 2, 0xfff0);
      put(wmask, CFG1.BRIDGE_CONTROL, 2, BRIDGE_CONTROL_WRITABLE);
    }

    const bars: BarSpec[] = [];
    for (const b of this.bars) {
      if (b === undefined || b === 'upper') continue;
      bars.push(b);
      const off = CFG.BAR0 + 4 * b.index;
      if (b.kind === 'io') {
        put(init, off, 4, BAR_BITS.SPACE_IO);
        put(wmask, off, 4, ((0x1_0000_0000 - b.size) & ~BAR_BITS.IO_FLAGS_MASK) >>> 0);
      } else {
        const flags = (b.kind === 'mmio64' ? BAR_BITS.MEM_TYPE_64 : 0) | (b.prefetch ? BAR_BITS.MEM_PREFETCH : 0);
        put(init, off, 4, flags);
        // Address bits below the size read back 0: that is how sizing works.
        const lo = b.size >= 2 ** 32 ? 0 : (0x1_0000_0000 - b.size) & ~BAR_BITS.MEM_FLAGS_MASK;
        put(wmask, off, 4, lo >>> 0);
        if (b.kind === 'mmio64') {
          const hi = b.size > 2 ** 32 ? 0x1_0000_0000 - b.size / 2 ** 32 : 0xffff_ffff;
          put(wmask, off + 4, 4, hi);
        }
      }
    }

    for (const r of this.regs) {
      for (let i = r.offset; i < r.offset + r.size; i++) {
        if (used[i]) throw new PciBuilderError(`register at 0x${r.offset.toString(16)} overlaps another`);
        used[i] = 1;
      }
      put(init, r.offset, r.size, r.opts.init ?? 0);
      put(wmask, r.offset, r.size, r.opts.writable ?? 0);
      put(w1c, r.offset, r.size, r.opts.w1c ?? 0);
    }

    const fits = (off: number, len: number): boolean =>
      off >= PCI_CFG_HEADER_END && off + len <= PCI_CFG_SIZE && used.subarray(off, off + len).every((x) => x === 0);
    const caps: CapSpec[] = [];
    let msix: MsixSpec | undefined;
    for (const c of this.caps) {
      let off = c.opts.offset;
      if (off !== undefined) {
        if (off % 4 !== 0 || !fits(off, c.length)) {
          throw new PciBuilderError(`capability 0x${c.id.toString(16)} cannot sit at 0x${off.toString(16)}`);
        }
      } else {
        for (let o = PCI_CFG_HEADER_END; o + c.length <= PCI_CFG_SIZE && off === undefined; o += 4) {
          if (fits(o, c.length)) off = o;
        }
        if (off === undefined) throw new PciBuilderError(`no room for capability 0x${c.id.toString(16)}`);
      }
      used.fill(1, off, off + c.length);
      init[off] = c.id;
      if (c.opts.body) init.set(c.opts.body.subarray(0, c.length - 2), off + 2);
      if (c.opts.writable) wmask.set(c.opts.writable.subarray(0, c.length - 2), off + 2);
      caps.push({ id: c.id, offset: off, length: c.length });
      if (c.msix && this.msixReq) {
        const { bar, vectors } = this.msixReq;
        const l = msixLayout(vectors);
        msix = { bar, vectors, capOffset: off, ...l };
        put(init, off + MSIX.CTRL, 2, vectors - 1);
        put(wmask, off + MSIX.CTRL, 2, MSIX.CTRL_ENABLE | MSIX.CTRL_FUNCTION_MASK);
        put(init, off + MSIX.TABLE, 4, l.tableOffset | bar);
        put(init, off + MSIX.PBA, 4, l.pbaOffset | bar);
      }
    }
    // Link the list in ascending offset order.
    const chain = [...caps].sort((a, b) => a.offset - b.offset);
    chain.forEach((c, i) => (init[c.offset + 1] = chain[i + 1]?.offset ?? 0));
    if (chain.length > 0) {
      put(init, CFG.CAP_PTR, 1, (chain[0] as CapSpec).offset);
      put(init, CFG.STATUS, 2, STATUS.CAP_LIST);
    }

    return { ident: { ...id }, headerType: this.headerType, bars, msix, caps, intxPin: this.pin, init, wmask, w1c };
  }
}

/** Table at 0, PBA at the next 4 KiB boundary (so the two never share a page). */
function msixLayout(vectors: number): { tableOffset: number; pbaOffset: number; tableBytes: number; pbaBytes: number } {
  const tableBytes = vectors * MSIX.ENTRY_SIZE;
  return { tableOffset: 0, pbaOffset: alignUp(tableBytes, 4096), tableBytes, pbaBytes: 8 * Math.ceil(vectors / 64) };
}
