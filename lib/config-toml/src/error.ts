// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The one error type of lib/config-toml: an operator error in a config file.
// Every message names the file and, where there is one, the table and the
// key, so a user can go straight to the line at fault; `where` carries the
// same parts for programs.

export type ConfigTomlErrorCode =
  /** The file cannot be read. */
  | 'CONFIG_READ'
  /** Not valid TOML. */
  | 'CONFIG_SYNTAX'
  /** A table or key that does not belong (unknown, misplaced, or missing). */
  | 'CONFIG_KEY'
  /** A key with a wrong type or an unacceptable value. */
  | 'CONFIG_VALUE'
  /** Valid in the original's format, but a device or backend this VMM cannot run. */
  | 'CONFIG_UNSUPPORTED';

export interface ConfigTomlLocation {
  file: string;
  /** e.g. `dev.disk0`, `cpuid.amd`, `[[pci_bridge]] #2` (the second) */
  table?: string;
  key?: string;
}

export class ConfigTomlError extends Error {
  constructor(
    readonly code: ConfigTomlErrorCode,
    readonly where: ConfigTomlLocation,
    /** What is wrong, without the location (the message prefixes it). */
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${formatLocation(where)}: ${problem}`, options);
    this.name = 'ConfigTomlError';
  }
}

/** `[dev.disk0]`; a name that already has brackets (`[[pci_bridge]] #2`) as is. */
export function formatTable(table: string): string {
  return table.startsWith('[') ? table : `[${table}]`;
}

/** `file: [table] key`, as much of it as is known. */
export function formatLocation(w: ConfigTomlLocation): string {
  let s = w.file;
  if (w.table !== undefined) s += `: ${formatTable(w.table)}`;
  if (w.key !== undefined) s += w.table === undefined ? `: ${w.key}` : ` ${w.key}`;
  return s;
}
