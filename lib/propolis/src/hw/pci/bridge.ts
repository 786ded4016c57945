// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A PCI-to-PCI bridge (Propolis's `pci-bridge`, 01DE:0002, class 06/04,
// header type 1). It leads to a logical bus chosen when the VM is built
// (`downstreamBus`); the guest numbers that bus by writing the secondary
// bus register, which re-routes configuration cycles (topology.ts).
// Writable: command, primary/secondary/subordinate bus, I/O and memory
// base/limit, bridge control. No prefetchable window, no BARs, no INTx of
// its own. Not migratable, as in Propolis.
//
// Threading: one instance per thread over the shared function state
// (function.ts); no state of its own.

import type { DeviceDescriptor, DeviceHost, MachineDevice } from '../../device.js';
import type { Lifecycle } from '../../lifecycle.js';
import { BRIDGE_SUBCLASS, CLASS_CODE, VENDOR_ID } from './bits.js';
import { PciBuilder } from './builder.js';
import { PciFunction, type PciFunctionShared } from './function.js';
import type { PciPath } from './path.js';
import { PciTopology } from './topology.js';

export const PCI_BRIDGE_DEVICE_ID = 0x0002;

interface BridgeShared {
  pci: PciFunctionShared;
  downstreamBus: number;
}

export class PciPciBridge implements MachineDevice, Lifecycle {
  readonly typeName = 'pci-bridge';
  readonly pci: PciFunction;

  private constructor(
    readonly descriptor: DeviceDescriptor,
    host: DeviceHost,
  ) {
    const sh = descriptor.shared as BridgeShared;
    this.pci = PciFunction.attach(sh.pci, host, { name: descriptor.name });
    PciTopology.of(host).addBridge(this.pci, sh.downstreamBus);
  }

  get name(): string {
    return this.descriptor.name;
  }

  static describe(name: string, path: PciPath, downstreamBus: number): DeviceDescriptor {
    const spec = new PciBuilder({
      vendor: VENDOR_ID.OXIDE,
      device: PCI_BRIDGE_DEVICE_ID,
      class: CLASS_CODE.BRIDGE,
      subclass: BRIDGE_SUBCLASS.PCI,
    })
      .bridge()
      .finish();
    const shared: BridgeShared = { pci: PciFunction.share(spec, path), downstreamBus };
    return { module: import.meta.url, export: 'PciPciBridge', name, shared };
  }

  static attach(desc: DeviceDescriptor, host: DeviceHost): PciPciBridge {
    return new PciPciBridge(desc, host);
  }

  reset(): void {
    this.pci.reset();
  }

  migrate(): 'non-migratable' {
    return 'non-migratable';
  }
}
