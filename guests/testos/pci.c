/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: PCI bus 0 through configuration mechanism #1 (0xCF8/0xCFC), and
 * BAR assignment for the ROM boot, where no firmware has assigned any.
 *
 * Assignment takes addresses above everything already assigned on bus 0:
 * I/O from 0xC000 (0xA000-0xBFFF belongs to platform devices such as the
 * PIIX4 PM block), 32-bit memory from 0xF000_0000 (above a PCIe ECAM window
 * at 0xE000_0000 when there is one, below the IOAPIC at 0xFEC0_0000).
 */

#include "testos.h"

#define PCI_ADDR 0xCF8
#define PCI_DATA 0xCFC
#define PCI_COMMAND 0x04
#define CMD_IO 0x1
#define CMD_MEM 0x2
#define CMD_MASTER 0x4
#define PCI_BAR0 0x10
#define IO_FLOOR 0xC000u
#define IO_CEIL 0x10000u
#define MEM_FLOOR 0xF0000000ull
#define MEM_CEIL 0xFEC00000ull

static void select(u8 dev, u8 fn, u8 off) { outl(PCI_ADDR, 0x80000000u | (u32)dev << 11 | (u32)fn << 8 | (off & 0xFC)); }

u32 pci_read32(u8 dev, u8 fn, u8 off)
{
    select(dev, fn, off);
    return inl(PCI_DATA);
}

void pci_write32(u8 dev, u8 fn, u8 off, u32 v)
{
    select(dev, fn, off);
    outl(PCI_DATA, v);
}

u16 pci_read16(u8 dev, u8 fn, u8 off)
{
    select(dev, fn, off);
    return inw(PCI_DATA + (off & 2));
}

void pci_write16(u8 dev, u8 fn, u8 off, u16 v)
{
    select(dev, fn, off);
    outw(PCI_DATA + (off & 2), v);
}

u8 pci_read8(u8 dev, u8 fn, u8 off)
{
    select(dev, fn, off);
    return inb(PCI_DATA + (off & 3));
}

bool pci_exists(u8 dev, u8 fn) { return (pci_read32(dev, fn, 0) & 0xFFFF) != 0xFFFF; }

void pci_each(void (*f)(u8 dev, u8 fn, void *ctx), void *ctx)
{
    for (u8 dev = 0; dev < 32; dev++) {
        if (!pci_exists(dev, 0)) continue;
        bool multi = pci_read8(dev, 0, 0x0E) & 0x80;
        for (u8 fn = 0; fn < (multi ? 8 : 1); fn++)
            if (pci_exists(dev, fn)) f(dev, fn, ctx);
    }
}

static void print_function(u8 dev, u8 fn, void *ctx)
{
    (void)ctx;
    u32 id = pci_read32(dev, fn, 0);
    u32 cls = pci_read32(dev, fn, 8);
    kprintf("00:%02x.%x %04x:%04x class %02x.%02x.%02x\n", dev, fn, id & 0xFFFF, id >> 16, cls >> 24, (cls >> 16) & 0xFF,
            (cls >> 8) & 0xFF);
}

int cmd_lspci(int argc, char **argv)
{
    (void)argc, (void)argv;
    pci_each(print_function, NULL);
    return 0;
}

/* ---- BARs ---- */

static u32 io_next, io_end_seen;
static u64 mem_next, mem_end_seen;

static bool is_bridge(u8 dev, u8 fn) { return (pci_read8(dev, fn, 0x0E) & 0x7F) != 0; }

/* Size of a BAR (0 if unimplemented), probed with decoding off. */
static u64 bar_size(u8 dev, u8 fn, int bar, bool *io, bool *wide)
{
    u8 off = (u8)(PCI_BAR0 + 4 * bar);
    u16 cmd = pci_read16(dev, fn, PCI_COMMAND);
    pci_write16(dev, fn, PCI_COMMAND, cmd & ~(CMD_IO | CMD_MEM));
    u32 old = pci_read32(dev, fn, off);
    pci_write32(dev, fn, off, 0xFFFFFFFF);
    u32 probe = pci_read32(dev, fn, off);
    pci_write32(dev, fn, off, old);
    *io = old & 1;
    *wide = !*io && ((old >> 1) & 3) == 2;
    u64 mask;
    if (*io) {
        mask = probe & 0xFFFFFFFC;
        mask |= 0xFFFFFFFFFFFF0000ull; /* I/O BARs may implement only 16 bits */
    } else {
        mask = probe & 0xFFFFFFF0;
        if (*wide) {
            u32 oldhi = pci_read32(dev, fn, off + 4);
            pci_write32(dev, fn, off + 4, 0xFFFFFFFF);
            mask |= (u64)pci_read32(dev, fn, off + 4) << 32;
            pci_write32(dev, fn, off + 4, oldhi);
        } else {
            mask |= 0xFFFFFFFF00000000ull;
        }
    }
    pci_write16(dev, fn, PCI_COMMAND, cmd);
    if ((u32)mask == 0) return 0;
    return ~mask + 1;
}

