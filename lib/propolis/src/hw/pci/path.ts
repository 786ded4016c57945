// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PciPath: where a function sits in the PCI topology, as the instance spec
// names it (Propolis's `PciPath`): bus 0–255, device 0–31, function 0–7,
// written `b.d.f` in decimal (`0.4.0`). The bus is the *logical* bus the
// VMM placed the device on; the number the guest uses for a bus behind a
// bridge is whatever it programs into the bridge (see topology.ts).
//
// Threading: immutable values.

import { PCI_MAX_BUSES, PCI_MAX_DEVICES, PCI_MAX_FUNCTIONS } from './bits.js';

export class PciPathError extends Error {
  readonly code = 'PCI_PATH';
}

export class PciPath {
  constructor(
    readonly bus: number,
    readonly device: number,
    readonly func: number,
  ) {
    const ok = (v: number, n: number): boolean => Number.isInteger(v) && v >= 0 && v < n;
    if (!ok(bus, PCI_MAX_BUSES) || !ok(device, PCI_MAX_DEVICES) || !ok(func, PCI_MAX_FUNCTIONS)) {
      throw new PciPathError(
        `PCI path ${bus}.${device}.${func} is out of range (bus < ${PCI_MAX_BUSES}, ` +
          `device < ${PCI_MAX_DEVICES}, function < ${PCI_MAX_FUNCTIONS})`,
      );
    }
  }

  /** Parse `b.d.f` (decimal, as in instance specs). */
  static parse(text: string): PciPath {
    const m = /^([0-9]{1,3})\.([0-9]{1,2})\.([0-9])$/.exec(text);
    if (!m) throw new PciPathError(`"${text}" is not a PCI path (expected bus.device.function, e.g. 0.4.0)`);
    return new PciPath(Number(m[1]), Number(m[2]), Number(m[3]));
  }

  /** Device and function in one byte, as configuration cycles address them. */
  get devfn(): number {
    return (this.device << 3) | this.func;
  }

  equals(o: PciPath): boolean {
    return this.bus === o.bus && this.device === o.device && this.func === o.func;
  }

  toString(): string {
    return `${this.bus}.${this.device}.${this.func}`;
  }
}

/**
 * An OpenFirmware PCI unit address: `dev` for function 0, else `dev,fn`
 * (hex), as QEMU writes them. The seed always writes `dev,fn`, which OVMF
 * accepts but SeaBIOS's prefix match does not (it looks for `@dev/`).
 */
export function pciUnit(path: PciPath): string {
  return path.func === 0 ? path.device.toString(16) : `${path.device.toString(16)},${path.func.toString(16)}`;
}
