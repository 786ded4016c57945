// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// smp.rom: brings up every vCPU with INIT-SIPI-SIPI and counts them.
//
// The BSP boots to 64-bit mode (boot64.S), reads the vCPU count N from
// fw_cfg, copies the AP trampoline below to AP_TRAMPOLINE (0x8000), and sends
// INIT then two STARTUP IPIs (vector 0x08) to all-excluding-self. Each AP
// stays in real mode: it reads its initial APIC ID (CPUID.1:EBX[31:24]),
// prints "cpu <id> up" under a spinlock in RAM, then increments a counter in
// RAM and halts. The BSP waits (bounded) for the counter to reach N-1, prints
// the total and exits through port 0x501 with the number of CPUs seen.
//
// Serial output (AP lines in any order):
//   propolis-ts guest: reset vector reached
//   propolis-ts guest: cpu 0 up
//   propolis-ts guest: cpu <id> up                  (once per AP)
//   propolis-ts guest: <N> cpus up                  exit value N
// or, if not all APs arrive in time:
//   propolis-ts guest: timeout, <k> cpus up         exit value k
// or, without fw_cfg:
//   propolis-ts guest: no fw_cfg                    exit value 0x7F

#include "defs.h"

// BSP wait budget: iterations of a 5-instruction polling loop. Emulated, with
// the APs competing for host CPUs, one iteration took ~4 us under QEMU on the
// project's nested-KVM hosts, so this gives up after about 4 s. All APs
// normally check in within a few milliseconds.
#define WAIT_LOOPS      1000000
// Delay after INIT and after each SIPI, in iterations of `pause; dec; jnz`.
#define IPI_DELAY       5000

// lock_acquire64 / lock_release64: the print spinlock shared with the APs.
.macro lock_acquire64
        movl    $1, %eax
.Lacq_try\@:
        xchgl   %eax, SMP_LOCK
        testl   %eax, %eax
        jz      .Lacq_done\@
.Lacq_spin\@:
        pause
        cmpl    $0, SMP_LOCK
        jne     .Lacq_spin\@
        movl    $1, %eax
        jmp     .Lacq_try\@
.Lacq_done\@:
.endm

.macro lock_release64
        movl    $0, SMP_LOCK
.endm

        .text
        .code64
        .globl  main64
main64:
        movl    $0, SMP_LOCK
        movl    $0, SMP_COUNTER

        // fw_cfg signature: the four bytes must read "QEMU".
        movw    $FW_CFG_SEL, %dx
        movw    $FW_CFG_SIGNATURE, %ax
        outw    %ax, %dx
        movw    $FW_CFG_DATA, %dx
        xorl    %ebx, %ebx
        movl    $4, %ecx
1:      shll    $8, %ebx
        inb     %dx, %al
        movb    %al, %bl
        decl    %ecx
        jnz     1b
        cmpl    $0x51454D55, %ebx       // 'Q' 'E' 'M' 'U', first byte highest
        jne     no_fw_cfg

        // N = fw_cfg item 5, little-endian u16; treat 0 as 1.
        movw    $FW_CFG_SEL, %dx
        movw    $FW_CFG_NB_CPUS, %ax
        outw    %ax, %dx
        movw    $FW_CFG_DATA, %dx
        inb     %dx, %al
        movb    %al, %bl
        inb     %dx, %al
        movb    %al, %bh
        movzwl  %bx, %r12d
        testl   %r12d, %r12d
        jnz     1f
        incl    %r12d
1:
        // "cpu <own APIC ID> up"
        movl    $1, %eax
        cpuid
        shrl    $24, %ebx
        lock_acquire64
        leaq    msg_cpu(%rip), %rsi
        call    puts64
        movl    %ebx, %eax
        call    putdec64
        leaq    msg_up(%rip), %rsi
        call    puts64
        lock_release64

        // Copy the AP trampoline to RAM below 1 MiB.
        leaq    ap_tramp_start(%rip), %rsi
        movl    $AP_TRAMPOLINE, %edi
        movl    $(ap_tramp_end - ap_tramp_start), %ecx
        rep movsb

        // Software-enable the LAPIC (spurious vector 0xFF), then INIT-SIPI-SIPI.
        movl    $LAPIC_BASE, %edi
        movl    $0x1FF, LAPIC_SVR(%rdi)
        movl    $0, LAPIC_ICR_HI(%rdi)
        movl    $0x000C4500, %eax       // INIT, assert, all excluding self
        call    send_ipi
        movl    $(0x000C4600 | (AP_TRAMPOLINE >> 12)), %eax    // STARTUP
        call    send_ipi
        movl    $(0x000C4600 | (AP_TRAMPOLINE >> 12)), %eax
        call    send_ipi

        // Wait until N-1 APs have checked in, or the budget runs out.
        leal    -1(%r12), %r13d
        movl    $WAIT_LOOPS, %ecx
