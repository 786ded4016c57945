// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// testos kernel entry: the only code that runs at CPL0 for long.
//
// Both boot stubs (rom-stub.S, boot-sector.S) copy the kernel image to
// KERNEL_BASE and jump to its first byte in 32-bit protected mode with flat
// segments, interrupts off and EBX = BOOT_MAGIC | boot source. From there:
//
//   1. load the kernel's GDT, clear CR0.CD/NW (reset leaves caching off),
//      enable PAE with the page tables below (built by the assembler, so no
//      CPL0 loop fills them), EFER.LME, paging; far jump to 64-bit code;
//   2. zero .bss (kept small), put the TSS's address into its descriptor,
//      fill the IDT from isr_table, lidt, ltr;
//   3. iretq to kmain(boot word) at CPL3 with IOPL 3 and IF = 0.
//
// On the project's nested-KVM hosts CPL0 and real-mode code runs in KVM's
// instruction emulator (~300 ns per instruction) while CPL3 code runs
// natively, so the shell, the drivers and every loop run at CPL3: port I/O
// is allowed by the TSS's all-zero I/O permission bitmap, MMIO and page
// tables by the user bit on every page. CPL0 is entered again only for:
//   - the system calls (a UD2 at a known address, see isr_ud): idle(),
//     "sti; hlt; cli", where the shell waits for input, woken by the COM1
//     or PIT IRQ; console_write(), COM1 output;
//   - NMIs: counted in nmi_count;
//   - PIC IRQs (vectors 0x20-0x2F): acknowledged, nothing else;
//   - the local APIC's spurious vector and unused vectors: iretq;
//   - exceptions: exception_report() prints the vector and RIP, the CPU
//     halts for good.
//
// APs (brought up by the `nproc` command with INIT/SIPI) start in
// ap_trampoline, which the kernel copies to AP_TRAMPOLINE, and follow the
// same path to 64-bit mode; each takes a stack, loads the IDT, counts itself
// in ap_online and halts (NMIs still reach it and are counted).

#include "layout.h"

#define PTE_P           0x001
#define PTE_W           0x002
#define PTE_U           0x004
#define PTE_PS          0x080
#define PTE_PWU         (PTE_P | PTE_W | PTE_U)
#define TSS_SIZE        104
#define IOBITMAP_SIZE   8192
#define TSS_LIMIT       (TSS_SIZE + IOBITMAP_SIZE)  // the last byte: the bitmap's terminator
#define RFLAGS_IOPL3    0x3000
#define RFLAGS_RSVD     0x0002
#define GATE_INT_DPL0   0x8E

// From 32-bit protected mode with paging off: caching on (reset leaves
// CR0.CD/NW set), PAE, CR3, EFER.LME, paging. Needs no stack (the APs have
// none yet). Clobbers EAX, ECX, EDX.
.macro ENABLE_LONG_MODE
        movl    %cr0, %eax
        andl    $~(CR0_CD | CR0_NW), %eax
        movl    %eax, %cr0
        movl    %cr4, %eax
        orl     $CR4_PAE, %eax
        movl    %eax, %cr4
        movl    $pml4, %eax
        movl    %eax, %cr3
        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        wrmsr
        movl    %cr0, %eax
        orl     $(CR0_PG | CR0_WP), %eax
        movl    %eax, %cr0
.endm

// ---------------------------------------------------------------------------
        .section .text.entry, "ax"
        .code32
        .globl  _start
_start:
        cli
        cld
        lgdtl   gdt_desc
        ljmpl   $SEL_CODE32, $1f
1:      movw    $SEL_KDATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    %ax, %fs
        movw    %ax, %gs
        movl    $kstack_top, %esp
        movl    %ebx, %ebp              // boot word, kept for kmain
        ENABLE_LONG_MODE
        ljmpl   $SEL_KCODE, $entry64

        .code64
entry64:
        movw    $SEL_KDATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $kstack_top, %esp

        // .bss
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $3, %ecx
        xorl    %eax, %eax
        rep stosq

        // TSS descriptor: base and limit are only known at link time.
        movl    $tss, %eax
        movl    %eax, %edx
        shll    $16, %eax
        orl     $(TSS_LIMIT & 0xFFFF), %eax
        movl    %eax, gdt_tss
        movl    %edx, %eax
        shrl    $16, %eax
        andl    $0xFF, %eax
        movl    %edx, %ecx
        andl    $0xFF000000, %ecx
        orl     %ecx, %eax
        orl     $(0x8900 | (TSS_LIMIT & 0xF0000)), %eax  // present, available 64-bit TSS
        movl    %eax, gdt_tss + 4

        call    fill_idt
        lidt    idt_desc(%rip)
        movw    $SEL_TSS, %ax
        ltr     %ax

        // To kmain at CPL3: IOPL 3 (the TSS bitmap is what counts on the
        // project's hosts, see the header), interrupts off.
        movl    %ebp, %edi
        pushq   $SEL_UDATA
        pushq   $(ustack_top - 8)       // as if kmain had been called: RSP + 8 16-byte aligned
        pushq   $(RFLAGS_IOPL3 | RFLAGS_RSVD)
        pushq   $SEL_UCODE
        pushq   $kmain
        iretq

