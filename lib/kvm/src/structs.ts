// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Structs of <linux/kvm.h> (x86-64) that the VMM passes to the kernel.
// Sizes and offsets are checked against the machine's headers by
// header-check.test.ts; add every new struct to `ALL_STRUCTS`.
//
// Threading: pure data.

import { bytes, i32, nested, struct, u16, u32, u64, u8, type StructDef } from './abi.js';

export const KvmUserspaceMemoryRegion = struct('kvm_userspace_memory_region', 32, {
  slot: u32(0),
  flags: u32(4),
  guestPhysAddr: u64(8),
  memorySize: u64(16),
  userspaceAddr: u64(24),
});

/**
 * The shared `kvm_run` page header and the exit payloads the VMM reads.
 * The payloads are members of one anonymous union at offset 32.
 */
export const KvmRun = struct('kvm_run', 2352, {
  requestInterruptWindow: u8(0),
  immediateExit: u8(1),
  exitReason: u32(8),
  readyForInterruptInjection: u8(12),
  ifFlag: u8(13),
  flags: u16(14),
  cr8: u64(16),
  apicBase: u64(24),
  ioDirection: u8(32, 'io.direction'),
  ioSize: u8(33, 'io.size'),
  ioPort: u16(34, 'io.port'),
  ioCount: u32(36, 'io.count'),
  ioDataOffset: u64(40, 'io.data_offset'),
  mmioPhysAddr: u64(32, 'mmio.phys_addr'),
  mmioData: bytes(40, 8, 'mmio.data'),
  mmioLen: u32(48, 'mmio.len'),
  mmioIsWrite: u8(52, 'mmio.is_write'),
  failEntryReason: u64(32, 'fail_entry.hardware_entry_failure_reason'),
  failEntryCpu: u32(40, 'fail_entry.cpu'),
  internalSuberror: u32(32, 'internal.suberror'),
  internalNdata: u32(36, 'internal.ndata'),
  internalData: bytes(40, 128, 'internal.data'),
  systemEventType: u32(32, 'system_event.type'),
  systemEventNdata: u32(36, 'system_event.ndata'),
  systemEventData: bytes(40, 128, 'system_event.data'),
  exException: u32(32, 'ex.exception'),
  exErrorCode: u32(36, 'ex.error_code'),
  msrError: u8(32, 'msr.error'),
  // `error` is followed by 7 bytes of padding, so `reason` starts at 40.
  msrReason: u32(40, 'msr.reason'),
  msrIndex: u32(44, 'msr.index'),
  msrData: u64(48, 'msr.data'),
});

export const KvmRegs = struct('kvm_regs', 144, {
  rax: u64(0),
  rbx: u64(8),
  rcx: u64(16),
  rdx: u64(24),
  rsi: u64(32),
  rdi: u64(40),
  rsp: u64(48),
  rbp: u64(56),
  r8: u64(64),
  r9: u64(72),
  r10: u64(80),
  r11: u64(88),
  r12: u64(96),
  r13: u64(104),
  r14: u64(112),
  r15: u64(120),
  rip: u64(128),
  rflags: u64(136),
});

export const KvmSegment = struct('kvm_segment', 24, {
  base: u64(0),
  limit: u32(8),
  selector: u16(12),
  type: u8(14),
  present: u8(15),
  dpl: u8(16),
  db: u8(17),
  s: u8(18),
  l: u8(19),
  g: u8(20),
  avl: u8(21),
  unusable: u8(22),
});

export const KvmDtable = struct('kvm_dtable', 16, {
  base: u64(0),
  limit: u16(8),
});

export const KvmSregs = struct('kvm_sregs', 312, {
  cs: nested(KvmSegment, 0),
  ds: nested(KvmSegment, 24),
  es: nested(KvmSegment, 48),
  fs: nested(KvmSegment, 72),
  gs: nested(KvmSegment, 96),
  ss: nested(KvmSegment, 120),
  tr: nested(KvmSegment, 144),
  ldt: nested(KvmSegment, 168),
  gdt: nested(KvmDtable, 192),
  idt: nested(KvmDtable, 208),
  cr0: u64(224),
  cr2: u64(232),
  cr3: u64(240),
  cr4: u64(248),
  cr8: u64(256),
  efer: u64(264),
  apicBase: u64(272),
  interruptBitmap: bytes(280, 32),
});

