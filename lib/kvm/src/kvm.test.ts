// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Tests of the KVM handles against the real /dev/kvm. They never skip: a host
// without KVM fails them (the test runner says so up front).
//
// Guests here are a handful of real-mode instructions placed at 0x1000, run
// without an in-kernel irqchip unless a test needs one (so that `hlt` exits
// to userspace). Every test releases what it opened, in reverse order, via
// `cleanup()`.
//
// Threading: everything runs on the test's own thread; the kvm_run views are
// dropped (go out of scope) before cleanup unmaps their mapping.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test, type TestContext } from 'node:test';

import { readField } from './abi.js';
import { KvmError, KvmUnavailableError } from './errors.js';
import {
  KVM_CAP_IRQCHIP,
  KVM_CAP_USER_MEMORY,
  KVM_EXIT_HLT,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_RUNNABLE,
} from './ioctls.js';
import { Kvm, VcpuFd, VmFd } from './kvm.js';
import * as libc from './libc.js';
import { KvmRun } from './structs.js';

const RAM_SIZE = 0x10000; // 64 KiB: 16 pages at guest-physical 0
const CODE_GPA = 0x1000;
const EEXIST = 17;
const MSR_IA32_SYSENTER_CS = 0x174;

/** Register `fn` to run when the test ends; all run in reverse order of registration. */
function cleanup(t: TestContext): (fn: () => void) => void {
  const fns: (() => void)[] = [];
  t.after(() => {
    for (const fn of fns.reverse()) fn();
  });
  return (fn) => void fns.push(fn);
}

function openKvm(defer: (fn: () => void) => void): Kvm {
  const kvm = Kvm.open();
  defer(() => kvm.close());
  return kvm;
}

/** Anonymous memory for guest RAM; the returned view must not outlive `defer`'s munmap. */
function anonMap(defer: (fn: () => void) => void, size: number): { addr: bigint; bytes: Uint8Array } {
  const addr = libc.mmap(
    0n,
    size,
    libc.PROT_READ | libc.PROT_WRITE,
    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE,
    -1,
    0,
  );
  assert.notEqual(addr, libc.MAP_FAILED, `mmap of ${size} bytes failed: ${libc.errnoName(libc.errno())}`);
  assert.equal(typeof addr, 'bigint');
  defer(() => void libc.munmap(addr, size));
  return { addr, bytes: new Uint8Array(libc.view(addr, size)) };
}

interface Machine {
  kvm: Kvm;
  vm: VmFd;
  ram: Uint8Array;
  vcpu: VcpuFd;
  /** DataView over this vCPU's kvm_run mapping. */
  run: DataView;
}

/**
 * A VM with RAM_SIZE bytes of RAM at 0 (slot 0), one vCPU in real mode at
 * CS:IP 0:CODE_GPA, and `code` placed there.
 */
function machine(t: TestContext, code: number[], opts: { irqchip?: boolean; slotFlags?: number } = {}): Machine {
  const defer = cleanup(t);
  const kvm = openKvm(defer);
  const vm = kvm.createVm();
  const ram = anonMap(defer, RAM_SIZE);
  defer(() => vm.close());
  vm.setUserMemoryRegion(0, 0n, BigInt(RAM_SIZE), ram.addr, opts.slotFlags ?? 0);
  if (opts.irqchip) vm.createIrqchip();
  const vcpu = vm.createVcpu(0);
  defer(() => vcpu.close());
  const mmapSize = kvm.vcpuMmapSize();
  const runAddr = vcpu.mapRun(mmapSize);
  defer(() => void libc.munmap(runAddr, mmapSize));
  const run = new DataView(libc.view(runAddr, mmapSize));

  ram.bytes.set(code, CODE_GPA);
  const sregs = vcpu.getSregs();
  sregs.sub('cs').set('base', 0n).set('selector', 0);
  vcpu.setSregs(sregs);
  const regs = vcpu.getRegs();
  regs.set('rip', BigInt(CODE_GPA)).set('rflags', 2n);
  vcpu.setRegs(regs);
  return { kvm, vm, ram: ram.bytes, vcpu, run };
}

