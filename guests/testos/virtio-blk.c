/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: a polled driver for legacy (transitional) virtio-blk, through
 * the device's legacy I/O BAR (virtio 1.2 §4.1.4.10 and §5.2).
 *
 * Set-up: reset, ACKNOWLEDGE, DRIVER, no features accepted, queue 0 at the
 * size the device reports, laid out the legacy way (descriptors, avail ring,
 * used ring at the next 4 KiB boundary; Queue Address = its page frame
 * number), DRIVER_OK. The avail ring's NO_INTERRUPT flag is set and
 * completions are found by polling used.idx. One request at a time, as a
 * chain of three descriptors: header, data, status byte. The device
 * configuration follows the legacy header at 0x14, or at 0x18 when the
 * firmware left MSI-X enabled.
 */

#include "testos.h"
#include "virtio.h"

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_S_OK 0
#define REQ_TIMEOUT_MS 5000

struct blk_req {
    u32 type;
    u32 reserved;
    u64 sector;
};

struct vblk {
    struct vq q;
    struct blk_req *req; /* and the status byte right after it */
    volatile u8 *status;
};

static const char *vblk_rw(struct disk *d, bool write, u64 lba, u32 count, void *buf)
{
    struct vblk *v = d->priv;
    struct vq *q = &v->q;
    v->req->type = write ? BLK_T_OUT : BLK_T_IN;
    v->req->reserved = 0;
    v->req->sector = lba;
    *v->status = 0xFF;
    q->desc[0] = (struct vring_desc){(u64)v->req, sizeof *v->req, VRING_DESC_F_NEXT, 1};
    q->desc[1] = (struct vring_desc){(u64)buf, count * SECTOR, (u16)(VRING_DESC_F_NEXT | (write ? 0 : VRING_DESC_F_WRITE)), 2};
    q->desc[2] = (struct vring_desc){(u64)v->status, 1, VRING_DESC_F_WRITE, 0};
    if (!vq_submit_wait(q, 0, REQ_TIMEOUT_MS)) return "timed out";
    if (*v->status != BLK_S_OK) return *v->status == 1 ? "I/O error" : "request failed";
    return NULL;
}

static const struct disk_ops vblk_ops = {vblk_rw};

const char *virtio_blk_init(struct disk *d)
{
    struct vblk *v = dma_alloc(sizeof *v);
    u8 *page = dma_alloc(4096);
    if (!v || !page) return "out of DMA memory";
    v->req = (struct blk_req *)page;
    v->status = page + sizeof(struct blk_req);
    u16 io = pci_io_bar(d->dev, d->fn, 0);
    if (!io) return "no legacy I/O BAR";
    pci_enable_master(d->dev, d->fn);
    u16 cfg;
    const char *err = virtio_legacy_setup(d->dev, d->fn, io, 0, &cfg);
    if (err) return err;
    err = vq_setup(&v->q, io, 0);
    if (err) return err;
    virtio_driver_ok(io);
    d->sectors = inl(cfg) | (u64)inl(cfg + 4) << 32;
    d->ops = &vblk_ops;
    d->priv = v;
    return NULL;
}
