// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// "cidata" volumes: the small read-only FAT12 disk that cloud-init's NoCloud
// datasource looks for by its label, holding `user-data`, `meta-data` and
// optionally `network-config` in the root directory. propolis-standalone
// builds one from its `[cloudinit]` table and propolis-cli from
// `new --cloud-init`; either way it travels as a blob backend.
//
// The image is built directly from the FAT specification (Microsoft's "FAT:
// General Overview of On-Disk Format"), smallest layout that fits:
//
//   sector 0                boot sector: BPB, extended BPB (label CIDATA,
//                           "FAT12   "), a boot stub, signature 0x55AA
//   1 .. F                  FAT #1 (12-bit entries), F = sectors per FAT
//   F+1 .. 2F               FAT #2, a copy
//   2F+1 .. 2F+R            root directory: the volume label entry, then per
//                           file its long-name entries and its 8.3 entry;
//                           R sectors of 16 entries each
//   2F+R+1 ..               data: one 512-byte sector per cluster, files
//                           stored contiguously from cluster 2 in order
//
// The total is rounded up to whole "tracks" of 32 sectors (mtools refuses a
// volume whose size is not a multiple of the BPB's sectors per track); the
// slack is free clusters. Everything is deterministic: fixed timestamps
// (the FAT epoch, 1980-01-01 00:00) and a volume serial number hashed from
// the contents, so the same files give the same image byte for byte.
//
// Pure; no I/O, no threads.

export const CIDATA_LABEL = 'CIDATA';
export const CIDATA_SECTOR_SIZE = 512;
/** As in the seed: more than this much file data is refused (cloud-init seeds are small). */
export const CIDATA_MAX_DATA_SECTORS = 512;

export interface CidataFile {
  /** A long file name (1 to 255 printable ASCII characters), stored in the root directory. */
  readonly name: string;
  readonly data: Uint8Array;
}

export type CidataErrorCode =
  /** The files need more than CIDATA_MAX_DATA_SECTORS sectors. */
  | 'CIDATA_TOO_LARGE'
  /** A file name FAT cannot hold, or two names that FAT would treat as one. */
  | 'CIDATA_BAD_NAME';

export class CidataError extends Error {
  constructor(
    readonly code: CidataErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CidataError';
  }
}

/** Boot sector fields (the specification's BPB_/BS_ names), byte offsets. */
const BS = {
  jmpBoot: 0,
  oemName: 3,
  bytsPerSec: 11,
  secPerClus: 13,
  rsvdSecCnt: 14,
  numFATs: 16,
  rootEntCnt: 17,
  totSec16: 19,
  media: 21,
  fatSz16: 22,
  secPerTrk: 24,
  numHeads: 26,
  hiddSec: 28,
  totSec32: 32,
  // Extended BPB of FAT12/FAT16 volumes.
  drvNum: 36,
  reserved1: 37,
  bootSig: 38,
  volID: 39,
  volLab: 43,
  filSysType: 54,
  bootCode: 62,
  signature: 510,
} as const;

/** Short (8.3) directory entry fields (DIR_ names). */
const DIR = {
  name: 0,
  attr: 11,
  ntRes: 12,
  crtTimeTenth: 13,
  crtTime: 14,
  crtDate: 16,
  lstAccDate: 18,
  fstClusHI: 20,
  wrtTime: 22,
  wrtDate: 24,
  fstClusLO: 26,
  fileSize: 28,
} as const;

/** Long-name directory entry fields (LDIR_ names). */
const LDIR = { ord: 0, name1: 1, attr: 11, type: 12, chksum: 13, name2: 14, fstClusLO: 26, name3: 28 } as const;

const ATTR_VOLUME_ID = 0x08;
const ATTR_ARCHIVE = 0x20;
/** READ_ONLY | HIDDEN | SYSTEM | VOLUME_ID: marks a long-name entry. */
const ATTR_LONG_NAME = 0x0f;
/** Or-ed into the ordinal of the last (first stored) long-name entry of a name. */
const LAST_LONG_ENTRY = 0x40;
/** UCS-2 characters per long-name entry: 5 in name1, 6 in name2, 2 in name3. */
const LFN_CHARS_PER_ENTRY = 13;
const LFN_MAX = 255;

