// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// MSI-X (PCI 3.0 §6.8.2): the table of {address, data, vector control}
// entries and the pending-bit array, both in a memory BAR, and the enable
// and function-mask bits of the capability's Message Control register in
// configuration space. Pure model: the caller supplies the bytes (shared
// memory in a running VM) and a delivery function; the attachment holds the
// function's lock around every call.
//
// Semantics kept from the specification:
//  - a vector fires only while MSI-X is enabled; masked (per vector or by
//    the function mask) it sets its pending bit instead;
//  - a pending vector is delivered, and its bit cleared, as soon as it is
//    neither masked nor function-masked (on vector-control or Message
//    Control writes);
//  - entries power on masked, with address and data zero; the PBA is
//    read-only; the two low address bits read 0.
//
// Threading: none of its own (see above).

import { MSIX } from './bits.js';
import type { MsixSpec } from './builder.js';
import type { AccessSize } from '../../pio.js';

export type MsixNotifyResult = 'sent' | 'pending' | 'disabled' | 'invalid';

export interface MsixEntry {
  addr: bigint;
  data: number;
  masked: boolean;
  pending: boolean;
}

/** Writable bits of each byte of a table entry. */
const ENTRY_WMASK = [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0];

export class Msix {
  /** One view over the whole state, made once: notify() allocates nothing. */
  private readonly dv: DataView;

  constructor(
    readonly spec: MsixSpec,
    /** Configuration space bytes (for Message Control). */
    private readonly cfg: Uint8Array,
    /** Table bytes followed by PBA bytes (spec.tableBytes + spec.pbaBytes). */
    private readonly state: Uint8Array,
    private readonly deliver: (address: bigint, data: number) => void,
  ) {
    if (state.length < spec.tableBytes + spec.pbaBytes) throw new RangeError('MSI-X state too small');
    this.dv = new DataView(state.buffer, state.byteOffset, spec.tableBytes + spec.pbaBytes);
  }

  static stateBytes(spec: MsixSpec): number {
    return spec.tableBytes + spec.pbaBytes;
  }

  get vectors(): number {
    return this.spec.vectors;
  }

  get control(): number {
    const o = this.spec.capOffset + MSIX.CTRL;
    return (this.cfg[o] as number) | ((this.cfg[o + 1] as number) << 8);
  }

  get enabled(): boolean {
    return (this.control & MSIX.CTRL_ENABLE) !== 0;
  }

  get functionMasked(): boolean {
    return (this.control & MSIX.CTRL_FUNCTION_MASK) !== 0;
  }

  private setControlBits(enabled: boolean, fmask: boolean): void {
    const o = this.spec.capOffset + MSIX.CTRL + 1;
    let hi = (this.cfg[o] as number) & ~((MSIX.CTRL_ENABLE | MSIX.CTRL_FUNCTION_MASK) >> 8);
    if (enabled) hi |= MSIX.CTRL_ENABLE >> 8;
    if (fmask) hi |= MSIX.CTRL_FUNCTION_MASK >> 8;
    this.cfg[o] = hi;
  }

  private entryByte(v: number, off: number): number {
    return this.state[v * MSIX.ENTRY_SIZE + off] as number;
  }

  vectorMasked(v: number): boolean {
    return (this.entryByte(v, MSIX.ENTRY_VECTOR_CTRL) & MSIX.VECTOR_CTRL_MASK) !== 0;
  }

  pending(v: number): boolean {
    const i = this.spec.tableBytes + (v >> 3);
    return ((this.state[i] as number) & (1 << (v & 7))) !== 0;
  }

  private setPending(v: number, on: boolean): void {
    const i = this.spec.tableBytes + (v >> 3);
    const b = this.state[i] as number;
    this.state[i] = on ? b | (1 << (v & 7)) : b & ~(1 << (v & 7));
  }

  entry(v: number): MsixEntry {
    const base = v * MSIX.ENTRY_SIZE;
    return {
      addr: this.dv.getBigUint64(base + MSIX.ENTRY_ADDR_LO, true),
      data: this.dv.getUint32(base + MSIX.ENTRY_DATA, true),
      masked: this.vectorMasked(v),
      pending: this.pending(v),
    };
  }

  /** Power-on state of the table and PBA (Message Control is reset with config space). */
  reset(): void {
    this.state.fill(0, 0, this.spec.tableBytes + this.spec.pbaBytes);
    for (let v = 0; v < this.spec.vectors; v++) {
      this.state[v * MSIX.ENTRY_SIZE + MSIX.ENTRY_VECTOR_CTRL] = MSIX.VECTOR_CTRL_MASK;
    }
  }

