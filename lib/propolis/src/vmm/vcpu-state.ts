// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// vCPU state as versioned payloads, for migration and snapshots: the
// counterpart of the seed's `bhyve-x86-*` payloads, carrying KVM's views
// (so named `kvm-x86-*`): general registers, segments and descriptor
// tables, control registers, debug registers, XSAVE image and XCRs, the
// LAPIC page, run state with pending events, and MSRs.
//
// Threading: main thread, with the vCPU paused (its worker parked).

import type { VcpuFd } from '../../../kvm/src/index.js';
import { MigrateError, schema, t, type Payload, type PayloadOffers } from '../migrate.js';

const GP = [
  'rax',
  'rbx',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'rsp',
  'rbp',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
  'rip',
  'rflags',
] as const;
const SEGS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const SEG_BYTES = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable'] as const;
const CTRL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;

export const VcpuGpRegsV1 = schema('kvm-x86-vcpu-gpregs', 1, { regs: t.array(t.u64, GP.length) });
export const VcpuSegRegsV1 = schema('kvm-x86-vcpu-segregs', 1, {
  /** Per segment: base, then limit, selector and the nine attribute bytes. */
  bases: t.array(t.u64, SEGS.length),
  attrs: t.array(t.array(t.u32, 2 + SEG_BYTES.length), SEGS.length),
  gdt: t.array(t.u64, 2),
  idt: t.array(t.u64, 2),
});
export const VcpuCtrlRegsV1 = schema('kvm-x86-vcpu-ctrlregs', 1, {
  regs: t.array(t.u64, CTRL.length),
  interruptBitmap: t.bytes(32),
});
export const VcpuDbgRegsV1 = schema('kvm-x86-vcpu-dbgregs', 1, { raw: t.bytes(128) });
export const VcpuFpuV1 = schema('kvm-x86-vcpu-fpu', 1, {
  xsave: t.bytes(4096),
  xcrs: t.array(t.array(t.u64, 2), 16),
});
export const VcpuLapicV1 = schema('kvm-x86-lapic', 1, { regs: t.bytes(1024) });
export const VcpuRunStateV1 = schema('kvm-x86-vcpu-runstate', 1, { mpState: t.u32, events: t.bytes(64) });
export const VcpuMsrsV1 = schema('kvm-x86-cpu-msregs', 1, { msrs: t.array(t.array(t.u64, 2), 4096) });

/** Export one paused vCPU. `msrIndices`: the MSRs to carry (those the host lets us read). */
export function exportVcpu(vcpu: VcpuFd, msrIndices: number[]): Payload[] {
  const regs = vcpu.getRegs();
  const sregs = vcpu.getSregs();
  const seg = (k: (typeof SEGS)[number]): number[] => {
    const s = sregs.sub(k);
    return [s.get('limit'), s.get('selector'), ...SEG_BYTES.map((b) => s.get(b))];
  };
  const msrs: [bigint, bigint][] = [];
  for (const index of msrIndices) {
    try {
      const got = vcpu.getMsrs([index]);
      if (got.length === 1) msrs.push([BigInt(index), (got[0] as { data: bigint }).data]);
    } catch {
      // not readable here: not carried
    }
  }
  return [
    VcpuGpRegsV1.encode({ regs: GP.map((r) => regs.get(r)) }),
    VcpuSegRegsV1.encode({
      bases: SEGS.map((k) => sregs.sub(k).get('base')),
      attrs: SEGS.map(seg),
      gdt: [sregs.sub('gdt').get('base'), BigInt(sregs.sub('gdt').get('limit'))],
      idt: [sregs.sub('idt').get('base'), BigInt(sregs.sub('idt').get('limit'))],
    }),
    VcpuCtrlRegsV1.encode({
      regs: CTRL.map((r) => sregs.get(r)),
      interruptBitmap: sregs.get('interruptBitmap').slice(),
    }),
    VcpuDbgRegsV1.encode({ raw: vcpu.getDebugregs().bytes.slice() }),
    VcpuFpuV1.encode({ xsave: vcpu.getXsave().slice(), xcrs: vcpu.getXcrs().map((x) => [BigInt(x.xcr), x.value]) }),
    VcpuLapicV1.encode({ regs: vcpu.getLapic().slice() }),
    VcpuRunStateV1.encode({ mpState: vcpu.getMpState(), events: vcpu.getVcpuEvents().bytes.slice() }),
    VcpuMsrsV1.encode({ msrs }),
  ];
}

