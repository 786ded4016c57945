// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// reset-triple.rom: resets by triple fault until it has booted three times.
// It enters protected mode with an empty IDT and loads DS with a selector
// past the end of the GDT: that #GP cannot be delivered (another #GP),
// nor can the #DF that follows, so the CPU shuts down, which a PC turns
// into a reset. (A `ud2` would be simpler, but KVM's instruction emulator,
// which runs CPL0 code on these hosts, does not emulate it.)

#include "power.h"

.macro triple_fault
        lidtl   %cs:RM(empty_idt)
        lgdtl   %cs:RM(triple_gdt_ptr)
        movl    %cr0, %eax
        orb     $1, %al
        movl    %eax, %cr0
        movw    $0x40, %ax
        movw    %ax, %ds
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
