/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: kmain and the shell (the protocol is in README.md).
 *
 * kmain is entered at CPL3 from entry.S. It programs COM1, the 8259 PICs
 * (vectors 0x20-0x2F; only IRQ 0, the PIT tick, and IRQ 4, COM1, unmasked),
 * the local APIC (software-enabled, LINT0 ExtINT so the PIC reaches the
 * CPU, LINT1 NMI) and the PIT, then runs the shell on COM1 for ever.
 * Interrupts are only ever taken inside idle(), where the shell waits for
 * input.
 */

#include "testos.h"

#define LINE_MAX 4096
#define MAX_ARGS 32
#define LAPIC 0xFEE00000ull
#define LAPIC_SVR 0x0F0
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360

u32 boot_source;

/* ---- platform set-up ---- */

static void pic_init(void)
{
    outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 follows */
    outb(0xA0, 0x11);
    outb(0x21, VEC_IRQ0); /* ICW2: vector base */
    outb(0xA1, VEC_IRQ0 + 8);
    outb(0x21, 0x04); /* ICW3: slave on IRQ 2 */
    outb(0xA1, 0x02);
    outb(0x21, 0x01); /* ICW4: 8086 mode */
    outb(0xA1, 0x01);
    outb(0x21, (u8)~((1 << 0) | (1 << 2) | (1 << 4)));
    outb(0xA1, 0xFF);
}

static void lapic_init(void)
{
    /* LVT writes are masked while the APIC is software-disabled: SVR first. */
    mmio_write32(LAPIC + LAPIC_SVR, 0x100 | VEC_SPURIOUS);
    mmio_write32(LAPIC + LAPIC_LVT_LINT0, 0x700); /* ExtINT */
    mmio_write32(LAPIC + LAPIC_LVT_LINT1, 0x400); /* NMI */
}

static u8 cmos(u8 reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

/* RAM below 4 GiB: CMOS 0x34/0x35 (64 KiB units above 16 MiB), else fw_cfg's RAM size, else 16 MiB. */
u64 ram_top_low(void)
{
    static u64 top;
    if (top) return top;
    u64 above16 = (u64)cmos(0x34) | (u64)cmos(0x35) << 8;
    if (above16) {
        top = 0x1000000 + (above16 << 16);
    } else if (fwcfg_present()) {
        top = fwcfg_read_u64(0x0003, 8);
        if (top > 0xC0000000ull) top = 0xC0000000ull;
    }
    if (top < 0x1000000) top = 0x1000000;
    return top;
}

/* CPL0, from the exception stubs: one line, then entry.S halts the CPU. */
void exception_report(u64 vector, u64 error, u64 rip, u64 cr2, u64 cs, u64 rflags)
{
    kprintf("\ntestos: exception %lu at 0x%lx (error 0x%lx, cr2 0x%lx, cs 0x%lx, rflags 0x%lx)\n", vector, rip, error,
            cr2, cs, rflags);
    console_flush();
}

/* ---- commands ---- */

static int last_status;

static int cmd_echo(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) kprintf(i > 1 ? " %s" : "%s", argv[i]);
    kprintf("\n");
    return 0;
}

static int count_arg(int argc, char **argv, u64 *n)
{
    if (argc != 2) return fail("usage: %s N", argv[0]);
    if (!parse_u64(argv[1], 10, n)) return fail("bad number %s", argv[1]);
    return 0;
}

static int cmd_lines(int argc, char **argv)
{
    u64 n;
    if (count_arg(argc, argv, &n)) return 1;
    for (u64 i = 1; i <= n; i++) kprintf("line %lu\n", i);
    return 0;
}

static int cmd_longline(int argc, char **argv)
{
    u64 n;
    if (count_arg(argc, argv, &n)) return 1;
    for (u64 i = 0; i < n; i++) console_putc((char)('0' + i % 10));
    kprintf("\n");
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    (void)argc, (void)argv;
    kprintf("%d\n", last_status);
    return 0;
}

static int cmd_cpuid(int argc, char **argv)
{
    u64 leaf, sub = 0;
    if (argc < 2 || argc > 3) return fail("usage: cpuid LEAF [SUBLEAF]");
    if (!parse_u64(argv[1], 16, &leaf) || leaf > 0xFFFFFFFFull) return fail("bad leaf %s", argv[1]);
    if (argc == 3 && (!parse_u64(argv[2], 16, &sub) || sub > 0xFFFFFFFFull)) return fail("bad subleaf %s", argv[2]);
    u32 r[4];
    kcpuid((u32)leaf, (u32)sub, r);
    kprintf("eax=%08x ebx=%08x ecx=%08x edx=%08x\n", r[0], r[1], r[2], r[3]);
    return 0;
}

