// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// blkbench.rom: a block-throughput benchmark guest for a legacy virtio-blk
// PCI function (1AF4:1001), driven by polling from CPL3.
//
// boot64.S brings the BSP to 64-bit mode. The CPL0 part here is kept short
// (on the project's nested-KVM hosts CPL0 code is emulated, ~300 ns per
// instruction): it adds the user bit to the page-table entries covering the
// first GiB of RAM and the ROM, builds a GDT with user segments and a TSS in
// RAM (RSP0, and an I/O permission bitmap that allows every port), an IDT
// whose 32 exception gates print the fault and exit, masks the PICs and
// IRETs to CPL3 with interrupts off. The CPL3 code then does its own IN and
// OUT: on the project's nested "PVM" KVM hosts an IN/OUT at CPL3 with IOPL 3
// in RFLAGS still raised #GP (observed), while the TSS bitmap is honoured;
// IOPL 3 is set as well, for hosts that honour that instead. Everything
// else runs at CPL3, natively:
//
//   1. scan PCI bus 0 through configuration mechanism #1 (0xCF8/0xCFC) for
//      1AF4:1001; program its BAR0 (I/O) to IO_BASE and enable I/O decode
//      and bus mastering, with INTx disabled (we are the firmware);
//   2. legacy virtio set-up through BAR0: reset, ACKNOWLEDGE|DRIVER, accept
//      no features, queue 0 of the size the device reports laid out at
//      RING_BASE (Queue Address = page frame number), DRIVER_OK; MSI-X stays
//      off, so the device configuration starts at BAR0+0x14. The avail
//      ring's NO_INTERRUPT flag is set: completions are found by polling
//      used.idx, no interrupt is ever needed;
//   3. read the parameter block from the first sector of the disk (layout
//      below; the host writes it into the image);
//   4. run three phases: 4 KiB random reads over the read region, then
//      sequential reads and sequential writes of SEQ_BYTES each (1 MiB by
//      default) over the read and write regions, wrapping around. Each
//      phase keeps QD requests in flight: every completion found is checked
//      (status OK; for reads, the 4 KiB blocks carry their own block number
//      in their first 8 bytes) and its slot resubmitted at once; after each
//      sweep of the used ring the device is notified once, unless it has
//      set VIRTQ_USED_F_NO_NOTIFY in the used ring (it is still working).
//
// Serial output (COM1, polled; markers are short so they cost little):
//   blkbench: dev <bdf> iobase <hex> qsize <hex> features <hex> capacity <hex>
//   B<k>                                         phase k begins (k = 1, 2, 3)
//   E<k> <tsc> <kicks> <status errs> <data errs> phase k ended; hex numbers:
//                                                TSC ticks, notifies written
//   blkbench: done                               exit value 0 (status 1)
//   blkbench: done, with errors                  exit value 1 (status 3)
// On a set-up failure: "blkbench: <what>" and exit value 2 (status 5); on a
// CPU exception: "blkbench: fault <vector> error <code> rip <rip>" and exit
// value 3 (status 7). A phase whose count is 0 is skipped (no markers).
//
// The host times each phase from B<k> to E<k> on its side.
//
// Parameter block: the first 64 bytes of LBA 0, little-endian u32s:
//    0 magic "BLKB"            4 version (1)
//    8 queue depth (1..64)    12 4 KiB random reads
//   16 sequential reads       20 sequential writes
//   24 bytes per sequential request (a multiple of 4096, at most 4 MiB)
//   28 bytes per data segment of a sequential request (divides the above)
//   32 read region: first 4 KiB block     36 its length in 4 KiB blocks
//                                           (a power of two)
//   40 write region: first 4 KiB block    44 its length in 4 KiB blocks
//   48 random seed (non-zero)
// Both region lengths must be whole multiples of a sequential request.
// Every 4 KiB block of the read region starts with its own block number
// (u64, counted from the start of the disk).
//
// RAM used (at least 16 MiB + QD * SEQ_BYTES must exist; 256 MiB is ample):
//   0x16000 GDT, 0x17000 IDT, 0x18000 TSS and its I/O bitmap (to 0x1A068),
//   0x1F000 CPL0 stack top (RSP0),
//   0x30000 CPL3 stack top, 0x30000.. variables, 0x100000 the queue,
//   0x110000 request headers, 0x111000 status bytes, 0x112000 parameter
//   block buffer, 0x200000 4 KiB data buffers, 0x1000000 sequential
//   request buffers.

#include "defs.h"

#define IO_BASE         0xC000          // BAR0 of the virtio function
#define PCI_ADDR        0xCF8
#define PCI_DATA        0xCFC
#define VIRTIO_VENDOR_DEVICE 0x10011AF4

// Legacy virtio header in BAR0 (virtio 1.2 §4.1.4.10), MSI-X disabled.
#define VL_HOST_FEATURES 0x00
#define VL_GUEST_FEATURES 0x04
#define VL_QUEUE_PFN    0x08
#define VL_QUEUE_SIZE   0x0C
#define VL_QUEUE_SELECT 0x0E
#define VL_QUEUE_NOTIFY 0x10
#define VL_STATUS       0x12
#define VL_CONFIG       0x14
// virtio-blk configuration
#define BLKCFG_CAPACITY 0x00
#define BLKCFG_SIZE_MAX 0x08
#define BLKCFG_SEG_MAX  0x0C
#define BLK_F_SIZE_MAX  (1 << 1)
#define BLK_F_SEG_MAX   (1 << 2)
#define BLK_T_IN        0
#define BLK_T_OUT       1
#define ST_ACK          1
#define ST_DRIVER       2
#define ST_DRIVER_OK    4
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1
#define MAX_QSIZE       1024
#define MAX_QD          64