// fill_idt: 256 interrupt gates from isr_table.
fill_idt:
        movl    $isr_table, %esi
        movl    $idt, %edi
        movl    $256, %ecx
1:      movq    (%rsi), %rdx
        movl    %edx, %eax
        andl    $0xFFFF, %eax
        orl     $(SEL_KCODE << 16), %eax
        movl    %eax, (%rdi)
        movl    %edx, %eax
        andl    $0xFFFF0000, %eax
        orl     $(GATE_INT_DPL0 << 8), %eax
        movl    %eax, 4(%rdi)
        movq    $0, 8(%rdi)             // offset 63:32 is 0: the kernel is below 4 GiB
        addq    $8, %rsi
        addq    $16, %rdi
        decl    %ecx
        jnz     1b
        ret

// ---------------------------------------------------------------------------
// Interrupt and exception handlers (CPL0).

// System calls. On the project's nested "PVM" hosts neither `int n`
// (raises #UD) nor SYSCALL (arrives at LSTAR still at CPL3) gets from CPL3
// to CPL0, while exceptions are delivered through the IDT as on hardware.
// So a system call is a UD2 at a known address: the #UD handler recognises
// the address, steps over the UD2 and does the work at CPL0.
//
// idle(): wait for an interrupt: "sti; hlt; cli" (STI's one-instruction
// shadow makes that atomic: an IRQ already pending wakes the HLT at once).
//
// kcpuid(leaf, subleaf, regs) (EDI, ESI, RDX → u32[4]): CPUID executed at
// CPL0. On those hosts CPUID at CPL3 runs natively on the host CPU and
// returns the host's leaves, not the VM's; only at CPL0 does the VMM's
// CPUID (the instance spec's profile) answer.
//
// console_write(buf, len) (RDI, RSI): send the bytes to COM1, FIFO_BYTES
// after each LSR.THRE. Port I/O costs ~10 us per access from CPL0 but ~30
// us from CPL3 on those hosts (a #GP the hypervisor emulates), so the
// console's bytes go out from here.
#define COM1_LSR        (COM1_BASE + 5)
#define LSR_THRE        0x20
#define FIFO_BYTES      16
        .globl  idle, console_write, kcpuid
kcpuid:
kcpuid_ud2:
        ud2
        ret
idle:
idle_ud2:
        ud2
        ret
console_write:
console_write_ud2:
        ud2
        ret

isr_ud:
        cmpq    $idle_ud2, (%rsp)       // RIP of the #UD (no error code)
        je      sys_idle
        cmpq    $console_write_ud2, (%rsp)
        je      sys_console_write
        cmpq    $kcpuid_ud2, (%rsp)
        je      sys_kcpuid
        pushq   $0
        pushq   $6
        jmp     exc_common

sys_idle:
        addq    $2, (%rsp)
        sti
        hlt
        cli
        iretq

sys_kcpuid:
        addq    $2, (%rsp)
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %r8
        movq    %rdx, %r8
        movl    %edi, %eax
        movl    %esi, %ecx
        cpuid
        movl    %eax, 0(%r8)
        movl    %ebx, 4(%r8)
        movl    %ecx, 8(%r8)
        movl    %edx, 12(%r8)
        popq    %r8
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
        iretq

sys_console_write:
        addq    $2, (%rsp)
        pushq   %rax
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        xchgq   %rsi, %rdi              // RSI = buffer, RDI = bytes left
1:      testq   %rdi, %rdi
        jz      4f
        movw    $COM1_LSR, %dx
2:      inb     %dx, %al
        testb   $LSR_THRE, %al
        jz      2b
        movl    $FIFO_BYTES, %ecx
        cmpq    %rcx, %rdi
        jae     3f
        movl    %edi, %ecx
3:      subq    %rcx, %rdi
        movw    $COM1_BASE, %dx
        rep outsb
        jmp     1b
4:      popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rax
        iretq

isr_nmi:
        lock incq nmi_count(%rip)
        iretq

isr_ignore:
        iretq

// PIC IRQs: non-specific EOI (to the slave too for IRQ 8-15). The shell
// polls the devices itself; the IRQ's only job is to end the HLT.
.macro IRQ_STUB n
        .balign 16
        pushq   %rax
        movb    $0x20, %al
        .if \n >= 8
        outb    %al, $0xA0
        .endif
        outb    %al, $0x20
        popq    %rax
        iretq
.endm
        .balign 16
irq_stubs:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        IRQ_STUB \n
        .endr

// Exceptions: vector and (if the CPU pushes none) a zero error code.
.macro EXC_STUB n
        .balign 16
        .if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
        .else
        pushq   $0
        .endif
        pushq   $\n
        jmp     exc_common
.endm
        .balign 16
exc_stubs:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        EXC_STUB \n
        .endr