  /** Signal vector `v`: delivered, left pending (masked), or dropped (MSI-X disabled). */
  notify(v: number): MsixNotifyResult {
    if (!Number.isInteger(v) || v < 0 || v >= this.spec.vectors) return 'invalid';
    if (!this.enabled) return 'disabled';
    if (this.functionMasked || this.vectorMasked(v)) {
      this.setPending(v, true);
      return 'pending';
    }
    this.send(v);
    return 'sent';
  }

  private send(v: number): void {
    const base = v * MSIX.ENTRY_SIZE;
    this.deliver(
      this.dv.getBigUint64(base + MSIX.ENTRY_ADDR_LO, true),
      this.dv.getUint32(base + MSIX.ENTRY_DATA, true),
    );
  }

  /** Deliver whatever is pending and no longer masked. */
  flushPending(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.spec.vectors; v++) {
      if (this.pending(v) && !this.vectorMasked(v)) {
        this.setPending(v, false);
        this.send(v);
      }
    }
  }

  /** Does `off` (inside the MSI-X BAR) fall in the table or the PBA? */
  claims(off: number): boolean {
    const s = this.spec;
    return (
      (off >= s.tableOffset && off < s.tableOffset + s.tableBytes) ||
      (off >= s.pbaOffset && off < s.pbaOffset + s.pbaBytes)
    );
  }

  /** Byte `off` of the BAR as the guest sees it (0 outside the table and PBA). */
  private barByte(off: number): number {
    const s = this.spec;
    if (off >= s.tableOffset && off < s.tableOffset + s.tableBytes) return this.state[off - s.tableOffset] as number;
    if (off >= s.pbaOffset && off < s.pbaOffset + s.pbaBytes) {
      return this.state[s.tableBytes + off - s.pbaOffset] as number;
    }
    return 0;
  }

  barRead(off: number, size: AccessSize): number | bigint {
    if (size === 8) {
      let v = 0n;
      for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(this.barByte(off + i));
      return v;
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.barByte(off + i);
    return v;
  }

  /** A guest write into the MSI-X BAR; the table is writable, the PBA is not. */
  barWrite(off: number, size: AccessSize, value: number | bigint): void {
    const s = this.spec;
    const big = typeof value === 'bigint' ? value : BigInt(Math.floor(value));
    let unmasked = false;
    for (let i = 0; i < size; i++) {
      const o = off + i;
      if (o < s.tableOffset || o >= s.tableOffset + s.tableBytes) continue;
      const t = o - s.tableOffset;
      const m = ENTRY_WMASK[t % MSIX.ENTRY_SIZE] as number;
      const v = Number((big >> BigInt(8 * i)) & 0xffn);
      const old = this.state[t] as number;
      const nb = (old & ~m) | (v & m);
      this.state[t] = nb;
      if (t % MSIX.ENTRY_SIZE === MSIX.ENTRY_VECTOR_CTRL && old & ~nb & MSIX.VECTOR_CTRL_MASK) unmasked = true;
    }
    if (unmasked) this.flushPending();
  }

  /** After a guest write to Message Control: deliver what an unmask or enable released. */
  controlWritten(before: number): void {
    const after = this.control;
    if (after !== before) this.flushPending();
  }

  export(): { count: number; enabled: boolean; funcMasked: boolean; entries: MsixEntry[] } {
    const entries: MsixEntry[] = [];
    for (let v = 0; v < this.spec.vectors; v++) entries.push(this.entry(v));
    return { count: this.spec.vectors, enabled: this.enabled, funcMasked: this.functionMasked, entries };
  }

  /** Validate a saved state against this function; a message naming the problem, or undefined. */
  checkImport(s: { count: number; entries: MsixEntry[] }): string | undefined {
    if (s.count !== this.spec.vectors) return `MSI-X count ${s.count}, this function has ${this.spec.vectors}`;
    if (s.entries.length !== s.count) return `MSI-X has ${s.entries.length} entries for count ${s.count}`;
    const bad = s.entries.findIndex((e) => (e.addr & 3n) !== 0n);
    if (bad >= 0) return `MSI-X entry ${bad} address is not dword-aligned`;
    return undefined;
  }

  /** Apply a state checked by checkImport. Delivers nothing: pending bits stay as saved. */
  import(s: { enabled: boolean; funcMasked: boolean; entries: MsixEntry[] }): void {
    this.setControlBits(s.enabled, s.funcMasked);
    this.reset();
    s.entries.forEach((e, v) => {
      const base = v * MSIX.ENTRY_SIZE;
      this.dv.setBigUint64(base + MSIX.ENTRY_ADDR_LO, e.addr, true);
      this.dv.setUint32(base + MSIX.ENTRY_DATA, e.data, true);
      this.dv.setUint32(base + MSIX.ENTRY_VECTOR_CTRL, e.masked ? MSIX.VECTOR_CTRL_MASK : 0, true);
      this.setPending(v, e.pending);
    });
  }
}
