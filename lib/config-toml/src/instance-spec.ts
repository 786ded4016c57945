// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The whole instance spec that `propolis-cli new -t <config>` sends: a board
// (vCPUs, memory, the file's chipset, optionally one of its CPUID profiles
// and the Hyper-V interface) and the file's components, plus what every
// generated spec has: serial ports `com1`–`com4` and `pvpanic`
// {enable_isa: true}. (The original leaves COM4 out when SoftNPU ports are
// present; config files with SoftNPU are refused here, so COM4 is always in.)
// With `--cloud-init`, the volume is the virtio disk `cloud-init` at PCI
// 0.24.0 over the read-only blob `cloud-init-backend`, as in the original.
//
// Pure; no I/O.

import type { Board, Component, InstanceSpec } from '../../api-types/src/index.js';
import { ConfigTomlError } from './error.js';
import type { SpecConfig } from './spec-config.js';

/** Components every generated spec carries, under these keys. */
export const GENERATED_COMPONENTS: Readonly<Record<string, Component>> = {
  com1: { type: 'serial_port', component: { num: 'com1' } },
  com2: { type: 'serial_port', component: { num: 'com2' } },
  com3: { type: 'serial_port', component: { num: 'com3' } },
  com4: { type: 'serial_port', component: { num: 'com4' } },
  pvpanic: { type: 'qemu_pvpanic', component: { enable_isa: true } },
};

/** Keys and place of the cloud-init disk (the original CLI's, and its server callers'). */
export const CLOUD_INIT_DISK = 'cloud-init';
export const CLOUD_INIT_BACKEND = 'cloud-init-backend';
export const CLOUD_INIT_PCI_PATH = { bus: 0, device: 24, function: 0 } as const;

export const DEFAULT_VCPUS = 4;
export const DEFAULT_MEMORY_MIB = 1024;

export interface BoardOptions {
  /** vCPUs (default 4). */
  cpus?: number;
  /** Guest RAM in MiB (default 1024). */
  memoryMb?: number;
  /** A `[cpuid.<name>]` of the config to use as the board's CPUID. */
  cpuidProfile?: string;
  /** Expose the Hyper-V interface with the reference TSC (`--hyperv`). */
  hyperV?: boolean;
  /** A cloud-init volume to attach (`--cloud-init`): the disk image's bytes. */
  cloudInitImage?: Uint8Array;
}

/**
 * The spec `propolis-cli new` builds from a config file (or from nothing:
 * then just the board and the generated components). A component of the
 * file under a generated key (`com1`, `pvpanic`, …) is an error.
 */
export function buildInstanceSpec(config: SpecConfig | undefined, opts: BoardOptions = {}): InstanceSpec {
  const board: Board = {
    cpus: opts.cpus ?? DEFAULT_VCPUS,
    memory_mb: opts.memoryMb ?? DEFAULT_MEMORY_MIB,
    chipset: { type: 'i440_fx', value: { enable_pcie: config?.enablePcie ?? false } },
  };
  if (opts.cpuidProfile !== undefined) {
    const cpuid = config?.cpuidProfiles.get(opts.cpuidProfile);
    if (cpuid === undefined) {
      throw new ConfigTomlError(
        'CONFIG_KEY',
        { file: config?.file ?? '(no config file)', table: `cpuid.${opts.cpuidProfile}` },
        `CPUID profile "${opts.cpuidProfile}" is not defined`,
      );
    }
    board.cpuid = structuredClone(cpuid);
  }
  if (opts.hyperV) board.guest_hv_interface = { type: 'hyper_v', value: { features: ['reference_tsc'] } };

  const components: Record<string, Component> = structuredClone(config?.components ?? {});
  for (const [key, c] of Object.entries(GENERATED_COMPONENTS)) {
    if (key in components) {
      throw new ConfigTomlError(
        'CONFIG_VALUE',
        { file: config?.file ?? '(no config file)', table: `dev.${key}` },
        `spec key "${key}" is reserved for the generated ${c.type} component`,
      );
    }
    components[key] = structuredClone(c);
  }
  if (opts.cloudInitImage !== undefined) addCloudInit(components, opts.cloudInitImage, config?.file);
  return { board, components };
}

function addCloudInit(components: Record<string, Component>, image: Uint8Array, file = '(no config file)'): void {
  const p = CLOUD_INIT_PCI_PATH;
  for (const [key, c] of Object.entries(components)) {
    if (key === CLOUD_INIT_DISK || key === CLOUD_INIT_BACKEND) {
      throw new ConfigTomlError(
        'CONFIG_VALUE',
        { file },
        `component "${key}": the name is reserved for the cloud-init disk (--cloud-init); rename it`,
      );
    }
    const at = (c.component as { pci_path?: { bus: number; device: number; function: number } }).pci_path;
    if (at && at.bus === p.bus && at.device === p.device && at.function === p.function) {
      throw new ConfigTomlError(
        'CONFIG_VALUE',
        { file },
        `component "${key}" is at PCI ${p.bus}.${p.device}.${p.function}, where --cloud-init attaches its disk; move it`,
      );
    }
  }
  components[CLOUD_INIT_BACKEND] = {
    type: 'blob_storage_backend',
    component: {
      base64: Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString('base64'),
      readonly: true,
    },
  };
  components[CLOUD_INIT_DISK] = {
    type: 'virtio_disk',
    component: { backend_id: CLOUD_INIT_BACKEND, pci_path: { ...p } },
  };
}
