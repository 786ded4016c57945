/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: the C kernel's shared declarations. All C code runs at CPL3
 * (natively on the project's hosts) except exception_report(), which the
 * exception stubs call at CPL0. Memory is identity-mapped, so a pointer is a
 * physical address, which is what devices are given for DMA.
 */
#ifndef TESTOS_H
#define TESTOS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define barrier() __asm__ volatile("" ::: "memory")

/* ---- port and memory-mapped I/O ---- */

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u16 inw(u16 port)
{
    u16 v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 inl(u16 port)
{
    u32 v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }
static inline u64 mmio_read64(u64 addr)
{
    /* Two halves, low first: devices need not take 8-byte accesses. */
    u64 lo = mmio_read32(addr);
    return lo | ((u64)mmio_read32(addr + 4) << 32);
}
static inline void mmio_write64(u64 addr, u64 v)
{
    mmio_write32(addr, (u32)v);
    mmio_write32(addr + 4, (u32)(v >> 32));
}
static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return lo | ((u64)hi << 32);
}
static inline void cpuid(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
/* A pointer to a physical address; hidden from gcc, which warns about constant low addresses. */
static inline void *phys(u64 addr)
{
    __asm__("" : "+r"(addr));
    return (void *)addr;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
/* System calls (entry.S). idle: wait at CPL0 with interrupts on until one arrives. */
void idle(void);
/* Send bytes to COM1 (from CPL0, where port I/O is cheaper). */
void console_write(const void *buf, size_t len);
/* CPUID executed at CPL0 (a system call): the VM's CPUID, not the host's (see entry.S). */
void kcpuid(u32 leaf, u32 sub, u32 r[4]);

/* ---- entry.S ---- */
extern volatile u64 nmi_count;
extern volatile u32 ap_online;
extern const u8 ap_trampoline[], ap_trampoline_end[];
void kmain(u32 boot);
void exception_report(u64 vector, u64 error, u64 rip, u64 cr2, u64 cs, u64 rflags);

/* ---- lib.c: strings, formatting, the console ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

void console_init(void);
void console_putc(char c);  /* '\n' goes out as "\r\n" */
void console_puts(const char *s);
void console_flush(void);   /* send what console_putc() has gathered */
int console_getc(void);     /* waits (in idle()) for a byte */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
/* Prints "error: <message>\n"; returns 1, a command's failure status. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse an unsigned number: hex with a 0x prefix, else in `base` (10 or 16). */
bool parse_u64(const char *s, int base, u64 *out);

/* 64-bit FNV-1a, continued from h (start with FNV_OFFSET). */
#define FNV_OFFSET 0xcbf29ce484222325ull
u64 fnv1a(u64 h, const void *p, size_t n);

/* ---- time.c ---- */
extern u64 tsc_hz;
void time_init(void);
u64 ms_to_tsc(u64 ms);
void delay_us(u64 us);
/* A deadline `ms` from now, and whether it has passed. */
u64 deadline_ms(u64 ms);
bool expired(u64 deadline);
int cmd_uptime(int argc, char **argv);
int cmd_date(int argc, char **argv);

/* ---- pci.c ---- */
u32 pci_read32(u8 dev, u8 fn, u8 off);
void pci_write32(u8 dev, u8 fn, u8 off, u32 v);
u16 pci_read16(u8 dev, u8 fn, u8 off);
void pci_write16(u8 dev, u8 fn, u8 off, u16 v);
u8 pci_read8(u8 dev, u8 fn, u8 off);
bool pci_exists(u8 dev, u8 fn);
/* Calls f for every function on bus 0, in device.function order. */
void pci_each(void (*f)(u8 dev, u8 fn, void *ctx), void *ctx);
/* The I/O port base of BAR `bar`, assigned (and I/O decode enabled) if the firmware did not. 0 on failure. */
u16 pci_io_bar(u8 dev, u8 fn, int bar);
/* The address of memory BAR `bar` (32- or 64-bit), assigned if needed and memory decode enabled. 0 on failure. */
u64 pci_mem_bar(u8 dev, u8 fn, int bar);
void pci_enable_master(u8 dev, u8 fn);
int cmd_lspci(int argc, char **argv);

/* ---- acpi.c ---- */
struct acpi_info {
    bool found;
    u64 rsdp;
    u32 cpus;       /* enabled processors in the MADT, 0 if none */
    u32 pm1a_cnt;   /* from the FADT, 0 if none */
    u32 pm1b_cnt;
    int slp_typ_s5; /* from the DSDT's \_S5_, -1 if not found */
};
const struct acpi_info *acpi(void);
int cmd_acpi(int argc, char **argv);

/* ---- fwcfg (in smp.c) ---- */
bool fwcfg_present(void);
u64 fwcfg_read_u64(u16 selector, int bytes);

/* ---- smp.c ---- */
int cmd_nproc(int argc, char **argv);

/* ---- dma.c-like bump allocator (in disk.c) ---- */
void *dma_alloc(size_t bytes); /* page-aligned, zeroed; NULL when DMA_SIZE is used up */

/* ---- disk.c, virtio-blk.c, nvme.c ---- */
#define SECTOR 512
#define MAX_XFER_SECTORS 128 /* 64 KiB per request */
struct disk;
struct disk_ops {
    /* Transfer count (1..MAX_XFER_SECTORS) sectors at lba to/from buf (page-aligned DMA memory). */
    const char *(*rw)(struct disk *d, bool write, u64 lba, u32 count, void *buf);
};
struct disk {
    char name[8];
    const char *kind;
    u8 dev, fn;
    u64 sectors;
    const struct disk_ops *ops;
    void *priv;
};
/* Set up a device; returns NULL and fills d, or an error message. */
const char *virtio_blk_init(struct disk *d);
const char *nvme_init(struct disk *d);
int cmd_disks(int argc, char **argv);
int cmd_dwrite(int argc, char **argv);
int cmd_dverify(int argc, char **argv);
int cmd_dsum(int argc, char **argv);
int cmd_dread(int argc, char **argv);

/* ---- net.c ---- */
int cmd_net(int argc, char **argv);

/* ---- main.c ---- */
extern u32 boot_source;
u64 ram_top_low(void); /* end of RAM below 4 GiB */

#endif
