// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The receive filter a virtio-net driver programs through the control
// queue (virtio 1.2 §5.1.6.5.1–2): promiscuous and all-multicast modes and
// the unicast and multicast MAC tables — and its `pci-virtio-viona` v1
// state payload (the seed's: promisc level, filter flags, the two lists).
//
// The filter is accepted and stored, not applied: the tap hands the device
// whatever the host side sends it, and filtering by destination MAC is
// left to the bridge or namespace in front of the tap (a tap has no
// hardware filter to program). The spec allows this: the commands are
// "best-effort: unwanted packets could still arrive". `level` says what a
// host filter would be set to (the seed programs viona with it).
//
// Tables hold up to MAC_TABLE_ENTRIES addresses each; a longer table sets
// its overflow flag and stores nothing (it then means "accept all of that
// kind", as the spec's footnote allows).
//
// Threading: the state lives in shared memory (words + table bytes); every
// thread has its own RxFilter over it. Commands run with the control
// queue's lock held; reset, export and import with every queue lock held
// (pci.ts) — so the filter needs no lock of its own.

import { MigrateError, schema, t } from '../../migrate.js';
import { ETH_ALEN, VIRTIO_NET_CTRL_RX, VIRTIO_NET_ERR, VIRTIO_NET_OK } from './net-bits.js';

export const MAC_TABLE_ENTRIES = 64;

/** The seed's promiscuity levels (viona_promisc_t): what a host-side filter is set to. */
export enum PromiscLevel {
  None = 0,
  Multicast = 1,
  All = 2,
}

/** Bits of the payload's filter_flags. */
export const FILTER_FLAG = {
  PROMISC: 1,
  ALLMULTI: 2,
  UNI_OVERFLOW: 4,
  MULTI_OVERFLOW: 8,
} as const;
const FILTER_FLAGS_ALL = 0xf;

export const PciVirtioVionaV1 = schema('pci-virtio-viona', 1, {
  promisc_level: t.u8,
  filter_flags: t.u8,
  unicast: t.array(t.bytes(ETH_ALEN), MAC_TABLE_ENTRIES),
  multicast: t.array(t.bytes(ETH_ALEN), MAC_TABLE_ENTRIES),
});
export type PciVirtioVionaState = ReturnType<typeof PciVirtioVionaV1.decode>;

const FW = { FLAGS: 0, UNI_COUNT: 1, MULTI_COUNT: 2, WORDS: 4 } as const;
const TABLE_BYTES = MAC_TABLE_ENTRIES * ETH_ALEN;

/** The level a filter with `flags` needs: everything, all multicast, or only its own addresses. */
export function promiscLevel(flags: number): PromiscLevel {
  if (flags & (FILTER_FLAG.PROMISC | FILTER_FLAG.UNI_OVERFLOW)) return PromiscLevel.All;
  if (flags & (FILTER_FLAG.ALLMULTI | FILTER_FLAG.MULTI_OVERFLOW)) return PromiscLevel.Multicast;
  return PromiscLevel.None;
}

export interface RxFilterShared {
  words: SharedArrayBuffer;
  /** Unicast table, then multicast table, MAC_TABLE_ENTRIES × 6 bytes each. */
  tables: SharedArrayBuffer;
}

export class RxFilter {
  private readonly w: Int32Array;
  private readonly tables: Uint8Array;

  constructor(sh: RxFilterShared) {
    this.w = new Int32Array(sh.words);
    this.tables = new Uint8Array(sh.tables);
  }

  /** Shared state at its reset values. */
  static allocate(): RxFilterShared {
    const sh = { words: new SharedArrayBuffer(4 * FW.WORDS), tables: new SharedArrayBuffer(2 * TABLE_BYTES) };
    new RxFilter(sh).reset();
    return sh;
  }

  /** Reset: all-multicast on (the seed's default), promiscuous off, both tables empty (spec). */
  reset(): void {
    Atomics.store(this.w, FW.FLAGS, FILTER_FLAG.ALLMULTI);
    Atomics.store(this.w, FW.UNI_COUNT, 0);
    Atomics.store(this.w, FW.MULTI_COUNT, 0);
    this.tables.fill(0);
  }

  get flags(): number {
    return Atomics.load(this.w, FW.FLAGS);
  }

  get level(): PromiscLevel {
    return promiscLevel(this.flags);
  }

  unicast(): Uint8Array[] {
    return this.table(0, Atomics.load(this.w, FW.UNI_COUNT));
  }

  multicast(): Uint8Array[] {
    return this.table(TABLE_BYTES, Atomics.load(this.w, FW.MULTI_COUNT));
  }

  private table(base: number, n: number): Uint8Array[] {
    return Array.from({ length: n }, (_, i) => this.tables.slice(base + ETH_ALEN * i, base + ETH_ALEN * (i + 1)));
  }

