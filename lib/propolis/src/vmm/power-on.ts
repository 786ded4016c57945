// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Power-on state of the vCPUs and the in-kernel irqchip/PIT, for reset.
//
// KVM creates vCPUs, the PIC/IOAPIC and the PIT in their reset state but has
// no ioctl to return to it. So the Machine records that state right after
// creating them and writes it back on a guest reset: registers, segment and
// control registers, XSAVE (FPU/SSE/AVX), XCRs, the LAPIC, pending events,
// the MP state (BSP runnable, APs waiting for INIT/SIPI) and every MSR the
// kernel lets us read back.
//
// Threading: main thread only, with every vCPU paused.

import type { StructBuf, VcpuFd, VmFd } from '../../../kvm/src/index.js';
import type { structs } from '../../../kvm/src/index.js';

type Regs = StructBuf<typeof structs.KvmRegs.fields>;
type Sregs = StructBuf<typeof structs.KvmSregs.fields>;
type Events = StructBuf<typeof structs.KvmVcpuEvents.fields>;
type Debugregs = StructBuf<typeof structs.KvmDebugregs.fields>;

export interface VcpuPowerOn {
  regs: Regs;
  sregs: Sregs;
  xsave: Uint8Array;
  xcrs: { xcr: number; value: bigint }[];
  lapic: Uint8Array;
  events: Events;
  debugregs: Debugregs;
  mpState: number;
  msrs: { index: number; data: bigint }[];
}

/** Read every listed MSR one at a time, keeping those the kernel answers. */
function readableMsrs(vcpu: VcpuFd, indices: number[]): { index: number; data: bigint }[] {
  const out: { index: number; data: bigint }[] = [];
  for (const index of indices) {
    try {
      const got = vcpu.getMsrs([index]);
      if (got.length === 1) out.push(got[0] as { index: number; data: bigint });
    } catch {
      // Not readable on this host: nothing to restore.
    }
  }
  return out;
}

export function capturePowerOn(vcpu: VcpuFd, msrIndices: number[]): VcpuPowerOn {
  return {
    regs: vcpu.getRegs(),
    sregs: vcpu.getSregs(),
    xsave: vcpu.getXsave().slice(),
    xcrs: vcpu.getXcrs(),
    lapic: vcpu.getLapic().slice(),
    events: vcpu.getVcpuEvents(),
    debugregs: vcpu.getDebugregs(),
    mpState: vcpu.getMpState(),
    msrs: readableMsrs(vcpu, msrIndices),
  };
}

/** Write a recorded power-on state back. Returns how many MSRs the kernel refused. */
export function restorePowerOn(vcpu: VcpuFd, s: VcpuPowerOn): number {
  vcpu.setSregs(s.sregs);
  vcpu.setRegs(s.regs);
  vcpu.setXsave(s.xsave);
  if (s.xcrs.length > 0) vcpu.setXcrs(s.xcrs);
  vcpu.setLapic(s.lapic);
  vcpu.setDebugregs(s.debugregs);
  let refused = 0;
  for (const m of s.msrs) {
    try {
      if (vcpu.setMsrs([m]) !== 1) refused++;
    } catch {
      refused++;
    }
  }
  vcpu.setVcpuEvents(s.events);
  vcpu.setMpState(s.mpState);
  return refused;
}

export interface ChipsetPowerOn {
  irqchips: Uint8Array[];
  pit: Uint8Array;
}

/** The in-kernel PIC master (0), PIC slave (1) and IOAPIC (2), and the PIT. */
export function captureChipset(vm: VmFd): ChipsetPowerOn {
  return { irqchips: [0, 1, 2].map((c) => vm.getIrqchip(c)), pit: vm.getPit2() };
}

export function restoreChipset(vm: VmFd, s: ChipsetPowerOn): void {
  s.irqchips.forEach((chip, i) => vm.setIrqchip(i, chip));
  vm.setPit2(s.pit);
}