const DIR_ENTRY_SIZE = 32;
const ENTRIES_PER_SECTOR = CIDATA_SECTOR_SIZE / DIR_ENTRY_SIZE;
const RESERVED_SECTORS = 1;
const NUM_FATS = 2;
/** A fixed (non-removable) disk. FAT[0] carries it in its low byte. */
const MEDIA_FIXED = 0xf8;
const SECTORS_PER_TRACK = 32;
/** Any FAT12 entry value at or above 0xFF8 ends a chain; 0xFFF is the one written. */
const FAT12_EOC = 0xfff;
/** A volume with this many clusters or more is FAT16 by definition. */
const FAT12_MAX_CLUSTERS = 4084;
const FIRST_DATA_CLUSTER = 2;
/** 1980-01-01 as a FAT date: (year − 1980) << 9 | month << 5 | day. Time 00:00:00 is 0. */
const FAT_EPOCH_DATE = (0 << 9) | (1 << 5) | 1;

/**
 * The boot stub at BS_BootCode, where BS_jmpBoot lands: `int 0x18` (the
 * BIOS's "boot failed, try the next device" — SeaBIOS moves on down its
 * boot list), then `hlt; jmp $-1` should a BIOS return from it. The
 * signature makes the sector look bootable; this keeps a firmware that
 * tries it from hanging.
 */
const BOOT_STUB = [0xcd, 0x18, 0xf4, 0xeb, 0xfd];

/** Characters a short name may hold besides A–Z and 0–9. */
const SHORT_NAME_EXTRA = new Set("$%'-_@~`!(){}^#&");
/** Characters no FAT name may hold. */
const FORBIDDEN = new Set('"*/:<>?\\|');

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

function checkName(name: string): void {
  const bad = (why: string): never => {
    throw new CidataError('CIDATA_BAD_NAME', `cidata file name ${JSON.stringify(name)}: ${why}`);
  };
  if (name.length === 0 || name.length > LFN_MAX) bad(`must be 1 to ${LFN_MAX} characters long`);
  for (const ch of name) {
    const c = ch.charCodeAt(0);
    if (c < 0x20 || c > 0x7e) bad('only printable ASCII characters are supported');
    if (FORBIDDEN.has(ch)) bad(`FAT names cannot contain ${JSON.stringify(ch)}`);
  }
  if (/[. ]$/.test(name)) bad('FAT names cannot end with a period or a space');
}

interface ShortName {
  /** The 11 bytes of DIR_Name: base padded to 8, extension padded to 3. */
  bytes: Uint8Array;
  /** As a directory listing shows it ("USER-D~1", "README.TXT"). */
  display: string;
}

/**
 * The 8.3 name for a long name: the specification's basis-name generation
 * (upper case; spaces and leading periods dropped; characters a short name
 * cannot hold become '_'; up to 8 characters before the last period and 3
 * after it) and, when that lost anything or collides with a name already
 * taken, a numeric tail "~n" on the base.
 */
function shortNameFor(name: string, taken: Set<string>): ShortName {
  let lossy = false;
  let s = name.toUpperCase().replace(/ /g, '');
  if (s.length !== name.length) lossy = true;
  const noLeadingDots = s.replace(/^\.+/, '');
  if (noLeadingDots !== s) lossy = true;
  s = noLeadingDots;
  const clean = (part: string): string =>
    [...part]
      .map((ch) => {
        if (/[A-Z0-9]/.test(ch) || SHORT_NAME_EXTRA.has(ch)) return ch;
        lossy = true;
        return '_';
      })
      .join('');
  const dot = s.lastIndexOf('.');
  let primary = dot >= 0 ? s.slice(0, dot) : s;
  const ext = clean(dot >= 0 ? s.slice(dot + 1) : '');
  // Periods inside the primary part cannot be kept.
  if (primary.includes('.')) {
    primary = primary.replace(/\./g, '');
    lossy = true;
  }
  primary = clean(primary);
  const fits = primary.length >= 1 && primary.length <= 8 && ext.length <= 3;
  let base = primary.slice(0, 8) || '_';
  const ext3 = ext.slice(0, 3);
  const key = (b: string): string => b.padEnd(8, ' ') + ext3.padEnd(3, ' ');
  if (lossy || !fits || taken.has(key(base))) {
    for (let n = 1; ; n++) {
      const tail = `~${n}`;
      const candidate = base.slice(0, 8 - tail.length) + tail;
      if (!taken.has(key(candidate))) {
        base = candidate;
        break;
      }
    }
  }
  const k = key(base);
  taken.add(k);
  return { bytes: Buffer.from(k, 'latin1'), display: ext3 === '' ? base : `${base}.${ext3}` };
}

/** The checksum of an 8.3 name that ties its long-name entries to it (rotate right, add). */
function shortNameChecksum(short: Uint8Array): number {
  let sum = 0;
  for (const b of short) sum = ((sum & 1 ? 0x80 : 0) + (sum >> 1) + b) & 0xff;
  return sum;
}

function longNameEntryCount(name: string): number {
  return Math.ceil(name.length / LFN_CHARS_PER_ENTRY);
}

/** FAT entry n of a FAT12 table: 12 bits at byte n × 1.5, in the low or high part of a 16-bit word. */
function setFat12(fat: Uint8Array, n: number, value: number): void {
  const off = n + (n >> 1);
  if (n & 1) {
    fat[off] = ((fat[off] as number) & 0x0f) | ((value & 0x0f) << 4);
    fat[off + 1] = (value >> 4) & 0xff;
  } else {
    fat[off] = value & 0xff;
    fat[off + 1] = ((fat[off + 1] as number) & 0xf0) | ((value >> 8) & 0x0f);
  }
}

/** FNV-1a over names and contents: a stable volume serial number. */
function volumeId(files: readonly CidataFile[]): number {
  let h = 0x811c9dc5;
  const mix = (b: number): void => {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  };
  for (const f of files) {
    for (const ch of f.name) mix(ch.charCodeAt(0));
    mix(0);
    for (const b of f.data) mix(b);
  }
  return h;
}

interface CidataLayout {
  totalSectors: number;
  sectorsPerFat: number;
  rootEntries: number;
  firstDataSector: number;
  clusters: number;
}

/**
 * Sizes for `dataSectors` of file data and `dirEntries` root directory
 * entries. The FAT's size depends on the cluster count and the cluster
 * count on the space left after the FATs, so iterate to the fixed point
 * (one or two rounds at these sizes).
 */
function layout(dataSectors: number, dirEntries: number): CidataLayout {
  const rootEntries = roundUp(Math.max(dirEntries, 1), ENTRIES_PER_SECTOR);
  const rootSectors = rootEntries / ENTRIES_PER_SECTOR;
  let sectorsPerFat = 1;
  for (;;) {
    const firstDataSector = RESERVED_SECTORS + NUM_FATS * sectorsPerFat + rootSectors;
    const totalSectors = roundUp(firstDataSector + Math.max(dataSectors, 1), SECTORS_PER_TRACK);
    const clusters = totalSectors - firstDataSector;
    const need = Math.ceil(Math.ceil(((clusters + FIRST_DATA_CLUSTER) * 3) / 2) / CIDATA_SECTOR_SIZE);
    if (need <= sectorsPerFat) return { totalSectors, sectorsPerFat, rootEntries, firstDataSector, clusters };
    sectorsPerFat = need;
  }
}

/**
 * A FAT12 volume labelled CIDATA holding `files` in its root directory, in
 * order. Throws CidataError for names FAT cannot hold and for more than
 * CIDATA_MAX_DATA_SECTORS sectors of data.
 */
