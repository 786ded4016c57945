// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PCI paths in their text form `bus.device.function` (decimal), as config
// files write them (propolis-types' `PciPath`): bus 0..255, device 0..31,
// function 0..7.

import type { PciPath } from '../../api-types/src/index.js';

const PCI_PATH_TEXT = /^(\d{1,3})\.(\d{1,2})\.(\d)$/;

/** The path, or a sentence saying what is wrong with the text. */
export function parsePciPath(text: string): PciPath | string {
  const m = PCI_PATH_TEXT.exec(text);
  if (!m) return `"${text}" is not a PCI path (bus.device.function, e.g. "0.4.0")`;
  const [bus, device, fn] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (bus > 255) return `"${text}": bus ${bus} is out of range (0..255)`;
  if (device > 31) return `"${text}": device ${device} is out of range (0..31)`;
  if (fn > 7) return `"${text}": function ${fn} is out of range (0..7)`;
  return { bus, device, function: fn };
}

export function formatPciPath(p: PciPath): string {
  return `${p.bus}.${p.device}.${p.function}`;
}
