// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// PHD's framework: what test cases (phd/tests) and the runner (phd/runner) use.

export * from './artifacts.js';
export * from './cpio.js';
export * from './disks.js';
export * from './errors.js';
export * from './framework.js';
export * from './guest-os/guest-os.js';
export * from './guest-os/linux.js';
export * from './guest-os/testos.js';
export * from './host.js';
export * from './serial/console.js';
export * from './serial/terminal.js';
export * from './server-process.js';
export * from './test-case.js';
export * from './shell.js';
export * from './test-vm.js';
export * from './vm-config.js';
