// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// testos.img's boot sector (LBA 0, loaded by the firmware at 0000:7C00 with
// DL = the boot drive). The kernel image follows it on the disk from LBA 1;
// build.ts passes its size as KERNEL_SECTORS and KERNEL_DWORDS.
//
// It reads the kernel with INT 13h extended reads (AH = 42h), 64 sectors
// (32 KiB) per call, to DISK_STAGE (below 1 MiB: real-mode buffers must be),
// then leaves real mode: a flat GDT, 32-bit protected mode, one `rep movsl`
// to KERNEL_BASE, and a jump there with EBX = BOOT_MAGIC | BOOT_DISK. KVM
// has no A20 gate to open. A failed read prints
// "testos: disk read error" on COM1 and halts.

#include "layout.h"

#define CHUNK           64              // sectors per INT 13h call

        .section .text, "ax"
        .code16
        .globl  start
start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7C00, %sp
        ljmp    $0, $1f                 // CS = 0 whatever the firmware used
1:      sti
        cld
        movb    %dl, drive
        movw    $KERNEL_SECTORS, %bx    // sectors left
read:
        movw    $CHUNK, %cx
        cmpw    %cx, %bx
        jae     2f
        movw    %bx, %cx
2:      movw    %cx, dap_count
        movb    $0x42, %ah
        movb    drive, %dl
        movw    $dap, %si
        pushw   %bx
        pushw   %cx
        int     $0x13
        popw    %cx
        popw    %bx
        jc      fail
        addw    %cx, dap_lba
        shlw    $5, %cx                 // sectors -> paragraphs
        addw    %cx, dap_seg
        shrw    $5, %cx
        subw    %cx, %bx
        jnz     read

        cli
        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $CR0_PE, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $pm32

fail:
        movw    $msg_fail, %si
        movw    $(COM1_BASE + 5), %dx
3:      lodsb
        testb   %al, %al
        jz      5f
        movb    %al, %ah
4:      inb     %dx, %al                // LSR.THRE
        testb   $0x20, %al
        jz      4b
        movb    %ah, %al
        subw    $5, %dx
        outb    %al, %dx
        addw    $5, %dx
        jmp     3b
5:      cli
        hlt
        jmp     5b

        .code32
pm32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $DISK_STAGE, %esi
        movl    $KERNEL_BASE, %edi
        movl    $KERNEL_DWORDS, %ecx
        rep movsl
        movl    $(BOOT_MAGIC | BOOT_DISK), %ebx
        movl    $KERNEL_BASE, %eax
        jmp     *%eax

        .balign 8
gdt:
        .quad   0
        .quad   0x00CF9B000000FFFF      // 0x08 32-bit code, flat
        .quad   0x00CF93000000FFFF      // 0x10 data, flat
gdt_end:
        .balign 4
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

// INT 13h extensions disk address packet (the boot sector is RAM: it is
// updated in place).
        .balign 4
dap:
        .byte   16, 0
dap_count:
        .word   0
        .word   0                       // buffer offset
dap_seg:
        .word   DISK_STAGE >> 4
dap_lba:
        .quad   1
drive:
        .byte   0
msg_fail:
        .asciz  "testos: disk read error\r\n"
