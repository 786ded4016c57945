// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The standalone's cloud-init volume. `[cloudinit]` names the files of a
// NoCloud seed — `user-data`, `meta-data`, `network-config` as text, or
// `<key>-path` to read one from a file (relative to the current directory,
// as `bootrom` and disk paths are) — and they become a FAT12 volume
// labelled CIDATA (lib/propolis/src/block/cidata.ts). A missing user-data
// or meta-data is an empty file (NoCloud wants both); a missing
// network-config is left out. The volume reaches the guest as a read-only
// disk whose blob travels in the instance spec, like every other
// spec-carried disk:
//
//   - as in the seed, a `[block_dev.<n>] type = "cloudinit"` table is that
//     volume, for whichever `[dev.<m>]` names it (any disk driver, any
//     pci-path);
//   - with no such table, `[cloudinit]` alone adds the disk that
//     propolis-cli and the server's callers attach: virtio-block
//     `cloud-init` at PCI 0.24.0 over the blob `cloud-init-backend`. (The
//     seed does nothing with a `[cloudinit]` that no block_dev uses.)
//
// Main thread; reads the `-path` files when the spec is built.

import { readFileSync } from 'node:fs';
import type { Component } from '../../../lib/api-types/src/index.js';
import { buildCloudInitVolume, CidataError } from '../../../lib/propolis/src/block/cidata.js';
import { PciPath } from '../../../lib/propolis/src/hw/pci/path.js';
import { ConfigError, type CloudInitConfig, type CloudInitSource, type StandaloneConfig } from './config.js';

/** Spec keys and place of the added disk: those propolis-cli uses for `new --cloud-init`. */
export const CLOUD_INIT_DISK = 'cloud-init';
export const CLOUD_INIT_BACKEND = 'cloud-init-backend';
export const CLOUD_INIT_PCI_PATH = new PciPath(0, 24, 0);

function contents(src: CloudInitSource | undefined, key: string): Uint8Array | undefined {
  if (src === undefined) return undefined;
  if ('text' in src) return new TextEncoder().encode(src.text);
  try {
    return new Uint8Array(readFileSync(src.path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new ConfigError('CONFIG_VALUE', `[cloudinit] ${key}-path: cannot read ${src.path}: ${why}`, { cause: e });
  }
}

/** The cidata volume of a `[cloudinit]` table (reads its `-path` files). */
export function cloudInitImage(ci: CloudInitConfig): Uint8Array {
  try {
    return buildCloudInitVolume({
      userData: contents(ci.userData, 'user-data') ?? new Uint8Array(0),
      metaData: contents(ci.metaData, 'meta-data') ?? new Uint8Array(0),
      networkConfig: contents(ci.networkConfig, 'network-config'),
    });
  } catch (e) {
    if (e instanceof CidataError) throw new ConfigError('CONFIG_VALUE', `[cloudinit]: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The spec backend carrying a volume: a read-only blob. */
export function cloudInitBackend(image: Uint8Array): Component {
  return {
    type: 'blob_storage_backend',
    component: {
      base64: Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString('base64'),
      readonly: true,
    },
  };
}

function atCloudInitPath(pciPath: string): boolean {
  try {
    return PciPath.parse(pciPath).equals(CLOUD_INIT_PCI_PATH);
  } catch {
    return false; // not a PCI path at all: refused with the other devices
  }
}

/**
 * Add the `cloud-init` disk and its backend to `components` (the spec the
 * standalone is building). Refuses a configuration that already uses the
 * names or the PCI path.
 */
export function addCloudInitDisk(
  cfg: StandaloneConfig,
  components: Record<string, Component>,
  image: Uint8Array,
): void {
  const where = `PCI ${CLOUD_INIT_PCI_PATH.toString()}`;
  const hint =
    'or attach the volume yourself: [block_dev.<n>] type = "cloudinit" and a disk [dev.<m>] with block_dev = "<n>"';
  const inPath = cfg.devices.find((d) => 'pciPath' in d && atCloudInitPath(d.pciPath));
  if (inPath) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `[cloudinit] adds the disk "${CLOUD_INIT_DISK}" at ${where}, which [dev.${inPath.name}] uses; move that device, ${hint}`,
    );
  }
  for (const key of [CLOUD_INIT_DISK, CLOUD_INIT_BACKEND]) {
    const clash =
      key in components || cfg.devices.some((d) => d.name === key) || cfg.blockDevs.some((b) => b.name === key);
    if (clash) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `[cloudinit] adds the components "${CLOUD_INIT_DISK}" and "${CLOUD_INIT_BACKEND}"; ` +
          `the configuration already names something "${key}": rename it, ${hint}`,
      );
    }
  }
  components[CLOUD_INIT_BACKEND] = cloudInitBackend(image);
  components[CLOUD_INIT_DISK] = {
    type: 'virtio_disk',
    component: {
      backend_id: CLOUD_INIT_BACKEND,
      pci_path: {
        bus: CLOUD_INIT_PCI_PATH.bus,
        device: CLOUD_INIT_PCI_PATH.device,
        function: CLOUD_INIT_PCI_PATH.func,
      },
    },
  };
}
