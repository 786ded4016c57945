// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Builds the project's test guests: freestanding x86 assembly under
// guests/src/, each .S file assembled with the machine's gcc (which runs cpp
// and as), linked with ld and rom.ld into an ELF laid out at 0xFFFF_0000, and
// turned into a flat 64 KiB bootrom with `objcopy -O binary`, written to
// guests/out/<name>.rom. Objects, ELFs and link maps stay in guests/out/obj/.
//
// Usage: node dist/guests/build.js [--force] [name...]
//   --force   rebuild even when the output is up to date
//   name...   build only these guests (default: all)
//
// A guest is skipped when its .rom is newer than its sources, every file they
// #include (followed recursively) and the linker script. One line is
// printed per guest built. A missing tool or a failed step exits non-zero
// with the failing command and its output.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
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

interface Guest {
  /** Output is guests/out/<name>.rom. */
  readonly name: string;
  /** Source files in guests/src/, each assembled to one object; linked in this order. */
  readonly sources: readonly string[];
}

const GUESTS: readonly Guest[] = [
  { name: 'hello', sources: ['hello.S', 'boot64.S'] },
  { name: 'smp', sources: ['smp.S', 'boot64.S'] },
  { name: 'pio-bench', sources: ['pio-bench.S'] },
  { name: 'reset-cf9', sources: ['reset-cf9.S'] },
  { name: 'reset-kbd', sources: ['reset-kbd.S'] },
  { name: 'reset-triple', sources: ['reset-triple.S'] },
  { name: 'poweroff', sources: ['poweroff.S'] },
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

function build(guest: Guest): void {
  const guestObjDir = join(objDir, guest.name);
  const elf = join(objDir, `${guest.name}.elf`);
  const map = join(objDir, `${guest.name}.map`);
  const rom = join(outDir, `${guest.name}.rom`);
  const tmp = `${rom}.tmp`;

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
    linkerScript,
    '-Map',
    map,
    '-o',
    elf,
    ...objs,
  ]);
  rmSync(tmp, { force: true });
  run('objcopy', ['-O', 'binary', '-j', '.rom', elf, tmp]);

  const image = readFileSync(tmp);
  if (image.length !== ROM_SIZE) {
    rmSync(tmp, { force: true });
    throw new BuildError(`${rel(rom)}: image is ${image.length} bytes, expected exactly ${ROM_SIZE}`);
  }
  if (image[RESET_OFFSET] === FILL_BYTE) {
    rmSync(tmp, { force: true });
    throw new BuildError(`${rel(rom)}: nothing at the reset vector (offset 0x${RESET_OFFSET.toString(16)})`);
  }
  chmodSync(tmp, 0o644);
  renameSync(tmp, rom);
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
    const inputs = new Set([linkerScript]);
    for (const source of g.sources) dependencies(join(srcDir, source), inputs);
    return force || !upToDate(join(outDir, `${g.name}.rom`), inputs);
  });
  if (todo.length === 0) return;

  checkTools();
  mkdirSync(objDir, { recursive: true });
  for (const g of todo) {
    build(g);
    console.log(`guests: built ${rel(join(outDir, `${g.name}.rom`))} from ${g.sources.join(', ')}`);
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  console.error(`guests/build: error: ${e.message}`);
  process.exitCode = 1;
}