// Frame: vector, error code, RIP, CS, RFLAGS, RSP, SS. Report and halt for
// good (NMIs still arrive and are counted; the HLT then resumes).
exc_common:
        movq    (%rsp), %rdi
        movq    8(%rsp), %rsi
        movq    16(%rsp), %rdx
        movq    %cr2, %rcx
        movq    24(%rsp), %r8           // CS
        movq    32(%rsp), %r9           // RFLAGS
        andq    $~15, %rsp
        call    exception_report
1:      cli
        hlt
        jmp     1b

// ---------------------------------------------------------------------------
// AP start-up. ap_trampoline..ap_trampoline_end is copied to AP_TRAMPOLINE
// and entered in real mode with CS = AP_TRAMPOLINE >> 4, IP = 0.
        .code16
        .globl  ap_trampoline, ap_trampoline_end
ap_trampoline:
        cli
        cld
        movw    %cs, %ax
        movw    %ax, %ds
        lgdtl   ap_gdt_desc - ap_trampoline
        movl    %cr0, %eax
        orl     $CR0_PE, %eax
        movl    %eax, %cr0
        ljmpl   $SEL_CODE32, $ap_entry32
        .balign 8
ap_gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
ap_trampoline_end:

        .code32
ap_entry32:
        movw    $SEL_KDATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        ENABLE_LONG_MODE
        ljmpl   $SEL_KCODE, $ap_entry64

        .code64
ap_entry64:
        movw    $SEL_KDATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $1, %eax
        lock xaddl %eax, ap_next(%rip)
        cmpl    $(MAX_CPUS - 1), %eax
        jae     2f                      // no stack left: halt without counting
        incl    %eax
        shll    $12, %eax               // APSTACK_SIZE
        addq    $ap_stacks, %rax
        movq    %rax, %rsp
        lidt    idt_desc(%rip)
        lock incl ap_online(%rip)
1:      hlt
        jmp     1b
2:      cli
        hlt
        jmp     2b

// ---------------------------------------------------------------------------
        .section .rodata
        .balign 8
// Handler of each of the 256 vectors.
isr_table:
        .set    v, 0
        .rept   256
        .if v == VEC_NMI
        .quad   isr_nmi
        .elseif v == 6
        .quad   isr_ud
        .elseif v < 32
        .quad   exc_stubs + v * 16
        .elseif (v >= VEC_IRQ0) && (v < VEC_IRQ0 + 16)
        .quad   irq_stubs + (v - VEC_IRQ0) * 16
        .else
        .quad   isr_ignore
        .endif
        .set    v, v + 1
        .endr

        .balign 8
        .word   0, 0, 0
idt_desc:
        .word   256 * 16 - 1
        .quad   idt

// ---------------------------------------------------------------------------
        .data
        .balign 8
// Accessed bits preset, as in the other guests.
gdt:
        .quad   0                       // 0x00
        .quad   0x00AF9B000000FFFF      // 0x08 SEL_KCODE: 64-bit code, DPL 0
        .quad   0x00CF93000000FFFF      // 0x10 SEL_KDATA
        .quad   0x00CFF3000000FFFF      // 0x18 user data, DPL 3
        .quad   0x00AFFB000000FFFF      // 0x20 user 64-bit code, DPL 3
gdt_tss:
        .quad   0, 0                    // 0x28 SEL_TSS, filled at entry
        .quad   0x00CF9B000000FFFF      // 0x38 SEL_CODE32
gdt_end:
        .balign 8
        .word   0, 0, 0
gdt_desc:
        .word   gdt_end - gdt - 1
        .quad   gdt                     // lgdtl in 32-bit mode reads the low 4 bytes

        .globl  nmi_count, ap_online
        .balign 8
nmi_count:
        .quad   0
ap_online:
        .long   0
ap_next:
        .long   0

// 64-bit TSS: RSP0, and an I/O permission bitmap of zeros (every port
// allowed at CPL3) with its all-ones terminator byte.
        .balign 16
tss:
        .long   0
        .quad   kstack_top              // RSP0
        .fill   TSS_SIZE - 12 - 2, 1, 0
        .word   TSS_SIZE                // I/O map base
        .fill   IOBITMAP_SIZE, 1, 0
        .byte   0xFF

// Page tables: 0..4 GiB identity-mapped with 2 MiB pages, user-accessible.
        .balign 4096
pml4:
        .quad   pdpt + PTE_PWU
        .fill   511, 8, 0
pdpt:
        .quad   pd + PTE_PWU, pd + 0x1000 + PTE_PWU, pd + 0x2000 + PTE_PWU, pd + 0x3000 + PTE_PWU
        .fill   508, 8, 0
pd:
        .set    a, 0
        .rept   2048
        .quad   (a << 21) | PTE_PWU | PTE_PS
        .set    a, a + 1
        .endr

// The IDT, filled at entry.
        .balign 4096
idt:
        .fill   256 * 16, 1, 0

// ---------------------------------------------------------------------------
// Stacks: never loaded, never zeroed (see kernel.ld).
        .section .noinit, "aw", @nobits
        .balign 4096
        .skip   KSTACK_SIZE
kstack_top:
        .skip   USTACK_SIZE
ustack_top:
        .balign 4096
ap_stacks:
        .skip   APSTACK_SIZE * MAX_CPUS
