// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A block of I/O registers described as a table: each register has an
// offset, a width and optional read/write functions. An access of any size
// at any offset is split across the registers it touches, byte by byte, as
// the chipset's byte enables would: a register sees one write with the
// bytes the access covered (`mask`), and is read once per access. Bytes no
// register claims read 0 and ignore writes; bytes past the end of the block
// read 0xFF. So no access can miss a handler or throw.
//
// Threading: stateless; the closures operate on whatever state their owner
// passes in (the owner holds its lock around `read`/`write`).

export interface Reg {
  off: number;
  size: 1 | 2 | 4;
  /** Current value; omitted: reads 0. */
  read?(): number;
  /** `value` holds the written bytes in place, `mask` is 0xFF for each byte written. */
  write?(value: number, mask: number): void;
}

export class RegBlock {
  private readonly index: Int16Array;

  constructor(
    readonly len: number,
    private readonly regs: Reg[],
  ) {
    this.index = new Int16Array(len).fill(-1);
    regs.forEach((r, i) => {
      if (r.off < 0 || r.off + r.size > len) throw new RangeError(`register at ${r.off} outside block of ${len}`);
      for (let o = r.off; o < r.off + r.size; o++) {
        if (this.index[o] !== -1) throw new RangeError(`registers overlap at offset ${o}`);
        this.index[o] = i;
      }
    });
  }

  read(off: number, size: number): number {
    let v = 0;
    let last = -1;
    let lastVal = 0;
    for (let i = 0; i < size; i++) {
      const o = off + i;
      let b = 0xff;
      if (o >= 0 && o < this.len) {
        const ri = this.index[o] as number;
        if (ri < 0) b = 0;
        else {
          const r = this.regs[ri] as Reg;
          if (ri !== last) {
            lastVal = r.read ? r.read() : 0;
            last = ri;
          }
          b = Math.floor(lastVal / 2 ** (8 * (o - r.off))) & 0xff;
        }
      }
      v += b * 2 ** (8 * i);
    }
    return v;
  }

  write(off: number, size: number, value: number): void {
    let i = 0;
    while (i < size) {
      const o = off + i;
      const ri = o >= 0 && o < this.len ? (this.index[o] as number) : -1;
      if (ri < 0) {
        i++;
        continue;
      }
      const r = this.regs[ri] as Reg;
      let v = 0;
      let m = 0;
      while (i < size && off + i < this.len && this.index[off + i] === ri) {
        const shift = 8 * (off + i - r.off);
        v += (Math.floor(value / 2 ** (8 * i)) & 0xff) * 2 ** shift;
        m += 0xff * 2 ** shift;
        i++;
      }
      r.write?.(v, m);
    }
  }
}
