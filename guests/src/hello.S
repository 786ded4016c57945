// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// hello.rom: the smallest end-to-end boot check.
//
// From the reset vector (boot64.S) it prints a line in real mode, enters
// 64-bit mode, prints a second line on COM1 and exits through port 0x501
// with value 0 (exit status 1 = success). Expected serial output:
//   propolis-ts guest: reset vector reached
//   propolis-ts guest: hello from 64-bit mode

#include "defs.h"

        .text
        .code64
        .globl  main64
main64:
        leaq    msg_hello(%rip), %rsi
        call    puts64
        xorl    %eax, %eax
        jmp     exit64

        .section .rodata
msg_hello:
        .asciz  "propolis-ts guest: hello from 64-bit mode\r\n"
