// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Artifacts from Debian's packages for tests and benchmarks: firmware
// (seabios), tools (acpica-tools' iasl), peers (qemu). A package is fetched
// with `apt-get download` (after `apt-get update` if the lists are missing),
// unpacked with `dpkg-deb -x` into .cache/debian/<package>/, and reused from
// there. Nothing is installed system-wide and no binary is checked in.
//
// Failures are thrown with the command and its output: a test that needs an
// artifact fails, it does not skip.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './guests.js';

export const DEBIAN_CACHE = join(REPO_ROOT, '.cache', 'debian');

export class ArtifactError extends Error {
  readonly code = 'ARTIFACT';
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new ArtifactError(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/** Root of the unpacked package (its files under their installed paths). */
export function debianPackage(pkg: string): string {
  if (!/^[a-z0-9][a-z0-9.+-]*$/.test(pkg)) throw new ArtifactError(`bad package name ${pkg}`);
  const root = join(DEBIAN_CACHE, pkg);
  if (existsSync(join(root, '.complete'))) return root;
  const dl = join(DEBIAN_CACHE, `.download-${pkg}-${process.pid}`);
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  try {
    try {
      run('apt-get', ['download', pkg], dl);
    } catch {
      run('apt-get', ['update'], dl);
      run('apt-get', ['download', pkg], dl);
    }
    const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
    if (!deb) throw new ArtifactError(`apt-get download ${pkg} produced no .deb`);
    const tmp = join(dl, 'root');
    run('dpkg-deb', ['-x', deb, tmp], dl);
    run('touch', [join(tmp, '.complete')], dl);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
    return root;
  } finally {
    rmSync(dl, { recursive: true, force: true });
  }
}

/** A file inside a package, e.g. debianFile('seabios', 'usr/share/seabios/bios-256k.bin'). */
export function debianFile(pkg: string, path: string): string {
  const p = join(debianPackage(pkg), path);
  if (!existsSync(p)) throw new ArtifactError(`${pkg} has no ${path}`);
  return p;
}
