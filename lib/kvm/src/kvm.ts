// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The KVM API: system, VM and vCPU file descriptors and their ioctls
// (the counterpart of Propolis's `bhyve-api`).
//
// Threading: the handles wrap plain file descriptor numbers, which are
// process-wide, so a handle can be re-created on another thread with
// `fromRaw(fd)` (vCPU workers do exactly that). The kernel serialises ioctls
// where it needs to; vCPU ioctls other than KVM_RUN's immediate_exit kick must
// only be issued by the thread that owns the vCPU while it is not in KVM_RUN.

import { alloc, StructBuf, type Field, type Ioctl } from './abi.js';
import { KvmError, KvmUnavailableError } from './errors.js';
import * as I from './ioctls.js';
import * as libc from './libc.js';
import * as S from './structs.js';

const KVM_API_VERSION = 12;

function check(op: Ioctl | string, ret: number): number {
  if (ret < 0) throw new KvmError(typeof op === 'string' ? op : op.name, libc.errno());
  return ret;
}

function ioctlStruct(fd: number, op: Ioctl, buf: { bytes: Uint8Array }): number {
  return check(op, libc.ioctlPtr(fd, op.nr, buf.bytes));
}

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

export interface GsiRoute {
  gsi: number;
  kind: 'irqchip' | 'msi';
  /** irqchip: chip number (0 PIC master, 1 PIC slave, 2 IOAPIC) and pin. */
  irqchip?: number;
  pin?: number;
  /** msi: address and data as programmed by the guest. */
  addressLo?: number;
  addressHi?: number;
  data?: number;
}

const CPUID_MAX_ENTRIES = 256;

/** The system handle: /dev/kvm. */
export class Kvm {
  private constructor(readonly fd: number) {}

