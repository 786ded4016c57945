// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// diskread: a boot sector that reads N MiB from its own disk through the
// firmware's INT 13h services and checks every byte.
//
// The firmware (SeaBIOS) loads sector 0 at 0000:7C00 and jumps there with
// DL = boot drive. Stage 1 (this sector) checks for the INT 13h extensions
// (AH=41h), loads stage 2 from LBA 1 right behind itself at 0000:7E00
// (AH=42h) and jumps to it. Stage 2 reads the data region 64 sectors
// (32 KiB) at a time into 1000:0000 and folds every little-endian dword d
// of it into a hash, h = h * HASH_MUL + d (mod 2^32, h starts at 0), in
// disk order. It compares h with the value the build script patched into
// the parameter block below and reports on COM1 (polled directly, not
// through INT 10h), then writes the result to the debug-exit port:
//
//   diskread: reading <N> MiB from LBA <lba>             (before the reads)
//   diskread: ok <N> MiB                                 exit 0 (status 1)
//   diskread: BAD checksum 0x<got> expected 0x<want>     exit 1 (status 3)
//   diskread: read error 0x<AH> at LBA <lba>             exit 2 (status 5)
//   diskread: no INT 13h extensions                      exit 2 (status 5)
//
// Why this hash: multiplying by an odd constant is invertible mod 2^32, so
// any change to a single dword always changes h, and every dword's weight
// depends on its position (HASH_MUL has multiplicative order 2^30), so
// sectors that come back in the wrong order or from the wrong LBA do not
// cancel out the way they would in a plain sum. It costs two instructions
// per dword, which matters here: real-mode code runs in KVM's instruction
// emulator on the project's hosts (~300 ns per instruction).
//
// Everything runs in real mode with CS = DS = ES = SS = 0 (DS is switched
// to the buffer only inside the hash loop). Memory: stack below 0x7C00,
// code 0x7C00.., read buffer 0x10000..0x17FFF (never crosses a 64 KiB
// boundary). Variables live in the loaded code itself (the DAP in stage 1,
// the running hash and sector count in stage 2).

#include "defs.h"

#define HASH_MUL        0x01000193      // odd, = 3 mod 8: order 2^30
#define CHUNK_SECTORS   64              // sectors per INT 13h call (32 KiB)
#define BUF_SEG         0x1000          // read buffer at 0x10000
#define HASH_SEG        0x0800          // the same buffer as 0800:8000, so
#define HASH_OFF        0x8000          // SI wraps to 0 exactly at its end
#define SECTORS_PER_MIB 2048

// Exit values written to EXIT_PORT.
#define EXIT_OK         0
#define EXIT_BAD        1
#define EXIT_READ       2

        .code16

// ---------------------------------------------------------------- stage 1

        .section .stage1, "ax"
        .globl  start
start:
        cli
        ljmpw   $0, $1f                 // some BIOSes enter at 07C0:0000
1:      xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7C00, %sp
        sti
        cld
        movb    %dl, boot_drive

        call    uart_init

        // INT 13h extensions present, with the "fixed disk access" subset
        // (functions 42h..44h, 47h, 48h)?
        movb    $0x41, %ah
        movw    $0x55AA, %bx
        movb    boot_drive, %dl
        int     $0x13
        jc      no_ext
        cmpw    $0xAA55, %bx
        jne     no_ext
        testb   $1, %cl
        jz      no_ext

        // Stage 2: LBA 1.., to 0000:7E00 (the DAP is preset for that).
        movw    $__stage2_sectors, dap_count
        call    disk_read
        jmp     stage2

no_ext:
        movw    $msg_no_ext, %si
        call    puts
        movb    $EXIT_READ, %al
        jmp     finish

// disk_read: one AH=42h read as described by the DAP. Returns on success;
// on failure reports the status and the DAP's starting LBA and exits.
disk_read:
        movw    $dap, %si
        movb    boot_drive, %dl
        movb    $0x42, %ah
        int     $0x13
        jc      1f
        ret
1:      movb    %ah, %bl
        movw    $msg_read_err, %si
        call    puts
        movb    %bl, %al
        shll    $24, %eax
        movw    $2, %cx
        call    puthex
        movw    $msg_at_lba, %si
        call    puts
        movl    dap_lba, %eax
        call    putdec
        movw    $msg_crlf, %si
        call    puts
        movb    $EXIT_READ, %al
        // fall through

// finish: AL to the debug-exit port, then halt for good.
finish:
        movw    $EXIT_PORT, %dx
        outb    %al, %dx
1:      cli
        hlt
        jmp     1b

// uart_init: COM1 115200 8N1, FIFOs on, no interrupts.
uart_init:
        movw    $COM1_IER, %dx
        movb    $0x00, %al
        outb    %al, %dx
        movw    $COM1_LCR, %dx
        movb    $0x80, %al              // DLAB
        outb    %al, %dx
        movw    $COM1_DLL, %dx
        movb    $1, %al
        outb    %al, %dx
        movw    $COM1_DLM, %dx
        movb    $0, %al
        outb    %al, %dx
        movw    $COM1_LCR, %dx
        movb    $0x03, %al              // 8N1
        outb    %al, %dx
        movw    $COM1_FCR, %dx
        movb    $0x07, %al
        outb    %al, %dx
        movw    $COM1_MCR, %dx
        movb    $0x03, %al              // DTR, RTS
        outb    %al, %dx
        ret

