// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The KVM API package: the TypeScript counterpart of Propolis's `bhyve-api`.

export * from './abi.js';
export * from './errors.js';
export * from './ioctls.js';
export * from './kvm.js';
export * as libc from './libc.js';
export * as structs from './structs.js';
