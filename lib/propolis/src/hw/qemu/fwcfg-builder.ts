// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// What the fw_cfg device offers the guest, assembled by the machine before
// the device is described: legacy items by key, named files, and helpers
// that encode the items firmware looks for (E820 map, boot order, SeaBIOS's
// serial console and boot-menu settings, direct kernel boot).
//
// `build()` freezes the contents into one SharedArrayBuffer: every thread's
// device instance reads the same bytes (a kernel and initrd can be many
// MiB), and only items marked writable ever change after that.
//
// File keys are assigned in name order from 0x20 up, so the same set of
// files always gets the same keys whatever order the machine added them in
// (QEMU does the same). The file directory (key 0x19) lists the named files
// only, sorted by name, as the fw_cfg specification describes. Propolis
// lists legacy items there too; firmware would merely see extra
// directory entries, and nothing needs them, so we follow the specification.
//
// Threading: main thread only; the built image is immutable except for
// writable items, which the device changes under its lock.

import { E820_ENTRY_SIZE, FW_CFG_FILE_DIR, FwCfgId, FwCfgKey, FwCfgSelector } from './fwcfg-abi.js';
import { linuxBootItems, type LinuxBootOptions } from './linux-boot.js';

export class FwCfgConfigError extends Error {
  readonly code = 'FWCFG_CONFIG';
}

/** One item of a built image. */
export interface FwCfgItemMeta {
  /** Selector key (write-channel bit clear). */
  readonly key: number;
  /** File name, for named items. */
  readonly name: string | undefined;
  /** Where its bytes start in the image's data buffer. */
  readonly start: number;
  readonly length: number;
  readonly writable: boolean;
  /** For writable items: where the power-on contents are kept (restored on reset). */
  readonly initStart: number;
}

/** A frozen set of items: structured-cloneable, the buffer shared rather than copied. */
export interface FwCfgImage {
  readonly data: SharedArrayBuffer;
  readonly items: readonly FwCfgItemMeta[];
}

export interface E820Entry {
  base: number | bigint;
  length: number | bigint;
  /** `E820Type`: 1 RAM, 2 reserved, … */
  type: number;
}

/** Writable items are small configuration blobs (ramfb's is 28 bytes); they travel in migration state. */
export const FW_CFG_WRITABLE_MAX = 64 * 1024;
/** More files than any machine needs; keeps the directory and keys far below the key space. */
export const FW_CFG_MAX_FILES = 0x1000;
/** Size fields are u32. */
const ITEM_MAX = 0xffff_ffff;
/** Low RAM ends at the 32-bit MMIO hole (3 GiB, as in Propolis's memory map). */
const LOWMEM_TOP = 3 * 1024 * 1024 * 1024;

const RESERVED_KEYS: ReadonlySet<number> = new Set([FwCfgKey.SIGNATURE, FwCfgKey.ID, FwCfgKey.FILE_DIR]);

function le(bytes: number, v: number | bigint): Uint8Array {
  const b = new Uint8Array(bytes);
  const dv = new DataView(b.buffer);
  if (bytes === 2) dv.setUint16(0, Number(v), true);
  else if (bytes === 4) dv.setUint32(0, Number(v), true);
  else dv.setBigUint64(0, BigInt(v), true);
  return b;
}

function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

function u64(v: number | bigint, what: string): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b >= 1n << 64n) throw new FwCfgConfigError(`${what} must be an integer from 0 to 2^64-1, got ${v}`);
  return b;
}

/** File names: 1–55 bytes of printable ASCII (the directory keeps 56 with the NUL). */
export function checkFileName(name: string): void {
  if (!/^[\x20-\x7e]{1,55}$/.test(name)) {
    throw new FwCfgConfigError(
      `fw_cfg file name ${JSON.stringify(name)} must be 1 to ${FW_CFG_FILE_DIR.nameField - 1} printable ASCII characters`,
    );
  }
}

export class FwCfgBuilder {
  private readonly legacy = new Map<number, Uint8Array>();
  private readonly files = new Map<string, { bytes: Uint8Array; writable: boolean }>();
  private linux: LinuxBootOptions | undefined;
  private ram: bigint | undefined;
  private hasCpus = false;

  /** NB_CPUS (vCPUs at boot) and MAX_CPUS (possible vCPUs), u16 each. */
  cpus(count: number, max = count): this {
    if (!isUint(count, 0xffff) || count < 1 || !isUint(max, 0xffff) || max < count) {
      throw new FwCfgConfigError(`cpus must be 1..65535 and at most max (${max}), got ${count}`);
    }
    this.legacy.set(FwCfgKey.NB_CPUS, le(2, count));
    this.legacy.set(FwCfgKey.MAX_CPUS, le(2, max));
    this.hasCpus = true;
    return this;
  }

  /** RAM_SIZE: guest RAM in bytes, u64. Also bounds where a kernel's initrd may go. */
  ramSize(bytes: number | bigint): this {
    this.ram = u64(bytes, 'ram size');
    this.legacy.set(FwCfgKey.RAM_SIZE, le(8, this.ram));
    return this;
  }

