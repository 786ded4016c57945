// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The operator error of firmware table generation: a machine description or
// SMBIOS string the tables cannot express (too many vCPUs, an unknown
// serial port, a string with a NUL). Our own inconsistencies are asserts.

export class FirmwareConfigError extends Error {
  readonly code = 'FIRMWARE_CONFIG';
}