// Segments and tables in RAM
#define GDT_ADDR        0x16000
#define TSS_ADDR        0x18000
#define TSS_LIMIT       (104 + 8192)   // last byte: the bitmap's terminator
#define IDT_ADDR        0x17000
#define KSTACK_TOP      0x1F000
#define USTACK_TOP      0x30000
#define SEL_KCODE       0x08
#define SEL_KDATA       0x10
#define SEL_UDATA       0x1B            // 0x18 | RPL 3
#define SEL_UCODE       0x23            // 0x20 | RPL 3
#define SEL_TSS         0x28
#define PTE_U           0x004
#define RFLAGS_IOPL3    0x3000
#define RFLAGS_RSVD1    0x0002

// Queue, requests and buffers
#define RING_BASE       0x100000        // legacy layout: descriptors, avail, used at the next 4 KiB
#define RING_BYTES      0x10000         // room for MAX_QSIZE entries
#define HDR_BASE        0x110000        // 16-byte request header per slot
#define STATUS_BASE     0x111000        // status byte per slot
#define PARAM_BUF       0x112000        // 4 KiB: LBA 0..7
#define BUF4K_BASE      0x200000        // 4 KiB per slot
#define BUFSEQ_BASE     0x1000000       // SEQ_BYTES per slot
#define MAX_SEQ_BYTES   0x400000
#define MAX_SEQ_RAM     0x4000000       // QD * SEQ_BYTES at most 64 MiB

// Variables (CPL3), at VARS + offset
#define VARS            0x30000
#define V_IOBASE        0               // u32
#define V_QSIZE         4               // u32
#define V_QMASK         8               // u32
#define V_DESC          16              // u64 address
#define V_AVAIL         24              // u64 address
#define V_USED          32              // u64 address
#define V_AVAIL_IDX     40              // u32 (low 16 bits published)
#define V_USED_LAST     44              // u32 (low 16 bits compared)
#define V_QD            48              // slots of the running phase
#define V_TYPE          52              // BLK_T_IN / BLK_T_OUT
#define V_BYTES         56              // bytes per request
#define V_SEGS          60              // data segments per request
#define V_SEGBYTES      64
#define V_COUNT         68              // requests in the phase
#define V_RANDOM        72              // 1: random 4 KiB blocks, 0: sequential
#define V_VERIFY        76              // 1: check block numbers of reads
#define V_BUF           80              // u64 address of slot 0's buffer
#define V_RSTART        88              // region: first 4 KiB block
#define V_RBLOCKS       92              // region: length in 4 KiB blocks
#define V_CURSOR        96              // sequential: next block in the region
#define V_DPS           100             // descriptors per slot (segs + 2)
#define V_SUBMITTED     104
#define V_COMPLETED     108
#define V_ERR_STATUS    112
#define V_ERR_DATA      116
#define V_RNG           120             // u64 xorshift64 state
#define V_KICKS         128
#define V_FEATURES      132
#define V_DEVFN         136             // PCI device number << 3
#define V_ANY_ERR       140
#define V_TSC0          144             // u64
#define V_PARAMS        192             // copy of the parameter block (64 bytes)
#define V_EXPECT        256             // u64 per slot: block number of the request in flight

// Parameter block offsets
#define P_MAGIC         0
#define P_VERSION       4
#define P_QD            8
#define P_RAND          12
#define P_SEQREAD       16
#define P_SEQWRITE      20
#define P_SEQBYTES      24
#define P_SEGBYTES      28
#define P_RSTART        32
#define P_RBLOCKS       36
#define P_WSTART        40
#define P_WBLOCKS       44
#define P_SEED          48
#define PARAM_MAGIC     0x424B4C42      // "BLKB"

        .text
        .code64
        .globl  main64
main64:
        // ---- CPL0: as little as possible ----
        // User bit on the path to the first GiB (PD 0, 2 MiB pages) and to
        // the ROM (PD 3, last entry).
        orq     $PTE_U, PML4_ADDR
        orq     $PTE_U, PDPT_ADDR
        orq     $PTE_U, PDPT_ADDR + 3 * 8
        orq     $PTE_U, PD_ADDR + 3 * 0x1000 + 511 * 8
        movl    $PD_ADDR, %edi
        movl    $512, %ecx
1:      orq     $PTE_U, (%rdi)
        addq    $8, %rdi
        decl    %ecx
        jnz     1b
        movq    %cr3, %rax
        movq    %rax, %cr3

        // GDT: copied from the ROM template.
        leaq    gdt_template(%rip), %rsi
        movl    $GDT_ADDR, %edi
        movl    $(gdt_template_end - gdt_template) / 8, %ecx