  /** NOGRAPHIC (u16): the VM has no display. Off unless set. */
  noGraphic(on = true): this {
    this.legacy.set(FwCfgKey.NOGRAPHIC, le(2, on ? 1 : 0));
    return this;
  }

  /** UUID: the 16 bytes of the VM's UUID (firmware puts it in SMBIOS when it builds the tables itself). */
  uuid(bytes: Uint8Array): this {
    if (bytes.byteLength !== 16) throw new FwCfgConfigError(`uuid must be 16 bytes, got ${bytes.byteLength}`);
    this.legacy.set(FwCfgKey.UUID, bytes.slice());
    return this;
  }

  /**
   * BOOT_MENU (u16, SeaBIOS's `etc/show-boot-menu`): offer the boot menu;
   * with `waitMs`, `etc/boot-menu-wait` (u16 LE, ms) is how long it waits for a key.
   */
  bootMenu(show: boolean, waitMs?: number): this {
    this.legacy.set(FwCfgKey.BOOT_MENU, le(2, show ? 1 : 0));
    if (waitMs !== undefined) {
      if (!isUint(waitMs, 0xffff)) throw new FwCfgConfigError(`boot menu wait must be 0..65535 ms, got ${waitMs}`);
      this.file('etc/boot-menu-wait', le(2, waitMs));
    }
    return this;
  }

  /**
   * `etc/boot-fail-wait` (u32 LE, ms): how long SeaBIOS waits before
   * rebooting when nothing booted; 'never' (0xffffffff) makes it stop.
   */
  bootFailWait(ms: number | 'never'): this {
    if (ms !== 'never' && !isUint(ms, 0xffff_fffe)) {
      throw new FwCfgConfigError(`boot fail wait must be 0..4294967294 ms or 'never', got ${ms}`);
    }
    return this.file('etc/boot-fail-wait', le(4, ms === 'never' ? 0xffff_ffff : ms));
  }

  /** `etc/e820`: the memory map, 20-byte little-endian entries {base u64, length u64, type u32}. */
  e820(entries: readonly E820Entry[]): this {
    const out = new Uint8Array(entries.length * E820_ENTRY_SIZE);
    const dv = new DataView(out.buffer);
    entries.forEach((e, i) => {
      const base = u64(e.base, `e820[${i}].base`);
      const length = u64(e.length, `e820[${i}].length`);
      if (base + length > 1n << 64n) throw new FwCfgConfigError(`e820[${i}] runs past 2^64`);
      if (!isUint(e.type, 0xffff_ffff)) throw new FwCfgConfigError(`e820[${i}].type must be a u32, got ${e.type}`);
      dv.setBigUint64(i * E820_ENTRY_SIZE, base, true);
      dv.setBigUint64(i * E820_ENTRY_SIZE + 8, length, true);
      dv.setUint32(i * E820_ENTRY_SIZE + 16, e.type, true);
    });
    return this.file('etc/e820', out);
  }

  /**
   * `bootorder`: firmware device paths, one per line, NUL-terminated. With
   * `halt` (the default, as Propolis does) a final `HALT` line tells SeaBIOS
   * not to try devices missing from the list.
   */
  bootOrder(paths: readonly string[], opts: { halt?: boolean } = {}): this {
    for (const p of paths) {
      if (!/^[\x20-\x7e]+$/.test(p)) {
        throw new FwCfgConfigError(`boot order entry ${JSON.stringify(p)} must be non-empty printable ASCII`);
      }
    }
    const lines = opts.halt === false ? [...paths] : [...paths, 'HALT'];
    return this.file('bootorder', new TextEncoder().encode(`${lines.join('\n')}\0`));
  }

  /**
   * `etc/sercon-port`: SeaBIOS redirects its console (and a VGA BIOS's text
   * output) to the 16550 at this I/O port. SeaBIOS reads it as a
   * little-endian integer of 1, 2, 4 or 8 bytes into a u16; we give 2.
   */
  serialConsole(port: number): this {
    if (!isUint(port, 0xffff) || port === 0)
      throw new FwCfgConfigError(`serial console port must be 1..0xffff, got ${port}`);
    return this.file('etc/sercon-port', le(2, port));
  }

  /** Boot a Linux bzImage directly (see linux-boot.ts); needs `ramSize`. */
  kernel(opts: LinuxBootOptions): this {
    if (this.linux) throw new FwCfgConfigError('a kernel is already set');
    this.linux = {
      kernel: opts.kernel.slice(),
      ...(opts.initrd ? { initrd: opts.initrd.slice() } : {}),
      ...(opts.cmdline !== undefined ? { cmdline: opts.cmdline } : {}),
    };
    return this;
  }

