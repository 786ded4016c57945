// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// reset-triple.rom: resets by triple fault until it has booted three times.
// It enters protected mode with an empty IDT and executes an undefined
// opcode: #UD cannot be delivered (#GP), nor can that (#DF), so the CPU
// shuts down, which a PC turns into a reset.

#include "power.h"

.macro triple_fault
        lidtl   %cs:RM(empty_idt)
        lgdtl   %cs:RM(triple_gdt_ptr)
        movl    %cr0, %eax
        orb     $1, %al
        movl    %eax, %cr0
        ud2
.endm

        POWER_GUEST triple_fault

        .section .rodata
        .balign 8
empty_idt:
        .word   0
        .long   0
triple_gdt:
        .quad   0
        .quad   0x00cf9b000000ffff      // flat 32-bit code, accessed
triple_gdt_ptr:
        .word   triple_gdt_ptr - triple_gdt - 1
        .long   triple_gdt