export const KvmIrqLevel = struct('kvm_irq_level', 8, {
  irq: u32(0),
  level: u32(4),
});

export const KvmPitConfig = struct('kvm_pit_config', 64, {
  flags: u32(0),
});

export const KvmMpState = struct('kvm_mp_state', 4, {
  mpState: u32(0),
});

export const KvmEnableCap = struct('kvm_enable_cap', 104, {
  cap: u32(0),
  flags: u32(4),
  args: bytes(8, 32),
});

export const KvmSignalMsi = struct('kvm_msi', 32, {
  addressLo: u32(0),
  addressHi: u32(4),
  data: u32(8),
  flags: u32(12),
  devid: u32(16),
});

export const KvmIrqfd = struct('kvm_irqfd', 32, {
  fd: u32(0),
  gsi: u32(4),
  flags: u32(8),
  resamplefd: u32(12),
});

export const KvmIoeventfd = struct('kvm_ioeventfd', 64, {
  datamatch: u64(0),
  addr: u64(8),
  len: u32(16),
  fd: i32(20),
  flags: u32(24),
});

export const KvmMsrList = struct('kvm_msr_list', 4, {
  nmsrs: u32(0),
});

export const KvmCpuidEntry2 = struct('kvm_cpuid_entry2', 40, {
  function: u32(0),
  index: u32(4),
  flags: u32(8),
  eax: u32(12),
  ebx: u32(16),
  ecx: u32(20),
  edx: u32(24),
});

/** Header only; `nent` entries of `KvmCpuidEntry2` follow it. */
export const KvmCpuid2 = struct('kvm_cpuid2', 8, {
  nent: u32(0),
});

export const KvmDirtyLog = struct('kvm_dirty_log', 16, {
  slot: u32(0),
  dirtyBitmap: u64(8),
});

export const KvmClearDirtyLog = struct('kvm_clear_dirty_log', 24, {
  slot: u32(0),
  numPages: u32(4),
  firstPage: u64(8),
  dirtyBitmap: u64(16),
});

export const KvmIrqchip = struct('kvm_irqchip', 520, {
  chipId: u32(0),
  chip: bytes(8, 512),
});

/** Header only; `nr` entries of `KvmIrqRoutingEntry` follow it. */
export const KvmIrqRouting = struct('kvm_irq_routing', 8, {
  nr: u32(0),
  flags: u32(4),
});

export const KvmIrqRoutingEntry = struct('kvm_irq_routing_entry', 48, {
  gsi: u32(0),
  type: u32(4),
  flags: u32(8),
  irqchipIrqchip: u32(16, 'u.irqchip.irqchip'),
  irqchipPin: u32(20, 'u.irqchip.pin'),
  msiAddressLo: u32(16, 'u.msi.address_lo'),
  msiAddressHi: u32(20, 'u.msi.address_hi'),
  msiData: u32(24, 'u.msi.data'),
  msiDevid: u32(28, 'u.msi.devid'),
});

export const KvmClockData = struct('kvm_clock_data', 48, {
  clock: u64(0),
  flags: u32(8),
  realtime: u64(16),
  hostTsc: u64(24),
});

export const KvmPitState2 = struct('kvm_pit_state2', 112, {
  channels: bytes(0, 72),
  flags: u32(72),
});

export const KvmInterrupt = struct('kvm_interrupt', 4, {
  irq: u32(0),
});

export const KvmMsrEntry = struct('kvm_msr_entry', 16, {
  index: u32(0),
  data: u64(8),
});

/** Header only; `nmsrs` entries of `KvmMsrEntry` follow it. */
export const KvmMsrs = struct('kvm_msrs', 8, {
  nmsrs: u32(0),
});

