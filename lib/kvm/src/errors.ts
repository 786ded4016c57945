// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Typed errors from the kernel interface. Every failing syscall becomes a
// `KvmError` that names the operation and the errno, so an operator sees
// "KVM_CREATE_VCPU failed: EEXIST (File exists)" rather than "-1".

import { errnoName, strerror } from './libc.js';

export class KvmError extends Error {
  readonly code = 'KVM_IOCTL';
  constructor(
    /** The ioctl or syscall that failed, e.g. `KVM_SET_USER_MEMORY_REGION`. */
    readonly op: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${op} failed: ${errnoName(errno)} (${strerror(errno)})${detail ? `: ${detail}` : ''}`);
    this.name = 'KvmError';
  }

  get errnoName(): string {
    return errnoName(this.errno);
  }
}

/** /dev/kvm missing, unreadable, or of an unsupported API version. */
export class KvmUnavailableError extends Error {
  readonly code = 'KVM_UNAVAILABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KvmUnavailableError';
  }
}