/** KVM_RUN until it returns an exit (retrying signal interruptions); the exit reason. */
function runToExit(m: Machine): number {
  while (m.vcpu.run() < 0);
  return m.run.getUint32(KvmRun.fields.exitReason.offset, true);
}

// mov al, 0x41; out 0x10, al; hlt
const OUT_THEN_HLT = [0xb0, 0x41, 0xe6, 0x10, 0xf4];

test('Kvm.open on a missing device throws KvmUnavailableError naming the path', () => {
  const path = '/nonexistent/kvm-device';
  assert.throws(
    () => Kvm.open(path),
    (e: unknown) => e instanceof KvmUnavailableError && e.code === 'KVM_UNAVAILABLE' && e.message.includes(path),
  );
});

test('Kvm.open on a device that is not KVM throws KvmUnavailableError and closes it', () => {
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const before = fds();
  assert.throws(
    () => Kvm.open('/dev/null'),
    (e: unknown) => e instanceof KvmUnavailableError && e.message.includes('/dev/null') && e.cause instanceof KvmError,
  );
  assert.equal(fds(), before, 'the file descriptor was leaked');
});

test('system ioctls: API version, kvm_run size, CPUID, MSR list, extensions', (t) => {
  const kvm = openKvm(cleanup(t));
  assert.equal(kvm.apiVersion(), 12);
  assert.ok(kvm.vcpuMmapSize() >= 4096);
  assert.ok(kvm.vcpuMmapSize() >= KvmRun.size);
  const cpuid = kvm.supportedCpuid();
  assert.ok(cpuid.length > 50, `only ${cpuid.length} CPUID entries`);
  const leaf0 = cpuid.find((e) => e.function === 0);
  assert.ok(leaf0 !== undefined, 'CPUID leaf 0 is missing');
  assert.ok(leaf0.eax > 0, 'CPUID leaf 0 reports no basic leaves');
  const msrs = kvm.msrIndexList();
  assert.ok(msrs.length > 0);
  assert.ok(msrs.includes(MSR_IA32_SYSENTER_CS));
  assert.ok(kvm.checkExtension(KVM_CAP_USER_MEMORY) > 0);
  assert.ok(kvm.checkExtension(KVM_CAP_IRQCHIP) > 0);
});

test('memory region, vCPU, and regs/sregs round trip', (t) => {
  const m = machine(t, []);
  const regs = m.vcpu.getRegs();
  regs.set('rax', 0x1122_3344_5566_7788n).set('r15', 0xffff_ffff_ffff_ffffn).set('rip', 0x1234n);
  m.vcpu.setRegs(regs);
  const back = m.vcpu.getRegs();
  assert.equal(back.get('rax'), 0x1122_3344_5566_7788n);
  assert.equal(back.get('r15'), 0xffff_ffff_ffff_ffffn);
  assert.equal(back.get('rip'), 0x1234n);
  assert.deepEqual(back.bytes, regs.bytes);

  const sregs = m.vcpu.getSregs();
  sregs.sub('ds').set('base', 0x2000n).set('selector', 0x200);
  sregs.sub('gdt').set('base', 0x5000n).set('limit', 0x27);
  m.vcpu.setSregs(sregs);
  const sback = m.vcpu.getSregs();
  assert.equal(sback.sub('ds').get('base'), 0x2000n);
  assert.equal(sback.sub('ds').get('selector'), 0x200);
  assert.equal(sback.sub('gdt').get('base'), 0x5000n);
  assert.equal(sback.sub('gdt').get('limit'), 0x27);
  assert.equal(sback.sub('cs').get('base'), 0n);
});

test('a real-mode guest exits on port I/O with its data, then on hlt', (t) => {
  const m = machine(t, OUT_THEN_HLT);
  assert.equal(runToExit(m), KVM_EXIT_IO);
  const f = KvmRun.fields;
  assert.equal(readField(m.run, f.ioPort, 0), 0x10);
  assert.equal(readField(m.run, f.ioDirection, 0), KVM_EXIT_IO_OUT);
  assert.equal(readField(m.run, f.ioSize, 0), 1);
  assert.equal(readField(m.run, f.ioCount, 0), 1);
  const dataOffset = Number(readField(m.run, f.ioDataOffset, 0));
  assert.ok(dataOffset + 1 <= m.run.byteLength, `data_offset ${dataOffset} lies outside the kvm_run mapping`);
  assert.equal(m.run.getUint8(dataOffset), 0x41);

  assert.equal(runToExit(m), KVM_EXIT_HLT);
  assert.equal(m.vcpu.getRegs().get('rip'), BigInt(CODE_GPA + OUT_THEN_HLT.length));
});

