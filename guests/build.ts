// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Builds the project's test guests: freestanding x86 assembly under
// guests/src/, each .S file assembled with the machine's gcc (which runs cpp
// and as), linked with ld and rom.ld into an ELF laid out at 0xFFFF_0000, and
// turned into a flat 64 KiB bootrom with `objcopy -O binary`, written to
// guests/out/<name>.rom. Objects, ELFs and link maps stay in guests/out/obj/.
//
// Boot-sector guests (those with a `disk` entry) are linked with their own
// linker script at 0x7C00 instead, and their flat code (boot sector plus
// stage 2) is written into raw disk images guests/out/<image>.img together
// with a generated data region; the layout is described above diskData().
//
// testos (guests/testos/, see its README.md) is built differently: a small
// freestanding kernel in C and assembly, compiled with gcc and linked at
// 1 MiB, then wrapped twice — in a bootrom (guests/out/testos.rom: the
// kernel at the ROM's start, a stub in its last 4 KiB that copies it to
// 1 MiB) and in a raw disk image (guests/out/testos.img: a boot sector that
// loads it with INT 13h, then the kernel from LBA 1). The stubs get the
// kernel's size as preprocessor defines; see buildTestos().
//
// Usage: node dist/guests/build.js [--force] [name...]
//   --force   rebuild even when the output is up to date
//   name...   build only these guests (default: all)
//
// A guest is skipped when its outputs are newer than its sources, every file
// they #include (followed recursively) and the linker script (for disk images,
// also this script, which generates their data). One line is printed per
// guest built. A missing tool or a failed step exits non-zero with the
// failing command and its output.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const srcDir = join(root, 'guests', 'src');
const outDir = join(root, 'guests', 'out');
const objDir = join(outDir, 'obj');
const linkerScript = join(srcDir, 'rom.ld');

/** Every image is exactly this size; rom.ld lays it out. */
const ROM_SIZE = 0x10000;
/** Offset of the reset vector (physical 0xFFFF_FFF0) in the image. */
const RESET_OFFSET = ROM_SIZE - 16;
/** rom.ld fills unused ROM with this byte (hlt). */
const FILL_BYTE = 0xf4;

interface DiskImage {
  /** Output is guests/out/<file>. */
  readonly file: string;
  /** MiB of generated data the guest reads and checks. */
  readonly mib: number;
}

interface DiskGuest {
  /** Linker script in guests/src/ laying out the boot sector and stage 2 at 0x7C00. */
  readonly linkerScript: string;
  /** The images to write, all with the same boot code. */
  readonly images: readonly DiskImage[];
}

/** A guest with its own build steps (testos). */
interface CustomBuild {
  /** Shown in the "built" line instead of the source list. */
  readonly from: string;
  readonly outputs: () => string[];
  /** Every file the outputs depend on. */
  readonly inputs: () => Set<string>;
  readonly build: () => void;
}

interface Guest {
  /** Output is guests/out/<name>.rom, or the disk images when `disk` is set. */
  readonly name: string;
  /** Source files in guests/src/, each assembled to one object; linked in this order. */
  readonly sources: readonly string[];
  /** A boot-sector guest, built into raw disk images instead of a bootrom. */
  readonly disk?: DiskGuest;
  /** Built by these steps instead (sources and disk unused). */
  readonly custom?: CustomBuild;
}