// putc: AL to COM1 once the transmit holding register is empty.
putc:
        pushw   %dx
        pushw   %ax
        movw    $COM1_LSR, %dx
1:      inb     %dx, %al
        testb   $LSR_THRE, %al
        jz      1b
        popw    %ax
        movw    $COM1_DATA, %dx
        outb    %al, %dx
        popw    %dx
        ret

// puts: the NUL-terminated string at DS:SI.
puts:
        lodsb
        testb   %al, %al
        jz      1f
        call    putc
        jmp     puts
1:      ret

// puthex: the top CX nibbles of EAX in lower-case hex. Clobbers EAX, CX.
puthex:
        roll    $4, %eax
        pushw   %ax
        andb    $0x0F, %al
        addb    $'0', %al
        cmpb    $'9', %al
        jbe     1f
        addb    $('a' - '0' - 10), %al
1:      call    putc
        popw    %ax
        loop    puthex
        ret

// putdec: EAX as an unsigned decimal number. Clobbers EAX, EBX, CX, EDX.
putdec:
        movl    $10, %ebx
        xorw    %cx, %cx
1:      xorl    %edx, %edx
        divl    %ebx
        pushw   %dx
        incw    %cx
        testl   %eax, %eax
        jnz     1b
2:      popw    %ax
        addb    $'0', %al
        call    putc
        loop    2b
        ret

// Disk address packet for AH=42h.
dap:
        .byte   16, 0
dap_count:
        .word   0                       // sectors
dap_buf:
        .word   0x7E00, 0               // offset, segment
dap_lba:
        .long   1, 0

boot_drive:
        .byte   0

msg_no_ext:
        .asciz  "diskread: no INT 13h extensions\r\n"
msg_read_err:
        .asciz  "diskread: read error 0x"
msg_at_lba:
        .asciz  " at LBA "
msg_crlf:
        .asciz  "\r\n"

// Parameter block at a fixed offset of the boot sector (diskread.ld puts
// it at 0x1A0). The build script checks the magic and fills in the rest.
        .section .params, "a"
params:
        .ascii  "DRd1"                  // magic
p_data_lba:
        .long   0                       // first LBA of the data region
p_mib:
        .long   0                       // N: MiB of data to read
p_expected:
        .long   0                       // hash of those N MiB

// ---------------------------------------------------------------- stage 2

        .text
stage2:
        movw    $msg_reading, %si
        call    puts
        movl    p_mib, %eax
        call    putdec
        movw    $msg_mib_from, %si
        call    puts
        movl    p_data_lba, %eax
        call    putdec
        movw    $msg_crlf, %si
        call    puts

        movl    p_data_lba, %eax
        movl    %eax, dap_lba
        movw    $0, dap_buf
        movw    $BUF_SEG, dap_buf + 2
        movl    p_mib, %eax
        shll    $11, %eax               // * SECTORS_PER_MIB
        movl    %eax, remaining
        movl    $0, hash

next_chunk:
        // The build script makes the data a whole number of chunks.
        movw    $CHUNK_SECTORS, dap_count
        call    disk_read

        movl    hash, %eax
        movw    $HASH_SEG, %bx
        movw    %bx, %ds
        movw    $HASH_OFF, %si
1:
        .set    off, 0
        .rept   16
        imull   $HASH_MUL, %eax, %eax
        addl    off(%si), %eax
        .set    off, off + 4
        .endr
        addw    $64, %si
        jnz     1b                      // SI wraps to 0 after 32 KiB
        xorw    %bx, %bx
        movw    %bx, %ds
        movl    %eax, hash

        addl    $CHUNK_SECTORS, dap_lba
        subl    $CHUNK_SECTORS, remaining
        jnz     next_chunk

        movl    hash, %eax
        cmpl    p_expected, %eax
        jne     bad

        movw    $msg_ok, %si
        call    puts
        movl    p_mib, %eax
        call    putdec
        movw    $msg_mib_crlf, %si
        call    puts
        movb    $EXIT_OK, %al
        jmp     finish

bad:
        movw    $msg_bad, %si
        call    puts
        movl    hash, %eax
        movw    $8, %cx
        call    puthex
        movw    $msg_expected, %si
        call    puts
        movl    p_expected, %eax
        movw    $8, %cx
        call    puthex
        movw    $msg_crlf, %si
        call    puts
        movb    $EXIT_BAD, %al
        jmp     finish

        .balign 4
hash:
        .long   0
remaining:
        .long   0                       // sectors still to read

msg_reading:
        .asciz  "diskread: reading "
msg_mib_from:
        .asciz  " MiB from LBA "
msg_ok:
        .asciz  "diskread: ok "
msg_mib_crlf:
        .asciz  " MiB\r\n"
msg_bad:
        .asciz  "diskread: BAD checksum 0x"
msg_expected:
        .asciz  " expected 0x"
