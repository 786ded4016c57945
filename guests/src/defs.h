// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Constants and assembler macros shared by the test guests: device ports,
// the RAM layout the guests use, control-register bits, and the 16-bit serial
// helpers (used both from the ROM and from the SMP guest's AP trampoline).

// ROM placement (see rom.ld). In real mode at reset, CS base is ROM_BASE, so
// a ROM label's offset within CS is RM(label).
#define ROM_BASE        0xFFFF0000
#define RM(x)           ((x) - ROM_BASE)

// Devices (port I/O)
#define COM1_DATA       0x3F8
#define COM1_IER        0x3F9
#define COM1_DLL        0x3F8
#define COM1_DLM        0x3F9
#define COM1_FCR        0x3FA
#define COM1_LCR        0x3FB
#define COM1_MCR        0x3FC
#define COM1_LSR        0x3FD
#define LSR_THRE        0x20
#define EXIT_PORT       0x501
#define FW_CFG_SEL      0x510
#define FW_CFG_DATA     0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_NB_CPUS  0x0005
#define BENCH_PORT      0x10

// Local APIC (xAPIC MMIO)
#define LAPIC_BASE      0xFEE00000
#define LAPIC_SVR       0x0F0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define ICR_BUSY        0x1000

// RAM layout (nothing is preloaded; everything here is written by the guest)
#define BSP_STACK_TOP   0x7000          // grows down from here
#define AP_TRAMPOLINE   0x8000          // SIPI vector 0x08
#define SMP_LOCK        0x9000          // u32 spinlock: 0 free, 1 held
#define SMP_COUNTER     0x9004          // u32 count of APs that came up
#define PML4_ADDR       0x10000
#define PDPT_ADDR       0x11000
#define PD_ADDR         0x12000         // four page directories, to 0x15FFF
#define AP_STACK_SEG    0x2000          // AP n: SS = AP_STACK_SEG + n*0x20, SP = 0x200

// Control registers, MSRs, page-table bits, selectors
#define CR0_PE          0x00000001
#define CR0_NW          0x20000000
#define CR0_CD          0x40000000
#define CR0_PG          0x80000000
#define CR4_PAE         0x00000020
#define MSR_EFER        0xC0000080
#define EFER_LME        0x00000100
#define PTE_P           0x001
#define PTE_W           0x002
#define PTE_PS          0x080
#define SEL_CODE32      0x08
#define SEL_DATA        0x10
#define SEL_CODE64      0x18

// RM_SERIAL_HELPERS pfx: 16-bit routines for real mode, named with prefix
// pfx. They only use near calls and CS-relative string loads, so they work in
// whatever code segment they are assembled into.
//   pfx\()uart_init  program COM1: 115200 8N1, FIFOs on, IRQs off
//   pfx\()putc       print AL
//   pfx\()puts       print the NUL-terminated string at CS:SI (SI advances)
//   pfx\()putdec     print AX as an unsigned decimal number
.macro RM_SERIAL_HELPERS pfx
\pfx\()uart_init:
        movw    $COM1_IER, %dx
        xorb    %al, %al
        outb    %al, %dx
        movw    $COM1_LCR, %dx
        movb    $0x80, %al
        outb    %al, %dx
        movw    $COM1_DLL, %dx
        movb    $1, %al
        outb    %al, %dx
        movw    $COM1_DLM, %dx
        xorb    %al, %al
        outb    %al, %dx
        movw    $COM1_LCR, %dx
        movb    $0x03, %al
        outb    %al, %dx
        movw    $COM1_FCR, %dx
        movb    $0x07, %al
        outb    %al, %dx
        movw    $COM1_MCR, %dx
        movb    $0x03, %al
        outb    %al, %dx
        ret

\pfx\()putc:
        pushw   %dx
        pushw   %ax
        movw    $COM1_LSR, %dx
1:      inb     %dx, %al
        testb   $LSR_THRE, %al
        jz      1b
        popw    %ax
        movw    $COM1_DATA, %dx
        outb    %al, %dx
        popw    %dx
        ret

\pfx\()puts:
1:      lodsb   %cs:(%si), %al
        testb   %al, %al
        jz      2f
        call    \pfx\()putc
        jmp     1b
2:      ret

\pfx\()putdec:
        pushw   %bx
        pushw   %cx
        pushw   %dx
        movw    $10, %cx
        xorw    %bx, %bx
1:      xorw    %dx, %dx
        divw    %cx
        pushw   %dx
        incw    %bx
        testw   %ax, %ax
        jnz     1b
2:      popw    %ax
        addb    $'0', %al
        call    \pfx\()putc
        decw    %bx
        jnz     2b
        popw    %dx
        popw    %cx
        popw    %bx
        ret
.endm
