// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// cidata volumes, checked two ways: by this test's own reading of the FAT
// layout (boot sector fields, 12-bit FAT chains, long-name entries and
// their checksums, with the test's own constants), and by independent
// tools — Debian's mtools (minfo, mdir, mtype), dosfstools' fsck.fat and
// util-linux's blkid (what cloud-init itself uses to find the volume by
// its label). A tool that cannot be fetched fails the test.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { debianFile } from '../testing/debian.js';
import { mtool } from '../testing/mtools.js';
import { buildCidata, buildCloudInitVolume, CidataError, type CidataFile } from './cidata.js';

const dir = mkdtempSync(join(tmpdir(), 'cidata-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Bytes of every value, in a pattern that differs per sector. */
const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

let imageCount = 0;
function imageFile(image: Uint8Array): string {
  const p = join(dir, `cidata-${imageCount++}.img`);
  writeFileSync(p, image);
  return p;
}

// --- the independent tools ---------------------------------------------------

function fsckFat(img: string): string {
  const r = spawnSync(debianFile('dosfstools', 'sbin/fsck.fat'), ['-n', '-v', '-V', img], { encoding: 'utf8' });
  assert.equal(r.status, 0, `fsck.fat -n -V found problems:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function blkid(img: string): string {
  const bin = ['/usr/sbin/blkid', '/sbin/blkid'].find((p) => existsSync(p));
  assert.ok(bin, 'blkid (util-linux) is needed: it is how cloud-init finds the volume by its label');
  return execFileSync(bin, ['-p', '-o', 'export', img], { encoding: 'utf8' });
}

// --- this test's own reading of the layout -----------------------------------

interface Parsed {
  bytsPerSec: number;
  secPerClus: number;
  rsvdSecCnt: number;
  numFATs: number;
  rootEntCnt: number;
  totSec: number;
  media: number;
  fatSz: number;
  label: string;
  bpbLabel: string;
  fsType: string;
  files: { long: string | undefined; short: string; cluster: number; size: number; chain: number[] }[];
  fat: (n: number) => number;
  data: (f: { chain: number[]; size: number }) => Uint8Array;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/** The checksum of an 11-byte short name, written out from the specification's description. */
function checksum(name: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + name[i]!) & 0xff;
  return sum;
}

function parse(img: Uint8Array): Parsed {
  const latin = (o: number, n: number): string => Buffer.from(img.subarray(o, o + n)).toString('latin1');
  const p = {
    bytsPerSec: u16(img, 0x0b),
    secPerClus: img[0x0d]!,
    rsvdSecCnt: u16(img, 0x0e),
    numFATs: img[0x10]!,
    rootEntCnt: u16(img, 0x11),
    totSec: u16(img, 0x13),
    media: img[0x15]!,
    fatSz: u16(img, 0x16),
    bpbLabel: latin(0x2b, 11),
    fsType: latin(0x36, 8),
  };
  const fatAt = p.rsvdSecCnt * 512;
  const fat = (n: number): number => {
    const v = u16(img, fatAt + Math.floor((n * 3) / 2));
    return n % 2 === 0 ? v & 0xfff : v >> 4;
  };
  const rootAt = (p.rsvdSecCnt + p.numFATs * p.fatSz) * 512;
  const dataAt = rootAt + p.rootEntCnt * 32;
  let label = '';
  const files: Parsed['files'] = [];
  let lfn: { parts: string[]; sum: number; expect: number } | undefined;
  for (let e = 0; e < p.rootEntCnt; e++) {
    const at = rootAt + e * 32;
    if (img[at] === 0) break;
    const attr = img[at + 11]!;
    if (attr === 0x0f) {
      const ord = img[at]!;
      const units = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30].map((o) => u16(img, at + o));
      const end = units.indexOf(0);
      const text = String.fromCharCode(...(end < 0 ? units : units.slice(0, end)));
      if (ord & 0x40) lfn = { parts: [], sum: img[at + 13]!, expect: ord & 0x3f };
      assert.ok(lfn, 'a long-name entry without its first (0x40) entry');
      assert.equal(ord & 0x3f, lfn.expect, 'long-name entries run from the last part down to 1');
      assert.equal(img[at + 13], lfn.sum, 'every long-name entry of a name carries the same checksum');
      assert.equal(u16(img, at + 26), 0, 'LDIR_FstClusLO is 0');
      lfn.parts.unshift(text);
      lfn.expect--;
      continue;
    }
    const short = img.subarray(at, at + 11);
    if (attr & 0x08) {
      label = latin(at, 11);
      assert.equal(lfn, undefined);
      continue;
    }
    let long: string | undefined;
    if (lfn) {
      assert.equal(lfn.expect, 0, 'all long-name parts present');
      assert.equal(lfn.sum, checksum(short), `long-name checksum of ${latin(at, 11)}`);
      long = lfn.parts.join('');
      lfn = undefined;
    }
    const cluster = u16(img, at + 26);
    const chain: number[] = [];
    for (let c = cluster; c !== 0 && c < 0xff8; c = fat(c)) {
      assert.ok(c >= 2 && chain.length < 10000, `cluster ${c} in a chain`);
      chain.push(c);
    }
    files.push({ long, short: latin(at, 11), cluster, size: u16(img, at + 28) + u16(img, at + 30) * 0x10000, chain });
  }
  const data = (f: { chain: number[]; size: number }): Uint8Array => {
    const out = new Uint8Array(f.chain.length * 512);
    f.chain.forEach((c, i) => out.set(img.subarray(dataAt + (c - 2) * 512, dataAt + (c - 1) * 512), i * 512));
    return out.subarray(0, f.size);
  };
  return { ...p, label, files, fat, data };
}

// --- tests ---------------------------------------------------------------------

const USER = enc('#cloud-config\nusers:\n  - name: oxide\n    ssh_authorized_keys: [ssh-ed25519 AAAA]\n');
const META = enc('instance-id: 2b5c1e6a-1f0e-4f5e-9a43-4b1c2d3e4f50\nlocal-hostname: vm0\n');
const NET = enc('version: 2\nethernets:\n  eth0:\n    dhcp4: true\n');

describe('cidata volume layout (read by the test itself)', () => {
  const img = buildCloudInitVolume({ userData: USER, metaData: META, networkConfig: NET });
  const p = parse(img);

  it('has the BPB of a small FAT12 volume labelled CIDATA, and the boot signature', () => {
    assert.equal(p.bytsPerSec, 512);
    assert.equal(p.secPerClus, 1);
    assert.equal(p.rsvdSecCnt, 1);
    assert.equal(p.numFATs, 2);
    assert.ok(p.rootEntCnt >= 16 && p.rootEntCnt % 16 === 0, `root entries ${p.rootEntCnt}`);
    assert.equal(p.media, 0xf8);
    assert.equal(p.totSec * 512, img.length);
    assert.equal(u16(img, 0x20), 0, 'BPB_TotSec32 unused');
    assert.equal(img[0x26], 0x29, 'extended boot signature');
    assert.equal(p.bpbLabel, 'CIDATA     ');
    assert.equal(p.fsType, 'FAT12   ');
    assert.deepEqual([img[510], img[511]], [0x55, 0xaa]);
    assert.deepEqual([...img.subarray(0, 3)], [0xeb, 0x3c, 0x90], 'jmp short to offset 0x3E');
    assert.deepEqual([...img.subarray(0x3e, 0x40)], [0xcd, 0x18], 'the boot stub hands back to the BIOS (int 18h)');
    const clusters = p.totSec - (1 + 2 * p.fatSz + p.rootEntCnt / 16);
    assert.ok(clusters < 4085, 'FAT12 by cluster count');
    assert.ok(Math.ceil(((clusters + 2) * 3) / 2 / 512) <= p.fatSz, 'the FAT covers every cluster');
    assert.equal(p.totSec % 32, 0, 'whole tracks of BPB_SecPerTrk (32)');
    assert.equal(u16(img, 0x18), 32);
  });

  it('keeps both FATs identical, with the media byte and an end-of-chain mark in entries 0 and 1', () => {
    const fatBytes = p.fatSz * 512;
    assert.deepEqual(img.subarray(512, 512 + fatBytes), img.subarray(512 + fatBytes, 512 + 2 * fatBytes));
    assert.equal(p.fat(0), 0xff8);
    assert.equal(p.fat(1), 0xfff);
  });

  it('lists the label, then user-data, meta-data and network-config with long names over 8.3 names', () => {
    assert.equal(p.label, 'CIDATA     ');
    assert.deepEqual(
      p.files.map((f) => [f.long, f.short]),
      [
        ['user-data', 'USER-D~1   '],
        ['meta-data', 'META-D~1   '],
        ['network-config', 'NETWOR~1   '],
      ],
    );
    for (const [f, want] of p.files.map((f, i) => [f, [USER, META, NET][i]!] as const)) {
      assert.equal(f.size, want.length);
      assert.deepEqual(p.data(f), want, f.long);
    }
  });
});

describe('cidata volumes checked by mtools, fsck.fat and blkid', () => {
  it('a cloud-init seed: label, long names and contents byte for byte', () => {
    const img = imageFile(buildCloudInitVolume({ userData: USER, metaData: META, networkConfig: NET }));
    const info = mtool('minfo', ['-i', img, '::']).toString('latin1');
    assert.match(info, /disk label="CIDATA {5}"/);
    assert.match(info, /disk type="FAT12 {3}"/);
    assert.match(info, /sector size: 512 bytes/);
    const listing = mtool('mdir', ['-i', img, '::']).toString('latin1');
    assert.match(listing, /Volume in drive : is CIDATA/);
    assert.match(listing, /^USER-D~1 +\d+ .* user-data$/m);
    assert.match(listing, /^META-D~1 +\d+ .* meta-data$/m);
    assert.match(listing, /^NETWOR~1 +\d+ .* network-config$/m);
    assert.match(listing, /3 files/);
    assert.deepEqual(new Uint8Array(mtool('mtype', ['-i', img, '::user-data'])), USER);
    assert.deepEqual(new Uint8Array(mtool('mtype', ['-i', img, '::meta-data'])), META);
    assert.deepEqual(new Uint8Array(mtool('mtype', ['-i', img, '::network-config'])), NET);
    const fsck = fsckFat(img);
    assert.match(fsck, /2 FATs, 12 bit entries/);
    assert.match(fsck, /4 files/); // fsck.fat counts the volume label too
    const id = blkid(img);
    assert.match(id, /^TYPE=vfat$/m);
    assert.match(id, /^LABEL=CIDATA$/m);
  });

  it('the most data a volume takes (512 sectors), files of every shape, and colliding short names', () => {
    const files: CidataFile[] = [
      { name: 'user-data', data: pattern(300 * 512 + 17, 1) }, // 301 sectors, a partial last one
      { name: 'meta-data', data: new Uint8Array(0) }, // no cluster at all
      { name: 'user-data2', data: pattern(512, 2) }, // exactly one sector; short name USER-D~2
      { name: 'README', data: enc('fits 8.3 as is: no long name\n') },
      { name: 'notes.txt', data: enc('lower case: a long name over NOTES.TXT\n') },
      { name: 'a name with spaces and.dots.yaml', data: pattern(208 * 512, 3) }, // 208 sectors: 512 in all
    ];
    const image = buildCidata(files);
    const p = parse(image);
    assert.deepEqual(
      p.files.map((f) => [f.long, f.short]),
      [
        ['user-data', 'USER-D~1   '],
        ['meta-data', 'META-D~1   '],
        ['user-data2', 'USER-D~2   '],
        [undefined, 'README     '],
        ['notes.txt', 'NOTES   TXT'],
        ['a name with spaces and.dots.yaml', 'ANAMEW~1YAM'],
      ],
    );
    assert.equal(p.fatSz, 2, 'more than 341 clusters need a second FAT sector');
    const img = imageFile(image);
    const listing = mtool('mdir', ['-i', img, '::']).toString('latin1');
    assert.match(listing, /^README +\d+ /m);
    assert.match(listing, /a name with spaces and\.dots\.yaml$/m);
    for (const f of files) {
      assert.deepEqual(new Uint8Array(mtool('mtype', ['-i', img, `::${f.name}`])), f.data, f.name);
      assert.deepEqual(p.data(p.files[files.indexOf(f)]!), f.data, `${f.name} (own reading)`);
    }
    fsckFat(img);
    assert.match(blkid(img), /^LABEL=CIDATA$/m);
  });

  it('an empty seed still makes a valid volume', () => {
    const img = imageFile(buildCloudInitVolume({ userData: new Uint8Array(0), metaData: new Uint8Array(0) }));
    const listing = mtool('mdir', ['-i', img, '::']).toString('latin1');
    assert.match(listing, /user-data$/m);
    assert.doesNotMatch(listing, /network-config/);
    fsckFat(img);
  });
});

describe('cidata limits and determinism', () => {
  it('refuses more than 512 sectors of data, counting whole sectors per file', () => {
    assert.throws(
      () =>
        buildCidata([
          { name: 'user-data', data: new Uint8Array(511 * 512) },
          { name: 'meta-data', data: new Uint8Array(1) },
          { name: 'network-config', data: new Uint8Array(1) },
        ]),
      (e: unknown) =>
        e instanceof CidataError &&
        e.code === 'CIDATA_TOO_LARGE' &&
        /needs 513 sectors of 512 bytes; a cidata volume holds at most 512 \(256 KiB\)/.test(e.message),
    );
    assert.doesNotThrow(() => buildCidata([{ name: 'user-data', data: new Uint8Array(512 * 512) }]));
  });

  it('refuses names FAT cannot hold and names that differ only in case', () => {
    for (const [name, why] of [
      ['', /1 to 255 characters/],
      ['x'.repeat(256), /1 to 255 characters/],
      ['a/b', /cannot contain "\/"/],
      ['what?', /cannot contain "\?"/],
      ['tab\there', /printable ASCII/],
      ['caf\u00e9', /printable ASCII/],
      ['trailing.', /end with a period/],
    ] as const) {
      assert.throws(
        () => buildCidata([{ name, data: new Uint8Array(0) }]),
        (e: unknown) => e instanceof CidataError && e.code === 'CIDATA_BAD_NAME' && why.test(e.message),
        JSON.stringify(name),
      );
    }
    assert.throws(
      () =>
        buildCidata([
          { name: 'user-data', data: new Uint8Array(0) },
          { name: 'USER-DATA', data: new Uint8Array(0) },
        ]),
      /"USER-DATA" is given twice/,
    );
  });

  it('is deterministic: the same files give the same bytes; other contents another serial number', () => {
    const a = buildCloudInitVolume({ userData: USER, metaData: META });
    assert.deepEqual(buildCloudInitVolume({ userData: USER, metaData: META }), a);
    const b = buildCloudInitVolume({ userData: USER, metaData: enc('instance-id: other\n') });
    assert.notDeepEqual(a.subarray(0x27, 0x2b), b.subarray(0x27, 0x2b));
  });
});
