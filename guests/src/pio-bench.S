// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// pio-bench.rom: the port-I/O exit-cost benchmark.
//
// Runs entirely in real mode from the reset vector: reads the iteration
// count N with a 32-bit `in` from port 0x10, then does N 8-bit `out`s to port
// 0x10 (each one a VM exit the VMM counts), then writes 0 to the exit port
// 0x501 (status 1) and halts. N = 0 means no iterations. It prints nothing.

#include "defs.h"

        .section .resetvec, "ax"
        .code16
        .globl reset_vector
reset_vector:
        cli
        jmp     bench

        .text
        .code16
bench:
        movw    $BENCH_PORT, %dx
        inl     %dx, %eax
        movl    %eax, %ecx
        testl   %ecx, %ecx
        jz      2f
1:      outb    %al, %dx
        decl    %ecx
        jnz     1b
2:      movw    $EXIT_PORT, %dx
        xorb    %al, %al
        outb    %al, %dx
3:      cli
        hlt
        jmp     3b
