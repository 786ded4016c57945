// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The whole instance spec that `propolis-cli new -t <config>` sends: a board
// (vCPUs, memory, the file's chipset, optionally one of its CPUID profiles
// and the Hyper-V interface) and the file's components, plus what every
// generated spec has: serial ports `com1`–`com4` and `pvpanic`
// {enable_isa: true}. (The original leaves COM4 out when SoftNPU ports are
// present; config files with SoftNPU are refused here, so COM4 is always in.)
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
  return { board, components };
}
