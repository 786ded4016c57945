// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Shared start of the test guests that run in 64-bit mode (hello, smp).
//
// Assembled separately and linked into each such guest (see build.ts). The
// guest defines the global `main64`, which is entered in 64-bit mode on the
// BSP with interrupts off, flat segments, RSP = BSP_STACK_TOP and the first
// 4 GiB identity-mapped.
//
// What it does, from the reset vector:
//   1. real mode (CS base 0xFFFF_0000, so ROM offsets are `label - ROM_BASE`):
//      set up DS/ES/SS = 0 and a stack in RAM, program COM1, print
//      "propolis-ts guest: reset vector reached";
//   2. load the GDT (which lives in the ROM) and far-jump to 32-bit flat code
//      that keeps running from the ROM at its 0xFFFF_xxxx address;
//   3. build 4-level page tables at PML4_ADDR mapping 0..4 GiB with 2 MiB
//      pages (the ROM at the top of 4 GiB stays mapped), enable PAE, load CR3,
//      set EFER.LME, enable paging, far-jump to the 64-bit code segment.
//
// It also provides small global 64-bit helpers: putc64, puts64, putdec64,
// exit64.
//
// All of this runs at CPL0 / in real mode, which on the project's nested KVM
// hosts is executed by KVM's instruction emulator (~300 ns per instruction),
// so the code is kept short and uses only plain integer instructions.

#include "defs.h"

// ---------------------------------------------------------------------------
// Reset vector: the last 16 bytes of the ROM (placed by rom.ld).
        .section .resetvec, "ax"
        .code16
        .globl reset_vector
reset_vector:
        cli
        jmp     rm_start

// ---------------------------------------------------------------------------
        .text
        .code16
rm_start:
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $BSP_STACK_TOP, %sp

        // Reset leaves CR0.CD/NW set; caching on is the normal state.
        movl    %cr0, %eax
        andl    $~(CR0_CD | CR0_NW), %eax
        movl    %eax, %cr0

        call    rm_uart_init
        movw    $RM(msg_reset), %si
        call    rm_puts

        lgdtl   %cs:RM(gdt_desc)
        movl    %cr0, %eax
        orl     $CR0_PE, %eax
        movl    %eax, %cr0
        ljmpl   $SEL_CODE32, $pm_entry

// 16-bit helpers for code running from the ROM (CS = 0xF000 base 0xFFFF_0000).
RM_SERIAL_HELPERS rm_

// ---------------------------------------------------------------------------
        .code32
pm_entry:
        movw    $SEL_DATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    %ax, %fs
        movw    %ax, %gs
        movl    $BSP_STACK_TOP, %esp

        // PML4[0] -> PDPT
        movl    $(PDPT_ADDR | PTE_P | PTE_W), PML4_ADDR
        movl    $0, PML4_ADDR + 4

        // PDPT[0..3] -> the four page directories
        movl    $PDPT_ADDR, %edi
        movl    $(PD_ADDR | PTE_P | PTE_W), %eax
        movl    $4, %ecx
1:      movl    %eax, (%edi)
        movl    $0, 4(%edi)
        addl    $0x1000, %eax
        addl    $8, %edi
        decl    %ecx
        jnz     1b

        // PD entries: 2048 x 2 MiB pages = 0..4 GiB, identity
        movl    $PD_ADDR, %edi
        movl    $(PTE_P | PTE_W | PTE_PS), %eax
        movl    $2048, %ecx
1:      movl    %eax, (%edi)
        movl    $0, 4(%edi)
        addl    $0x200000, %eax
        addl    $8, %edi
        decl    %ecx
        jnz     1b

        movl    %cr4, %eax
        orl     $CR4_PAE, %eax
        movl    %eax, %cr4
        movl    $PML4_ADDR, %eax
        movl    %eax, %cr3
        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        wrmsr
        movl    %cr0, %eax
        orl     $CR0_PG, %eax
        movl    %eax, %cr0
        ljmp    $SEL_CODE64, $lm_entry

// ---------------------------------------------------------------------------
        .code64
lm_entry:
        movw    $SEL_DATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $BSP_STACK_TOP, %esp
        jmp     main64

// putc64: print the byte in AL on COM1. Preserves all registers but flags.
        .globl  putc64
putc64:
        pushq   %rdx
        pushq   %rax
        movw    $COM1_LSR, %dx
1:      inb     %dx, %al
        testb   $LSR_THRE, %al
        jz      1b
        popq    %rax
        movw    $COM1_DATA, %dx
        outb    %al, %dx
        popq    %rdx
        ret

// puts64: print the NUL-terminated string at RSI. Clobbers RSI, AL.
        .globl  puts64
puts64:
1:      lodsb
        testb   %al, %al
        jz      2f
        call    putc64
        jmp     1b
2:      ret

// putdec64: print EAX as an unsigned decimal number. Clobbers RAX, RCX, RDX.
        .globl  putdec64
putdec64:
        pushq   %rbx
        movl    $10, %ecx
        xorl    %ebx, %ebx
1:      xorl    %edx, %edx
        divl    %ecx
        pushq   %rdx
        incl    %ebx
        testl   %eax, %eax
        jnz     1b
2:      popq    %rax
        addb    $'0', %al
        call    putc64
        decl    %ebx
        jnz     2b
        popq    %rbx
        ret

// exit64: end the VM through the exit device with value AL (status AL*2+1).
        .globl  exit64
exit64:
        movw    $EXIT_PORT, %dx
        outb    %al, %dx
1:      cli
        hlt
        jmp     1b

// ---------------------------------------------------------------------------
        .section .rodata
        .balign 8
// The accessed bits are preset so that loading a selector never needs to write
// the descriptor back into the (read-only) ROM.
gdt:
        .quad   0                       // 0x00 null
        .quad   0x00CF9B000000FFFF      // 0x08 32-bit code, flat 4 GiB
        .quad   0x00CF93000000FFFF      // 0x10 data, flat 4 GiB
        .quad   0x00AF9B000000FFFF      // 0x18 64-bit code
gdt_end:
        .balign 8
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

msg_reset:
        .asciz  "propolis-ts guest: reset vector reached\r\n"
