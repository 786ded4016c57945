// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Disks on the host side. A file-backed disk is a file in the test's
// directory: a copy of a guest image (never the artifact itself, which
// other tests share), a sparse blank file, or given contents. An
// in-memory disk's contents travel in the spec (a blob backend), base64.
//
// A `DiskSet` belongs to a VM and to its successors (a VM started on the
// same disks after its predecessor stopped, as the original's
// `spawn_successor_vm`): each holder takes a reference, and the files are
// deleted when the last one is released, at teardown.
//
// Threading: main thread.

import {
  constants,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ArtifactStore } from './artifacts.js';
import { PhdConfigError } from './errors.js';
import type { DiskMaterial, DiskRequest } from './vm-config.js';

/**
 * The largest in-memory disk: its base64 travels in PUT /instance, whose
 * body the server caps at 1 MiB.
 */
export const MAX_BLOB_BYTES = 640 * 1024;

export class DiskSet {
  private refs = 1;

  private constructor(
    readonly material: ReadonlyMap<string, DiskMaterial>,
    private readonly files: string[],
  ) {}

  /** Create every disk of `requests`; files go in `dir`, named after `owner` and the disk. */
  static create(requests: readonly DiskRequest[], artifacts: ArtifactStore, dir: string, owner: string): DiskSet {
    const material = new Map<string, DiskMaterial>();
    const files: string[] = [];
    try {
      for (const d of requests) {
        if (d.backend.type === 'file') {
          mkdirSync(dir, { recursive: true });
          const path = join(dir, `${owner}-${d.name}.img`);
          rmSync(path, { force: true });
          files.push(path);
          switch (d.source.type) {
            case 'artifact':
              // A reflink where the file system can, else a copy.
              copyFileSync(artifacts.path(d.source.name), path, constants.COPYFILE_FICLONE);
              break;
            case 'blank':
              writeFileSync(path, new Uint8Array(0));
              truncate(path, d.source.bytes);
              break;
            case 'bytes':
              writeFileSync(path, d.source.data);
              break;
          }
          material.set(d.name, { type: 'file', path, readonly: d.backend.readonly ?? false });
        } else {
          let bytes: Uint8Array;
          switch (d.source.type) {
            case 'artifact':
              bytes = new Uint8Array(readFileSync(artifacts.path(d.source.name)));
              break;
            case 'blank':
              bytes = new Uint8Array(d.source.bytes);
              break;
            case 'bytes':
              bytes = d.source.data;
              break;
          }
          if (bytes.length === 0 || bytes.length % 512 !== 0) {
            throw new PhdConfigError(`in-memory disk "${d.name}": ${bytes.length} bytes is not a multiple of 512`);
          }
          if (bytes.length > MAX_BLOB_BYTES) {
            throw new PhdConfigError(
              `in-memory disk "${d.name}": ${bytes.length} bytes is more than ${MAX_BLOB_BYTES} (the spec carries it)`,
            );
          }
          material.set(d.name, {
            type: 'blob',
            base64: Buffer.from(bytes).toString('base64'),
            readonly: d.backend.readonly,
          });
        }
      }
    } catch (e) {
      for (const f of files) rmSync(f, { force: true });
      throw e;
    }
    return new DiskSet(material, files);
  }

  /** The host file of a file-backed disk. */
  path(disk: string): string {
    const m = this.material.get(disk);
    if (!m) throw new PhdConfigError(`no disk "${disk}"`);
    if (m.type !== 'file') throw new PhdConfigError(`disk "${disk}" is not file-backed`);
    return m.path;
  }

  /** Another holder (a successor VM). */
  retain(): this {
    if (this.refs === 0) throw new Error('disk set already released');
    this.refs++;
    return this;
  }

  /** Drop a holder; the last one deletes the files. */
  release(): void {
    if (this.refs === 0) return;
    if (--this.refs > 0) return;
    for (const f of this.files) rmSync(f, { force: true });
  }

  get released(): boolean {
    return this.refs === 0;
  }
}

function truncate(path: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 512 !== 0) {
    throw new PhdConfigError(`blank disk of ${bytes} bytes: must be a positive multiple of 512`);
  }
  // Extending an empty file leaves it sparse: no blocks are written.
  truncateSync(path, bytes);
  if (statSync(path).size !== bytes) throw new PhdConfigError(`could not size ${path} to ${bytes} bytes`);
}
