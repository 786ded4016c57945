/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: constants shared by the assembly (entry.S, the two boot stubs)
 * and the C kernel. Only #defines: this file is included from both.
 *
 * Physical memory (identity-mapped; the first 4 GiB with 2 MiB pages):
 *   0x0000_8000  AP trampoline (SIPI vector 0x08), copied there by nproc
 *   0x0001_0000  disk boot only: where the boot sector loads the kernel
 *                (at most KERNEL_MAX bytes) before copying it up
 *   0x0010_0000  the kernel: .text .rodata .data (page tables, GDT, TSS,
 *                IDT), then .bss and the never-loaded stacks
 *   0x0040_0000  DMA_BASE: queues and buffers of the drivers (DMA_SIZE)
 *   0x0100_0000  the `dirty` workload's region (DIRTY_SIZE)
 */
#ifndef TESTOS_LAYOUT_H
#define TESTOS_LAYOUT_H

#define KERNEL_BASE     0x100000        /* link and load address; entry at its first byte */
#define KERNEL_MAX      0x60000         /* largest image the disk stub can stage below 1 MiB */
#define DISK_STAGE      0x10000         /* disk boot: staging address of the image */
#define AP_TRAMPOLINE   0x8000          /* SIPI vector 0x08 */
#define DMA_BASE        0x400000
#define DMA_SIZE        0x800000
#define DIRTY_BASE      0x1000000
#define DIRTY_SIZE      0x400000

/* Boot source handed to the kernel entry in EBX. */
#define BOOT_ROM        0
#define BOOT_DISK       1
#define BOOT_MAGIC      0x54534F00      /* "\0OST" | source, checked by the entry */

/* GDT selectors (entry.S lays the table out in this order). */
#define SEL_KCODE       0x08            /* 64-bit code, DPL 0 */
#define SEL_KDATA       0x10            /* flat data, DPL 0 */
#define SEL_UDATA       0x1B            /* flat data, DPL 3 (0x18 | RPL 3) */
#define SEL_UCODE       0x23            /* 64-bit code, DPL 3 (0x20 | RPL 3) */
#define SEL_TSS         0x28            /* 16-byte 64-bit TSS descriptor */
#define SEL_CODE32      0x38            /* 32-bit flat code: kernel entry and APs */

/* Interrupt vectors. */
#define VEC_NMI         2
#define VEC_IRQ0        0x20            /* master PIC; the slave at 0x28 */
#define VEC_SPURIOUS    0xFF            /* local APIC spurious vector */

#define KSTACK_SIZE     0x4000
#define USTACK_SIZE     0x10000
#define APSTACK_SIZE    0x1000
#define MAX_CPUS        64

/* Control registers and MSRs. */
#define CR0_PE          0x00000001
#define CR0_WP          0x00010000
#define CR0_NW          0x20000000
#define CR0_CD          0x40000000
#define CR0_PG          0x80000000
#define CR4_PAE         0x00000020
#define MSR_EFER        0xC0000080
#define EFER_LME        0x00000100

#define COM1_BASE       0x3F8

#endif