test('a failing ioctl throws a KvmError naming the ioctl and the errno', (t) => {
  const m = machine(t, []);
  assert.throws(
    () => m.vm.createVcpu(0),
    (e: unknown) =>
      e instanceof KvmError &&
      e.op === 'KVM_CREATE_VCPU' &&
      e.errno === EEXIST &&
      e.errnoName === 'EEXIST' &&
      e.message.includes('KVM_CREATE_VCPU') &&
      e.message.includes('EEXIST'),
  );
});

test('vCPU state getters round-trip through their setters with an in-kernel irqchip', (t) => {
  const { vcpu, kvm } = machine(t, [], { irqchip: true });

  const lapic = vcpu.getLapic();
  assert.equal(lapic.byteLength, 1024);
  const TPR = 0x80;
  lapic[TPR] = 0x20;
  vcpu.setLapic(lapic);
  assert.equal(vcpu.getLapic()[TPR], 0x20);

  const xsave = vcpu.getXsave();
  assert.equal(xsave.byteLength, 4096);
  vcpu.setXsave(xsave);
  assert.deepEqual(vcpu.getXsave(), xsave);

  const xcrs = vcpu.getXcrs();
  assert.ok(xcrs.length >= 1);
  assert.equal(xcrs[0]?.xcr, 0);
  assert.equal((xcrs[0]?.value ?? 0n) & 1n, 1n, 'XCR0.x87 must be set');
  vcpu.setXcrs(xcrs);
  assert.deepEqual(vcpu.getXcrs(), xcrs);

  assert.equal(vcpu.setMsrs([{ index: MSR_IA32_SYSENTER_CS, data: 0x10n }]), 1);
  assert.deepEqual(vcpu.getMsrs([MSR_IA32_SYSENTER_CS]), [{ index: MSR_IA32_SYSENTER_CS, data: 0x10n }]);

  const events = vcpu.getVcpuEvents();
  events.set('nmiMasked', 1);
  vcpu.setVcpuEvents(events);
  assert.equal(vcpu.getVcpuEvents().get('nmiMasked'), 1);

  assert.equal(vcpu.getMpState(), KVM_MP_STATE_RUNNABLE);
  vcpu.setMpState(KVM_MP_STATE_HALTED);
  assert.equal(vcpu.getMpState(), KVM_MP_STATE_HALTED);
  vcpu.setMpState(KVM_MP_STATE_RUNNABLE);

  // KVM_GET_FPU leaves `mxcsr` zero (the kernel never copies it out), so
  // only the x87 control word and an XMM register are compared.
  const fpu = vcpu.getFpu();
  const xmm0 = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  fpu.set('fcw', 0x27f).set('xmm', xmm0);
  vcpu.setFpu(fpu);
  const fpuBack = vcpu.getFpu();
  assert.equal(fpuBack.get('fcw'), 0x27f);
  assert.deepEqual([...fpuBack.get('xmm').subarray(0, 16)], [...xmm0]);

  const dbg = vcpu.getDebugregs();
  const db0 = new Uint8Array(8);
  new DataView(db0.buffer).setBigUint64(0, 0x1000n, true);
  dbg.set('db', db0);
  vcpu.setDebugregs(dbg);
  assert.deepEqual([...vcpu.getDebugregs().get('db').subarray(0, 8)], [...db0]);

  const cpuid = kvm.supportedCpuid();
  vcpu.setCpuid(cpuid);
  assert.equal(vcpu.getCpuid().length, cpuid.length);
});