1:      movl    SMP_COUNTER, %eax
        cmpl    %r13d, %eax
        jae     2f
        pause
        decl    %ecx
        jnz     1b
        // timeout
        leal    1(%rax), %ebx
        lock_acquire64
        leaq    msg_timeout(%rip), %rsi
        jmp     3f
2:      leal    1(%rax), %ebx
        lock_acquire64
        leaq    msg_prefix(%rip), %rsi
3:      call    puts64
        movl    %ebx, %eax
        call    putdec64
        leaq    msg_cpus_up(%rip), %rsi
        call    puts64
        lock_release64
        movl    %ebx, %eax
        jmp     exit64

no_fw_cfg:
        leaq    msg_no_fw_cfg(%rip), %rsi
        call    puts64
        movb    $0x7F, %al
        jmp     exit64

// send_ipi: write EAX to ICR low (RDI = LAPIC base), wait (bounded) for the
// delivery-status bit to clear, then delay IPI_DELAY iterations.
send_ipi:
        movl    %eax, LAPIC_ICR_LO(%rdi)
        movl    $IPI_DELAY, %ecx
1:      testl   $ICR_BUSY, LAPIC_ICR_LO(%rdi)
        jz      2f
        pause
        decl    %ecx
        jnz     1b
2:      movl    $IPI_DELAY, %ecx
3:      pause
        decl    %ecx
        jnz     3b
        ret

        .section .rodata
msg_prefix:
        .asciz  "propolis-ts guest: "
msg_cpu:
        .asciz  "propolis-ts guest: cpu "
msg_up:
        .asciz  " up\r\n"
msg_cpus_up:
        .asciz  " cpus up\r\n"
msg_timeout:
        .asciz  "propolis-ts guest: timeout, "
msg_no_fw_cfg:
        .asciz  "propolis-ts guest: no fw_cfg\r\n"

// ---------------------------------------------------------------------------
// AP trampoline. Copied to AP_TRAMPOLINE and entered by each AP in real mode
// at CS = AP_TRAMPOLINE >> 4, IP = 0. It is position-independent: offsets in
// CS are `label - ap_tramp_start`; RAM variables are absolute (DS = 0).
// It must stay smaller than SMP_LOCK - AP_TRAMPOLINE (4 KiB); it is a few
// hundred bytes.
        .text
        .code16
ap_tramp_start:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es

        movl    $1, %eax
        cpuid
        shrl    $24, %ebx               // BX = initial APIC ID

        // A private 512-byte stack per APIC ID, at 0x20000 + id * 0x200.
        movw    %bx, %ax
        shlw    $5, %ax
        addw    $AP_STACK_SEG, %ax
        movw    %ax, %ss
        movw    $0x200, %sp

        movl    $1, %eax
1:      xchgl   %eax, SMP_LOCK
        testl   %eax, %eax
        jz      3f
2:      pause
        cmpl    $0, SMP_LOCK
        jne     2b
        movl    $1, %eax
        jmp     1b
3:
        movw    $(ap_msg_cpu - ap_tramp_start), %si
        call    ap_puts
        movw    %bx, %ax
        call    ap_putdec
        movw    $(ap_msg_up - ap_tramp_start), %si
        call    ap_puts
        movl    $0, SMP_LOCK

        lock incl SMP_COUNTER
4:      cli
        hlt
        jmp     4b

RM_SERIAL_HELPERS ap_

ap_msg_cpu:
        .asciz  "propolis-ts guest: cpu "
ap_msg_up:
        .asciz  " up\r\n"
ap_tramp_end:
