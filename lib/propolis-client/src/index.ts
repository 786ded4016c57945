// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-client: the typed client of propolis-server's API (client.ts)
// and its serial console (serial.ts). Runs in browsers and Node.js.

export * from './client.js';
export * from './serial.js';
export type * from '../../api-types/src/schemas.js';
