// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// CPUID for each vCPU: the host's KVM-supported leaves, specialised with
// the vCPU's APIC ID and the VM's vCPU count. (Profiles from config and the
// full topology leaves come with the PC platform.)

import type { CpuidEntry } from '../../../kvm/src/index.js';

export function specializeCpuid(supported: CpuidEntry[], vcpuId: number, vcpus: number): CpuidEntry[] {
  return supported.map((e) => {
    const c = { ...e };
    if (c.function === 1) {
      // EBX[31:24] initial APIC ID, [23:16] logical processors per package.
      c.ebx = ((c.ebx & 0x0000ffff) | ((vcpus & 0xff) << 16) | ((vcpuId & 0xff) << 24)) >>> 0;
      if (vcpus > 1) c.edx = (c.edx | (1 << 28)) >>> 0; // HTT: the count above is valid
    } else if (c.function === 0xb || c.function === 0x1f) {
      c.edx = vcpuId >>> 0; // x2APIC ID
    }
    return c;
  });
}