static void note_assigned(u8 dev, u8 fn, void *ctx)
{
    (void)ctx;
    if (is_bridge(dev, fn)) return;
    for (int bar = 0; bar < 6; bar++) {
        u8 off = (u8)(PCI_BAR0 + 4 * bar);
        u32 v = pci_read32(dev, fn, off);
        bool io, wide;
        if (v & 1) {
            u32 base = v & 0xFFFC;
            if (base == 0) continue;
            u64 size = bar_size(dev, fn, bar, &io, &wide);
            if (base + size > io_end_seen) io_end_seen = (u32)(base + size);
        } else {
            u64 base = v & 0xFFFFFFF0;
            wide = ((v >> 1) & 3) == 2;
            if (wide) base |= (u64)pci_read32(dev, fn, off + 4) << 32;
            if (base != 0 && base < MEM_CEIL) {
                u64 size = bar_size(dev, fn, bar, &io, &wide);
                if (base + size > mem_end_seen) mem_end_seen = base + size;
            }
            if (wide) bar++;
        }
    }
}

static void allocator_init(void)
{
    if (io_next) return;
    pci_each(note_assigned, NULL);
    io_next = io_end_seen > IO_FLOOR ? io_end_seen : IO_FLOOR;
    mem_next = mem_end_seen > MEM_FLOOR ? mem_end_seen : MEM_FLOOR;
}

static u64 align_up(u64 v, u64 a) { return (v + a - 1) & ~(a - 1); }

u16 pci_io_bar(u8 dev, u8 fn, int bar)
{
    u8 off = (u8)(PCI_BAR0 + 4 * bar);
    u32 v = pci_read32(dev, fn, off);
    if (!(v & 1)) return 0;
    u32 base = v & 0xFFFC;
    if (base == 0) {
        bool io, wide;
        u64 size = bar_size(dev, fn, bar, &io, &wide);
        if (size == 0 || size > 0x1000) return 0;
        allocator_init();
        u64 at = align_up(io_next, size);
        if (at + size > IO_CEIL) return 0;
        io_next = (u32)(at + size);
        pci_write32(dev, fn, off, (u32)at);
        base = pci_read32(dev, fn, off) & 0xFFFC;
        if (base != at) return 0;
    }
    pci_write16(dev, fn, PCI_COMMAND, pci_read16(dev, fn, PCI_COMMAND) | CMD_IO);
    return (u16)base;
}

u64 pci_mem_bar(u8 dev, u8 fn, int bar)
{
    u8 off = (u8)(PCI_BAR0 + 4 * bar);
    u32 v = pci_read32(dev, fn, off);
    if (v & 1) return 0;
    bool wide = ((v >> 1) & 3) == 2;
    u64 base = v & 0xFFFFFFF0;
    if (wide) base |= (u64)pci_read32(dev, fn, off + 4) << 32;
    if (base == 0) {
        bool io;
        u64 size = bar_size(dev, fn, bar, &io, &wide);
        if (size == 0 || size > 0x1000000) return 0;
        allocator_init();
        u64 at = align_up(mem_next, size < 0x1000 ? 0x1000 : size);
        if (at + size > MEM_CEIL) return 0;
        mem_next = at + size;
        pci_write32(dev, fn, off, (u32)at);
        if (wide) pci_write32(dev, fn, off + 4, 0);
        base = pci_read32(dev, fn, off) & 0xFFFFFFF0;
        if (base != at) return 0;
    }
    /* Only the first 4 GiB are mapped (entry.S). */
    if (base >= 0x100000000ull) return 0;
    pci_write16(dev, fn, PCI_COMMAND, pci_read16(dev, fn, PCI_COMMAND) | CMD_MEM);
    return base;
}

void pci_enable_master(u8 dev, u8 fn)
{
    pci_write16(dev, fn, PCI_COMMAND, pci_read16(dev, fn, PCI_COMMAND) | CMD_MASTER | 0x400 /* INTx off */);
}