const GUESTS: readonly Guest[] = [
  { name: 'hello', sources: ['hello.S', 'boot64.S'] },
  { name: 'flood', sources: ['flood.S', 'boot64.S'] },
  { name: 'smp', sources: ['smp.S', 'boot64.S'] },
  { name: 'pio-bench', sources: ['pio-bench.S'] },
  { name: 'blkbench', sources: ['blkbench.S', 'boot64.S'] },
  { name: 'netping', sources: ['netping.S', 'boot64.S'] },
  { name: 'reset-cf9', sources: ['reset-cf9.S'] },
  { name: 'reset-kbd', sources: ['reset-kbd.S'] },
  { name: 'reset-triple', sources: ['reset-triple.S'] },
  { name: 'poweroff', sources: ['poweroff.S'] },
  {
    name: 'diskread',
    sources: ['diskread.S'],
    disk: {
      linkerScript: 'diskread.ld',
      images: [
        { file: 'diskread.img', mib: 8 },
        { file: 'diskread-small.img', mib: 1 },
      ],
    },
  },
  {
    name: 'fakelinux',
    sources: [],
    custom: {
      from: 'fakelinux.S',
      outputs: () => [join(outDir, 'fakelinux.bzimage')],
      inputs: () => new Set([...dependencies(join(srcDir, 'fakelinux.S')), join(root, 'guests', 'build.ts')]),
      build: () => buildFakelinux(),
    },
  },
  {
    name: 'testos',
    sources: [],
    custom: {
      from: 'guests/testos/',
      outputs: () => [join(outDir, 'testos.rom'), join(outDir, 'testos.img')],
      inputs: () => testosInputs(),
      build: () => buildTestos(),
    },
  },
];

const TOOLS = ['gcc', 'as', 'ld', 'objcopy'] as const;

class BuildError extends Error {}

function rel(p: string): string {
  return relative(root, p) || '.';
}

/** Fails with a clear message unless every tool the build runs is on PATH. */
function checkTools(): void {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error !== undefined || r.status !== 0) missing.push(tool);
  }
  if (missing.length > 0) {
    throw new BuildError(
      `required tool(s) not found or not working: ${missing.join(', ')}.\n` +
        "The test guests are built with the machine's gcc and GNU binutils " +
        '(on Debian: apt-get install gcc binutils).',
    );
  }
}

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8' });
  const line = [cmd, ...args.map((a) => (a.startsWith(root) ? rel(a) : a))].join(' ');
  if (r.error !== undefined) throw new BuildError(`could not run \`${line}\`: ${r.error.message}`);
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd();
    const how = r.status === null ? `killed by ${r.signal ?? 'a signal'}` : `exit status ${r.status}`;
    throw new BuildError(`\`${line}\` failed (${how})${output ? `:\n${output}` : ''}`);
  }
}

/**
 * The files a source depends on: itself and everything it pulls in with
 * `#include "..."` or `.include "..."`, recursively (searched next to the
 * including file, then in guests/src/ as gcc's -I does).
 */
function dependencies(file: string, seen: Set<string> = new Set()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BuildError(`cannot read ${rel(file)}: ${(e as Error).message}`);
  }
  for (const m of text.matchAll(/^\s*(?:#\s*include|\.include)\s+"([^"]+)"/gm)) {
    const name = m[1] as string;
    const candidates = [join(dirname(file), name), join(srcDir, name)];
    const found = candidates.find((c) => mtime(c) !== undefined);
    if (found === undefined) throw new BuildError(`${rel(file)}: included file "${name}" not found`);
    dependencies(found, seen);
  }
  return seen;
}

function mtime(p: string): number | undefined {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return undefined;
  }
}

function upToDate(output: string, inputs: Iterable<string>): boolean {
  const out = mtime(output);
  if (out === undefined) return false;
  for (const i of inputs) {
    const t = mtime(i);
    if (t === undefined || t >= out) return false;
  }
  return true;
}

/** Assembles a guest's sources and links them with `script` into guests/out/obj/<name>.elf. */
function compileAndLink(guest: Guest, script: string): string {
  const guestObjDir = join(objDir, guest.name);
  const elf = join(objDir, `${guest.name}.elf`);
  const map = join(objDir, `${guest.name}.map`);

  mkdirSync(guestObjDir, { recursive: true });
  const objs = guest.sources.map((source) => {
    const obj = join(guestObjDir, source.replace(/\.S$/, '.o'));
    const args = ['-c', '-nostdinc', '-I', srcDir, '-Wa,--fatal-warnings', '-Wa,--noexecstack'];
    run('gcc', [...args, '-o', obj, join(srcDir, source)]);
    return obj;
  });
  run('ld', [
    '-m',
    'elf_x86_64',
    '-nostdlib',
    '-static',
    '--build-id=none',
    '-z',
    'noexecstack',
    '--fatal-warnings',
    '-T',
    script,
    '-Map',
    map,
    '-o',
    elf,
    ...objs,
  ]);
  return elf;
}