static int cmd_brand(int argc, char **argv)
{
    (void)argc, (void)argv;
    u32 r[4], s[13] = {0};
    kcpuid(0x80000000, 0, r);
    if (r[0] < 0x80000004) return fail("no brand string (CPUID leaves 0x80000002-4)");
    for (u32 i = 0; i < 3; i++) kcpuid(0x80000002 + i, 0, &s[4 * i]);
    char *b = (char *)s;
    while (*b == ' ') b++;
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == ' ') b[--n] = 0;
    kprintf("%s\n", b);
    return 0;
}

static int cmd_memsum(int argc, char **argv)
{
    u64 addr, len;
    if (argc != 3) return fail("usage: memsum ADDR LEN (hex)");
    if (!parse_u64(argv[1], 16, &addr)) return fail("bad address %s", argv[1]);
    if (!parse_u64(argv[2], 16, &len)) return fail("bad length %s", argv[2]);
    u64 top = ram_top_low();
    if (addr > top || len > top - addr) return fail("0x%lx+0x%lx is outside RAM (below 0x%lx)", addr, len, top);
    kprintf("sum=%016lx\n", fnv1a(FNV_OFFSET, (const void *)addr, len));
    return 0;
}

/* dirty [START]: ~0.5 s of writing a running counter (from START) over every 8-byte word of the region. */
static int cmd_dirty(int argc, char **argv)
{
    u64 v = 0;
    if (argc > 2) return fail("usage: dirty [START]");
    if (argc == 2 && !parse_u64(argv[1], 10, &v)) return fail("bad start %s", argv[1]);
    if (ram_top_low() < DIRTY_BASE + DIRTY_SIZE)
        return fail("needs RAM up to 0x%x (have 0x%lx)", DIRTY_BASE + DIRTY_SIZE, ram_top_low());
    volatile u64 *w = (volatile u64 *)DIRTY_BASE;
    u64 pages = 0, until = deadline_ms(500);
    do {
        for (u32 i = 0; i < DIRTY_SIZE / 8; i++) w[i] = v++;
        pages += DIRTY_SIZE / 4096;
    } while (!expired(until));
    kprintf("dirtied=%lu\n", pages);
    return 0;
}

static int cmd_nmi(int argc, char **argv)
{
    (void)argc, (void)argv;
    kprintf("nmis=%lu\n", nmi_count);
    return 0;
}

static int cmd_reboot(int argc, char **argv)
{
    (void)argc, (void)argv;
    outb(0xCF9, 0x06); /* reset control: system reset */
    delay_us(500000);
    u64 until = deadline_ms(100);
    while ((inb(0x64) & 0x02) && !expired(until)) cpu_relax(); /* 8042 input buffer */
    outb(0x64, 0xFE);                                          /* pulse the reset line */
    delay_us(500000);
    return fail("reboot failed");
}

struct pm_ctx {
    u32 port;
};

static void find_piix4_pm(u8 dev, u8 fn, void *ctx)
{
    struct pm_ctx *pc = ctx;
    if (pc->port || pci_read32(dev, fn, 0) != 0x71138086) return;
    u32 base = pci_read32(dev, fn, 0x40) & 0xFFC0;
    if (!base) { /* not set up by firmware: the address the platform uses */
        pci_write32(dev, fn, 0x40, 0xB001);
        pci_write32(dev, fn, 0x80, pci_read32(dev, fn, 0x80) | 1); /* PMREGMISC.PMIOSE */
        base = pci_read32(dev, fn, 0x40) & 0xFFC0;
    }
    if (base) pc->port = base + 4; /* PM1_CNT */
}

static int cmd_poweroff(int argc, char **argv)
{
    (void)argc, (void)argv;
    const struct acpi_info *a = acpi();
    u32 port = a->pm1a_cnt, port_b = a->pm1b_cnt;
    u32 typ = a->slp_typ_s5 >= 0 ? (u32)a->slp_typ_s5 : 0;
    if (!port) { /* no FADT (ROM boot): the PIIX4 PM function's block; \_S5_ is 0 there */
        struct pm_ctx pc = {0};
        pci_each(find_piix4_pm, &pc);
        port = pc.port;
        typ = 0;
    }
    if (!port) return fail("no PM1a control register (no FADT, no PIIX4 PM)");
    u16 v = (u16)(typ << 10 | 1u << 13); /* SLP_TYP | SLP_EN */
    outw((u16)port, v);
    if (port_b) outw((u16)port_b, v);
    delay_us(1000000);
    return fail("poweroff failed");
}