test('irqfd and ioeventfd assign and deassign with an eventfd', (t) => {
  const defer = cleanup(t);
  const { vm } = machine(t, [], { irqchip: true });
  const efd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
  assert.ok(efd >= 0);
  defer(() => void libc.close(efd));

  vm.irqfd(efd, 5);
  vm.irqfd(efd, 5, { deassign: true });

  vm.ioeventfd(efd, 0x10n, 1, { pio: true });
  vm.ioeventfd(efd, 0x10n, 1, { pio: true, deassign: true });
  vm.ioeventfd(efd, 0xd000_0000n, 4, { datamatch: 7n });
  vm.ioeventfd(efd, 0xd000_0000n, 4, { datamatch: 7n, deassign: true });
  // Deassigning what is not assigned is refused.
  assert.throws(() => vm.ioeventfd(efd, 0x10n, 1, { pio: true, deassign: true }), /KVM_IOEVENTFD failed: ENOENT/);
});

test('a guest port write to an ioeventfd signals it without an exit', (t) => {
  const defer = cleanup(t);
  const m = machine(t, OUT_THEN_HLT);
  const efd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
  assert.ok(efd >= 0);
  defer(() => void libc.close(efd));
  m.vm.ioeventfd(efd, 0x10n, 1, { pio: true });

  assert.equal(runToExit(m), KVM_EXIT_HLT);
  const count = new Uint8Array(8);
  assert.equal(libc.read(efd, count, 8), 8);
  assert.equal(new DataView(count.buffer).getBigUint64(0, true), 1n);
});

test('GSI routing and MSI injection with an in-kernel irqchip', (t) => {
  const { vm } = machine(t, [], { irqchip: true });
  vm.setGsiRouting([
    { gsi: 0, kind: 'irqchip', irqchip: 2, pin: 2 },
    { gsi: 1, kind: 'irqchip', irqchip: 0, pin: 1 },
    { gsi: 1, kind: 'irqchip', irqchip: 2, pin: 1 },
    { gsi: 24, kind: 'msi', addressLo: 0xfee0_0000, addressHi: 0, data: 0x30 },
  ]);
  const delivered = vm.signalMsi(0xfee0_0000, 0, 0x31);
  assert.equal(typeof delivered, 'number');
  assert.ok(delivered >= 0);
  vm.irqLine(1, true);
  vm.irqLine(1, false);
});

test('the dirty log reports the page a guest wrote', (t) => {
  // mov byte [0x5000], 1; out 0x10, al; hlt
  const m = machine(t, [0xc6, 0x06, 0x00, 0x50, 0x01, 0xe6, 0x10, 0xf4], { slotFlags: KVM_MEM_LOG_DIRTY_PAGES });
  const pages = RAM_SIZE / 4096;
  // Start from a clean log: only the guest's writes count.
  m.vm.getDirtyLog(0, pages);
  assert.equal(runToExit(m), KVM_EXIT_IO);
  assert.equal(m.ram[0x5000], 1);
  const bitmap = m.vm.getDirtyLog(0, pages);
  assert.equal(bitmap.byteLength, 8);
  const dirty = [...Array(pages).keys()].filter((p) => ((bitmap[p >> 3] ?? 0) >> (p & 7)) & 1);
  assert.ok(dirty.includes(5), `page 5 not reported dirty (dirty: ${dirty.join(', ')})`);
  // Reading the log cleared it.
  assert.ok(!m.vm.getDirtyLog(0, pages).some((b) => b !== 0));
});

test('VM clock, irqchip and PIT state', (t) => {
  const { vm } = machine(t, [], { irqchip: true });
  const clock = vm.getClock();
  assert.equal(typeof clock.clock, 'bigint');
  assert.equal(typeof clock.flags, 'number');
  vm.setClock(clock.clock + 1_000_000_000n);
  assert.ok(vm.getClock().clock >= clock.clock + 1_000_000_000n);

  const IOAPIC = 2;
  const ioapic = vm.getIrqchip(IOAPIC);
  assert.equal(ioapic.byteLength, 512);
  vm.setIrqchip(IOAPIC, ioapic);
  assert.deepEqual(vm.getIrqchip(IOAPIC), ioapic);

  vm.createPit2();
  const pit = vm.getPit2();
  vm.setPit2(pit);
  assert.equal(vm.getPit2().byteLength, pit.byteLength);
});
