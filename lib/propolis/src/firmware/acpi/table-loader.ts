// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The fw_cfg "table loader" (`etc/table-loader`): the script by which QEMU
// hands ACPI tables to guest firmware (SeaBIOS, OVMF) without knowing where
// the firmware will put them. The tables travel as plain fw_cfg files; the
// script tells the firmware to
//
//   ALLOCATE      place a file's contents in guest memory, with an alignment
//                 and a zone (HIGH: anywhere below 4 GiB; FSEG: the BIOS
//                 F segment, 0xE0000..0xFFFFF, where the RSDP must be found);
//   ADD_POINTER   treat `size` bytes at `offset` in the destination file as
//                 a little-endian offset into the source file and add the
//                 source's final address to it;
//   ADD_CHECKSUM  set the byte at `offset` so that `length` bytes from
//                 `start` in the file sum to zero mod 256 (the byte must be
//                 zero beforehand: firmwares differ in how they treat it).
//
// Each command is one 128-byte little-endian record: a u32 command number,
// then the command's fields, zero-padded. File names occupy 56 bytes
// (fw_cfg's maximum name length), NUL-terminated:
//
//   1 ALLOCATE      name[56] @4, align u32 @60, zone u8 @64
//   2 ADD_POINTER   dest[56] @4, src[56] @60, offset u32 @116, size u8 @120
//   3 ADD_CHECKSUM  name[56] @4, offset u32 @60, start u32 @64, length u32 @68
//
// Commands run in order: a file is allocated before anything refers to it,
// and a table's checksum comes after the pointers patched into it.
//
// Pure byte generation; `runTableLoader` is the firmware's side, for tests
// and for producing standalone tables at chosen addresses.

import assert from 'node:assert/strict';
import { asciiBytes, sum8 } from '../bytes.js';

export const LOADER_ENTRY_SIZE = 128;
export const LOADER_FILE_NAME_SIZE = 56;

export const LoaderCommand = { Allocate: 1, AddPointer: 2, AddChecksum: 3 } as const;
export const AllocZone = { High: 1, FSeg: 2 } as const;

export type LoaderEntry =
  | { command: 'allocate'; file: string; align: number; zone: 'high' | 'fseg' }
  | { command: 'add-pointer'; dest: string; src: string; offset: number; size: 1 | 2 | 4 | 8 }
  | { command: 'add-checksum'; file: string; offset: number; start: number; length: number };

function putName(view: DataView, at: number, name: string): void {
  const b = asciiBytes(name);
  assert(b.length < LOADER_FILE_NAME_SIZE, `fw_cfg file name too long: ${name}`);
  for (let i = 0; i < b.length; i++) view.setUint8(at + i, b[i]!);
}

export function encodeTableLoader(entries: readonly LoaderEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * LOADER_ENTRY_SIZE);
  entries.forEach((e, i) => {
    const v = new DataView(out.buffer, i * LOADER_ENTRY_SIZE, LOADER_ENTRY_SIZE);
    switch (e.command) {
      case 'allocate':
        assert(e.align > 0 && (e.align & (e.align - 1)) === 0, 'alignment must be a power of two');
        v.setUint32(0, LoaderCommand.Allocate, true);
        putName(v, 4, e.file);
        v.setUint32(60, e.align, true);
        v.setUint8(64, e.zone === 'high' ? AllocZone.High : AllocZone.FSeg);
        break;
      case 'add-pointer':
        v.setUint32(0, LoaderCommand.AddPointer, true);
        putName(v, 4, e.dest);
        putName(v, 60, e.src);
        v.setUint32(116, e.offset, true);
        v.setUint8(120, e.size);
        break;
      case 'add-checksum':
        v.setUint32(0, LoaderCommand.AddChecksum, true);
        putName(v, 4, e.file);
        v.setUint32(60, e.offset, true);
        v.setUint32(64, e.start, true);
        v.setUint32(68, e.length, true);
        break;
    }
  });
  return out;
}