1:      movq    (%rsi), %rax
        movq    %rax, (%rdi)
        addq    $8, %rsi
        addq    $8, %rdi
        decl    %ecx
        jnz     1b

        // TSS: zero it, RSP0, then an I/O permission bitmap of all zeros
        // (every port allowed) and its terminating all-ones byte.
        movl    $TSS_ADDR, %edi
        xorl    %eax, %eax
        movl    $(104 + 8192) / 8, %ecx
        rep stosq
        movq    $KSTACK_TOP, TSS_ADDR + 4
        movw    $104, TSS_ADDR + 102    // I/O map base: right after the TSS
        movb    $0xFF, TSS_ADDR + 104 + 8192

        // IDT: 32 interrupt gates to the fault stubs, 16 bytes apart.
        leaq    fault_stubs(%rip), %rdx
        movl    $IDT_ADDR, %edi
        movl    $32, %ecx
1:      movl    %edx, %eax
        andl    $0xFFFF, %eax
        orl     $(SEL_KCODE << 16), %eax
        movl    %eax, (%rdi)
        movl    %edx, %eax
        andl    $0xFFFF0000, %eax
        orl     $0x8E00, %eax
        movl    %eax, 4(%rdi)
        movq    $0, 8(%rdi)
        addq    $16, %rdx
        addq    $16, %rdi
        decl    %ecx
        jnz     1b

        lgdt    gdt_desc(%rip)
        lidt    idt_desc(%rip)
        pushq   $SEL_KCODE
        leaq    1f(%rip), %rax
        pushq   %rax
        lretq
1:      movw    $SEL_KDATA, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $SEL_TSS, %ax
        ltr     %ax

        // Nothing should interrupt, but mask both PICs anyway.
        movb    $0xFF, %al
        outb    %al, $0x21
        outb    %al, $0xA1

        // To CPL3, interrupts off, IOPL 3.
        pushq   $SEL_UDATA
        pushq   $USTACK_TOP
        pushq   $(RFLAGS_IOPL3 | RFLAGS_RSVD1)
        pushq   $SEL_UCODE
        leaq    user_main(%rip), %rax
        pushq   %rax
        iretq

// ---------------------------------------------------------------------------
// Exception stubs: vector and (if the CPU pushes none) a zero error code,
// then print and exit. Runs at CPL0 on the RSP0 stack.
.macro FAULT_STUB n
        .balign 16
        .if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
        .else
        pushq   $0
        .endif
        pushq   $\n
        jmp     fault_common
.endm

        .balign 16
fault_stubs:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        FAULT_STUB \n
        .endr

fault_common:
        leaq    msg_fault(%rip), %rsi
        call    u_puts
        movq    (%rsp), %rax
        call    u_puthex64
        leaq    msg_error(%rip), %rsi
        call    u_puts
        movq    8(%rsp), %rax
        call    u_puthex64
        leaq    msg_rip(%rip), %rsi
        call    u_puts
        movq    16(%rsp), %rax
        call    u_puthex64
        leaq    msg_crlf(%rip), %rsi
        call    u_puts
        movb    $3, %al
        jmp     u_exit

// ---------------------------------------------------------------------------
// Serial and exit helpers; they only use IN/OUT, so they work at CPL0 and at
// CPL3 with IOPL 3.

// u_putc: print AL. Preserves everything but flags.
u_putc:
        pushq   %rdx
        pushq   %rax
        movw    $COM1_LSR, %dx
1:      inb     %dx, %al
        testb   $LSR_THRE, %al
        jz      1b
        popq    %rax
        movw    $COM1_DATA, %dx
        outb    %al, %dx
        popq    %rdx
        ret

// u_puts: print the NUL-terminated string at RSI. Clobbers RSI, AL.
u_puts:
1:      movb    (%rsi), %al
        incq    %rsi
        testb   %al, %al
        jz      2f
        call    u_putc
        jmp     1b
2:      ret

// u_puthex64 / u_puthex32: RAX / EAX in hex without leading zeros. Clobbers RAX.
u_puthex32:
        movl    %eax, %eax
u_puthex64:
        pushq   %rcx
        pushq   %rdx
        pushq   %rbx
        movq    %rax, %rdx
        xorl    %ebx, %ebx              // a digit printed yet
        movl    $60, %ecx
1:      movq    %rdx, %rax
        shrq    %cl, %rax
        andl    $0xF, %eax
        orl     %eax, %ebx
        jnz     2f
        testl   %ecx, %ecx              // the last digit always prints
        jnz     3f
2:      cmpb    $10, %al
        jb      4f
        addb    $('a' - 10 - '0'), %al
4:      addb    $'0', %al
        call    u_putc
3:      subl    $4, %ecx
        jns     1b
        popq    %rbx
        popq    %rdx
        popq    %rcx
        ret

// u_putsp: print a space. Clobbers AL.
u_putsp:
        movb    $' ', %al
        jmp     u_putc

// u_exit: end the VM with exit value AL; never returns.
u_exit:
        movw    $EXIT_PORT, %dx
        outb    %al, %dx
1:      pause
        jmp     1b

// u_fail: print "blkbench: " and the string at RSI, exit value 2.
u_fail:
        pushq   %rsi
        leaq    msg_prefix(%rip), %rsi
        call    u_puts
        popq    %rsi
        call    u_puts
        leaq    msg_crlf(%rip), %rsi
        call    u_puts
        movb    $2, %al
        jmp     u_exit