  /**
   * A named item. Its bytes are copied now. Only `writable` items accept DMA
   * writes from the guest (e.g. `etc/ramfb`); they must be small.
   */
  file(name: string, bytes: Uint8Array, opts: { writable?: boolean } = {}): this {
    checkFileName(name);
    if (this.files.has(name)) throw new FwCfgConfigError(`fw_cfg file ${name} is given twice`);
    if (this.files.size >= FW_CFG_MAX_FILES) throw new FwCfgConfigError(`more than ${FW_CFG_MAX_FILES} fw_cfg files`);
    const writable = opts.writable ?? false;
    if (bytes.byteLength > ITEM_MAX || (writable && bytes.byteLength > FW_CFG_WRITABLE_MAX)) {
      throw new FwCfgConfigError(`fw_cfg file ${name} is too large (${bytes.byteLength} bytes)`);
    }
    this.files.set(name, { bytes: bytes.slice(), writable });
    return this;
  }

  /**
   * A raw item by key, for legacy keys this builder has no helper for
   * (0x02–0x18 minus the ones it sets) or architecture-specific keys
   * (0x8000–0x801f). Signature, ID and the file directory are the device's.
   */
  item(key: number, bytes: Uint8Array): this {
    const idx = key & FwCfgSelector.INDEX_MASK;
    const ok =
      isUint(key, 0xffff) &&
      (key & FwCfgSelector.WRITE_CHANNEL) === 0 &&
      idx < FwCfgKey.FILE_FIRST &&
      !RESERVED_KEYS.has(key);
    if (!ok) throw new FwCfgConfigError(`fw_cfg key 0x${key.toString(16)} cannot be set directly`);
    if (bytes.byteLength > ITEM_MAX) throw new FwCfgConfigError(`fw_cfg item 0x${key.toString(16)} is too large`);
    this.legacy.set(key, bytes.slice());
    return this;
  }

  /** Freeze the items into a shared image. The builder may be reused afterwards. */
  build(): FwCfgImage {
    if (!this.hasCpus) throw new FwCfgConfigError('fw_cfg needs the vCPU count (cpus)');
    const entries: { key: number; name: string | undefined; bytes: Uint8Array; writable: boolean }[] = [];
    const id = le(4, FwCfgId.TRADITIONAL | FwCfgId.DMA);
    entries.push({
      key: FwCfgKey.SIGNATURE,
      name: undefined,
      bytes: new TextEncoder().encode('QEMU'),
      writable: false,
    });
    entries.push({ key: FwCfgKey.ID, name: undefined, bytes: id, writable: false });

    const legacy = new Map(this.legacy);
    if (!legacy.has(FwCfgKey.NOGRAPHIC)) legacy.set(FwCfgKey.NOGRAPHIC, le(2, 0));
    if (this.linux) {
      if (this.ram === undefined) throw new FwCfgConfigError('a kernel needs the RAM size (ramSize)');
      const lowRam = Number(this.ram < BigInt(LOWMEM_TOP) ? this.ram : BigInt(LOWMEM_TOP));
      for (const [k, v] of linuxBootItems(this.linux, lowRam)) {
        if (legacy.has(k)) throw new FwCfgConfigError(`fw_cfg key 0x${k.toString(16)} is set and also a kernel item`);
        legacy.set(k, v);
      }
    }
    for (const [key, bytes] of legacy) entries.push({ key, name: undefined, bytes, writable: false });

    const names = [...this.files.keys()].sort(compareNames);
    const dir = new Uint8Array(FW_CFG_FILE_DIR.headerSize + names.length * FW_CFG_FILE_DIR.entrySize);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, names.length, false);
    names.forEach((name, i) => {
      const f = this.files.get(name)!;
      const key = FwCfgKey.FILE_FIRST + i;
      const at = FW_CFG_FILE_DIR.headerSize + i * FW_CFG_FILE_DIR.entrySize;
      dv.setUint32(at + FW_CFG_FILE_DIR.size, f.bytes.byteLength, false);
      dv.setUint16(at + FW_CFG_FILE_DIR.select, key, false);
      dir.set(new TextEncoder().encode(name), at + FW_CFG_FILE_DIR.name); // NUL padding: the rest stays 0
      entries.push({ key, name, bytes: f.bytes, writable: f.writable });
    });
    entries.push({ key: FwCfgKey.FILE_DIR, name: undefined, bytes: dir, writable: false });

    let total = 0;
    for (const e of entries) total += e.bytes.byteLength * (e.writable ? 2 : 1);
    const data = new SharedArrayBuffer(Math.max(total, 1));
    const view = new Uint8Array(data);
    const items: FwCfgItemMeta[] = [];
    let at = 0;
    for (const e of entries) {
      view.set(e.bytes, at);
      const start = at;
      at += e.bytes.byteLength;
      let initStart = -1;
      if (e.writable) {
        view.set(e.bytes, at);
        initStart = at;
        at += e.bytes.byteLength;
      }
      items.push({ key: e.key, name: e.name, start, length: e.bytes.byteLength, writable: e.writable, initStart });
    }
    items.sort((a, b) => a.key - b.key);
    return { data, items };
  }
}

/** Byte order of the names (they are ASCII), as firmware compares them. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