  /**
   * Open /dev/kvm, failing with a message an operator can act on when it is
   * missing, inaccessible or of an unexpected API version.
   */
  static open(path = '/dev/kvm'): Kvm {
    const fd = libc.open(path, libc.O_RDWR | libc.O_CLOEXEC);
    if (fd < 0) {
      const e = libc.errno();
      const why =
        e === libc.ENOENT
          ? `${path} does not exist: this host has no KVM (load the kvm module or run on a host with virtualization)`
          : e === libc.EACCES || e === libc.EPERM
            ? `${path} is not accessible to this user (run as root or join the group owning ${path})`
            : `cannot open ${path}: ${libc.errnoName(e)} (${libc.strerror(e)})`;
      throw new KvmUnavailableError(why);
    }
    const kvm = new Kvm(fd);
    let version: number;
    try {
      version = kvm.apiVersion();
    } catch (err) {
      libc.close(fd);
      throw new KvmUnavailableError(`${path} is not a KVM device: ${(err as Error).message}`, { cause: err });
    }
    if (version !== KVM_API_VERSION) {
      libc.close(fd);
      throw new KvmUnavailableError(`${path} speaks KVM API ${version}; this VMM needs ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  apiVersion(): number {
    return check(I.KVM_GET_API_VERSION, libc.ioctlInt(this.fd, I.KVM_GET_API_VERSION.nr, 0));
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific positive value. */
  checkExtension(cap: number): number {
    return check(I.KVM_CHECK_EXTENSION, libc.ioctlInt(this.fd, I.KVM_CHECK_EXTENSION.nr, cap));
  }

  vcpuMmapSize(): number {
    return check(I.KVM_GET_VCPU_MMAP_SIZE, libc.ioctlInt(this.fd, I.KVM_GET_VCPU_MMAP_SIZE.nr, 0));
  }

  supportedCpuid(): CpuidEntry[] {
    const buf = new Uint8Array(S.KvmCpuid2.size + CPUID_MAX_ENTRIES * S.KvmCpuidEntry2.size);
    new StructBuf(S.KvmCpuid2, buf).set('nent', CPUID_MAX_ENTRIES);
    check(I.KVM_GET_SUPPORTED_CPUID, libc.ioctlPtr(this.fd, I.KVM_GET_SUPPORTED_CPUID.nr, buf));
    return decodeCpuid(buf);
  }

  msrIndexList(): number[] {
    // The kernel answers E2BIG with the required count when the buffer is short.
    let n = 64;
    for (;;) {
      const buf = new Uint8Array(S.KvmMsrList.size + n * 4);
      new StructBuf(S.KvmMsrList, buf).set('nmsrs', n);
      const ret = libc.ioctlPtr(this.fd, I.KVM_GET_MSR_INDEX_LIST.nr, buf);
      const count = new StructBuf(S.KvmMsrList, buf).get('nmsrs');
      if (ret < 0) {
        const e = libc.errno();
        if (e === libc.E2BIG && count > n) {
          n = count;
          continue;
        }
        throw new KvmError(I.KVM_GET_MSR_INDEX_LIST.name, e);
      }
      const dv = new DataView(buf.buffer, S.KvmMsrList.size, count * 4);
      return Array.from({ length: count }, (_, i) => dv.getUint32(i * 4, true));
    }
  }

  createVm(): VmFd {
    return new VmFd(check(I.KVM_CREATE_VM, libc.ioctlInt(this.fd, I.KVM_CREATE_VM.nr, 0)));
  }

  close(): void {
    libc.close(this.fd);
  }
}

function decodeCpuid(buf: Uint8Array): CpuidEntry[] {
  const nent = new StructBuf(S.KvmCpuid2, buf).get('nent');
  const out: CpuidEntry[] = [];
  for (let i = 0; i < nent; i++) {
    const off = S.KvmCpuid2.size + i * S.KvmCpuidEntry2.size;
    const e = new StructBuf(S.KvmCpuidEntry2, buf.subarray(off, off + S.KvmCpuidEntry2.size));
    out.push({
      function: e.get('function'),
      index: e.get('index'),
      flags: e.get('flags'),
      eax: e.get('eax'),
      ebx: e.get('ebx'),
      ecx: e.get('ecx'),
      edx: e.get('edx'),
    });
  }
  return out;
}

/** A VM handle. */
export class VmFd {
  constructor(readonly fd: number) {}

  static fromRaw(fd: number): VmFd {
    return new VmFd(fd);
  }

  setUserMemoryRegion(slot: number, gpa: bigint, size: bigint, hostAddr: bigint, flags = 0): void {
    const r = alloc(S.KvmUserspaceMemoryRegion)
      .set('slot', slot)
      .set('flags', flags)
      .set('guestPhysAddr', gpa)
      .set('memorySize', size)
      .set('userspaceAddr', hostAddr);
    ioctlStruct(this.fd, I.KVM_SET_USER_MEMORY_REGION, r);
  }

  setTssAddr(addr: number): void {
    check(I.KVM_SET_TSS_ADDR, libc.ioctlInt(this.fd, I.KVM_SET_TSS_ADDR.nr, addr));
  }

  setIdentityMapAddr(addr: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, addr, true);
    check(I.KVM_SET_IDENTITY_MAP_ADDR, libc.ioctlPtr(this.fd, I.KVM_SET_IDENTITY_MAP_ADDR.nr, b));
  }

  createIrqchip(): void {
    check(I.KVM_CREATE_IRQCHIP, libc.ioctlInt(this.fd, I.KVM_CREATE_IRQCHIP.nr, 0));
  }

  createPit2(flags = 0): void {
    ioctlStruct(this.fd, I.KVM_CREATE_PIT2, alloc(S.KvmPitConfig).set('flags', flags));
  }

  /** Drive an in-kernel irqchip input (GSI) to `level`. */
  irqLine(irq: number, level: boolean): void {
    const b = this.irqLevelBuf;
    b.set('irq', irq).set('level', level ? 1 : 0);
    ioctlStruct(this.fd, I.KVM_IRQ_LINE, b);
  }
  private readonly irqLevelBuf = alloc(S.KvmIrqLevel);

  getIrqchip(chipId: number): Uint8Array {
    const b = alloc(S.KvmIrqchip).set('chipId', chipId);
    ioctlStruct(this.fd, I.KVM_GET_IRQCHIP, b);
    return b.get('chip').slice();
  }

  setIrqchip(chipId: number, chip: Uint8Array): void {
    ioctlStruct(this.fd, I.KVM_SET_IRQCHIP, alloc(S.KvmIrqchip).set('chipId', chipId).set('chip', chip));
  }

  /** Replace the whole GSI routing table. */
  setGsiRouting(routes: GsiRoute[]): void {
    const esz = S.KvmIrqRoutingEntry.size;
    const buf = new Uint8Array(S.KvmIrqRouting.size + routes.length * esz);
    new StructBuf(S.KvmIrqRouting, buf).set('nr', routes.length);
    routes.forEach((r, i) => {
      const off = S.KvmIrqRouting.size + i * esz;
      const e = new StructBuf(S.KvmIrqRoutingEntry, buf.subarray(off, off + esz)).set('gsi', r.gsi);
      if (r.kind === 'irqchip') {
        e.set('type', I.KVM_IRQ_ROUTING_IRQCHIP)
          .set('irqchipIrqchip', r.irqchip ?? 0)
          .set('irqchipPin', r.pin ?? 0);
      } else {
        e.set('type', I.KVM_IRQ_ROUTING_MSI)
          .set('msiAddressLo', r.addressLo ?? 0)
          .set('msiAddressHi', r.addressHi ?? 0)
          .set('msiData', r.data ?? 0);
      }
    });
    check(I.KVM_SET_GSI_ROUTING, libc.ioctlPtr(this.fd, I.KVM_SET_GSI_ROUTING.nr, buf));
  }

  /** Inject one MSI directly (no routing entry needed). Returns >0 if delivered. */
  signalMsi(addressLo: number, addressHi: number, data: number): number {
    const b = alloc(S.KvmSignalMsi).set('addressLo', addressLo).set('addressHi', addressHi).set('data', data);
    return ioctlStruct(this.fd, I.KVM_SIGNAL_MSI, b);
  }

  /** Attach (or with `deassign`, detach) an eventfd that raises `gsi` when written. */
  irqfd(eventFd: number, gsi: number, opts: { deassign?: boolean; resampleFd?: number } = {}): void {
    let flags = opts.deassign ? I.KVM_IRQFD_FLAG_DEASSIGN : 0;
    if (opts.resampleFd !== undefined) flags |= I.KVM_IRQFD_FLAG_RESAMPLE;
    const b = alloc(S.KvmIrqfd)
      .set('fd', eventFd)
      .set('gsi', gsi)
      .set('flags', flags)
      .set('resamplefd', opts.resampleFd ?? 0);
    ioctlStruct(this.fd, I.KVM_IRQFD, b);
  }

  /**
   * Have the kernel signal `eventFd` on a guest write to `addr` (port I/O when
   * `pio`), without an exit to userspace. `datamatch` restricts it to one value.
   */
  ioeventfd(
    eventFd: number,
    addr: bigint,
    len: number,
    opts: { pio?: boolean; datamatch?: bigint; deassign?: boolean } = {},
  ): void {
    let flags = 0;
    if (opts.pio) flags |= I.KVM_IOEVENTFD_FLAG_PIO;
    if (opts.datamatch !== undefined) flags |= I.KVM_IOEVENTFD_FLAG_DATAMATCH;
    if (opts.deassign) flags |= I.KVM_IOEVENTFD_FLAG_DEASSIGN;
    const b = alloc(S.KvmIoeventfd)
      .set('datamatch', opts.datamatch ?? 0n)
      .set('addr', addr)
      .set('len', len)
      .set('fd', eventFd)
      .set('flags', flags);
    ioctlStruct(this.fd, I.KVM_IOEVENTFD, b);
  }

  /**
   * Read and clear the dirty bitmap of a slot registered with
   * KVM_MEM_LOG_DIRTY_PAGES: one bit per 4 KiB page, LSB first.
   */
  getDirtyLog(slot: number, pages: number): Uint8Array {
    const bitmap = new Uint8Array(Math.ceil(pages / 64) * 8);
    const b = alloc(S.KvmDirtyLog).set('slot', slot);
    // The struct carries a pointer to the bitmap: koffi gives the address of
    // our buffer only for the duration of a call, so pass it through an
    // ioctl whose argument is the struct and whose bitmap lives in native
    // memory we own for the call.
    const mem = nativeScratch(bitmap.byteLength);
    try {
      b.set('dirtyBitmap', mem.addr);
      ioctlStruct(this.fd, I.KVM_GET_DIRTY_LOG, b);
      bitmap.set(new Uint8Array(libc.view(mem.addr, bitmap.byteLength)));
    } finally {
      mem.free();
    }
    return bitmap;
  }

  /**
   * Have the kernel queue guest writes to [addr, addr+size) (port I/O when
   * `pio`) in the coalesced ring instead of exiting; reads still exit.
   */
  registerCoalesced(addr: bigint, size: number, pio: boolean): void {
    const b = alloc(S.KvmCoalescedMmioZone)
      .set('addr', addr)
      .set('size', size)
      .set('pio', pio ? 1 : 0);
    ioctlStruct(this.fd, I.KVM_REGISTER_COALESCED_MMIO, b);
  }

  getClock(): { clock: bigint; flags: number; realtime: bigint; hostTsc: bigint } {
    const b = alloc(S.KvmClockData);
    ioctlStruct(this.fd, I.KVM_GET_CLOCK, b);
    return { clock: b.get('clock'), flags: b.get('flags'), realtime: b.get('realtime'), hostTsc: b.get('hostTsc') };
  }

  setClock(clock: bigint): void {
    ioctlStruct(this.fd, I.KVM_SET_CLOCK, alloc(S.KvmClockData).set('clock', clock));
  }

  getPit2(): Uint8Array {
    const b = alloc(S.KvmPitState2);
    ioctlStruct(this.fd, I.KVM_GET_PIT2, b);
    return b.bytes.slice();
  }

  setPit2(state: Uint8Array): void {
    const b = alloc(S.KvmPitState2);
    b.bytes.set(state.subarray(0, S.KvmPitState2.size));
    ioctlStruct(this.fd, I.KVM_SET_PIT2, b);
  }

  enableCap(cap: number, args: bigint[] = []): void {
    const maxArgs = S.KvmEnableCap.fields.args.size / 8;
    if (args.length > maxArgs) throw new RangeError(`KVM_ENABLE_CAP takes at most ${maxArgs} args, got ${args.length}`);
    const b = alloc(S.KvmEnableCap).set('cap', cap);
    args.forEach((a, i) => b.view.setBigUint64(S.KvmEnableCap.fields.args.offset + i * 8, a, true));
    ioctlStruct(this.fd, I.KVM_ENABLE_CAP, b);
  }

  checkExtension(cap: number): number {
    return check(I.KVM_CHECK_EXTENSION, libc.ioctlInt(this.fd, I.KVM_CHECK_EXTENSION.nr, cap));
  }

  createVcpu(id: number): VcpuFd {
    return new VcpuFd(check(I.KVM_CREATE_VCPU, libc.ioctlInt(this.fd, I.KVM_CREATE_VCPU.nr, id)), id);
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** Native scratch memory for ioctls whose structs carry pointers. */
function nativeScratch(len: number): { addr: bigint; free(): void } {
  const size = Math.max(4096, Math.ceil(len / 4096) * 4096);
  const addr = libc.mmap(0n, size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0);
  if (addr === libc.MAP_FAILED) throw new KvmError('mmap', libc.errno(), `scratch of ${size} bytes`);
  return { addr, free: () => void libc.munmap(addr, size) };
}

/** A vCPU handle. Register accessors allocate; they are not for the exit path. */
export class VcpuFd {
  constructor(
    readonly fd: number,
    readonly id: number,
  ) {}

  static fromRaw(fd: number, id: number): VcpuFd {
    return new VcpuFd(fd, id);
  }

  /**
   * Map this vCPU's `kvm_run` page(s). The mapping lives until `munmap`; the
   * caller keeps the returned address and unmaps it only after the last view
   * over it is dropped (the vCPU thread's exit loop).
   */
  mapRun(mmapSize: number): bigint {
    const addr = libc.mmap(0n, mmapSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, this.fd, 0);
    if (addr === libc.MAP_FAILED) throw new KvmError('mmap(kvm_run)', libc.errno(), `vCPU ${this.id}`);
    return addr;
  }

  /** KVM_RUN. Returns 0, or -errno for EINTR/EAGAIN (a kick); throws on other errors. */
  run(): number {
    const ret = libc.ioctlInt(this.fd, I.KVM_RUN.nr, 0);
    if (ret < 0) {
      const e = libc.errno();
      if (e === libc.EINTR || e === libc.EAGAIN) return -e;
      throw new KvmError(I.KVM_RUN.name, e, `vCPU ${this.id}`);
    }
    return ret;
  }

  getRegs(): StructBuf<typeof S.KvmRegs.fields> {
    const b = alloc(S.KvmRegs);
    ioctlStruct(this.fd, I.KVM_GET_REGS, b);
    return b;
  }

  setRegs(regs: StructBuf<typeof S.KvmRegs.fields>): void {
    ioctlStruct(this.fd, I.KVM_SET_REGS, regs);
  }

  getSregs(): StructBuf<typeof S.KvmSregs.fields> {
    const b = alloc(S.KvmSregs);
    ioctlStruct(this.fd, I.KVM_GET_SREGS, b);
    return b;
  }

  setSregs(sregs: StructBuf<typeof S.KvmSregs.fields>): void {
    ioctlStruct(this.fd, I.KVM_SET_SREGS, sregs);
  }

  /**
   * KVM_GET_FPU. The kernel does not fill in `mxcsr` (it reads back as 0), and
   * KVM_GET_XSAVE may not show what KVM_SET_FPU wrote; save and restore
   * FPU/SSE state through getXsave/setXsave, not these.
   */
  getFpu(): StructBuf<typeof S.KvmFpu.fields> {
    const b = alloc(S.KvmFpu);
    ioctlStruct(this.fd, I.KVM_GET_FPU, b);
    return b;
  }

  setFpu(fpu: StructBuf<typeof S.KvmFpu.fields>): void {
    ioctlStruct(this.fd, I.KVM_SET_FPU, fpu);
  }

  getXsave(): Uint8Array {
    const b = alloc(S.KvmXsave);
    ioctlStruct(this.fd, I.KVM_GET_XSAVE, b);
    return b.bytes;
  }

  setXsave(region: Uint8Array): void {
    ioctlStruct(this.fd, I.KVM_SET_XSAVE, alloc(S.KvmXsave).set('region', region));
  }

  getXcrs(): { xcr: number; value: bigint }[] {
    const b = alloc(S.KvmXcrs);
    ioctlStruct(this.fd, I.KVM_GET_XCRS, b);
    const n = Math.min(b.get('nrXcrs'), 16);
    const out: { xcr: number; value: bigint }[] = [];
    for (let i = 0; i < n; i++) {
      const off = S.KvmXcrs.fields.xcrs.offset + i * S.KvmXcr.size;
      const x = new StructBuf(S.KvmXcr, b.bytes.subarray(off, off + S.KvmXcr.size));
      out.push({ xcr: x.get('xcr'), value: x.get('value') });
    }
    return out;
  }

  setXcrs(xcrs: { xcr: number; value: bigint }[]): void {
    if (xcrs.length > 16) throw new RangeError(`at most 16 XCRs, got ${xcrs.length}`);
    const b = alloc(S.KvmXcrs).set('nrXcrs', xcrs.length);
    xcrs.forEach((x, i) => {
      const off = S.KvmXcrs.fields.xcrs.offset + i * S.KvmXcr.size;
      new StructBuf(S.KvmXcr, b.bytes.subarray(off, off + S.KvmXcr.size)).set('xcr', x.xcr).set('value', x.value);
    });
    ioctlStruct(this.fd, I.KVM_SET_XCRS, b);
  }

  /** Read the given MSRs; entries the kernel does not know are left out. */
  getMsrs(indices: number[]): MsrEntry[] {
    const buf = msrBuf(indices.map((index) => ({ index, data: 0n })));
    const n = check(I.KVM_GET_MSRS, libc.ioctlPtr(this.fd, I.KVM_GET_MSRS.nr, buf));
    return decodeMsrs(buf, n);
  }

  /** Write MSRs; returns how many the kernel accepted (it stops at the first refused one). */
  setMsrs(entries: MsrEntry[]): number {
    return check(I.KVM_SET_MSRS, libc.ioctlPtr(this.fd, I.KVM_SET_MSRS.nr, msrBuf(entries)));
  }

  getLapic(): Uint8Array {
    const b = alloc(S.KvmLapicState);
    ioctlStruct(this.fd, I.KVM_GET_LAPIC, b);
    return b.bytes;
  }

  setLapic(regs: Uint8Array): void {
    ioctlStruct(this.fd, I.KVM_SET_LAPIC, alloc(S.KvmLapicState).set('regs', regs));
  }

  getVcpuEvents(): StructBuf<typeof S.KvmVcpuEvents.fields> {
    const b = alloc(S.KvmVcpuEvents);
    ioctlStruct(this.fd, I.KVM_GET_VCPU_EVENTS, b);
    return b;
  }

  setVcpuEvents(ev: StructBuf<typeof S.KvmVcpuEvents.fields>): void {
    ioctlStruct(this.fd, I.KVM_SET_VCPU_EVENTS, ev);
  }

  getDebugregs(): StructBuf<typeof S.KvmDebugregs.fields> {
    const b = alloc(S.KvmDebugregs);
    ioctlStruct(this.fd, I.KVM_GET_DEBUGREGS, b);
    return b;
  }

  setDebugregs(d: StructBuf<typeof S.KvmDebugregs.fields>): void {
    ioctlStruct(this.fd, I.KVM_SET_DEBUGREGS, d);
  }

  getMpState(): number {
    const b = alloc(S.KvmMpState);
    ioctlStruct(this.fd, I.KVM_GET_MP_STATE, b);
    return b.get('mpState');
  }

  setMpState(state: number): void {
    ioctlStruct(this.fd, I.KVM_SET_MP_STATE, alloc(S.KvmMpState).set('mpState', state));
  }

  setCpuid(entries: CpuidEntry[]): void {
    const esz = S.KvmCpuidEntry2.size;
    const buf = new Uint8Array(S.KvmCpuid2.size + entries.length * esz);
    new StructBuf(S.KvmCpuid2, buf).set('nent', entries.length);
    entries.forEach((c, i) => {
      const off = S.KvmCpuid2.size + i * esz;
      new StructBuf(S.KvmCpuidEntry2, buf.subarray(off, off + esz))
        .set('function', c.function)
        .set('index', c.index)
        .set('flags', c.flags)
        .set('eax', c.eax)
        .set('ebx', c.ebx)
        .set('ecx', c.ecx)
        .set('edx', c.edx);
    });
    check(I.KVM_SET_CPUID2, libc.ioctlPtr(this.fd, I.KVM_SET_CPUID2.nr, buf));
  }

  getCpuid(): CpuidEntry[] {
    const buf = new Uint8Array(S.KvmCpuid2.size + CPUID_MAX_ENTRIES * S.KvmCpuidEntry2.size);
    new StructBuf(S.KvmCpuid2, buf).set('nent', CPUID_MAX_ENTRIES);
    check(I.KVM_GET_CPUID2, libc.ioctlPtr(this.fd, I.KVM_GET_CPUID2.nr, buf));
    return decodeCpuid(buf);
  }

  nmi(): void {
    check(I.KVM_NMI, libc.ioctlInt(this.fd, I.KVM_NMI.nr, 0));
  }

  /** Queue an external interrupt vector (only without an in-kernel irqchip). */
  interrupt(vector: number): void {
    ioctlStruct(this.fd, I.KVM_INTERRUPT, alloc(S.KvmInterrupt).set('irq', vector));
  }

  close(): void {
    libc.close(this.fd);
  }
}

function msrBuf(entries: MsrEntry[]): Uint8Array {
  const esz = S.KvmMsrEntry.size;
  const buf = new Uint8Array(S.KvmMsrs.size + entries.length * esz);
  new StructBuf(S.KvmMsrs, buf).set('nmsrs', entries.length);
  entries.forEach((m, i) => {
    const off = S.KvmMsrs.size + i * esz;
    new StructBuf(S.KvmMsrEntry, buf.subarray(off, off + esz)).set('index', m.index).set('data', m.data);
  });
  return buf;
}

function decodeMsrs(buf: Uint8Array, n: number): MsrEntry[] {
  const esz = S.KvmMsrEntry.size;
  const out: MsrEntry[] = [];
  for (let i = 0; i < n; i++) {
    const off = S.KvmMsrs.size + i * esz;
    const e = new StructBuf(S.KvmMsrEntry, buf.subarray(off, off + esz));
    out.push({ index: e.get('index'), data: e.get('data') });
  }
  return out;
}

/** Field offset helper for hot paths that read the kvm_run page with a DataView. */
export function off(f: Field): number {
  return f.offset;
}
