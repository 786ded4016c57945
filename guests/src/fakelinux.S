// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// fakelinux.bzimage: just enough of a Linux bzImage to test direct kernel
// boot without Linux. The file has the x86 boot protocol's shape: a boot
// sector whose setup header (offset 0x1F1) says "HdrS", protocol 2.06,
// one setup sector, LOADED_HIGH; the setup code's entry at offset 0x200;
// then a small protected-mode "kernel" that nothing runs.
//
// A boot loader (QEMU's linuxboot_dma option ROM) loads the first 1 KiB at
// some segment S (0x1000 in practice) and far-jumps to S+0x20:0, i.e. the
// jump at offset 0x200. The setup code finds its own segment from CS, reads
// the header fields the loader patched, and prints on COM1 (polled):
//   fakelinux: setup entered
//   fakelinux: cmdline "<the command line at cmd_line_ptr>"
//   fakelinux: initrd <ramdisk_image hex> <ramdisk_size hex> loader <type_of_loader hex>
// then writes 0x31 to the isa-debug-exit port 0x501 (exit status 0x63).
// Everything is real mode; the file is linked at 0, so a label is its file
// offset and data is addressed through DS = S.

#define COM1            0x3f8
#define DEBUG_EXIT      0x501
#define EXIT_VALUE      0x31
#define SETUP_SECTS     1

        .code16
        .text
        .globl  _start
_start:
        // Boot sector: never executed (the loader jumps to 0x200).
        .org    0x1f1
setup_sects:    .byte   SETUP_SECTS
root_flags:     .word   0
syssize:        .long   (kernel_end - kernel_start + 15) / 16
ram_size:       .word   0
vid_mode:       .word   0
root_dev:       .word   0
boot_flag:      .word   0xaa55
        // 0x200: the setup entry.
        .org    0x200
        jmp     setup_main
header:         .ascii  "HdrS"
version:        .word   0x0206
realmode_swtch: .long   0
start_sys_seg:  .word   0
kernel_version: .word   0
type_of_loader: .byte   0
loadflags:      .byte   0x01            // LOADED_HIGH
setup_move_size: .word  0
code32_start:   .long   0x100000
ramdisk_image:  .long   0
ramdisk_size:   .long   0
bootsect_kludge: .long  0
heap_end_ptr:   .word   0
ext_loader_ver: .byte   0
ext_loader_type: .byte  0
cmd_line_ptr:   .long   0
initrd_addr_max: .long  0x37ffffff
kernel_alignment: .long 0x200000
relocatable_kernel: .byte 0
min_alignment:  .byte   0
xloadflags:     .word   0
cmdline_size:   .long   2047

setup_main:
        cli
        movw    %cs, %ax
        subw    $0x20, %ax              // CS = S + 0x20: DS = S makes labels file offsets
        movw    %ax, %ds
        cld

        movw    $msg_entered, %si
        call    puts

        movw    $msg_cmdline, %si
        call    puts
        // ES:SI = the command line at the linear address cmd_line_ptr.
        movl    cmd_line_ptr, %eax
        movl    %eax, %ebx
        shrl    $4, %ebx
        movw    %bx, %es
        andw    $0xf, %ax
        movw    %ax, %si
1:      movb    %es:(%si), %al
        testb   %al, %al
        jz      2f
        call    putc
        incw    %si
        jnz     1b
        // Past 64 KiB within one segment: move the segment on.
        movw    %es, %bx
        addw    $0x1000, %bx
        movw    %bx, %es
        jmp     1b
2:      movw    $msg_quote_nl, %si
        call    puts

        movw    $msg_initrd, %si
        call    puts
        movl    ramdisk_image, %eax
        call    puthex32
        movb    $' ', %al
        call    putc
        movl    ramdisk_size, %eax
        call    puthex32
        movw    $msg_loader, %si
        call    puts
        movzbl  type_of_loader, %eax
        call    puthex32
        movw    $msg_nl, %si
        call    puts

        movw    $DEBUG_EXIT, %dx
        movb    $EXIT_VALUE, %al
        outb    %al, %dx
3:      hlt
        jmp     3b

// putc: write AL to COM1 once its transmitter holding register is empty.
putc:
        pushw   %dx
        pushw   %ax
        movw    $COM1 + 5, %dx
4:      inb     %dx, %al
        testb   $0x20, %al
        jz      4b
        popw    %ax
        movw    $COM1, %dx
        outb    %al, %dx
        popw    %dx
        ret

// puts: write the NUL-terminated string at DS:SI.
puts:
        lodsb
        testb   %al, %al
        jz      5f
        call    putc
        jmp     puts
5:      ret

// puthex32: write EAX as 8 hex digits.
puthex32:
        pushl   %ecx
        pushl   %edx
        movl    %eax, %edx
        movw    $8, %cx
6:      roll    $4, %edx
        movb    %dl, %al
        andb    $0xf, %al
        addb    $'0', %al
        cmpb    $'9', %al
        jbe     7f
        addb    $'a' - '0' - 10, %al
7:      call    putc
        loop    6b
        popl    %edx
        popl    %ecx
        ret

msg_entered:    .asciz  "fakelinux: setup entered\r\n"
msg_cmdline:    .asciz  "fakelinux: cmdline \""
msg_quote_nl:   .asciz  "\"\r\n"
msg_initrd:     .asciz  "fakelinux: initrd "
msg_loader:     .asciz  " loader "
msg_nl:         .asciz  "\r\n"

        // The protected-mode part starts after the setup sectors.
        .org    (SETUP_SECTS + 1) * 512
kernel_start:
        .ascii  "fakelinux protected-mode kernel: never run\n"
        .balign 4096, 0xf4
kernel_end:
