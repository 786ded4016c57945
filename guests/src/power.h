// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Shared body of the power-event guests (reset-*.S, poweroff.S): real mode
// from the reset vector. Guest RAM survives a reset, so a byte at 0x500
// (zero at power-on) counts the boots. Each boot prints "boot <n>" on COM1;
// on the third boot the guest reports the count through the debug-exit
// port (status (3 << 1) | 1 = 7). Before that it runs TRIGGER, the
// guest action under test, which must reset the machine.

#include "defs.h"

#define BOOT_COUNT 0x500

.macro POWER_GUEST trigger
        .section .resetvec, "ax"
        .code16
        .globl reset_vector
reset_vector:
        cli
        jmp     start

        .text
        .code16
start:
        xorw    %ax, %ax
        movw    %ax, %ds
        incb    BOOT_COUNT
        movw    $COM1_DATA, %dx
        movb    $'b', %al
        outb    %al, %dx
        movb    BOOT_COUNT, %al
        addb    $'0', %al
        outb    %al, %dx
        movb    $'\n', %al
        outb    %al, %dx
        cmpb    $3, BOOT_COUNT
        jae     report
        \trigger
        // The trigger did not reset the machine: report 0x7e.
        movb    $0x7e, %al
        jmp     out
report:
        movb    BOOT_COUNT, %al
out:
        movw    $EXIT_PORT, %dx
        outb    %al, %dx
1:      cli
        hlt
        jmp     1b
.endm
