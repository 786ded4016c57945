// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Checks that every source file opens with the MPL-2.0 header.
//
// Source files are those git tracks or would track (untracked but not
// ignored), outside build output and dependencies, with a source extension
// (or `.ci/run`). The header's comment syntax follows the language: `//` for
// TypeScript, JavaScript and C; `#` for shell (after an optional `#!` line);
// `/* ... */` is also accepted where `//` is not a comment (linker scripts)
// and in C and assembly. Prints each offender and exits 1.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

const HEADER = [
  'This Source Code Form is subject to the terms of the Mozilla Public',
  'License, v. 2.0. If a copy of the MPL was not distributed with this',
  'file, You can obtain one at https://mozilla.org/MPL/2.0/.',
];

const EXCLUDED_DIRS = new Set(['node_modules', 'dist', '.cache']);

type Style = 'line//' | 'line#' | 'block';

/** Accepted header styles by file kind; the first is the one suggested to offenders. */
const STYLES: Record<string, Style[]> = {
  '.ts': ['line//'],
  '.js': ['line//'],
  '.mjs': ['line//'],
  '.c': ['line//', 'block'],
  '.h': ['line//', 'block'],
  '.S': ['line//', 'line#', 'block'],
  '.s': ['line#', 'line//', 'block'],
  '.ld': ['block', 'line//'],
  '.sh': ['line#'],
};

function stylesFor(path: string): Style[] | undefined {
  if (path === '.ci/run') return ['line#'];
  if (path.endsWith('.d.ts')) return STYLES['.ts'];
  return STYLES[extname(path)];
}

/** Files git tracks plus untracked files it does not ignore; a plain walk when git is unavailable. */
function listFiles(): string[] {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (git.status === 0) {
    return [...new Set(git.stdout.split('\0').filter((p) => p !== ''))].filter((p) => existsSync(join(root, p)));
  }
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(root, p).split(sep).join('/');
      if (e.isDirectory()) {
        if (e.name !== '.git' && !isExcluded(`${rel}/`)) walk(p);
      } else if (e.isFile()) {
        out.push(rel);
      }
    }
  };
  walk(root);
  return out;
}

/** Build output and dependencies, at any depth; guests/out only at the top. */
function isExcluded(path: string): boolean {
  if (path.startsWith('guests/out/')) return true;
  return path
    .split('/')
    .slice(0, -1)
    .some((dir) => EXCLUDED_DIRS.has(dir));
}

function hasLineHeader(lines: string[], prefix: string): boolean {
  return HEADER.every((text, i) => lines[i] === `${prefix} ${text}`);
}

/** A leading block comment whose text, without its `/*`, `*` and `*\/` decoration, starts with the header. */
function hasBlockHeader(lines: string[]): boolean {
  if (!lines[0]?.startsWith('/*')) return false;
  const text: string[] = [];
  for (let i = 0; i < lines.length && text.length < HEADER.length; i++) {
    const line = lines[i] ?? '';
    const end = line.indexOf('*/');
    let body = end >= 0 ? line.slice(0, end) : line;
    if (i === 0) body = body.slice(2);
    body = body.replace(/^\s*\*?\s?/, '').trimEnd();
    if (body !== '') text.push(body);
    if (end >= 0) break;
  }
  return HEADER.every((h, i) => text[i] === h);
}

function check(path: string, styles: Style[]): boolean {
  let lines = readFileSync(join(root, path), 'utf8').split(/\r?\n/);
  if (lines[0]?.startsWith('#!')) lines = lines.slice(1);
  return styles.some((s) => (s === 'block' ? hasBlockHeader(lines) : hasLineHeader(lines, s === 'line#' ? '#' : '//')));
}

function example(style: Style): string {
  switch (style) {
    case 'line//':
      return HEADER.map((l) => `// ${l}`).join('\n');
    case 'line#':
      return HEADER.map((l) => `# ${l}`).join('\n');
    case 'block':
      return `/* ${HEADER[0]}\n * ${HEADER[1]}\n * ${HEADER[2]} */`;
  }
}

function main(): number {
  const offenders: { path: string; styles: Style[] }[] = [];
  let checked = 0;
  for (const path of listFiles().sort()) {
    if (isExcluded(path)) continue;
    const styles = stylesFor(path);
    if (styles === undefined) continue;
    checked++;
    if (!check(path, styles)) offenders.push({ path, styles });
  }
  if (offenders.length === 0) {
    console.log(`license: ${checked} source files carry the MPL-2.0 header`);
    return 0;
  }
  for (const o of offenders) console.error(`${o.path}: missing the MPL-2.0 header`);
  const suggested = new Set(offenders.map((o) => o.styles[0] ?? 'line//'));
  console.error(`\n${offenders.length} of ${checked} source files lack the header. It must open the file:`);
  for (const s of suggested) console.error(`\n${example(s)}`);
  console.error('\n(Shell scripts may put a #! line first; C, assembly and linker scripts may use a /* */ block.)');
  return 1;
}

process.exit(main());
