/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: ACPI tables, as firmware (SeaBIOS) installs them (ACPI 6.x §5.2).
 *
 * The RSDP is searched for on 16-byte boundaries in the first KiB of the
 * EBDA (segment at 0x40E) and in 0xE0000-0xFFFFF. Its signature is compared
 * as a number, not as a string literal: the ROM boot's image (which holds
 * this code) is mirrored at 0xE0000-0xFFFFF, and a literal there could be
 * found. From the RSDP: the XSDT (revision >= 2 and an address) or the
 * RSDT, their entries, and the FADT's DSDT and FACS. The MADT gives the CPU
 * count, the FADT the PM1 control ports, the DSDT's \_S5_ package the S5
 * sleep type.
 */

#include "testos.h"

#define SIG_RSDP 0x2052545020445352ull /* "RSD PTR " */
#define SIG(a, b, c, d) ((u32)(a) | (u32)(b) << 8 | (u32)(c) << 16 | (u32)(d) << 24)
#define MAX_TABLE_LEN 0x100000u

struct sdt {
    u32 sig;
    u32 len;
    u8 rev, csum;
    char oem[6];
} __attribute__((packed));

static struct acpi_info info;
static bool scanned;

static u8 sum(const void *p, u32 n)
{
    const u8 *b = p;
    u8 s = 0;
    for (u32 i = 0; i < n; i++) s = (u8)(s + b[i]);
    return s;
}

static u64 rd64(const u8 *p)
{
    u64 v;
    memcpy(&v, p, 8);
    return v;
}

static u32 rd32(const u8 *p)
{
    u32 v;
    memcpy(&v, p, 4);
    return v;
}

/* A table's header is only read where RAM is. */
static bool plausible(u64 addr)
{
    return addr >= 0x1000 && addr < ram_top_low() && addr + sizeof(struct sdt) <= ram_top_low();
}

static bool table_ok(u64 addr)
{
    if (!plausible(addr)) return false;
    const struct sdt *t = (const void *)addr;
    return t->len >= 36 && t->len <= MAX_TABLE_LEN && addr + t->len <= ram_top_low();
}

static u64 find_rsdp_in(u64 from, u64 to)
{
    for (u64 a = from; a + 20 <= to; a += 16) {
        const u8 *p = (const u8 *)a;
        if (rd64(p) != SIG_RSDP || sum(p, 20) != 0) continue;
        if (p[15] >= 2 && (rd32(p + 20) < 36 || rd32(p + 20) > 64 || sum(p, rd32(p + 20)) != 0)) continue;
        return a;
    }
    return 0;
}

static u64 find_rsdp(void)
{
    u64 ebda = (u64)(*(volatile u16 *)phys(0x40E)) << 4;
    u64 r = 0;
    if (ebda >= 0x80000 && ebda < 0xA0000) r = find_rsdp_in(ebda, ebda + 1024);
    if (!r) r = find_rsdp_in(0xE0000, 0x100000);
    return r;
}

/* The root table's entries: 8-byte (XSDT) or 4-byte (RSDT) addresses. */
struct root {
    u64 addr;
    u32 entry_size;
    u32 count;
};

static bool root_table(u64 rsdp, struct root *r)
{
    const u8 *p = (const u8 *)rsdp;
    u64 xsdt = p[15] >= 2 ? rd64(p + 24) : 0;
    if (xsdt && table_ok(xsdt) && ((const struct sdt *)xsdt)->sig == SIG('X', 'S', 'D', 'T')) {
        r->addr = xsdt;
        r->entry_size = 8;
    } else {
        r->addr = rd32(p + 16);
        r->entry_size = 4;
        if (!table_ok(r->addr)) return false;
    }
    r->count = (((const struct sdt *)r->addr)->len - 36) / r->entry_size;
    return true;
}

static u64 root_entry(const struct root *r, u32 i)
{
    const u8 *e = (const u8 *)r->addr + 36 + i * r->entry_size;
    return r->entry_size == 8 ? rd64(e) : rd32(e);
}

static u64 fadt_dsdt(const u8 *fadt, u32 len)
{
    u64 x = len >= 148 ? rd64(fadt + 140) : 0;
    return x ? x : rd32(fadt + 40);
}

static u64 fadt_facs(const u8 *fadt, u32 len)
{
    u64 x = len >= 140 ? rd64(fadt + 132) : 0;
    return x ? x : rd32(fadt + 36);
}

