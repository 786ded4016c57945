// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// ioctl request numbers of <linux/kvm.h> and the constants that go with
// them. Each number is computed from its direction, number and argument size
// (never written as a magic hex literal) and checked against the C macro of
// the same name by header-check.test.ts; add new ones to `ALL_IOCTLS`.
//
// Threading: pure data.

import { IO, IOR, IOW, IOWR, type Ioctl } from './abi.js';
import * as S from './structs.js';

const KVMIO = 0xae;

// System ioctls (on /dev/kvm).
export const KVM_GET_API_VERSION = IO('KVM_GET_API_VERSION', KVMIO, 0x00);
export const KVM_CREATE_VM = IO('KVM_CREATE_VM', KVMIO, 0x01);
export const KVM_GET_MSR_INDEX_LIST = IOWR('KVM_GET_MSR_INDEX_LIST', KVMIO, 0x02, S.KvmMsrList.size);
export const KVM_CHECK_EXTENSION = IO('KVM_CHECK_EXTENSION', KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = IO('KVM_GET_VCPU_MMAP_SIZE', KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = IOWR('KVM_GET_SUPPORTED_CPUID', KVMIO, 0x05, S.KvmCpuid2.size);

// VM ioctls.
export const KVM_CREATE_VCPU = IO('KVM_CREATE_VCPU', KVMIO, 0x41);
export const KVM_GET_DIRTY_LOG = IOW('KVM_GET_DIRTY_LOG', KVMIO, 0x42, S.KvmDirtyLog.size);
export const KVM_SET_USER_MEMORY_REGION = IOW(
  'KVM_SET_USER_MEMORY_REGION',
  KVMIO,
  0x46,
  S.KvmUserspaceMemoryRegion.size,
);
export const KVM_SET_TSS_ADDR = IO('KVM_SET_TSS_ADDR', KVMIO, 0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = IOW('KVM_SET_IDENTITY_MAP_ADDR', KVMIO, 0x48, 8);
export const KVM_CREATE_IRQCHIP = IO('KVM_CREATE_IRQCHIP', KVMIO, 0x60);
export const KVM_IRQ_LINE = IOW('KVM_IRQ_LINE', KVMIO, 0x61, S.KvmIrqLevel.size);
export const KVM_GET_IRQCHIP = IOWR('KVM_GET_IRQCHIP', KVMIO, 0x62, S.KvmIrqchip.size);
export const KVM_SET_IRQCHIP = IOR('KVM_SET_IRQCHIP', KVMIO, 0x63, S.KvmIrqchip.size);
export const KVM_IRQ_LINE_STATUS = IOWR('KVM_IRQ_LINE_STATUS', KVMIO, 0x67, S.KvmIrqLevel.size);
export const KVM_SET_GSI_ROUTING = IOW('KVM_SET_GSI_ROUTING', KVMIO, 0x6a, S.KvmIrqRouting.size);
export const KVM_IRQFD = IOW('KVM_IRQFD', KVMIO, 0x76, S.KvmIrqfd.size);
export const KVM_CREATE_PIT2 = IOW('KVM_CREATE_PIT2', KVMIO, 0x77, S.KvmPitConfig.size);
export const KVM_IOEVENTFD = IOW('KVM_IOEVENTFD', KVMIO, 0x79, S.KvmIoeventfd.size);
export const KVM_SET_CLOCK = IOW('KVM_SET_CLOCK', KVMIO, 0x7b, S.KvmClockData.size);
export const KVM_GET_CLOCK = IOR('KVM_GET_CLOCK', KVMIO, 0x7c, S.KvmClockData.size);
export const KVM_GET_PIT2 = IOR('KVM_GET_PIT2', KVMIO, 0x9f, S.KvmPitState2.size);
export const KVM_SET_PIT2 = IOW('KVM_SET_PIT2', KVMIO, 0xa0, S.KvmPitState2.size);
export const KVM_ENABLE_CAP = IOW('KVM_ENABLE_CAP', KVMIO, 0xa3, S.KvmEnableCap.size);
export const KVM_SIGNAL_MSI = IOW('KVM_SIGNAL_MSI', KVMIO, 0xa5, S.KvmSignalMsi.size);
export const KVM_REGISTER_COALESCED_MMIO = IOW('KVM_REGISTER_COALESCED_MMIO', KVMIO, 0x67, S.KvmCoalescedMmioZone.size);
export const KVM_CLEAR_DIRTY_LOG = IOWR('KVM_CLEAR_DIRTY_LOG', KVMIO, 0xc0, S.KvmClearDirtyLog.size);

// vCPU ioctls.
export const KVM_RUN = IO('KVM_RUN', KVMIO, 0x80);
export const KVM_GET_REGS = IOR('KVM_GET_REGS', KVMIO, 0x81, S.KvmRegs.size);
export const KVM_SET_REGS = IOW('KVM_SET_REGS', KVMIO, 0x82, S.KvmRegs.size);
export const KVM_GET_SREGS = IOR('KVM_GET_SREGS', KVMIO, 0x83, S.KvmSregs.size);
export const KVM_SET_SREGS = IOW('KVM_SET_SREGS', KVMIO, 0x84, S.KvmSregs.size);
export const KVM_INTERRUPT = IOW('KVM_INTERRUPT', KVMIO, 0x86, S.KvmInterrupt.size);
export const KVM_GET_MSRS = IOWR('KVM_GET_MSRS', KVMIO, 0x88, S.KvmMsrs.size);
export const KVM_SET_MSRS = IOW('KVM_SET_MSRS', KVMIO, 0x89, S.KvmMsrs.size);
export const KVM_GET_FPU = IOR('KVM_GET_FPU', KVMIO, 0x8c, S.KvmFpu.size);
export const KVM_SET_FPU = IOW('KVM_SET_FPU', KVMIO, 0x8d, S.KvmFpu.size);
export const KVM_GET_LAPIC = IOR('KVM_GET_LAPIC', KVMIO, 0x8e, S.KvmLapicState.size);
export const KVM_SET_LAPIC = IOW('KVM_SET_LAPIC', KVMIO, 0x8f, S.KvmLapicState.size);
export const KVM_SET_CPUID2 = IOW('KVM_SET_CPUID2', KVMIO, 0x90, S.KvmCpuid2.size);
export const KVM_GET_CPUID2 = IOWR('KVM_GET_CPUID2', KVMIO, 0x91, S.KvmCpuid2.size);
export const KVM_GET_MP_STATE = IOR('KVM_GET_MP_STATE', KVMIO, 0x98, S.KvmMpState.size);
export const KVM_SET_MP_STATE = IOW('KVM_SET_MP_STATE', KVMIO, 0x99, S.KvmMpState.size);
export const KVM_NMI = IO('KVM_NMI', KVMIO, 0x9a);
export const KVM_GET_VCPU_EVENTS = IOR('KVM_GET_VCPU_EVENTS', KVMIO, 0x9f, S.KvmVcpuEvents.size);
export const KVM_SET_VCPU_EVENTS = IOW('KVM_SET_VCPU_EVENTS', KVMIO, 0xa0, S.KvmVcpuEvents.size);
export const KVM_GET_DEBUGREGS = IOR('KVM_GET_DEBUGREGS', KVMIO, 0xa1, S.KvmDebugregs.size);
export const KVM_SET_DEBUGREGS = IOW('KVM_SET_DEBUGREGS', KVMIO, 0xa2, S.KvmDebugregs.size);
export const KVM_GET_XSAVE = IOR('KVM_GET_XSAVE', KVMIO, 0xa4, S.KvmXsave.size);
export const KVM_SET_XSAVE = IOW('KVM_SET_XSAVE', KVMIO, 0xa5, S.KvmXsave.size);
export const KVM_GET_XCRS = IOR('KVM_GET_XCRS', KVMIO, 0xa6, S.KvmXcrs.size);
export const KVM_SET_XCRS = IOW('KVM_SET_XCRS', KVMIO, 0xa7, S.KvmXcrs.size);
export const KVM_GET_TSC_KHZ = IO('KVM_GET_TSC_KHZ', KVMIO, 0xa3);
export const KVM_SET_TSC_KHZ = IO('KVM_SET_TSC_KHZ', KVMIO, 0xa2);

export const ALL_IOCTLS: Ioctl[] = [
  KVM_GET_API_VERSION,
  KVM_CREATE_VM,
  KVM_GET_MSR_INDEX_LIST,
  KVM_CHECK_EXTENSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID,
  KVM_CREATE_VCPU,
  KVM_GET_DIRTY_LOG,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_TSS_ADDR,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_CREATE_IRQCHIP,
  KVM_IRQ_LINE,
  KVM_GET_IRQCHIP,
  KVM_SET_IRQCHIP,
  KVM_IRQ_LINE_STATUS,
  KVM_SET_GSI_ROUTING,
  KVM_IRQFD,
  KVM_CREATE_PIT2,
  KVM_IOEVENTFD,
  KVM_SET_CLOCK,
  KVM_GET_CLOCK,
  KVM_GET_PIT2,
  KVM_SET_PIT2,
  KVM_ENABLE_CAP,
  KVM_SIGNAL_MSI,
  KVM_CLEAR_DIRTY_LOG,
  KVM_REGISTER_COALESCED_MMIO,
  KVM_RUN,
  KVM_GET_REGS,
  KVM_SET_REGS,
  KVM_GET_SREGS,
  KVM_SET_SREGS,
  KVM_INTERRUPT,
  KVM_GET_MSRS,
  KVM_SET_MSRS,
  KVM_GET_FPU,
  KVM_SET_FPU,
  KVM_GET_LAPIC,
  KVM_SET_LAPIC,
  KVM_SET_CPUID2,
  KVM_GET_CPUID2,
  KVM_GET_MP_STATE,
  KVM_SET_MP_STATE,
  KVM_NMI,
  KVM_GET_VCPU_EVENTS,
  KVM_SET_VCPU_EVENTS,
  KVM_GET_DEBUGREGS,
  KVM_SET_DEBUGREGS,
  KVM_GET_XSAVE,
  KVM_SET_XSAVE,
  KVM_GET_XCRS,
  KVM_SET_XCRS,
  KVM_GET_TSC_KHZ,
  KVM_SET_TSC_KHZ,
];

// Exit reasons (kvm_run.exit_reason).
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_IOAPIC_EOI = 26;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;

export const KVM_MEM_LOG_DIRTY_PAGES = 1;
export const KVM_MEM_READONLY = 2;

export const KVM_PIT_SPEAKER_DUMMY = 1;

export const KVM_IRQFD_FLAG_DEASSIGN = 1;
export const KVM_IRQFD_FLAG_RESAMPLE = 2;

export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;

export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;

// In-kernel irqchip numbers (routing entries, KVM_GET_IRQCHIP).
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

// Capabilities (KVM_CHECK_EXTENSION).
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_HLT = 1;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_X86_USER_SPACE_MSR = 188;
/** Answers the page offset of the coalesced-I/O ring in the vCPU mapping. */
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_COALESCED_PIO = 162;

/** Named constants checked against the C headers by the header test. */
export const ALL_CONSTANTS: Record<string, number> = {
  KVM_EXIT_UNKNOWN,
  KVM_EXIT_EXCEPTION,
  KVM_EXIT_IO,
  KVM_EXIT_HYPERCALL,
  KVM_EXIT_DEBUG,
  KVM_EXIT_HLT,
  KVM_EXIT_MMIO,
  KVM_EXIT_IRQ_WINDOW_OPEN,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_INTR,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_EXIT_IOAPIC_EOI,
  KVM_EXIT_X86_RDMSR,
  KVM_EXIT_X86_WRMSR,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_SYSTEM_EVENT_SHUTDOWN,
  KVM_SYSTEM_EVENT_RESET,
  KVM_SYSTEM_EVENT_CRASH,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
  KVM_MP_STATE_INIT_RECEIVED,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_SIPI_RECEIVED,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_IRQFD_FLAG_RESAMPLE,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQ_ROUTING_MSI,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  KVM_IRQCHIP_IOAPIC,
  KVM_CAP_IRQCHIP,
  KVM_CAP_HLT,
  KVM_CAP_USER_MEMORY,
  KVM_CAP_SET_TSS_ADDR,
  KVM_CAP_EXT_CPUID,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_NR_MEMSLOTS,
  KVM_CAP_PIT2,
  KVM_CAP_IRQ_ROUTING,
  KVM_CAP_IRQFD,
  KVM_CAP_IOEVENTFD,
  KVM_CAP_SET_IDENTITY_MAP_ADDR,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_SIGNAL_MSI,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_X86_USER_SPACE_MSR,
  KVM_CAP_COALESCED_MMIO,
  KVM_CAP_COALESCED_PIO,
};
