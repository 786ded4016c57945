// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Enforces the layering and naming rules of STYLE.md that a linter does not:
//
//   - nothing under lib/ imports from bin/;
//   - devices (lib/propolis/src/hw/) never import the KVM package (lib/kvm)
//     directly: they reach the machine through the bus and memory APIs;
//   - the client (lib/propolis-client/) imports neither the library
//     (lib/propolis, lib/kvm) nor koffi nor any Node built-in, so it runs in
//     browsers too;
//   - no default exports in lib/ and bin/;
//   - tests are `*.test.ts` files beside the code they test (no test
//     directories, no `.spec.ts`).
//
// Imports are read with the TypeScript parser (static and dynamic imports,
// re-exports, `require`, `import x = require()`), not by pattern matching,
// so comments and strings cannot fool it. Prints `file:line: message` for
// each violation and exits 1.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, posix, relative, sep } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..', '..');

const SOURCE = /\.(?:[cm]?ts|tsx|[cm]?js)$/;
const EXCLUDED_DIRS = new Set(['node_modules', 'dist', '.cache']);
const NODE_BUILTINS = new Set(builtinModules);

interface Violation {
  file: string;
  line: number;
  message: string;
}

/** Files git tracks plus untracked files it does not ignore; a plain walk when git is unavailable. */
function listFiles(): string[] {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const excluded = (p: string): boolean =>
    p.startsWith('guests/out/') ||
    p
      .split('/')
      .slice(0, -1)
      .some((d) => EXCLUDED_DIRS.has(d));
  if (git.status === 0) {
    return [...new Set(git.stdout.split('\0'))].filter((p) => p !== '' && !excluded(p) && existsSync(join(root, p)));
  }
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(root, p).split(sep).join('/');
      if (e.isDirectory()) {
        if (e.name !== '.git' && !excluded(`${rel}/`)) walk(p);
      } else if (e.isFile() && !excluded(rel)) {
        out.push(rel);
      }
    }
  };
  walk(root);
  return out;
}

interface ImportRef {
  specifier: string;
  line: number;
}

interface Parsed {
  imports: ImportRef[];
  /** Lines of `export default`, `export =` and `export { x as default }`. */
  defaultExports: number[];
}

