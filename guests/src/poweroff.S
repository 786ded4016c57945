// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// poweroff.rom: prints "bye" on COM1 and enters ACPI S5 by writing
// SLP_EN | SLP_TYP=0 to the PIIX4 PM1a control register (0xB004), as the
// platform's \_S5_ object tells an OS to. If that does not power the
// machine off it reports 0x7e through the debug-exit port.

#include "defs.h"

        .section .resetvec, "ax"
        .code16
        .globl reset_vector
reset_vector:
        cli
        jmp     start

        .text
        .code16
start:
        movw    $COM1_DATA, %dx
        movb    $'b', %al
        outb    %al, %dx
        movb    $'y', %al
        outb    %al, %dx
        movb    $'e', %al
        outb    %al, %dx
        movb    $'\n', %al
        outb    %al, %dx
        movw    $0xb004, %dx
        movw    $0x2000, %ax
        outw    %ax, %dx
        movb    $0x7e, %al
        movw    $EXIT_PORT, %dx
        outb    %al, %dx
1:      cli
        hlt
        jmp     1b
