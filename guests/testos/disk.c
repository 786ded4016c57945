/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: disks and the disk commands.
 *
 * The first disk command scans PCI bus 0 once: legacy/transitional
 * virtio-blk (1AF4:1001) becomes vda, vdb, ... and NVMe controllers (class
 * 01.08.02, whatever the vendor) nvme0, nvme1, ..., in device.function
 * order. Each driver polls; no interrupts are used. Requests are at most
 * MAX_XFER_SECTORS (64 KiB) long and go through one page-aligned buffer.
 *
 * The dwrite pattern: 8-byte word i (0..63) of sector `lba` holds
 *   splitmix64(seed + 0x9E3779B97F4A7C15 * (lba * 64 + i + 1))
 * (little-endian), splitmix64's output function being
 *   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
 *   z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *   z ^ (z >> 31)
 * i.e. the (lba * 64 + i + 1)-th output of splitmix64 seeded with `seed`.
 */

#include "testos.h"

#define MAX_DISKS 8

static u8 *dma_next = (u8 *)DMA_BASE;

void *dma_alloc(size_t bytes)
{
    bytes = (bytes + 0xFFF) & ~(size_t)0xFFF;
    if (dma_next + bytes > (u8 *)(DMA_BASE + DMA_SIZE)) return NULL;
    void *p = dma_next;
    dma_next += bytes;
    memset(p, 0, bytes);
    return p;
}

static struct disk disks[MAX_DISKS];
static u32 ndisks;
static bool scanned;
static u8 *xfer; /* MAX_XFER_SECTORS * SECTOR bytes */
static u32 nvirtio, nnvme;

struct scan_ctx {
    int status;
};

static void probe(u8 dev, u8 fn, void *ctx)
{
    struct scan_ctx *sc = ctx;
    u32 id = pci_read32(dev, fn, 0);
    u32 cls = pci_read32(dev, fn, 8) >> 8;
    struct disk *d = &disks[ndisks];
    const char *err;
    if (id == 0x10011AF4) {
        if (ndisks == MAX_DISKS) return;
        memset(d, 0, sizeof *d);
        d->name[0] = 'v', d->name[1] = 'd', d->name[2] = (char)('a' + nvirtio++);
        d->kind = "virtio";
        d->dev = dev, d->fn = fn;
        err = virtio_blk_init(d);
    } else if (cls == 0x010802) {
        if (ndisks == MAX_DISKS) return;
        memset(d, 0, sizeof *d);
        memcpy(d->name, "nvme", 4);
        d->name[4] = (char)('0' + nnvme++);
        d->kind = "nvme";
        d->dev = dev, d->fn = fn;
        err = nvme_init(d);
    } else {
        return;
    }
    if (err) sc->status = fail("%s at 00:%02x.%x: %s", d->name, dev, fn, err);
    else ndisks++;
}

/* Scan once; later calls report the first scan's failures again. */
static int scan(void)
{
    static int status;
    if (scanned) return status;
    scanned = true;
    xfer = dma_alloc(MAX_XFER_SECTORS * SECTOR);
    struct scan_ctx sc = {0};
    pci_each(probe, &sc);
    status = sc.status;
    return status;
}

static struct disk *find(const char *name)
{
    scan();
    for (u32 i = 0; i < ndisks; i++)
        if (!strcmp(disks[i].name, name)) return &disks[i];
    return NULL;
}

int cmd_disks(int argc, char **argv)
{
    (void)argc, (void)argv;
    int st = scan();
    for (u32 i = 0; i < ndisks; i++) {
        struct disk *d = &disks[i];
        kprintf("%s %s 00:%02x.%x sectors=%lu\n", d->name, d->kind, d->dev, d->fn, d->sectors);
    }
    return st;
}