/* SLP_TYPa of \_S5_: NameOp-less search for "_S5_" followed by a PackageOp. */
static int find_s5(u64 dsdt)
{
    if (!table_ok(dsdt)) return -1;
    const u8 *p = (const u8 *)dsdt;
    u32 len = ((const struct sdt *)dsdt)->len;
    for (u32 i = 36; i + 8 < len; i++) {
        if (p[i] != '_' || p[i + 1] != 'S' || p[i + 2] != '5' || p[i + 3] != '_' || p[i + 4] != 0x12) continue;
        u32 j = i + 5;
        j += 1 + (p[j] >> 6); /* PkgLength: lead byte and its follow-on bytes */
        j += 1;               /* NumElements */
        if (j + 1 >= len) return -1;
        u8 v = p[j] == 0x0A ? p[j + 1] : p[j]; /* BytePrefix, or Zero/One */
        return v & 7;
    }
    return -1;
}

static u32 madt_cpus(u64 madt)
{
    const u8 *p = (const u8 *)madt;
    u32 len = ((const struct sdt *)madt)->len, n = 0;
    for (u32 i = 44; i + 2 <= len;) {
        u8 type = p[i], l = p[i + 1];
        if (l < 2 || i + l > len) break;
        if (type == 0 && l >= 8 && (p[i + 4] & 1)) n++;         /* processor local APIC, enabled */
        if (type == 9 && l >= 16 && (rd32(p + i + 8) & 1)) n++; /* processor local x2APIC, enabled */
        i += l;
    }
    return n;
}

const struct acpi_info *acpi(void)
{
    if (scanned) return &info;
    scanned = true;
    info.slp_typ_s5 = -1;
    u64 rsdp = find_rsdp();
    struct root r;
    if (!rsdp || !root_table(rsdp, &r)) return &info;
    info.found = true;
    info.rsdp = rsdp;
    for (u32 i = 0; i < r.count; i++) {
        u64 a = root_entry(&r, i);
        if (!table_ok(a) || sum((const void *)a, ((const struct sdt *)a)->len) != 0) continue;
        const struct sdt *t = (const void *)a;
        if (t->sig == SIG('A', 'P', 'I', 'C')) info.cpus = madt_cpus(a);
        if (t->sig == SIG('F', 'A', 'C', 'P')) {
            const u8 *f = (const u8 *)a;
            info.pm1a_cnt = t->len >= 68 ? rd32(f + 64) : 0;
            info.pm1b_cnt = t->len >= 72 ? rd32(f + 68) : 0;
            if (t->len >= 184 && rd64(f + 176) && f[172] == 1) info.pm1a_cnt = (u32)rd64(f + 176); /* X_PM1a_CNT_BLK, I/O */
            info.slp_typ_s5 = find_s5(fadt_dsdt(f, t->len));
        }
    }
    return &info;
}

static int print_table(u64 addr, bool checksum)
{
    const struct sdt *t = (const void *)addr;
    char sig[5], oem[7];
    memcpy(sig, &t->sig, 4);
    sig[4] = 0;
    for (int i = 0; i < 4; i++)
        if (sig[i] < 0x20 || sig[i] > 0x7E) sig[i] = '?';
    if (checksum && sum(t, t->len) != 0) return fail("bad checksum in %s", sig);
    int n = 0;
    if (checksum) { /* the FACS has no OEM ID */
        memcpy(oem, t->oem, 6);
        n = 6;
        while (n > 0 && (oem[n - 1] == ' ' || oem[n - 1] == 0)) n--;
        for (int i = 0; i < n; i++)
            if (oem[i] < 0x20 || oem[i] > 0x7E) oem[i] = '?';
    }
    oem[n] = 0;
    kprintf("%s length=%u oem=%s\n", sig, t->len, n ? oem : "-");
    return 0;
}

/* acpi: one line per table reachable from the RSDP. */
int cmd_acpi(int argc, char **argv)
{
    (void)argc, (void)argv;
    u64 rsdp = find_rsdp();
    struct root r;
    if (!rsdp || !root_table(rsdp, &r)) return fail("no ACPI tables");
    int st = print_table(r.addr, true);
    for (u32 i = 0; i < r.count; i++) {
        u64 a = root_entry(&r, i);
        if (!table_ok(a)) {
            st = fail("bad table address 0x%lx in %s entry %u", a, r.entry_size == 8 ? "XSDT" : "RSDT", i);
            continue;
        }
        st |= print_table(a, true);
        const struct sdt *t = (const void *)a;
        if (t->sig != SIG('F', 'A', 'C', 'P')) continue;
        u64 dsdt = fadt_dsdt((const u8 *)a, t->len), facs = fadt_facs((const u8 *)a, t->len);
        if (dsdt) st |= table_ok(dsdt) ? print_table(dsdt, true) : fail("bad DSDT address 0x%lx", dsdt);
        if (facs) {
            /* The FACS: signature and length, no checksum or OEM ID. */
            if (plausible(facs) && ((const struct sdt *)facs)->len >= 64) st |= print_table(facs, false);
            else st = fail("bad FACS address 0x%lx", facs);
        }
    }
    return st;
}
