// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The link package: the TypeScript/Linux counterpart of Propolis's `dladm`
// crate. Link facts (queryLink), tap devices for guest NICs (Tap), link and
// bridge administration (link.ts). Test namespaces and DHCP (netns.ts,
// dnsmasq.ts, testing/) are imported by path from tests and PHD, so the
// VMM's import graph does not carry test tooling.
//
// Threading: see each module; nothing here holds state across threads.

export * from './errors.js';
export * from './names.js';
export * from './query.js';
export * from './tap.js';
export * from './link.js';
export * as uapi from './uapi.js';
