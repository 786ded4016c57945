// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// testos.rom's start: the last 4 KiB of the bootrom (rom-stub.ld), with the
// reset vector in its last 16 bytes. The kernel image sits at the start of
// the ROM; build.ts passes its address and size in dwords as KERNEL_ROM_ADDR
// and KERNEL_DWORDS.
//
// From the reset vector (real mode, CS base 0xFFFF_0000): load a flat GDT
// (in the ROM, accessed bits preset: the ROM is read-only), enter 32-bit
// protected mode, copy the kernel to KERNEL_BASE with one `rep movsl` (the
// emulator does about 2 dwords per microsecond), and jump to it with
// EBX = BOOT_MAGIC | BOOT_ROM. Nothing below 1 MiB is used.

#include "layout.h"

#define ROM_CS_BASE     0xFFFF0000
#define RM(x)           ((x) - ROM_CS_BASE)

        .section .resetvec, "ax"
        .code16
        .globl  reset_vector
reset_vector:
        cli
        jmp     stub_start

        .text
        .code16
stub_start:
        cld
        lgdtl   %cs:RM(gdt_desc)
        movl    %cr0, %eax
        orl     $CR0_PE, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $pm32

        .code32
pm32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $KERNEL_ROM_ADDR, %esi
        movl    $KERNEL_BASE, %edi
        movl    $KERNEL_DWORDS, %ecx
        rep movsl
        movl    $(BOOT_MAGIC | BOOT_ROM), %ebx
        movl    $KERNEL_BASE, %eax
        jmp     *%eax

        .balign 8
gdt:
        .quad   0
        .quad   0x00CF9B000000FFFF      // 0x08 32-bit code, flat
        .quad   0x00CF93000000FFFF      // 0x10 data, flat
gdt_end:
        .balign 8
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
