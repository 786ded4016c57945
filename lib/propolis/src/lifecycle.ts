// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The device lifecycle, as in Propolis: `start` once before the vCPUs first
// run; `pause` after all vCPUs are paused (stop producing work, still accept
// it); `resume` before vCPUs run again; `reset` while paused; `halt` while
// paused, before the device is discarded. Called on the main thread only.

import type { Migrate, Payload, PayloadOffers } from './migrate.js';

export interface Lifecycle {
  /** Type name, e.g. `lpc-uart`; also the prefix of default device keys. */
  readonly typeName: string;
  start?(): Promise<void> | void;
  pause?(): void;
  resume?(): void;
  reset?(): void;
  halt?(): void;
  /**
   * Migration role: `undefined` export means the device has no state
   * (Propolis's `Empty`); `'non-migratable'` blocks migration and snapshots.
   */
  migrate(): Migrate | 'empty' | 'non-migratable';
}

/** A device with no state to carry. */
export const EMPTY_MIGRATE: Migrate = {
  export: (): Payload[] => [],
  import: (offers: PayloadOffers): void => offers.finish(),
};