static u64 mix64(u64 z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_pattern(u64 *w, u64 seed, u64 lba, u32 count)
{
    for (u32 s = 0; s < count; s++)
        for (u32 i = 0; i < SECTOR / 8; i++)
            w[s * (SECTOR / 8) + i] = mix64(seed + 0x9E3779B97F4A7C15ull * ((lba + s) * 64 + i + 1));
}

/* Arguments DISK LBA COUNT [SEED]: checked against the disk. */
static int disk_args(int argc, char **argv, bool seeded, struct disk **d, u64 *lba, u64 *count, u64 *seed)
{
    int want = seeded ? 5 : 4;
    if (argc != want) return fail("usage: %s DISK LBA COUNT%s", argv[0], seeded ? " SEED" : "");
    *d = find(argv[1]);
    if (!*d) return fail("no disk %s", argv[1]);
    if (!parse_u64(argv[2], 10, lba)) return fail("bad LBA %s", argv[2]);
    if (!parse_u64(argv[3], 10, count)) return fail("bad count %s", argv[3]);
    if (seeded && !parse_u64(argv[4], 10, seed)) return fail("bad seed %s", argv[4]);
    if (*lba > (*d)->sectors || *count > (*d)->sectors - *lba)
        return fail("sectors %lu..%lu are beyond the end of %s (%lu sectors)", *lba, *lba + *count, (*d)->name,
                    (*d)->sectors);
    return 0;
}

static int io(struct disk *d, bool write, u64 lba, u32 n)
{
    const char *err = d->ops->rw(d, write, lba, n, xfer);
    if (err) return fail("%s %s at lba %lu: %s", d->name, write ? "write" : "read", lba, err);
    return 0;
}

int cmd_dwrite(int argc, char **argv)
{
    struct disk *d;
    u64 lba, count, seed;
    if (disk_args(argc, argv, true, &d, &lba, &count, &seed)) return 1;
    for (u64 done = 0; done < count;) {
        u32 n = count - done > MAX_XFER_SECTORS ? MAX_XFER_SECTORS : (u32)(count - done);
        fill_pattern((u64 *)xfer, seed, lba + done, n);
        if (io(d, true, lba + done, n)) return 1;
        done += n;
    }
    kprintf("ok\n");
    return 0;
}

int cmd_dverify(int argc, char **argv)
{
    struct disk *d;
    u64 lba, count, seed;
    static u64 want[SECTOR / 8];
    if (disk_args(argc, argv, true, &d, &lba, &count, &seed)) return 1;
    for (u64 done = 0; done < count;) {
        u32 n = count - done > MAX_XFER_SECTORS ? MAX_XFER_SECTORS : (u32)(count - done);
        if (io(d, false, lba + done, n)) return 1;
        for (u32 s = 0; s < n; s++) {
            fill_pattern(want, seed, lba + done + s, 1);
            if (memcmp(want, xfer + s * SECTOR, SECTOR)) return fail("mismatch at lba %lu", lba + done + s);
        }
        done += n;
    }
    kprintf("ok\n");
    return 0;
}

int cmd_dsum(int argc, char **argv)
{
    struct disk *d;
    u64 lba, count;
    if (disk_args(argc, argv, false, &d, &lba, &count, NULL)) return 1;
    u64 h = FNV_OFFSET;
    for (u64 done = 0; done < count;) {
        u32 n = count - done > MAX_XFER_SECTORS ? MAX_XFER_SECTORS : (u32)(count - done);
        if (io(d, false, lba + done, n)) return 1;
        h = fnv1a(h, xfer, (size_t)n * SECTOR);
        done += n;
    }
    kprintf("sum=%016lx\n", h);
    return 0;
}

int cmd_dread(int argc, char **argv)
{
    if (argc != 3) return fail("usage: dread DISK LBA");
    struct disk *d = find(argv[1]);
    u64 lba;
    if (!d) return fail("no disk %s", argv[1]);
    if (!parse_u64(argv[2], 10, &lba)) return fail("bad LBA %s", argv[2]);
    if (lba >= d->sectors) return fail("lba %lu is beyond the end of %s (%lu sectors)", lba, d->name, d->sectors);
    if (io(d, false, lba, 1)) return 1;
    for (int i = 0; i < 64; i++) kprintf("%02x", xfer[i]);
    kprintf("\n");
    return 0;
}