function getName(bytes: Uint8Array, at: number): string {
  const raw = bytes.subarray(at, at + LOADER_FILE_NAME_SIZE);
  const nul = raw.indexOf(0);
  return String.fromCharCode(...raw.subarray(0, nul < 0 ? raw.length : nul));
}

/** Decodes a loader script; unknown commands are skipped, as firmware does. */
export function decodeTableLoader(bytes: Uint8Array): LoaderEntry[] {
  assert(bytes.length % LOADER_ENTRY_SIZE === 0, 'table loader length is not a multiple of 128');
  const out: LoaderEntry[] = [];
  for (let at = 0; at < bytes.length; at += LOADER_ENTRY_SIZE) {
    const e = bytes.subarray(at, at + LOADER_ENTRY_SIZE);
    const v = new DataView(e.buffer, e.byteOffset, e.length);
    switch (v.getUint32(0, true)) {
      case LoaderCommand.Allocate:
        out.push({
          command: 'allocate',
          file: getName(e, 4),
          align: v.getUint32(60, true),
          zone: v.getUint8(64) === AllocZone.FSeg ? 'fseg' : 'high',
        });
        break;
      case LoaderCommand.AddPointer:
        out.push({
          command: 'add-pointer',
          dest: getName(e, 4),
          src: getName(e, 60),
          offset: v.getUint32(116, true),
          size: v.getUint8(120) as 1 | 2 | 4 | 8,
        });
        break;
      case LoaderCommand.AddChecksum:
        out.push({
          command: 'add-checksum',
          file: getName(e, 4),
          offset: v.getUint32(60, true),
          start: v.getUint32(64, true),
          length: v.getUint32(68, true),
        });
        break;
    }
  }
  return out;
}

/** A file placed by `runTableLoader`. */
export interface PlacedFile {
  address: bigint;
  bytes: Uint8Array;
}

/**
 * Executes a loader script the way firmware does: `place` chooses each
 * allocated file's address; the result holds patched copies of the files.
 */
export function runTableLoader(
  entries: readonly LoaderEntry[],
  files: ReadonlyMap<string, Uint8Array>,
  place: (file: string, size: number, align: number, zone: 'high' | 'fseg') => bigint,
): Map<string, PlacedFile> {
  const placed = new Map<string, PlacedFile>();
  const get = (name: string): PlacedFile => {
    const p = placed.get(name);
    assert(p, `table loader refers to ${name} before allocating it`);
    return p;
  };
  for (const e of entries) {
    switch (e.command) {
      case 'allocate': {
        const src = files.get(e.file);
        assert(src, `table loader allocates unknown file ${e.file}`);
        const address = place(e.file, src.length, e.align, e.zone);
        assert(address % BigInt(e.align) === 0n, `${e.file} placed at a misaligned address`);
        placed.set(e.file, { address, bytes: src.slice() });
        break;
      }
      case 'add-pointer': {
        const dest = get(e.dest);
        const src = get(e.src);
        assert(e.offset + e.size <= dest.bytes.length, 'pointer outside its file');
        let v = 0n;
        for (let i = 0; i < e.size; i++) v |= BigInt(dest.bytes[e.offset + i]!) << BigInt(8 * i);
        v = (v + src.address) & ((1n << BigInt(8 * e.size)) - 1n);
        for (let i = 0; i < e.size; i++) dest.bytes[e.offset + i] = Number((v >> BigInt(8 * i)) & 0xffn);
        break;
      }
      case 'add-checksum': {
        const f = get(e.file);
        assert(e.start + e.length <= f.bytes.length && e.offset < f.bytes.length, 'checksum outside its file');
        // SeaBIOS subtracts the range's sum from the byte; OVMF stores the
        // negated sum of the range, byte included. They agree only when the
        // byte starts at zero, so a script that relies on either is a bug.
        assert.equal(f.bytes[e.offset], 0, `checksum byte ${e.file}+${e.offset} is not zero before ADD_CHECKSUM`);
        f.bytes[e.offset] = (0x100 - sum8(f.bytes, e.start, e.length)) & 0xff;
        break;
      }
    }
  }
  return placed;
}
