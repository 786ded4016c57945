// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Checks for the options every backend kind shares (block size, read-only,
// worker count). Each turns a bad value into a BLOCK_BAD_OPTION error that
// names the backend, the option and the value.
//
// Threading: pure functions.

import { BlockBackendError } from './errors.js';

export const DEFAULT_BLOCK_SIZE = 512;
/** Largest block size accepted: the largest logical block Linux itself supports. */
export const MAX_BLOCK_SIZE = 65536;
/** The seed's `workers` rule: default 8, and a count above 32 falls back to 8. */
export const DEFAULT_WORKERS = 8;
export const MAX_WORKERS = 32;

function bad(name: string, what: string): never {
  throw new BlockBackendError('BLOCK_BAD_OPTION', `block backend "${name}": ${what}`);
}

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  return String(v);
}

export function blockSizeOption(name: string, v: unknown): number {
  if (v === undefined) return DEFAULT_BLOCK_SIZE;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 512 || v > MAX_BLOCK_SIZE || (v & (v - 1)) !== 0)
    bad(name, `block size must be a power of two from 512 to ${MAX_BLOCK_SIZE}, got ${show(v)}`);
  return v;
}

export function boolOption(name: string, option: string, v: unknown, dflt = false): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') bad(name, `${option} must be true or false, got ${show(v)}`);
  return v;
}

/** Worker threads for a pool in front of this backend. */
export function workersOption(name: string, v: unknown, dflt = DEFAULT_WORKERS): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(name, `workers must be at least 1, got ${show(v)}`);
  // Propolis quietly replaces an over-large count with the default rather than refusing it.
  return v > MAX_WORKERS ? DEFAULT_WORKERS : v;
}

export function badOption(name: string, what: string): never {
  bad(name, what);
}