// ---------------------------------------------------------------------------
// CPL3 from here on. RBP points at the variables throughout.

user_main:
        cld
        movl    $VARS, %ebp
        // Clear the variables, the queue and the request headers/status bytes.
        movl    $VARS, %edi
        xorl    %eax, %eax
        movl    $(0x1000 / 8), %ecx
        rep stosq
        movl    $RING_BASE, %edi
        movl    $((RING_BYTES + 0x2000) / 8), %ecx
        rep stosq

        // ---- find 1AF4:1001 on bus 0 ----
        xorl    %ebx, %ebx              // device << 11
1:      movl    %ebx, %eax
        orl     $0x80000000, %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movw    $PCI_DATA, %dx
        inl     %dx, %eax
        cmpl    $VIRTIO_VENDOR_DEVICE, %eax
        je      2f
        addl    $(1 << 11), %ebx
        cmpl    $(32 << 11), %ebx
        jb      1b
        leaq    msg_nodev(%rip), %rsi
        jmp     u_fail
2:      movl    %ebx, %eax
        shrl    $8, %eax
        movl    %eax, V_DEVFN(%rbp)
        // BAR0 = IO_BASE, then command = I/O | bus master | INTx disable.
        leal    0x80000010(%rbx), %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movl    $IO_BASE, %eax
        movw    $PCI_DATA, %dx
        outl    %eax, %dx
        inl     %dx, %eax
        andl    $0xFFFC, %eax
        cmpl    $IO_BASE, %eax
        je      3f
        leaq    msg_nobar(%rip), %rsi
        jmp     u_fail
3:      movl    %eax, V_IOBASE(%rbp)
        leal    0x80000004(%rbx), %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movl    $0x0405, %eax
        movw    $PCI_DATA, %dx
        outl    %eax, %dx

        // ---- legacy virtio set-up ----
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_STATUS, %edx
        xorl    %eax, %eax
        outb    %al, %dx                // reset
        movb    $ST_ACK, %al
        outb    %al, %dx
        movb    $(ST_ACK | ST_DRIVER), %al
        outb    %al, %dx
        movl    V_IOBASE(%rbp), %edx
        inl     %dx, %eax               // VL_HOST_FEATURES
        movl    %eax, V_FEATURES(%rbp)
        addl    $VL_GUEST_FEATURES, %edx
        xorl    %eax, %eax
        outl    %eax, %dx               // none
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_SELECT, %edx
        xorl    %eax, %eax
        outw    %ax, %dx
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_SIZE, %edx
        inw     %dx, %ax
        movzwl  %ax, %eax
        // A power of two, 4..MAX_QSIZE.
        cmpl    $4, %eax
        jb      4f
        cmpl    $MAX_QSIZE, %eax
        ja      4f
        leal    -1(%rax), %ecx
        testl   %ecx, %eax
        jz      5f
4:      leaq    msg_qsize(%rip), %rsi
        jmp     u_fail
5:      movl    %eax, V_QSIZE(%rbp)
        movl    %ecx, V_QMASK(%rbp)
        // Legacy layout: descriptors (16 * size), avail (6 + 2 * size), used at the next 4 KiB.
        movq    $RING_BASE, %rdi
        movq    %rdi, V_DESC(%rbp)
        movl    %eax, %ecx
        shll    $4, %ecx
        addq    %rdi, %rcx
        movq    %rcx, V_AVAIL(%rbp)
        leaq    6 + 0xFFF(%rcx,%rax,2), %rcx
        andq    $~0xFFF, %rcx
        movq    %rcx, V_USED(%rbp)
        movq    V_AVAIL(%rbp), %rcx
        movw    $AVAIL_F_NO_INTERRUPT, (%rcx)
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_PFN, %edx
        movl    $(RING_BASE >> 12), %eax
        outl    %eax, %dx
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_STATUS, %edx
        movb    $(ST_ACK | ST_DRIVER | ST_DRIVER_OK), %al
        outb    %al, %dx

        // ---- the parameter block: one 4 KiB read of LBA 0 ----
        movl    $1, V_QD(%rbp)
        movl    $BLK_T_IN, V_TYPE(%rbp)
        movl    $4096, V_BYTES(%rbp)
        movl    $1, V_SEGS(%rbp)
        movl    $4096, V_SEGBYTES(%rbp)
        movl    $1, V_COUNT(%rbp)
        movl    $0, V_RANDOM(%rbp)
        movl    $0, V_VERIFY(%rbp)
        movq    $PARAM_BUF, V_BUF(%rbp)
        movl    $0, V_RSTART(%rbp)
        movl    $1, V_RBLOCKS(%rbp)
        movl    $0, V_CURSOR(%rbp)
        call    run_phase
        movl    V_ERR_STATUS(%rbp), %eax
        testl   %eax, %eax
        jz      1f
        leaq    msg_paramio(%rip), %rsi
        jmp     u_fail