/** Copies one output section of an ELF out as a flat binary. */
function flatSection(elf: string, section: string, tmp: string): Buffer {
  rmSync(tmp, { force: true });
  run('objcopy', ['-O', 'binary', '-j', section, elf, tmp]);
  try {
    return readFileSync(tmp);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Writes `data` to `file` through a temporary file, so a failed build leaves no half-written output. */
function writeOutput(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, data);
  chmodSync(tmp, 0o644);
  renameSync(tmp, file);
}

function buildRom(guest: Guest): void {
  const rom = join(outDir, `${guest.name}.rom`);
  const image = flatSection(compileAndLink(guest, linkerScript), '.rom', `${rom}.tmp`);
  if (image.length !== ROM_SIZE) {
    throw new BuildError(`${rel(rom)}: image is ${image.length} bytes, expected exactly ${ROM_SIZE}`);
  }
  if (image[RESET_OFFSET] === FILL_BYTE) {
    throw new BuildError(`${rel(rom)}: nothing at the reset vector (offset 0x${RESET_OFFSET.toString(16)})`);
  }
  writeOutput(rom, image);
}

// ---- Disk images for boot-sector guests (diskread) ----
//
// Layout of guests/out/<image>.img (raw, 512-byte sectors):
//
//   LBA 0                 boot sector: code, parameter block at 0x1A0, 0x55AA
//   LBA 1..               stage 2 (whole sectors), then zeros up to DATA_LBA
//   LBA DATA_LBA..        N MiB of data: every sector holds its own LBA in its
//                         first dword (little-endian), then 127 dwords of one
//                         xorshift32 stream (seeded with DATA_SEED) that runs
//                         on across sectors
//   ..end                 zeros; the image is a whole number of MiB
//
// The parameter block (16 bytes): magic "DRd1", data LBA, N, and the hash of
// the N MiB of data as the guest computes it (u32 LE each): h = 0, then for
// every dword d of the data in disk order h = h * HASH_MUL + d (mod 2^32).
// Images with different N share the data stream, so a smaller image's data
// is a prefix of a larger one's.

// DATA_LBA and MiB are read from the parameter block; CHUNK_SECTORS,
// PARAMS_OFFSET, PARAMS_MAGIC and HASH_MUL must match diskread.S/.ld.
const SECTOR = 512;
const MIB = 1 << 20;
/** First sector of the data region: 32 KiB of room for the boot code. */
const DATA_LBA = 64;
/** Sectors per INT 13h read in the guest; the data must be a whole number of them. */
const CHUNK_SECTORS = 64;
const PARAMS_OFFSET = 0x1a0;
const PARAMS_MAGIC = 'DRd1';
const HASH_MUL = 0x01000193;
const DATA_SEED = 0x6d2b79f5;

/** The data region of an image with `mib` MiB of data, and its hash. */
function diskData(mib: number): { data: Uint8Array; hash: number } {
  const data = new Uint8Array(mib * MIB);
  const view = new DataView(data.buffer);
  let x = DATA_SEED;
  let h = 0;
  for (let off = 0; off < data.length; off += 4) {
    let d: number;
    if (off % SECTOR === 0) {
      d = DATA_LBA + off / SECTOR;
    } else {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      d = x;
    }
    view.setUint32(off, d, true);
    h = (Math.imul(h, HASH_MUL) + d) >>> 0;
  }
  return { data, hash: h };
}

function buildDiskImages(guest: Guest, disk: DiskGuest): void {
  const script = join(srcDir, disk.linkerScript);
  const codeFile = join(objDir, `${guest.name}.bin`);
  const code = flatSection(compileAndLink(guest, script), '.image', `${codeFile}.tmp`);
  const what = `${guest.name} boot code`;
  if (code.length < SECTOR || code.length % SECTOR !== 0) {
    throw new BuildError(`${what} is ${code.length} bytes, expected a whole number of sectors`);
  }
  if (code.length > DATA_LBA * SECTOR) {
    throw new BuildError(`${what} is ${code.length} bytes and would overlap the data region at LBA ${DATA_LBA}`);
  }
  if (code[SECTOR - 2] !== 0x55 || code[SECTOR - 1] !== 0xaa) {
    throw new BuildError(`${what}: no 0x55 0xAA boot signature at offset 0x1FE`);
  }
  if (code.toString('latin1', PARAMS_OFFSET, PARAMS_OFFSET + 4) !== PARAMS_MAGIC) {
    throw new BuildError(
      `${what}: no parameter block (magic "${PARAMS_MAGIC}") at offset 0x${PARAMS_OFFSET.toString(16)}`,
    );
  }
  writeOutput(codeFile, code);

  for (const image of disk.images) {
    const file = join(outDir, image.file);
    if (!Number.isInteger(image.mib) || image.mib < 1 || ((image.mib * MIB) / SECTOR) % CHUNK_SECTORS !== 0) {
      throw new BuildError(`${rel(file)}: data size must be a whole number of MiB, at least 1 (got ${image.mib})`);
    }
    const { data, hash } = diskData(image.mib);
    const dataStart = DATA_LBA * SECTOR;
    const size = Math.ceil((dataStart + data.length) / MIB) * MIB;
    const img = Buffer.alloc(size);
    code.copy(img, 0);
    img.writeUInt32LE(DATA_LBA, PARAMS_OFFSET + 4);
    img.writeUInt32LE(image.mib, PARAMS_OFFSET + 8);
    img.writeUInt32LE(hash, PARAMS_OFFSET + 12);
    img.set(data, dataStart);
    writeOutput(file, img);
  }
}

// ---- testos: the PHD test OS (guests/testos/) ----
//
// kernel.elf: entry.S and the C files, linked with kernel.ld at 1 MiB; its
// flat image (.text to the end of .data) is what both wrappers carry:
//
//   testos.rom   [kernel image, at the ROM's start] [0xF4 fill] [stub: the last 4 KiB]
//                a multiple of 64 KiB; the stub gets KERNEL_ROM_ADDR (the
//                image's physical address) and KERNEL_DWORDS
//   testos.img   LBA 0 the boot sector (KERNEL_SECTORS, KERNEL_DWORDS),
//                LBA 1.. the kernel image, zeros to TESTOS_IMG_BYTES; from
//                1 MiB (LBA 2048) on the disk is free for disk tests

const testosDir = join(root, 'guests', 'testos');
const TESTOS_C = [
  'main.c',
  'lib.c',
  'time.c',
  'pci.c',
  'acpi.c',
  'smp.c',
  'disk.c',
  'virtio.c',
  'virtio-blk.c',
  'nvme.c',
  'net.c',
] as const;
/** Freestanding, no FPU/SSE/MMX state (the project's hosts do not emulate x87 or XSAVE at CPL0), no red zone. */
const TESTOS_CFLAGS = [
  '-std=gnu11',
  '-O2',
  '-ffreestanding',
  '-nostdlib',
  '-fno-pic',
  '-fno-pie',
  '-mno-sse',
  '-mno-mmx',
  '-mno-80387',
  '-mgeneral-regs-only',
  '-mno-red-zone',
  '-fno-stack-protector',
  '-fno-asynchronous-unwind-tables',
  '-fno-unwind-tables',
  '-fcf-protection=none',
  '-fno-tree-loop-distribute-patterns',
  '-Wall',
  '-Wextra',
];
const TESTOS_ROM_STUB = 0x1000;
const TESTOS_ROM_ALIGN = 0x10000;
const TESTOS_IMG_BYTES = 4 * MIB;
/** Must match layout.h. */
const TESTOS_KERNEL_MAX = 0x60000;
const TESTOS_ROM_FILL = 0xf4;

/**
 * fakelinux.bzimage: a bzImage-shaped file (see fakelinux.S), linked at 0
 * so that every label is its offset in the file, and copied out flat.
 */
function buildFakelinux(): void {
  const dir = join(objDir, 'fakelinux');
  mkdirSync(dir, { recursive: true });
  const obj = join(dir, 'fakelinux.o');
  const elf = join(objDir, 'fakelinux.elf');
  const out = join(outDir, 'fakelinux.bzimage');
  run('gcc', [
    '-c',
    '-nostdinc',
    '-I',
    srcDir,
    '-Wa,--fatal-warnings',
    '-Wa,--noexecstack',
    '-o',
    obj,
    join(srcDir, 'fakelinux.S'),
  ]);
  const ldArgs = [
    '-m',
    'elf_x86_64',
    '-nostdlib',
    '-static',
    '--build-id=none',
    '-z',
    'noexecstack',
    '--fatal-warnings',
  ];
  run('ld', [...ldArgs, '-Ttext=0', '-e', '_start', '-o', elf, obj]);
  const image = flatSection(elf, '.text', `${out}.tmp`);
  if (image.length <= 1024 || image.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new BuildError(`${rel(out)}: not a bzImage-shaped file (${image.length} bytes)`);
  }
  writeOutput(out, image);
}

function testosInputs(): Set<string> {
  const files = new Set<string>([import.meta.filename]);
  for (const f of readdirSync(testosDir)) if (/\.(c|h|S|ld)$/.test(f)) files.add(join(testosDir, f));
  return files;
}

function testosCompile(obj: string, source: string, extra: readonly string[] = []): void {
  const flags = source.endsWith('.S') ? ['-Wa,--fatal-warnings', '-Wa,--noexecstack'] : TESTOS_CFLAGS;
  run('gcc', ['-c', ...flags, '-I', testosDir, ...extra, '-o', obj, join(testosDir, source)]);
}

function testosLink(elf: string, script: string, objs: readonly string[]): void {
  const base = ['-m', 'elf_x86_64', '-nostdlib', '-static', '--build-id=none', '-z', 'noexecstack'];
  run('ld', [...base, '--fatal-warnings', '-T', join(testosDir, script), '-Map', `${elf}.map`, '-o', elf, ...objs]);
}

function buildTestos(): void {
  const dir = join(objDir, 'testos');
  mkdirSync(dir, { recursive: true });

  const objs = ['entry.S', ...TESTOS_C].map((source) => {
    const obj = join(dir, source.replace(/\.[cS]$/, '.o'));
    testosCompile(obj, source);
    return obj;
  });
  const kernelElf = join(dir, 'kernel.elf');
  testosLink(kernelElf, 'kernel.ld', objs);
  const flatTmp = join(dir, 'kernel.bin.tmp');
  rmSync(flatTmp, { force: true });
  run('objcopy', ['-O', 'binary', kernelElf, flatTmp]);
  const flat = readFileSync(flatTmp);
  rmSync(flatTmp, { force: true });
  // Whole dwords for the stubs' `rep movsl`.
  const kernel = Buffer.alloc(Math.ceil(flat.length / 4) * 4);
  flat.copy(kernel);
  if (kernel.length > TESTOS_KERNEL_MAX) {
    throw new BuildError(`testos kernel image is ${kernel.length} bytes, more than ${TESTOS_KERNEL_MAX}`);
  }
  writeOutput(join(dir, 'kernel.bin'), kernel);
  const dwords = kernel.length / 4;

  // The bootrom.
  const romSize = Math.ceil((kernel.length + TESTOS_ROM_STUB) / TESTOS_ROM_ALIGN) * TESTOS_ROM_ALIGN;
  const romAddr = 2 ** 32 - romSize;
  const stubObj = join(dir, 'rom-stub.o');
  const stubElf = join(dir, 'rom-stub.elf');
  testosCompile(stubObj, 'rom-stub.S', [`-DKERNEL_ROM_ADDR=0x${romAddr.toString(16)}`, `-DKERNEL_DWORDS=${dwords}`]);
  testosLink(stubElf, 'rom-stub.ld', [stubObj]);
  const stub = flatSection(stubElf, '.stub', join(dir, 'rom-stub.bin.tmp'));
  if (stub.length !== TESTOS_ROM_STUB) throw new BuildError(`testos ROM stub is ${stub.length} bytes`);
  const rom = Buffer.alloc(romSize, TESTOS_ROM_FILL);
  kernel.copy(rom, 0);
  stub.copy(rom, romSize - TESTOS_ROM_STUB);

  // The disk image.
  const sectors = Math.ceil(kernel.length / SECTOR);
  const bootObj = join(dir, 'boot-sector.o');
  const bootElf = join(dir, 'boot-sector.elf');
  testosCompile(bootObj, 'boot-sector.S', [`-DKERNEL_SECTORS=${sectors}`, `-DKERNEL_DWORDS=${dwords}`]);
  testosLink(bootElf, 'boot-sector.ld', [bootObj]);
  const boot = flatSection(bootElf, '.sector', join(dir, 'boot-sector.bin.tmp'));
  if (boot.length !== SECTOR || boot[SECTOR - 2] !== 0x55 || boot[SECTOR - 1] !== 0xaa) {
    throw new BuildError(`testos boot sector is ${boot.length} bytes or lacks its 0x55 0xAA signature`);
  }
  const img = Buffer.alloc(TESTOS_IMG_BYTES);
  boot.copy(img, 0);
  kernel.copy(img, SECTOR);

  writeOutput(join(outDir, 'testos.rom'), rom);
  writeOutput(join(outDir, 'testos.img'), img);
}

function outputs(guest: Guest): string[] {
  if (guest.custom !== undefined) return guest.custom.outputs();
  if (guest.disk === undefined) return [join(outDir, `${guest.name}.rom`)];
  return guest.disk.images.map((i) => join(outDir, i.file));
}

function inputs(guest: Guest): Set<string> {
  if (guest.custom !== undefined) return guest.custom.inputs();
  const files = new Set<string>();
  if (guest.disk === undefined) {
    files.add(linkerScript);
  } else {
    files.add(join(srcDir, guest.disk.linkerScript));
    // The data and its hash are generated here.
    files.add(import.meta.filename);
  }
  for (const source of guest.sources) dependencies(join(srcDir, source), files);
  return files;
}

function main(argv: readonly string[]): void {
  let force = false;
  const names: string[] = [];
  for (const a of argv) {
    if (a === '--force') force = true;
    else if (a.startsWith('-')) throw new BuildError(`unknown option ${a} (usage: build.js [--force] [name...])`);
    else names.push(a);
  }
  const unknown = names.filter((n) => !GUESTS.some((g) => g.name === n));
  if (unknown.length > 0) {
    throw new BuildError(`unknown guest(s): ${unknown.join(', ')} (known: ${GUESTS.map((g) => g.name).join(', ')})`);
  }
  const selected = names.length === 0 ? GUESTS : GUESTS.filter((g) => names.includes(g.name));

  const todo = selected.filter((g) => {
    const ins = inputs(g);
    return force || !outputs(g).every((o) => upToDate(o, ins));
  });
  if (todo.length === 0) return;

  checkTools();
  mkdirSync(objDir, { recursive: true });
  for (const g of todo) {
    if (g.custom !== undefined) g.custom.build();
    else if (g.disk === undefined) buildRom(g);
    else buildDiskImages(g, g.disk);
    const from = g.custom !== undefined ? g.custom.from : g.sources.join(', ');
    console.log(`guests: built ${outputs(g).map(rel).join(', ')} from ${from}`);
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  console.error(`guests/build: error: ${e.message}`);
  process.exitCode = 1;
}