export const KvmFpu = struct('kvm_fpu', 416, {
  fpr: bytes(0, 128),
  fcw: u16(128),
  fsw: u16(130),
  ftwx: u8(132),
  lastOpcode: u16(134, 'last_opcode'),
  lastIp: u64(136, 'last_ip'),
  lastDp: u64(144, 'last_dp'),
  xmm: bytes(152, 256),
  mxcsr: u32(408),
});

export const KvmLapicState = struct('kvm_lapic_state', 1024, {
  regs: bytes(0, 1024),
});

export const KvmVcpuEvents = struct('kvm_vcpu_events', 64, {
  exceptionInjected: u8(0, 'exception.injected'),
  exceptionNr: u8(1, 'exception.nr'),
  exceptionHasErrorCode: u8(2, 'exception.has_error_code'),
  exceptionPending: u8(3, 'exception.pending'),
  exceptionErrorCode: u32(4, 'exception.error_code'),
  interruptInjected: u8(8, 'interrupt.injected'),
  interruptNr: u8(9, 'interrupt.nr'),
  interruptSoft: u8(10, 'interrupt.soft'),
  interruptShadow: u8(11, 'interrupt.shadow'),
  nmiInjected: u8(12, 'nmi.injected'),
  nmiPending: u8(13, 'nmi.pending'),
  nmiMasked: u8(14, 'nmi.masked'),
  sipiVector: u32(16, 'sipi_vector'),
  flags: u32(20),
  smiSmm: u8(24, 'smi.smm'),
  smiPending: u8(25, 'smi.pending'),
  smiSmmInsideNmi: u8(26, 'smi.smm_inside_nmi'),
  smiLatchedInit: u8(27, 'smi.latched_init'),
});

export const KvmDebugregs = struct('kvm_debugregs', 128, {
  db: bytes(0, 32),
  dr6: u64(32),
  dr7: u64(40),
  flags: u64(48),
});

export const KvmXsave = struct('kvm_xsave', 4096, {
  region: bytes(0, 4096),
});

export const KvmXcr = struct('kvm_xcr', 16, {
  xcr: u32(0),
  value: u64(8),
});

export const KvmXcrs = struct('kvm_xcrs', 392, {
  nrXcrs: u32(0),
  flags: u32(4),
  xcrs: bytes(8, 256),
});

export const KvmCoalescedMmioZone = struct('kvm_coalesced_mmio_zone', 16, {
  addr: u64(0),
  size: u32(8),
  pio: u32(12),
});

/** One entry of the coalesced-I/O ring (a write the kernel queued instead of exiting). */
export const KvmCoalescedMmio = struct('kvm_coalesced_mmio', 24, {
  physAddr: u64(0),
  len: u32(8),
  pio: u32(12),
  data: bytes(16, 8),
});

/** Header of the ring page; `KvmCoalescedMmio` entries follow it. */
export const KvmCoalescedMmioRing = struct('kvm_coalesced_mmio_ring', 8, {
  first: u32(0),
  last: u32(4),
});

/** Every struct above; the header check walks this list. */
export const ALL_STRUCTS: StructDef[] = [
  KvmUserspaceMemoryRegion,
  KvmRun,
  KvmRegs,
  KvmSegment,
  KvmDtable,
  KvmSregs,
  KvmIrqLevel,
  KvmPitConfig,
  KvmMpState,
  KvmEnableCap,
  KvmSignalMsi,
  KvmIrqfd,
  KvmIoeventfd,
  KvmMsrList,
  KvmCpuidEntry2,
  KvmCpuid2,
  KvmDirtyLog,
  KvmClearDirtyLog,
  KvmIrqchip,
  KvmIrqRouting,
  KvmIrqRoutingEntry,
  KvmClockData,
  KvmPitState2,
  KvmInterrupt,
  KvmMsrEntry,
  KvmMsrs,
  KvmFpu,
  KvmLapicState,
  KvmVcpuEvents,
  KvmDebugregs,
  KvmXsave,
  KvmXcr,
  KvmXcrs,
  KvmCoalescedMmioZone,
  KvmCoalescedMmio,
  KvmCoalescedMmioRing,
];