1:      movl    $PARAM_BUF, %esi
        leaq    V_PARAMS(%rbp), %rdi
        movl    $8, %ecx
        rep movsq
        call    check_params

        // ---- the banner line ----
        leaq    msg_dev(%rip), %rsi
        call    u_puts
        movl    V_DEVFN(%rbp), %eax
        shrl    $3, %eax
        call    u_puthex32
        leaq    msg_iobase(%rip), %rsi
        call    u_puts
        movl    V_IOBASE(%rbp), %eax
        call    u_puthex32
        leaq    msg_qsizeis(%rip), %rsi
        call    u_puts
        movl    V_QSIZE(%rbp), %eax
        call    u_puthex32
        leaq    msg_features(%rip), %rsi
        call    u_puts
        movl    V_FEATURES(%rbp), %eax
        call    u_puthex32
        leaq    msg_capacity(%rip), %rsi
        call    u_puts
        call    read_capacity
        call    u_puthex64
        leaq    msg_crlf(%rip), %rsi
        call    u_puts

        // ---- the three phases ----
        movl    V_PARAMS + P_SEED(%rbp), %eax
        movq    %rax, V_RNG(%rbp)

        // 1: 4 KiB random reads over the read region.
        movl    V_PARAMS + P_QD(%rbp), %eax
        movl    %eax, V_QD(%rbp)
        movl    $BLK_T_IN, V_TYPE(%rbp)
        movl    $4096, V_BYTES(%rbp)
        movl    $1, V_SEGS(%rbp)
        movl    $4096, V_SEGBYTES(%rbp)
        movl    V_PARAMS + P_RAND(%rbp), %eax
        movl    %eax, V_COUNT(%rbp)
        movl    $1, V_RANDOM(%rbp)
        movl    $1, V_VERIFY(%rbp)
        movq    $BUF4K_BASE, V_BUF(%rbp)
        movl    V_PARAMS + P_RSTART(%rbp), %eax
        movl    %eax, V_RSTART(%rbp)
        movl    V_PARAMS + P_RBLOCKS(%rbp), %eax
        movl    %eax, V_RBLOCKS(%rbp)
        movl    $0, V_CURSOR(%rbp)
        movb    $'1', %bl
        call    timed_phase

        // 2: sequential reads over the read region.
        movl    V_PARAMS + P_SEQBYTES(%rbp), %eax
        movl    %eax, V_BYTES(%rbp)
        movl    V_PARAMS + P_SEGBYTES(%rbp), %ecx
        movl    %ecx, V_SEGBYTES(%rbp)
        xorl    %edx, %edx
        divl    %ecx
        movl    %eax, V_SEGS(%rbp)
        movl    V_PARAMS + P_SEQREAD(%rbp), %eax
        movl    %eax, V_COUNT(%rbp)
        movl    $0, V_RANDOM(%rbp)
        movq    $BUFSEQ_BASE, V_BUF(%rbp)
        movb    $'2', %bl
        call    timed_phase

        // 3: sequential writes over the write region.
        movl    $BLK_T_OUT, V_TYPE(%rbp)
        movl    $0, V_VERIFY(%rbp)
        movl    V_PARAMS + P_SEQWRITE(%rbp), %eax
        movl    %eax, V_COUNT(%rbp)
        movl    V_PARAMS + P_WSTART(%rbp), %eax
        movl    %eax, V_RSTART(%rbp)
        movl    V_PARAMS + P_WBLOCKS(%rbp), %eax
        movl    %eax, V_RBLOCKS(%rbp)
        movl    $0, V_CURSOR(%rbp)
        movb    $'3', %bl
        call    timed_phase

        movl    V_ANY_ERR(%rbp), %eax
        testl   %eax, %eax
        jnz     1f
        leaq    msg_done(%rip), %rsi
        call    u_puts
        xorl    %eax, %eax
        jmp     u_exit
1:      leaq    msg_done_err(%rip), %rsi
        call    u_puts
        movb    $1, %al
        jmp     u_exit

// read_capacity: RAX = the device's capacity in 512-byte sectors.
read_capacity:
        pushq   %rdx
        movl    V_IOBASE(%rbp), %edx
        addl    $(VL_CONFIG + BLKCFG_CAPACITY + 4), %edx
        inl     %dx, %eax
        shlq    $32, %rax
        movq    %rax, %rcx
        subl    $4, %edx
        inl     %dx, %eax
        orq     %rcx, %rax
        popq    %rdx
        ret

// check_params: validate the parameter block against the limits above and
// the device; fail with a message otherwise.
check_params:
        leaq    V_PARAMS(%rbp), %rbx
        leaq    msg_magic(%rip), %rsi
        cmpl    $PARAM_MAGIC, P_MAGIC(%rbx)
        jne     9f
        cmpl    $1, P_VERSION(%rbx)
        jne     9f
        leaq    msg_badparam(%rip), %rsi
        movl    P_QD(%rbx), %eax
        testl   %eax, %eax
        jz      9f
        cmpl    $MAX_QD, %eax
        ja      9f
        // 4 KiB phase: QD * 3 descriptors must fit the queue.
        leal    (%rax,%rax,2), %ecx
        cmpl    V_QSIZE(%rbp), %ecx
        ja      9f
        // Sequential requests: 4 KiB multiples up to MAX_SEQ_BYTES, segments dividing them.
        movl    P_SEQBYTES(%rbx), %eax
        testl   $0xFFF, %eax
        jnz     9f
        testl   %eax, %eax
        jz      9f
        cmpl    $MAX_SEQ_BYTES, %eax
        ja      9f
        movl    P_SEGBYTES(%rbx), %ecx
        testl   %ecx, %ecx
        jz      9f
        xorl    %edx, %edx
        divl    %ecx
        testl   %edx, %edx
        jnz     9f
        movl    %eax, %edi              // segments per request
        // QD * (segments + 2) descriptors must fit the queue.
        leal    2(%rdi), %eax
        mull    P_QD(%rbx)
        cmpl    V_QSIZE(%rbp), %eax
        ja      9f
        // QD * SEQ_BYTES of buffers.
        movl    P_SEQBYTES(%rbx), %eax
        mull    P_QD(%rbx)
        testl   %edx, %edx
        jnz     9f
        cmpl    $MAX_SEQ_RAM, %eax
        ja      9f
        // The device's segment limits, when it states them.
        leaq    msg_seglimit(%rip), %rsi
        testl   $BLK_F_SEG_MAX, V_FEATURES(%rbp)
        jz      1f
        movl    V_IOBASE(%rbp), %edx
        addl    $(VL_CONFIG + BLKCFG_SEG_MAX), %edx
        inl     %dx, %eax
        cmpl    %eax, %edi
        ja      9f