export function buildCidata(files: readonly CidataFile[]): Uint8Array {
  const seen = new Set<string>();
  for (const f of files) {
    checkName(f.name);
    // FAT compares names without regard to case.
    const folded = f.name.toUpperCase();
    if (seen.has(folded)) {
      throw new CidataError('CIDATA_BAD_NAME', `cidata file name ${JSON.stringify(f.name)} is given twice`);
    }
    seen.add(folded);
  }
  const sectorsOf = (f: CidataFile): number => Math.ceil(f.data.byteLength / CIDATA_SECTOR_SIZE);
  const dataSectors = files.reduce((n, f) => n + sectorsOf(f), 0);
  if (dataSectors > CIDATA_MAX_DATA_SECTORS) {
    throw new CidataError(
      'CIDATA_TOO_LARGE',
      `cloud-init data needs ${dataSectors} sectors of 512 bytes; a cidata volume holds at most ` +
        `${CIDATA_MAX_DATA_SECTORS} (${(CIDATA_MAX_DATA_SECTORS * CIDATA_SECTOR_SIZE) / 1024} KiB)`,
    );
  }

  const taken = new Set<string>();
  const names = files.map((f) => {
    const short = shortNameFor(f.name, taken);
    return { short, long: short.display === f.name ? undefined : f.name };
  });
  const dirEntries = 1 + names.reduce((n, x) => n + 1 + (x.long === undefined ? 0 : longNameEntryCount(x.long)), 0);
  const L = layout(dataSectors, dirEntries);
  if (L.clusters > FAT12_MAX_CLUSTERS) throw new Error(`cidata layout: ${L.clusters} clusters is not FAT12`);

  const image = new Uint8Array(L.totalSectors * CIDATA_SECTOR_SIZE);
  const view = new DataView(image.buffer);
  const ascii = (off: number, text: string, width: number): void => {
    image.set(Buffer.from(text.padEnd(width, ' '), 'latin1'), off);
  };
  const label = CIDATA_LABEL.padEnd(11, ' ');

  // Boot sector.
  image.set([0xeb, BS.bootCode - 2, 0x90], BS.jmpBoot); // jmp short to the boot stub; nop
  // The name the specification recommends for the widest compatibility.
  ascii(BS.oemName, 'MSWIN4.1', 8);
  view.setUint16(BS.bytsPerSec, CIDATA_SECTOR_SIZE, true);
  image[BS.secPerClus] = 1;
  view.setUint16(BS.rsvdSecCnt, RESERVED_SECTORS, true);
  image[BS.numFATs] = NUM_FATS;
  view.setUint16(BS.rootEntCnt, L.rootEntries, true);
  view.setUint16(BS.totSec16, L.totalSectors, true);
  image[BS.media] = MEDIA_FIXED;
  view.setUint16(BS.fatSz16, L.sectorsPerFat, true);
  view.setUint16(BS.secPerTrk, SECTORS_PER_TRACK, true);
  view.setUint16(BS.numHeads, 1, true);
  view.setUint32(BS.hiddSec, 0, true);
  view.setUint32(BS.totSec32, 0, true);
  image[BS.drvNum] = 0x80;
  image[BS.reserved1] = 0;
  image[BS.bootSig] = 0x29; // volume id, label and type follow
  view.setUint32(BS.volID, volumeId(files), true);
  ascii(BS.volLab, label, 11);
  ascii(BS.filSysType, 'FAT12', 8);
  image.set(BOOT_STUB, BS.bootCode);
  image[BS.signature] = 0x55;
  image[BS.signature + 1] = 0xaa;

  // FAT: entry 0 holds the media byte, entry 1 an end-of-chain mark; then each file's chain.
  const fat = new Uint8Array(L.sectorsPerFat * CIDATA_SECTOR_SIZE);
  setFat12(fat, 0, 0xf00 | MEDIA_FIXED);
  setFat12(fat, 1, FAT12_EOC);
  const firstCluster: number[] = [];
  let next = FIRST_DATA_CLUSTER;
  for (const f of files) {
    const n = sectorsOf(f);
    firstCluster.push(n === 0 ? 0 : next);
    for (let i = 0; i < n; i++) setFat12(fat, next + i, i === n - 1 ? FAT12_EOC : next + i + 1);
    if (n > 0) {
      const at = (L.firstDataSector + (next - FIRST_DATA_CLUSTER)) * CIDATA_SECTOR_SIZE;
      image.set(f.data, at);
    }
    next += n;
  }
  for (let i = 0; i < NUM_FATS; i++) image.set(fat, (RESERVED_SECTORS + i * L.sectorsPerFat) * CIDATA_SECTOR_SIZE);

  // Root directory.
  let entry = (RESERVED_SECTORS + NUM_FATS * L.sectorsPerFat) * CIDATA_SECTOR_SIZE;
  const shortEntry = (name: Uint8Array, attr: number, cluster: number, size: number): void => {
    image.set(name, entry + DIR.name);
    image[entry + DIR.attr] = attr;
    image[entry + DIR.ntRes] = 0;
    image[entry + DIR.crtTimeTenth] = 0;
    view.setUint16(entry + DIR.crtTime, 0, true);
    view.setUint16(entry + DIR.crtDate, FAT_EPOCH_DATE, true);
    view.setUint16(entry + DIR.lstAccDate, FAT_EPOCH_DATE, true);
    view.setUint16(entry + DIR.fstClusHI, 0, true);
    view.setUint16(entry + DIR.wrtTime, 0, true);
    view.setUint16(entry + DIR.wrtDate, FAT_EPOCH_DATE, true);
    view.setUint16(entry + DIR.fstClusLO, cluster, true);
    view.setUint32(entry + DIR.fileSize, size, true);
    entry += DIR_ENTRY_SIZE;
  };
  shortEntry(Buffer.from(label, 'latin1'), ATTR_VOLUME_ID, 0, 0);
  files.forEach((f, i) => {
    const { short, long } = names[i]!;
    if (long !== undefined) {
      // Long-name entries precede their 8.3 entry, last part first. The name
      // is UCS-2, ended by a NUL when it does not fill the last entry, and
      // padded with 0xFFFF.
      const count = longNameEntryCount(long);
      const checksum = shortNameChecksum(short.bytes);
      for (let ord = count; ord >= 1; ord--) {
        image[entry + LDIR.ord] = ord === count ? ord | LAST_LONG_ENTRY : ord;
        image[entry + LDIR.attr] = ATTR_LONG_NAME;
        image[entry + LDIR.type] = 0;
        image[entry + LDIR.chksum] = checksum;
        view.setUint16(entry + LDIR.fstClusLO, 0, true);
        const slots = [
          ...[0, 1, 2, 3, 4].map((j) => LDIR.name1 + 2 * j),
          ...[0, 1, 2, 3, 4, 5].map((j) => LDIR.name2 + 2 * j),
          ...[0, 1].map((j) => LDIR.name3 + 2 * j),
        ];
        slots.forEach((off, j) => {
          const at = (ord - 1) * LFN_CHARS_PER_ENTRY + j;
          const unit = at < long.length ? long.charCodeAt(at) : at === long.length ? 0x0000 : 0xffff;
          view.setUint16(entry + off, unit, true);
        });
        entry += DIR_ENTRY_SIZE;
      }
    }
    shortEntry(short.bytes, ATTR_ARCHIVE, firstCluster[i]!, f.data.byteLength);
  });
  return image;
}

/** The files of a NoCloud seed. `network-config` is written only when given (it is optional). */
export interface CloudInitSeed {
  userData: Uint8Array;
  metaData: Uint8Array;
  networkConfig?: Uint8Array | undefined;
}

/** The cidata volume for a NoCloud seed: `user-data`, `meta-data` and, if given, `network-config`. */
export function buildCloudInitVolume(seed: CloudInitSeed): Uint8Array {
  return buildCidata([
    { name: 'user-data', data: seed.userData },
    { name: 'meta-data', data: seed.metaData },
    ...(seed.networkConfig === undefined ? [] : [{ name: 'network-config', data: seed.networkConfig }]),
  ]);
}