  private setFlag(bit: number, on: boolean): void {
    const f = this.flags;
    Atomics.store(this.w, FW.FLAGS, on ? f | bit : f & ~bit);
  }

  /**
   * VIRTIO_NET_CTRL_RX `cmd` with its data: the ack. Only PROMISC and
   * ALLMULTI (CTRL_RX_EXTRA is not offered); the data is one byte, 0 or 1.
   */
  rxMode(cmd: number, data: Uint8Array): number {
    if (data.length !== 1 || (data[0] as number) > 1) return VIRTIO_NET_ERR;
    const on = data[0] === 1;
    switch (cmd) {
      case VIRTIO_NET_CTRL_RX.PROMISC:
        this.setFlag(FILTER_FLAG.PROMISC, on);
        return VIRTIO_NET_OK;
      case VIRTIO_NET_CTRL_RX.ALLMULTI:
        this.setFlag(FILTER_FLAG.ALLMULTI, on);
        return VIRTIO_NET_OK;
      default:
        return VIRTIO_NET_ERR;
    }
  }

  /**
   * VIRTIO_NET_CTRL_MAC_TABLE_SET: `data` must be exactly two tables, each
   * a le32 count and that many 6-byte addresses. The ack; nothing changes
   * on ERR.
   */
  macTable(data: Uint8Array): number {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.length < 4) return VIRTIO_NET_ERR;
    const nUni = dv.getUint32(0, true);
    const uniEnd = 4 + ETH_ALEN * nUni; // < 2^36: exact in a double
    if (uniEnd + 4 > data.length) return VIRTIO_NET_ERR;
    const nMulti = dv.getUint32(uniEnd, true);
    if (uniEnd + 4 + ETH_ALEN * nMulti !== data.length) return VIRTIO_NET_ERR;
    this.store(0, FW.UNI_COUNT, FILTER_FLAG.UNI_OVERFLOW, data.subarray(4, uniEnd), nUni);
    this.store(TABLE_BYTES, FW.MULTI_COUNT, FILTER_FLAG.MULTI_OVERFLOW, data.subarray(uniEnd + 4), nMulti);
    return VIRTIO_NET_OK;
  }

  private store(base: number, countWord: number, overflowFlag: number, macs: Uint8Array, n: number): void {
    const table = this.tables.subarray(base, base + TABLE_BYTES);
    table.fill(0);
    if (n > MAC_TABLE_ENTRIES) {
      Atomics.store(this.w, countWord, 0);
      this.setFlag(overflowFlag, true);
      return;
    }
    table.set(macs);
    Atomics.store(this.w, countWord, n);
    this.setFlag(overflowFlag, false);
  }

  // ---- state (every queue lock held) ----

  exportState(): PciVirtioVionaState {
    const flags = this.flags;
    return {
      promisc_level: promiscLevel(flags),
      filter_flags: flags,
      unicast: this.unicast(),
      multicast: this.multicast(),
    };
  }

  /** Why a saved filter cannot be restored, or undefined. */
  static check(s: PciVirtioVionaState): string | undefined {
    if ((s.filter_flags & ~FILTER_FLAGS_ALL) !== 0) return `filter flags 0x${s.filter_flags.toString(16)} unknown`;
    if (s.promisc_level !== promiscLevel(s.filter_flags)) {
      return `promisc level ${s.promisc_level} does not match filter flags 0x${s.filter_flags.toString(16)}`;
    }
    for (const [name, list, overflow] of [
      ['unicast', s.unicast, FILTER_FLAG.UNI_OVERFLOW],
      ['multicast', s.multicast, FILTER_FLAG.MULTI_OVERFLOW],
    ] as const) {
      if (list.some((m) => m.length !== ETH_ALEN)) return `a ${name} address is not ${ETH_ALEN} bytes`;
      if (s.filter_flags & overflow && list.length !== 0) return `${name} table overflowed but holds addresses`;
    }
    return undefined;
  }

  /** Apply a state `check` accepted. */
  importState(s: PciVirtioVionaState): void {
    const bad = RxFilter.check(s);
    if (bad !== undefined) throw new MigrateError('ImportFailed', `pci-virtio-viona: ${bad}`);
    this.reset();
    Atomics.store(this.w, FW.FLAGS, s.filter_flags);
    s.unicast.forEach((m, i) => this.tables.set(m, ETH_ALEN * i));
    s.multicast.forEach((m, i) => this.tables.set(m, TABLE_BYTES + ETH_ALEN * i));
    Atomics.store(this.w, FW.UNI_COUNT, s.unicast.length);
    Atomics.store(this.w, FW.MULTI_COUNT, s.multicast.length);
  }
}
