// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// What the host can run. PHD's guests differ in what they need: the
// project's test OS runs anywhere KVM does, while Linux (and any other real
// OS) needs hardware virtualization underneath. The project's development
// and CI machines run KVM nested on a "PVM" hypervisor with no VT-x/AMD-V
// visible (PLATFORM.md), where KVM emulates every CPL0 instruction and
// Linux kernels die on instructions the emulator lacks; a test that needs
// such a guest reports itself skipped there, with this as the reason.
//
// Threading: main thread; reads /proc once.

import { existsSync, readFileSync } from 'node:fs';

export interface HostInfo {
  /** The hardware virtualization extension the CPU flags show, if any. */
  hardwareVirt: 'vmx' | 'svm' | undefined;
  /** Whether KVM here is PVM (kvm_pvm built in or loaded): CPL3 guest code runs natively, CPL0 is emulated. */
  pvm: boolean;
}

/** Parse /proc/cpuinfo text: `vmx` or `svm` in the first processor's flags. */
export function hardwareVirtFrom(cpuinfo: string): 'vmx' | 'svm' | undefined {
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? [];
  if (flags.includes('vmx')) return 'vmx';
  if (flags.includes('svm')) return 'svm';
  return undefined;
}

let cached: HostInfo | undefined;

export function hostInfo(): HostInfo {
  if (cached) return cached;
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  cached = {
    hardwareVirt: hardwareVirtFrom(read('/proc/cpuinfo')),
    pvm: existsSync('/sys/module/kvm_pvm') || /^kvm_pvm\s/m.test(read('/proc/modules')),
  };
  return cached;
}

/** Why a guest that needs hardware virtualization cannot run here, or undefined if it can. */
export function realOsUnavailableReason(host: HostInfo): string | undefined {
  if (host.hardwareVirt) return undefined;
  return (
    'this host has no hardware virtualization (no vmx/svm in /proc/cpuinfo' +
    (host.pvm ? '; KVM is nested PVM' : '') +
    '): KVM emulates all guest kernel code here and real OS kernels cannot boot (see PLATFORM.md)'
  );
}