/* crash: a page fault at CPL3 (nothing is mapped above 4 GiB), to see the exception path end the shell. */
static int cmd_crash(int argc, char **argv)
{
    (void)argc, (void)argv;
    return (int)*(volatile u8 *)phys(0x100000000ull);
}

static int cmd_help(int argc, char **argv);

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"acpi", cmd_acpi, "ACPI tables: SIG length=N oem=OEMID"},
    {"brand", cmd_brand, "the CPUID brand string"},
    {"cpuid", cmd_cpuid, "LEAF [SUBLEAF] (hex)"},
    {"crash", cmd_crash, "a page fault: the exception line, then this CPU halts"},
    {"date", cmd_date, "the RTC's date and time"},
    {"dirty", cmd_dirty, "[START]: ~0.5 s of writes over 16..20 MiB, at CPL3"},
    {"disks", cmd_disks, "virtio-blk and NVMe disks"},
    {"dread", cmd_dread, "DISK LBA: the sector's first 64 bytes"},
    {"dsum", cmd_dsum, "DISK LBA COUNT: FNV-1a of the sectors"},
    {"dverify", cmd_dverify, "DISK LBA COUNT SEED"},
    {"dwrite", cmd_dwrite, "DISK LBA COUNT SEED"},
    {"echo", cmd_echo, "WORDS..."},
    {"help", cmd_help, "this list"},
    {"lines", cmd_lines, "N"},
    {"longline", cmd_longline, "N"},
    {"lspci", cmd_lspci, "PCI functions on bus 0"},
    {"memsum", cmd_memsum, "ADDR LEN (hex): FNV-1a of guest memory"},
    {"net", cmd_net, "dhcp: DHCP on the first virtio-net"},
    {"nmi", cmd_nmi, "NMIs taken since boot"},
    {"nproc", cmd_nproc, "CPUs online (starts the APs)"},
    {"poweroff", cmd_poweroff, "ACPI S5"},
    {"reboot", cmd_reboot, "reset through 0xCF9 (or the 8042)"},
    {"status", cmd_status, "the previous command's exit status"},
    {"uptime", cmd_uptime, "seconds since the kernel started"},
};

static int cmd_help(int argc, char **argv)
{
    (void)argc, (void)argv;
    for (u32 i = 0; i < ARRAY_LEN(commands); i++) kprintf("%s %s\n", commands[i].name, commands[i].usage);
    return 0;
}

static void run_line(char *line)
{
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (char *p = line; *p;) {
        while (*p == ' ') *p++ = 0;
        if (!*p) break;
        if (argc == MAX_ARGS) {
            last_status = fail("too many words (at most %d)", MAX_ARGS);
            return;
        }
        argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    argv[argc] = NULL;
    if (argc == 0) return;
    console_flush(); /* the echoed line, before a command that may not return (reboot, poweroff) */
    for (u32 i = 0; i < ARRAY_LEN(commands); i++) {
        if (!strcmp(commands[i].name, argv[0])) {
            last_status = commands[i].fn(argc, argv);
            return;
        }
    }
    last_status = fail("unknown command %s", argv[0]);
}

/* Read a line with echo; CR, LF or CR LF ends it; BS/DEL erase. false if it was too long. */
static bool read_line(char *buf)
{
    static bool after_cr;
    size_t n = 0;
    bool overflow = false;
    for (;;) {
        int c = console_getc();
        if (c == '\n' && after_cr) {
            after_cr = false;
            continue;
        }
        after_cr = c == '\r';
        if (c == '\r' || c == '\n') break;
        if (c == 0x08 || c == 0x7F) {
            if (n > 0) {
                n--;
                console_puts("\b \b");
            }
            continue;
        }
        if (c == '\t') c = ' ';
        if (c < 0x20 || c > 0x7E) continue;
        if (n == LINE_MAX - 1) {
            overflow = true;
            continue;
        }
        buf[n++] = (char)c;
        console_putc((char)c);
    }
    buf[n] = 0;
    console_putc('\n');
    return !overflow;
}

void kmain(u32 boot)
{
    static char line[LINE_MAX];
    boot_source = (boot & ~0xFFu) == BOOT_MAGIC ? (boot & 0xFF) : 0xFF;
    console_init();
    /* On the disk boot SeaBIOS's "Booting from Hard Disk..." has no line end. */
    if (boot_source == BOOT_DISK) kprintf("\n");
    kprintf("testos: booted via %s\n", boot_source == BOOT_ROM ? "rom" : boot_source == BOOT_DISK ? "disk" : "unknown");
    pic_init();
    lapic_init();
    time_init();
    kprintf("testos: ready\n");
    for (;;) {
        console_puts("testos# ");
        if (!read_line(line)) last_status = fail("line too long (at most %d characters)", LINE_MAX - 1);
        else run_line(line);
    }
}