1:      testl   $BLK_F_SIZE_MAX, V_FEATURES(%rbp)
        jz      1f
        movl    V_IOBASE(%rbp), %edx
        addl    $(VL_CONFIG + BLKCFG_SIZE_MAX), %edx
        inl     %dx, %eax
        cmpl    %eax, P_SEGBYTES(%rbx)
        ja      9f
        // Regions: the read region a power of two of blocks, both whole
        // sequential requests, and inside the disk.
1:      leaq    msg_region(%rip), %rsi
        movl    P_RBLOCKS(%rbx), %eax
        testl   %eax, %eax
        jz      9f
        leal    -1(%rax), %ecx
        testl   %ecx, %eax
        jnz     9f
        movl    P_SEQBYTES(%rbx), %ecx
        shrl    $12, %ecx               // blocks per sequential request
        xorl    %edx, %edx
        divl    %ecx
        testl   %edx, %edx
        jnz     9f
        movl    P_WBLOCKS(%rbx), %eax
        testl   %eax, %eax
        jz      9f
        xorl    %edx, %edx
        divl    %ecx
        testl   %edx, %edx
        jnz     9f
        call    read_capacity
        shrq    $3, %rax                // 4 KiB blocks on the disk
        movq    %rax, %rdi
        movl    P_RSTART(%rbx), %eax
        movl    P_RBLOCKS(%rbx), %ecx
        addq    %rcx, %rax
        cmpq    %rdi, %rax
        ja      9f
        movl    P_WSTART(%rbx), %eax
        movl    P_WBLOCKS(%rbx), %ecx
        addq    %rcx, %rax
        cmpq    %rdi, %rax
        ja      9f
        cmpl    $0, P_SEED(%rbx)
        je      9f
        ret
9:      jmp     u_fail

// timed_phase: run the configured phase between the B<k> and E<k> markers
// (k in BL); skipped when its count is 0.
timed_phase:
        cmpl    $0, V_COUNT(%rbp)
        je      9f
        movb    $'B', %al
        call    u_putc
        movb    %bl, %al
        call    u_putc
        leaq    msg_crlf(%rip), %rsi
        call    u_puts
        rdtsc
        shlq    $32, %rdx
        orq     %rdx, %rax
        movq    %rax, V_TSC0(%rbp)
        pushq   %rbx
        call    run_phase
        popq    %rbx
        rdtsc
        shlq    $32, %rdx
        orq     %rdx, %rax
        subq    V_TSC0(%rbp), %rax
        movq    %rax, %rcx
        movb    $'E', %al
        call    u_putc
        movb    %bl, %al
        call    u_putc
        call    u_putsp
        movq    %rcx, %rax
        call    u_puthex64
        call    u_putsp
        movl    V_KICKS(%rbp), %eax
        call    u_puthex32
        call    u_putsp
        movl    V_ERR_STATUS(%rbp), %eax
        call    u_puthex32
        call    u_putsp
        movl    V_ERR_DATA(%rbp), %eax
        call    u_puthex32
        leaq    msg_crlf(%rip), %rsi
        call    u_puts
        movl    V_ERR_STATUS(%rbp), %eax
        orl     V_ERR_DATA(%rbp), %eax
        orl     %eax, V_ANY_ERR(%rbp)
9:      ret

// ---------------------------------------------------------------------------
// run_phase: V_COUNT requests as configured, V_QD in flight, polling.
// Clobbers everything but RBP.
run_phase:
        pushq   %r12
        pushq   %r13
        pushq   %r14
        movl    $0, V_SUBMITTED(%rbp)
        movl    $0, V_COMPLETED(%rbp)
        movl    $0, V_ERR_STATUS(%rbp)
        movl    $0, V_ERR_DATA(%rbp)
        movl    $0, V_KICKS(%rbp)
        movl    V_SEGS(%rbp), %eax
        addl    $2, %eax
        movl    %eax, V_DPS(%rbp)
        call    setup_chains

        // Fill the queue: slots 0 .. min(QD, count) - 1.
        xorl    %ebx, %ebx
1:      cmpl    V_QD(%rbp), %ebx
        jae     2f
        movl    V_SUBMITTED(%rbp), %eax
        cmpl    V_COUNT(%rbp), %eax
        jae     2f
        call    submit
        incl    %ebx
        jmp     1b
