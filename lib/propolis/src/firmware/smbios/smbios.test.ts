// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// SMBIOS tables read back by a small parser written here from DSP0134
// (entry point, structure header, string sets), then decoded by Debian's
// dmidecode from a dump in its --dump-bin layout.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { debianFile } from '../../testing/debian.js';
import { FirmwareConfigError } from '../errors.js';
import { buildSmbios, type SmbiosInput } from './smbios.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const UUID = '12345678-9abc-def0-1122-334455667788';
/** The same UUID as SMBIOS 2.6+ stores it: first three fields little-endian. */
const UUID_BYTES = [0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

function input(over: Partial<SmbiosInput> = {}): SmbiosInput {
  return {
    bootromVersion: 'v1.2.3',
    releaseDate: 'Bureaucracy 41, 3186 YOLD',
    romSize: 2 * MiB,
    system: { uuid: UUID },
    cpu: {
      vendor: 'AuthenticAMD',
      family: 0x19,
      model: 0x01,
      stepping: 0x01,
      brand: 'AMD EPYC 7713 64-Core Processor                ',
      cpuidEax1: 0x00a0_0f11,
      cpuidEdx1: 0x178b_fbff,
    },
    cpus: 4,
    memory: { lowmem: 3 * GiB, highmem: 5 * GiB },
    ...over,
  };
}

interface Struct {
  type: number;
  length: number;
  handle: number;
  formatted: Uint8Array;
  strings: string[];
  /** Bytes the structure occupies, string set included. */
  size: number;
}

const sum = (b: Uint8Array, start: number, len: number): number => {
  let s = 0;
  for (let i = start; i < start + len; i++) s += b[i]!;
  return s & 0xff;
};

function parseTable(t: Uint8Array): Struct[] {
  const out: Struct[] = [];
  let at = 0;
  while (at < t.length) {
    const type = t[at]!;
    const length = t[at + 1]!;
    assert(length >= 4 && at + length <= t.length, `structure at ${at}: bad length`);
    const handle = t[at + 2]! | (t[at + 3]! << 8);
    let p = at + length;
    const strings: string[] = [];
    if (t[p] === 0) {
      assert.equal(t[p + 1], 0, `type ${type}: an empty string set is two NULs`);
      p += 2;
    } else {
      while (t[p] !== 0) {
        const end = t.indexOf(0, p);
        assert(end > p, `type ${type}: unterminated string`);
        strings.push(Buffer.from(t.subarray(p, end)).toString('utf8'));
        p = end + 1;
      }
      p += 1; // the set's final NUL
    }
    out.push({ type, length, handle, formatted: t.subarray(at, at + length), strings, size: p - at });
    at = p;
  }
  assert.equal(at, t.length, 'table ends at the end of a structure');
  return out;
}

/** Offsets of string-index fields, per type (DSP0134 2.7). */
const STRING_FIELDS: Record<number, number[]> = {
  0: [0x04, 0x05, 0x08],
  1: [0x04, 0x05, 0x06, 0x07, 0x19, 0x1a],
  3: [0x04, 0x06, 0x07, 0x08, 0x15],
  4: [0x04, 0x07, 0x10, 0x20, 0x21, 0x22],
  16: [],
  17: [0x10, 0x11, 0x17, 0x18, 0x19, 0x1a],
  19: [],
  32: [],
  127: [],
};
/** Formatted lengths of the 2.7 structures. */
const LENGTHS: Record<number, number> = {
  0: 0x18,
  1: 0x1b,
  3: 0x16,
  4: 0x2a,
  16: 0x17,
  17: 0x22,
  19: 0x1f,
  32: 0x0b,
  127: 4,
};

function str(s: Struct, offset: number): string | undefined {
  const i = s.formatted[offset]!;
  return i === 0 ? undefined : s.strings[i - 1];
}

describe('SMBIOS', () => {
  it('has a valid 2.7 entry point describing the table', () => {
    const b = buildSmbios(input());
    const a = b.anchor;
    const v = new DataView(a.buffer, a.byteOffset);
    assert.equal(a.length, 0x1f);
    assert.equal(String.fromCharCode(...a.subarray(0, 4)), '_SM_');
    assert.equal(a[5], 0x1f, 'entry point length');
    assert.equal(sum(a, 0, 0x1f), 0, 'entry point checksum');
    assert.deepEqual([a[6], a[7]], [2, 7]);
    assert.equal(String.fromCharCode(...a.subarray(0x10, 0x15)), '_DMI_');
    assert.equal(sum(a, 0x10, 0x0f), 0, 'intermediate checksum');
    assert.equal(sum(a, 0, 0x10), 0, 'first 16 bytes sum to zero too (SeaBIOS checks that)');
    const structs = parseTable(b.tables);
    assert.equal(v.getUint16(0x16, true), b.tables.length, 'structure table length');
    assert.equal(v.getUint32(0x18, true), 0, 'address left to the firmware');
    assert.equal(v.getUint16(0x1c, true), structs.length, 'number of structures');
    assert.equal(v.getUint16(0x08, true), Math.max(...structs.map((s) => s.size)), 'maximum structure size');
    assert.equal(a[0x1e], 0x27, 'BCD revision');
    assert.deepEqual(
      b.files.map((f) => f.name),
      ['etc/smbios/smbios-tables', 'etc/smbios/smbios-anchor'],
    );
  });

  it('emits each structure with its formatted length, handle and a well-formed string set', () => {
    const structs = parseTable(buildSmbios(input()).tables);
    assert.deepEqual(
      structs.map((s) => [s.type, s.handle]),
      [
        [0, 0x0000],
        [1, 0x0100],
        [3, 0x0200],
        [4, 0x0300],
        [16, 0x1600],
        [17, 0x1700],
        [19, 0x1300],
        [19, 0x1301],
        [32, 0x3200],
        [127, 0x7f00],
      ],
    );
    for (const s of structs) {
      assert.equal(s.length, LENGTHS[s.type], `type ${s.type} formatted length`);
      const refs = STRING_FIELDS[s.type]!.map((o) => s.formatted[o]!).filter((i) => i !== 0);
      for (const i of refs) assert(i <= s.strings.length, `type ${s.type}: string ${i} of ${s.strings.length}`);
      assert.deepEqual(
        [...new Set(refs)].sort(),
        s.strings.map((_, i) => i + 1),
        `type ${s.type}: every string referenced`,
      );
      for (const x of s.strings) assert.notEqual(x, '', 'no empty strings');
    }
  });

  it('fills type 1 from the caller, with Propolis defaults otherwise', () => {
    const custom = parseTable(
      buildSmbios(
        input({
          system: {
            uuid: UUID,
            manufacturer: 'ACME',
            productName: 'Rocket',
            version: 42,
            serialNumber: 'SN-7',
            skuNumber: 'SKU9',
            family: 'Fam',
          },
        }),
      ).tables,
    ).find((s) => s.type === 1)!;
    assert.deepEqual(
      [0x04, 0x05, 0x06, 0x07, 0x19, 0x1a].map((o) => str(custom, o)),
      ['ACME', 'Rocket', '42', 'SN-7', 'SKU9', 'Fam'],
    );
    assert.deepEqual([...custom.formatted.subarray(8, 24)], UUID_BYTES);
    assert.equal(custom.formatted[0x18], 0x06, 'wake-up: power switch');

    const dflt = parseTable(buildSmbios(input()).tables).find((s) => s.type === 1)!;
    assert.deepEqual(
      [0x04, 0x05, 0x06, 0x07, 0x19, 0x1a].map((o) => str(dflt, o)),
      ['Oxide', 'OxVM', undefined, UUID, undefined, undefined],
    );
    const empty = parseTable(buildSmbios(input({ system: { uuid: UUID, version: '' } })).tables).find(
      (s) => s.type === 1,
    )!;
    assert.equal(empty.formatted[0x06], 0, 'an empty string becomes "no string"');
  });

  it('describes the BIOS, processor and memory', () => {
    const structs = parseTable(buildSmbios(input()).tables);
    const t0 = structs.find((s) => s.type === 0)!;
    assert.deepEqual([str(t0, 4), str(t0, 5), str(t0, 8)], ['Oxide', 'v1.2.3', 'Bureaucracy 41, 3186 YOLD']);
    assert.equal(t0.formatted[9], 31, 'ROM size: 2 MiB = 32 × 64 KiB');
    assert.equal(t0.formatted[0x0a], 0x08, 'characteristics not supported');
    assert.deepEqual([t0.formatted[0x12], t0.formatted[0x13]], [0x01, 0x18], 'ACPI; UEFI and VM');

    const t4 = structs.find((s) => s.type === 4)!;
    const v4 = new DataView(t4.formatted.buffer, t4.formatted.byteOffset);
    assert.equal(str(t4, 7), 'Advanced Micro Devices, Inc.');
    assert.equal(str(t4, 0x10), 'AMD EPYC 7713 64-Core Processor');
    assert.equal(t4.formatted[6], 0x6b, 'Zen family');
    assert.equal(v4.getUint16(0x28, true), 0x6b);
    assert.equal(v4.getUint32(8, true), 0x00a0_0f11);
    assert.equal(v4.getUint32(12, true), 0x178b_fbff);
    assert.deepEqual([t4.formatted[0x23], t4.formatted[0x24], t4.formatted[0x25]], [4, 4, 4]);
    const intel = parseTable(
      buildSmbios(input({ cpu: { ...input().cpu, vendor: 'GenuineIntel', family: 6, brand: 'Intel Xeon' } })).tables,
    ).find((s) => s.type === 4)!;
    assert.equal(str(intel, 7), 'Intel');
    assert.equal(intel.formatted[6], 0x02, 'unknown family');

    const t16 = structs.find((s) => s.type === 16)!;
    assert.equal(new DataView(t16.formatted.buffer, t16.formatted.byteOffset).getUint32(7, true), (8 * GiB) / 1024);
    const t17 = structs.find((s) => s.type === 17)!;
    const v17 = new DataView(t17.formatted.buffer, t17.formatted.byteOffset);
    assert.equal(v17.getUint16(4, true), 0x1600, 'belongs to the array');
    assert.equal(v17.getUint16(0x0c, true), 8192, 'size in MiB');
    const ranges = structs
      .filter((s) => s.type === 19)
      .map((s) => {
        const v = new DataView(s.formatted.buffer, s.formatted.byteOffset);
        return [v.getUint32(4, true), v.getUint32(8, true), v.getUint16(12, true)];
      });
    assert.deepEqual(ranges, [
      [0, (3 * GiB) / 1024 - 1, 0x1600],
      [(4 * GiB) / 1024, (9 * GiB) / 1024 - 1, 0x1600],
    ]);

    const small = parseTable(buildSmbios(input({ memory: { lowmem: 512 * MiB, highmem: 0 } })).tables);
    assert.equal(small.filter((s) => s.type === 19).length, 1, 'no high range without high memory');
    const big = parseTable(buildSmbios(input({ memory: { lowmem: 3 * GiB, highmem: 61 * GiB } })).tables);
    const b17 = big.find((s) => s.type === 17)!;
    const vb = new DataView(b17.formatted.buffer, b17.formatted.byteOffset);
    assert.deepEqual(
      [vb.getUint16(0x0c, true), vb.getUint32(0x1c, true)],
      [0x7fff, 65536],
      '64 GiB needs the extended size',
    );
  });

  it('rejects input it cannot encode', () => {
    const bad: Partial<SmbiosInput>[] = [
      { system: { uuid: 'not-a-uuid' } },
      { system: { uuid: UUID, manufacturer: 'a\0b' } },
      { romSize: 100 },
      { romSize: 0 },
      { cpus: 0 },
      { memory: { lowmem: 0, highmem: 0 } },
      { memory: { lowmem: 3 * GiB, highmem: 100 } },
    ];
    for (const over of bad) assert.throws(() => buildSmbios(input(over)), FirmwareConfigError, JSON.stringify(over));
  });

  it('decodes with dmidecode', () => {
    const dmidecode = debianFile('dmidecode', 'usr/sbin/dmidecode');
    const b = buildSmbios(
      input({ system: { uuid: UUID, manufacturer: 'ACME', productName: 'Rocket', version: 3, serialNumber: 'SN-7' } }),
    );
    // dmidecode --dump-bin layout: the entry point at 0 with the table
    // address set to 32, and the table at 32.
    const dump = new Uint8Array(32 + b.tables.length);
    dump.set(b.anchor);
    dump.set(b.tables, 32);
    new DataView(dump.buffer).setUint32(0x18, 32, true);
    dump[0x15] = (dump[0x15]! - sum(dump, 0x10, 0x0f)) & 0xff;
    dump[0x04] = (dump[0x04]! - sum(dump, 0, 0x1f)) & 0xff;
    const dir = mkdtempSync(join(tmpdir(), 'propolis-smbios-'));
    try {
      writeFileSync(join(dir, 'dump.bin'), dump);
      const out = execFileSync(dmidecode, ['--from-dump', join(dir, 'dump.bin')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      assert.match(out, /SMBIOS 2\.7 present\./);
      assert.match(out, new RegExp(`10 structures occupying ${b.tables.length} bytes\\.`));
      assert.match(
        out,
        /System Information\n\tManufacturer: ACME\n\tProduct Name: Rocket\n\tVersion: 3\n\tSerial Number: SN-7\n\tUUID: 12345678-9abc-def0-1122-334455667788\n/,
      );
      assert.match(
        out,
        /BIOS Information\n\tVendor: Oxide\n\tVersion: v1\.2\.3\n\tRelease Date: Bureaucracy 41, 3186 YOLD\n\tROM Size: 2 MB/,
      );
      assert.match(out, /Processor Information[^]*Family: Zen[^]*Core Count: 4\n\tCore Enabled: 4\n\tThread Count: 4/);
      assert.match(out, /Memory Device[^]*Size: 8 GB/);
      assert.doesNotMatch(out, /invalid|wrong|bad|truncated|checksum/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
