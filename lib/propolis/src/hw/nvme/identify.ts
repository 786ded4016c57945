// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The Identify Controller and Identify Namespace pages this controller
// returns, built once per thread from the controller's identity strings and
// the block backend's DeviceInfo.
//
// Threading: pure.

import type { DeviceInfo } from '../../block/types.js';
import {
  CQES_LOG2,
  ID_CTRL,
  ID_NS,
  IDENTIFY_BYTES,
  MDTS,
  OACS_DBBUF,
  ONCS_DSM,
  OXIDE_OUI_LE,
  PCI_IDENT,
  SQES_LOG2,
} from './bits.js';

export interface NvmeIdentity {
  /** Serial number, exactly 20 bytes (ASCII, padded). */
  serial: Uint8Array;
  /** Model number, exactly 40 bytes. */
  model: Uint8Array;
  /** Firmware revision, exactly 8 bytes. */
  firmware: Uint8Array;
}

export class NvmeIdentityError extends Error {
  readonly code = 'NVME_IDENTITY';
}

/**
 * A fixed-width ASCII field: a string is encoded and padded with spaces
 * (as the specification asks); a byte array is taken as is and padded with
 * zeros. Longer input, or a string with non-printable or non-ASCII
 * characters, is refused.
 */
export function asciiField(v: string | Uint8Array, width: number, what: string): Uint8Array {
  const out = new Uint8Array(width);
  if (typeof v === 'string') {
    if (!/^[\x20-\x7e]*$/.test(v)) throw new NvmeIdentityError(`${what} "${v}" must be printable ASCII`);
    if (v.length > width) throw new NvmeIdentityError(`${what} "${v}" is longer than ${width} bytes`);
    out.fill(0x20);
    for (let i = 0; i < v.length; i++) out[i] = v.charCodeAt(i);
    return out;
  }
  if (v.length > width) throw new NvmeIdentityError(`${what} is ${v.length} bytes, at most ${width}`);
  out.set(v);
  return out;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

function put32(b: Uint8Array, off: number, v: number): void {
  put16(b, off, v & 0xffff);
  put16(b, off + 2, v >>> 16);
}

function put64(b: Uint8Array, off: number, v: number): void {
  put32(b, off, v % 0x1_0000_0000);
  put32(b, off + 4, Math.floor(v / 0x1_0000_0000));
}

export function identifyController(id: NvmeIdentity): Uint8Array {
  const b = new Uint8Array(IDENTIFY_BYTES);
  put16(b, ID_CTRL.VID, PCI_IDENT.vendor);
  put16(b, ID_CTRL.SSVID, PCI_IDENT.subVendor);
  b.set(id.serial.subarray(0, ID_CTRL.SN_LEN), ID_CTRL.SN);
  b.set(id.model.subarray(0, ID_CTRL.MN_LEN), ID_CTRL.MN);
  b.set(id.firmware.subarray(0, ID_CTRL.FR_LEN), ID_CTRL.FR);
  b.set(OXIDE_OUI_LE, ID_CTRL.IEEE);
  b[ID_CTRL.MDTS] = MDTS;
  put16(b, ID_CTRL.OACS, OACS_DBBUF);
  // Required and maximum entry sizes are the same: standard entries only.
  b[ID_CTRL.SQES] = (SQES_LOG2 << 4) | SQES_LOG2;
  b[ID_CTRL.CQES] = (CQES_LOG2 << 4) | CQES_LOG2;
  put32(b, ID_CTRL.NN, 1);
  // Dataset Management is advertised as the seed does; on a backend
  // without discard, deallocation is accepted and does nothing (it is a hint).
  put16(b, ID_CTRL.ONCS, ONCS_DSM);
  b[ID_CTRL.VWC] = 1;
  return b;
}

export function identifyNamespace(info: DeviceInfo): Uint8Array {
  const b = new Uint8Array(IDENTIFY_BYTES);
  // No thin provisioning: size, capacity and utilisation are all the disk.
  put64(b, ID_NS.NSZE, info.totalBlocks);
  put64(b, ID_NS.NCAP, info.totalBlocks);
  put64(b, ID_NS.NUSE, info.totalBlocks);
  b[ID_NS.NLBAF] = 0; // one format (zero-based)
  b[ID_NS.FLBAS] = 0; // format 0, no metadata
  put32(b, ID_NS.LBAF0, Math.log2(info.blockSize) << ID_NS.LBADS_SHIFT);
  return b;
}