2:      call    kick

        movq    V_USED(%rbp), %r13
        movl    V_USED_LAST(%rbp), %r12d
        movl    V_QMASK(%rbp), %r14d
.Lwait:
        movl    V_COMPLETED(%rbp), %eax
        cmpl    V_COUNT(%rbp), %eax
        jae     .Ldone
.Lpoll:
        movzwl  2(%r13), %eax           // used.idx
        cmpw    %ax, %r12w
        je      .Lpoll
        xorl    %r8d, %r8d              // resubmitted any
.Lreap:
        movl    %r12d, %ecx
        andl    %r14d, %ecx
        movl    4(%r13,%rcx,8), %eax    // used.ring[i].id
        xorl    %edx, %edx
        divl    V_DPS(%rbp)
        testl   %edx, %edx
        jnz     .Lbadid
        cmpl    V_QD(%rbp), %eax
        jae     .Lbadid
        movl    %eax, %ebx              // slot
        cmpb    $0, STATUS_BASE(%rbx)
        je      1f
        incl    V_ERR_STATUS(%rbp)
        jmp     2f
1:      cmpl    $0, V_VERIFY(%rbp)
        je      2f
        // The first and the last 4 KiB block of the buffer carry their block numbers.
        movl    V_BYTES(%rbp), %eax
        mull    %ebx
        addq    V_BUF(%rbp), %rax
        movq    V_EXPECT(%rbp,%rbx,8), %rdx
        cmpq    %rdx, (%rax)
        jne     3f
        movl    V_BYTES(%rbp), %ecx
        subl    $4096, %ecx
        addq    %rcx, %rax
        shrl    $12, %ecx
        addq    %rcx, %rdx
        cmpq    %rdx, (%rax)
        je      2f
3:      incl    V_ERR_DATA(%rbp)
2:      incl    V_COMPLETED(%rbp)
        incl    %r12d
        movl    V_SUBMITTED(%rbp), %eax
        cmpl    V_COUNT(%rbp), %eax
        jae     4f
        call    submit
        movl    $1, %r8d
4:      movzwl  2(%r13), %eax
        cmpw    %ax, %r12w
        jne     .Lreap
        movl    %r12d, V_USED_LAST(%rbp)
        testl   %r8d, %r8d
        jz      .Lwait
        call    kick
        jmp     .Lwait
.Ldone:
        movl    %r12d, V_USED_LAST(%rbp)
        popq    %r14
        popq    %r13
        popq    %r12
        ret
.Lbadid:
        leaq    msg_badid(%rip), %rsi
        jmp     u_fail

// setup_chains: build each slot's descriptor chain: the header (readable),
// V_SEGS data segments (device-writable for reads), the status byte
// (device-writable). Only the headers change between requests.
setup_chains:
        movq    V_DESC(%rbp), %rdi
        xorl    %ebx, %ebx              // slot
        xorl    %r9d, %r9d              // descriptor index
        xorl    %r10d, %r10d            // data flags
        cmpl    $BLK_T_IN, V_TYPE(%rbp)
        jne     1f
        movl    $DESC_F_WRITE, %r10d
1:      cmpl    V_QD(%rbp), %ebx
        jae     9f
        // header
        movq    %r9, %rax
        shlq    $4, %rax
        leaq    (%rdi,%rax), %rsi
        movq    %rbx, %rax
        shlq    $4, %rax
        addq    $HDR_BASE, %rax
        movq    %rax, (%rsi)
        movl    $16, 8(%rsi)
        movw    $DESC_F_NEXT, 12(%rsi)
        leal    1(%r9), %eax
        movw    %ax, 14(%rsi)
        incl    %r9d
        // data segments: slot buffer = V_BUF + slot * V_BYTES
        movl    V_BYTES(%rbp), %eax
        mull    %ebx
        addq    V_BUF(%rbp), %rax
        movq    %rax, %r11
        movl    V_SEGS(%rbp), %ecx
2:      movq    %r9, %rax
        shlq    $4, %rax
        leaq    (%rdi,%rax), %rsi
        movq    %r11, (%rsi)
        movl    V_SEGBYTES(%rbp), %eax
        movl    %eax, 8(%rsi)
        addq    %rax, %r11
        movl    %r10d, %eax
        orl     $DESC_F_NEXT, %eax
        movw    %ax, 12(%rsi)
        leal    1(%r9), %eax
        movw    %ax, 14(%rsi)
        incl    %r9d
        decl    %ecx
        jnz     2b
        // status
        movq    %r9, %rax
        shlq    $4, %rax
        leaq    (%rdi,%rax), %rsi
        leaq    STATUS_BASE(%rbx), %rax
        movq    %rax, (%rsi)
        movl    $1, 8(%rsi)
        movw    $DESC_F_WRITE, 12(%rsi)
        movw    $0, 14(%rsi)
        incl    %r9d
        incl    %ebx
        jmp     1b
9:      ret

