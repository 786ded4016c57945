// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// One entry point from a backend descriptor to an opened BlockTarget, for
// whichever thread runs a device's queues or a pool worker; plus what a
// frontend on the main thread may learn from a descriptor without opening
// it (its DeviceInfo, the worker count its pool should use).
//
// Backends are described by their own class (`FileBackend.describe`,
// `InMemoryBackend.describe`); the kinds are a closed set here, because a
// worker thread must be able to open any descriptor it is handed.
//
// Threading: pure dispatch; the target belongs to the calling thread.

import { BlockBackendError } from './errors.js';
import { FileBackend, type FileBackendDescriptor } from './file.js';
import { InMemoryBackend, type InMemoryBackendDescriptor } from './in-memory.js';
import type { BackendDescriptor, BlockTarget, DeviceInfo } from './types.js';

export type KnownBackendDescriptor = FileBackendDescriptor | InMemoryBackendDescriptor;

function known(desc: BackendDescriptor): KnownBackendDescriptor {
  if (desc.kind === 'file' || desc.kind === 'in-memory') return desc as KnownBackendDescriptor;
  throw new BlockBackendError(
    'BLOCK_UNKNOWN_KIND',
    `block backend "${String(desc.name)}": unknown backend kind ${JSON.stringify(desc.kind)} (known: file, in-memory)`,
  );
}

/** Open any described backend on the calling thread. Throws BlockBackendError. */
export function openBackend(desc: BackendDescriptor): BlockTarget {
  const d = known(desc);
  switch (d.kind) {
    case 'file':
      return FileBackend.open(d);
    case 'in-memory':
      return InMemoryBackend.open(d);
  }
}

/** The device a descriptor describes, without opening it. */
export function backendInfo(desc: BackendDescriptor): DeviceInfo {
  const d = known(desc);
  switch (d.kind) {
    case 'file':
      return {
        blockSize: d.params.blockSize,
        totalBlocks: d.params.totalBlocks,
        readOnly: d.params.readOnly,
        supportsDiscard: d.params.supportsDiscard,
      };
    case 'in-memory':
      return {
        blockSize: d.params.blockSize,
        totalBlocks: d.params.contents.byteLength / d.params.blockSize,
        readOnly: d.params.readOnly,
        supportsDiscard: false,
      };
  }
}

/** The worker count configured for a pool in front of this backend. */
export function backendWorkers(desc: BackendDescriptor): number {
  return known(desc).params.workers;
}