function parse(file: string): Parsed {
  const text = readFileSync(join(root, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lineOf = (node: ts.Node): number => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const imports: ImportRef[] = [];
  const defaultExports: number[] = [];
  const addImport = (spec: ts.Expression | undefined): void => {
    if (spec !== undefined && ts.isStringLiteralLike(spec)) imports.push({ specifier: spec.text, line: lineOf(spec) });
  };
  const hasDefaultModifier = (node: ts.Node): boolean =>
    ts.canHaveModifiers(node) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.DefaultKeyword) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      addImport(node.moduleSpecifier);
      if (
        ts.isExportDeclaration(node) &&
        node.exportClause !== undefined &&
        ts.isNamedExports(node.exportClause) &&
        node.exportClause.elements.some((e) => e.name.text === 'default')
      ) {
        defaultExports.push(lineOf(node));
      }
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      addImport(node.moduleReference.expression);
    } else if (ts.isExportAssignment(node)) {
      defaultExports.push(lineOf(node));
    } else if (hasDefaultModifier(node)) {
      defaultExports.push(lineOf(node));
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isDynamicImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if ((isDynamicImport || isRequire) && node.arguments.length >= 1) addImport(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      addImport(node.argument.literal as ts.Expression);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { imports, defaultExports };
}

/** Package names of the workspace's own packages (lib/* and bin/* with a package.json) and their directories. */
function workspacePackages(): Map<string, string> {
  const out = new Map<string, string>();
  for (const top of ['lib', 'bin']) {
    if (!existsSync(join(root, top))) continue;
    for (const e of readdirSync(join(root, top), { withFileTypes: true })) {
      const pj = join(root, top, e.name, 'package.json');
      if (!e.isDirectory() || !existsSync(pj)) continue;
      const name = (JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name;
      if (typeof name === 'string') out.set(name, `${top}/${e.name}`);
    }
  }
  return out;
}

const PACKAGES = workspacePackages();

/**
 * The repository-relative path a specifier points at: relative and absolute
 * paths, and the workspace's own packages by name; undefined for other packages.
 */
function resolve(file: string, specifier: string): string | undefined {
  for (const [name, dir] of PACKAGES) {
    if (specifier === name) return dir;
    if (specifier.startsWith(`${name}/`)) return `${dir}/${specifier.slice(name.length + 1)}`;
  }
  if (!specifier.startsWith('.') && !specifier.startsWith('/')) return undefined;
  if (specifier.startsWith('/')) return relative(root, specifier).split(sep).join('/');
  return posix.normalize(posix.join(posix.dirname(file), specifier));
}

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || NODE_BUILTINS.has(specifier.split('/')[0] ?? '');
}

const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

/** Layering rules for one import; returns the complaint, if any. */
function checkImport(file: string, specifier: string): string | undefined {
  const target = resolve(file, specifier);
  if (under(file, 'lib') && target !== undefined && under(target, 'bin')) {
    return `lib/ must not import from bin/ ('${specifier}')`;
  }
  if (under(file, 'lib/propolis/src/hw') && target !== undefined && under(target, 'lib/kvm')) {
    return `devices must not import the KVM package directly ('${specifier}'); go through the machine's bus and memory APIs`;
  }
  if (under(file, 'lib/propolis-client')) {
    if (target !== undefined && (under(target, 'lib/propolis') || under(target, 'lib/kvm'))) {
      return `the client must not import the library ('${specifier}')`;
    }
    if (specifier === 'koffi' || specifier.startsWith('koffi/')) {
      return `the client must not depend on koffi ('${specifier}')`;
    }
    if (isNodeBuiltin(specifier))
      return `the client must not import Node built-ins ('${specifier}'): it runs in browsers`;
  }
  return undefined;
}

const TEST_LIKE = /(?:\.(?:test|spec)|[._-]test|^test[._-])[^/]*\.[cm]?[jt]sx?$/;
const TEST_DIRS = new Set(['test', 'tests', '__tests__', 'spec']);

/** Test naming and placement: `*.test.ts`, beside code, not in a test directory. */
function checkTestPlacement(file: string, all: Set<string>, violations: Violation[]): void {
  const base = posix.basename(file);
  const isTest = base.endsWith('.test.ts');
  if (!isTest && TEST_LIKE.test(base)) {
    violations.push({ file, line: 1, message: 'test files are named *.test.ts' });
    return;
  }
  if (!isTest) return;
  const dirs = posix.dirname(file).split('/');
  if (dirs.some((d) => TEST_DIRS.has(d))) {
    violations.push({ file, line: 1, message: 'tests sit beside the code they test, not in a test directory' });
    return;
  }
  const dir = posix.dirname(file);
  const hasCode = [...all].some(
    (f) => posix.dirname(f) === dir && f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'),
  );
  if (!hasCode) {
    violations.push({ file, line: 1, message: 'no source file beside this test: tests sit beside the code they test' });
  }
}

function main(): number {
  const files = listFiles()
    .filter((f) => (under(f, 'lib') || under(f, 'bin')) && SOURCE.test(f))
    .sort();
  const all = new Set(files);
  const violations: Violation[] = [];
  for (const file of files) {
    checkTestPlacement(file, all, violations);
    if (file.endsWith('.d.ts')) continue;
    const { imports, defaultExports } = parse(file);
    for (const line of defaultExports) {
      violations.push({ file, line, message: 'no default exports: export the name' });
    }
    for (const { specifier, line } of imports) {
      const message = checkImport(file, specifier);
      if (message !== undefined) violations.push({ file, line, message });
    }
  }
  if (violations.length === 0) {
    console.log(`style: ${files.length} files under lib/ and bin/ follow the layering and naming rules`);
    return 0;
  }
  violations.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  for (const v of violations) console.error(`${v.file}:${v.line}: ${v.message}`);
  console.error(
    `\n${violations.length} style violation(s); the rules are in STYLE.md ("Layout shows the architecture").`,
  );
  return 1;
}

process.exit(main());