// submit: start the next request of the phase in slot EBX. Clobbers RAX,
// RCX, RDX, RSI, RDI.
submit:
        cmpl    $0, V_RANDOM(%rbp)
        je      1f
        // xorshift64
        movq    V_RNG(%rbp), %rax
        movq    %rax, %rcx
        shlq    $13, %rcx
        xorq    %rcx, %rax
        movq    %rax, %rcx
        shrq    $7, %rcx
        xorq    %rcx, %rax
        movq    %rax, %rcx
        shlq    $17, %rcx
        xorq    %rcx, %rax
        movq    %rax, V_RNG(%rbp)
        movl    V_RBLOCKS(%rbp), %ecx
        decl    %ecx
        andl    %ecx, %eax
        jmp     2f
1:      movl    V_CURSOR(%rbp), %eax
        movl    V_BYTES(%rbp), %ecx
        shrl    $12, %ecx
        addl    %eax, %ecx
        cmpl    V_RBLOCKS(%rbp), %ecx
        jb      3f
        xorl    %ecx, %ecx
3:      movl    %ecx, V_CURSOR(%rbp)
2:      addl    V_RSTART(%rbp), %eax    // 4 KiB block number on the disk
        movq    %rax, V_EXPECT(%rbp,%rbx,8)
        // header: type, reserved, sector
        movq    %rbx, %rdi
        shlq    $4, %rdi
        addq    $HDR_BASE, %rdi
        movl    V_TYPE(%rbp), %ecx
        movl    %ecx, (%rdi)
        movl    $0, 4(%rdi)
        shlq    $3, %rax
        movq    %rax, 8(%rdi)
        movb    $0xFF, STATUS_BASE(%rbx)
        // Reads: spoil the block number the completion will check.
        testl   %ecx, %ecx
        jnz     4f
        movl    V_BYTES(%rbp), %eax
        mull    %ebx
        addq    V_BUF(%rbp), %rax
        movq    $-1, (%rax)
        movl    V_BYTES(%rbp), %ecx
        movq    $-1, -4096(%rax,%rcx)
        // avail.ring[avail_idx % size] = head; then publish avail.idx
        // (x86 keeps stores in order).
4:      movl    %ebx, %eax
        mull    V_DPS(%rbp)             // head descriptor
        movq    V_AVAIL(%rbp), %rsi
        movl    V_AVAIL_IDX(%rbp), %ecx
        movl    %ecx, %edx
        andl    V_QMASK(%rbp), %edx
        movw    %ax, 4(%rsi,%rdx,2)
        incl    %ecx
        movl    %ecx, V_AVAIL_IDX(%rbp)
        movw    %cx, 2(%rsi)
        incl    V_SUBMITTED(%rbp)
        ret

// kick: notify queue 0 unless the device said it needs no notification.
// The fence orders the avail.idx store before the used.flags load.
kick:
        mfence
        movq    V_USED(%rbp), %rax
        testw   $USED_F_NO_NOTIFY, (%rax)
        jnz     1f
        incl    V_KICKS(%rbp)
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_NOTIFY, %edx
        xorl    %eax, %eax
        outw    %ax, %dx
1:      ret

// ---------------------------------------------------------------------------
        .section .rodata
        .balign 8
gdt_template:
        .quad   0                       // 0x00 null
        .quad   0x00AF9B000000FFFF      // 0x08 64-bit code, DPL 0
        .quad   0x00CF93000000FFFF      // 0x10 data, DPL 0
        .quad   0x00CFF3000000FFFF      // 0x18 data, DPL 3
        .quad   0x00AFFB000000FFFF      // 0x20 64-bit code, DPL 3
        // 0x28 64-bit TSS (16 bytes), base TSS_ADDR, limit TSS_LIMIT, present, available
        .quad   (TSS_LIMIT | ((TSS_ADDR & 0xFFFFFF) << 16) | (0x89 << 40) | ((TSS_ADDR >> 24) << 56))
        .quad   0
gdt_template_end:
        .balign 8
        .word   0, 0, 0
gdt_desc:
        .word   gdt_template_end - gdt_template - 1
        .quad   GDT_ADDR
        .balign 8
        .word   0, 0, 0
idt_desc:
        .word   32 * 16 - 1
        .quad   IDT_ADDR

msg_prefix:     .asciz  "blkbench: "
msg_crlf:       .asciz  "\r\n"
msg_fault:      .asciz  "blkbench: fault "
msg_error:      .asciz  " error "
msg_rip:        .asciz  " rip "
msg_nodev:      .asciz  "no virtio-blk (1af4:1001) on PCI bus 0"
msg_nobar:      .asciz  "BAR0 did not take the I/O base"
msg_qsize:      .asciz  "queue 0 size is not a power of two from 4 to 1024"
msg_paramio:    .asciz  "reading the parameter block failed"
msg_magic:      .asciz  "no parameter block (magic BLKB, version 1) in LBA 0"
msg_badparam:   .asciz  "parameter block: bad queue depth or sequential request size"
msg_seglimit:   .asciz  "parameter block: segments exceed the device's SEG_MAX or SIZE_MAX"
msg_region:     .asciz  "parameter block: bad regions or seed"
msg_badid:      .asciz  "used ring names a descriptor that heads no request"
msg_dev:        .asciz  "blkbench: dev "
msg_iobase:     .asciz  " iobase "
msg_qsizeis:    .asciz  " qsize "
msg_features:   .asciz  " features "
msg_capacity:   .asciz  " capacity "
msg_done:       .asciz  "blkbench: done\r\n"
msg_done_err:   .asciz  "blkbench: done, with errors\r\n"
