// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The i440FX/PIIX chipset as one unit for the machine builder: the host
// bridge (00:00.0), the PIIX3 PCI-to-ISA bridge (00:01.0) and the PIIX4
// power-management function (00:01.3), described in the order they must be
// added — before any other PCI device, so the topology's windows and INTx
// router exist on every thread before devices use them:
//
//   for (const { cls, desc } of describeChipset({ enablePcie })) machine.addDevice(cls, desc);
//
// Threading: descriptors only; see each device.

import type { DeviceClass, DeviceDescriptor, MachineDevice } from '../../device.js';
import type { PciWindows } from '../pci/topology.js';
import { I440FxHostBridge } from './i440fx.js';
import { Piix3Lpc } from './piix3-lpc.js';
import { Piix4Pm } from './piix4-pm.js';
import type { PmTimerBits } from './pm-timer.js';

export interface ChipsetOptions {
  /** ECAM at 0xE000_0000 (the instance spec's chipset `enable_pcie`). */
  enablePcie?: boolean;
  /** BAR router windows (default: i440fx.ts `defaultPciWindows`). */
  windows?: PciWindows;
  /** PM timer width; 32 only with TMR_VAL_EXT in the FADT. Default 24. */
  pmTimerBits?: PmTimerBits;
  /** APM ports 0xB2/0xB3 (SMI_CMD ACPI enable). Default true. */
  apm?: boolean;
}

export interface DeviceToAdd {
  cls: DeviceClass<MachineDevice>;
  desc: DeviceDescriptor;
}

export function describeChipset(opts: ChipsetOptions = {}): DeviceToAdd[] {
  return [
    {
      cls: I440FxHostBridge,
      desc: I440FxHostBridge.describe({
        enablePcie: opts.enablePcie ?? false,
        ...(opts.windows ? { windows: opts.windows } : {}),
      }),
    },
    { cls: Piix3Lpc, desc: Piix3Lpc.describe() },
    {
      cls: Piix4Pm,
      desc: Piix4Pm.describe({ pmTimerBits: opts.pmTimerBits ?? 24, apm: opts.apm ?? true }),
    },
  ];
}