function exact(name: string, b: Uint8Array, n: number): Uint8Array {
  if (b.length !== n) throw new MigrateError('ImportFailed', `${name}: ${b.length} bytes, expected ${n}`);
  return b;
}

/**
 * Import one vCPU's payloads. Everything is decoded and checked before the
 * first register is written; the kernel validates the rest (a value it
 * refuses fails the import with the ioctl's error).
 */
export function importVcpu(vcpu: VcpuFd, offers: PayloadOffers): void {
  const gp = offers.take(VcpuGpRegsV1);
  const sg = offers.take(VcpuSegRegsV1);
  const cr = offers.take(VcpuCtrlRegsV1);
  const dbg = offers.take(VcpuDbgRegsV1);
  const fpu = offers.take(VcpuFpuV1);
  const lapic = offers.take(VcpuLapicV1);
  const rs = offers.take(VcpuRunStateV1);
  const msr = offers.take(VcpuMsrsV1);
  offers.finish();
  if (gp.regs.length !== GP.length || sg.bases.length !== SEGS.length || sg.attrs.length !== SEGS.length) {
    throw new MigrateError('ImportFailed', 'vCPU registers: wrong register count');
  }
  if (cr.regs.length !== CTRL.length || sg.gdt.length !== 2 || sg.idt.length !== 2) {
    throw new MigrateError('ImportFailed', 'vCPU control registers: wrong register count');
  }
  for (const a of sg.attrs) {
    if (a.length !== 2 + SEG_BYTES.length || a.slice(2).some((x) => x > 0xff) || (a[1] as number) > 0xffff) {
      throw new MigrateError('ImportFailed', 'vCPU segment attributes out of range');
    }
  }
  if ((sg.gdt[1] as bigint) > 0xffffn || (sg.idt[1] as bigint) > 0xffffn) {
    throw new MigrateError('ImportFailed', 'vCPU descriptor table limit out of range');
  }
  exact('interrupt bitmap', cr.interruptBitmap, 32);
  exact('debug registers', dbg.raw, 128);
  exact('xsave', fpu.xsave, 4096);
  exact('lapic', lapic.regs, 1024);
  exact('vcpu events', rs.events, 64);
  for (const x of [...fpu.xcrs, ...msr.msrs]) {
    if (x.length !== 2 || (x[0] as bigint) > 0xffff_ffffn)
      throw new MigrateError('ImportFailed', 'vCPU MSR/XCR index out of range');
  }

  const regs = vcpu.getRegs();
  GP.forEach((r, i) => regs.set(r, gp.regs[i] as bigint));
  const sregs = vcpu.getSregs();
  SEGS.forEach((k, i) => {
    const s = sregs.sub(k);
    const a = sg.attrs[i] as number[];
    s.set('base', sg.bases[i] as bigint)
      .set('limit', a[0] as number)
      .set('selector', a[1] as number);
    SEG_BYTES.forEach((b, j) => s.set(b, a[2 + j] as number));
  });
  sregs
    .sub('gdt')
    .set('base', sg.gdt[0] as bigint)
    .set('limit', Number(sg.gdt[1]));
  sregs
    .sub('idt')
    .set('base', sg.idt[0] as bigint)
    .set('limit', Number(sg.idt[1]));
  CTRL.forEach((r, i) => sregs.set(r, cr.regs[i] as bigint));
  sregs.set('interruptBitmap', cr.interruptBitmap);
  vcpu.setSregs(sregs);
  vcpu.setRegs(regs);
  const d = vcpu.getDebugregs();
  d.bytes.set(dbg.raw);
  vcpu.setDebugregs(d);
  vcpu.setXsave(fpu.xsave);
  if (fpu.xcrs.length > 0) vcpu.setXcrs(fpu.xcrs.map(([xcr, value]) => ({ xcr: Number(xcr), value: value as bigint })));
  vcpu.setLapic(lapic.regs);
  for (const [index, data] of msr.msrs) vcpu.setMsrs([{ index: Number(index), data: data as bigint }]);
  const ev = vcpu.getVcpuEvents();
  ev.bytes.set(rs.events);
  vcpu.setVcpuEvents(ev);
  vcpu.setMpState(rs.mpState);
}
