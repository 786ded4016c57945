// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// flood.rom: a guest that floods COM1 for as long as it runs.
//
// From the reset vector (boot64.S) it enters 64-bit mode and prints
// numbered lines on COM1 without end, as fast as the UART takes them:
//   flood 1 0123456789abcdefghijklmnopqrstuvwxyz
//   flood 2 0123456789abcdefghijklmnopqrstuvwxyz
//   …
// Each byte costs two port exits (the LSR poll and the data write), so on
// the project's hosts it writes some tens of KiB per second. It never
// exits by itself: the host stops it. The server benchmark uses it to
// measure API latency while the serial console is saturated.

#include "defs.h"

        .text
        .code64
        .globl  main64
main64:
        movl    $1, %ebx
1:      leaq    msg_flood(%rip), %rsi
        call    puts64
        movl    %ebx, %eax
        call    putdec64
        leaq    msg_tail(%rip), %rsi
        call    puts64
        incl    %ebx
        jmp     1b

        .section .rodata
msg_flood:
        .asciz  "flood "
msg_tail:
        .asciz  " 0123456789abcdefghijklmnopqrstuvwxyz\r\n"
