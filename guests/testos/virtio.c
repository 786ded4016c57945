/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/* testos: legacy virtio-pci and polled split virtqueues (see virtio.h). */

#include "virtio.h"

#define VL_HOST_FEATURES 0x00
#define VL_GUEST_FEATURES 0x04
#define VL_QUEUE_PFN 0x08
#define VL_QUEUE_SIZE 0x0C
#define VL_QUEUE_SELECT 0x0E
#define VL_QUEUE_NOTIFY 0x10
#define VL_STATUS 0x12
#define VL_CONFIG 0x14
#define VL_CONFIG_MSIX 0x18
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FAILED 0x80
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define MAX_QSIZE 32768
#define PCI_CAP_MSIX 0x11

static bool msix_enabled(u8 dev, u8 fn)
{
    if (!(pci_read16(dev, fn, 0x06) & 0x10)) return false; /* no capability list */
    u8 p = pci_read8(dev, fn, 0x34) & 0xFC;
    for (int n = 0; p && n < 48; n++) {
        if (pci_read8(dev, fn, p) == PCI_CAP_MSIX) return pci_read16(dev, fn, (u8)(p + 2)) & 0x8000;
        p = pci_read8(dev, fn, (u8)(p + 1)) & 0xFC;
    }
    return false;
}

const char *virtio_legacy_setup(u8 dev, u8 fn, u16 io, u32 features, u16 *cfg)
{
    outb(io + VL_STATUS, 0);
    if (inb(io + VL_STATUS) != 0) return "device does not reset";
    outb(io + VL_STATUS, ST_ACK);
    outb(io + VL_STATUS, ST_ACK | ST_DRIVER);
    u32 offered = inl(io + VL_HOST_FEATURES);
    outl(io + VL_GUEST_FEATURES, offered & features);
    *cfg = (u16)(io + (msix_enabled(dev, fn) ? VL_CONFIG_MSIX : VL_CONFIG));
    return NULL;
}

const char *vq_setup(struct vq *q, u16 io, u16 index)
{
    outw(io + VL_QUEUE_SELECT, index);
    u16 size = inw(io + VL_QUEUE_SIZE);
    if (size == 0 || size > MAX_QSIZE || (size & (size - 1))) {
        outb(io + VL_STATUS, ST_FAILED);
        return "bad queue size";
    }
    size_t avail_off = 16u * size;
    size_t used_off = (avail_off + 6 + 2u * size + 4095) & ~(size_t)4095;
    size_t bytes = used_off + 6 + 8u * size;
    u8 *mem = dma_alloc(bytes);
    if (!mem) return "out of DMA memory";
    q->io = io;
    q->index = index;
    q->size = size;
    q->desc = (struct vring_desc *)mem;
    q->avail = (volatile u16 *)(mem + avail_off);
    q->used = (volatile u16 *)(mem + used_off);
    q->avail_idx = 0;
    q->used_last = 0;
    q->avail[0] = VRING_AVAIL_F_NO_INTERRUPT;
    outl(io + VL_QUEUE_PFN, (u32)((u64)mem >> 12));
    return NULL;
}

void virtio_driver_ok(u16 io) { outb(io + VL_STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK); }

void vq_push(struct vq *q, u16 head)
{
    q->avail[2 + (q->avail_idx & (q->size - 1))] = head;
    barrier(); /* the ring entry before the index (x86 keeps stores in order) */
    q->avail[1] = ++q->avail_idx;
    barrier();
    outw(q->io + VL_QUEUE_NOTIFY, q->index);
}

bool vq_pop(struct vq *q, u32 *id, u32 *len)
{
    if (q->used[1] == q->used_last) return false;
    barrier();
    volatile u32 *e = (volatile u32 *)(q->used + 2) + 2 * (q->used_last & (q->size - 1));
    *id = e[0];
    *len = e[1];
    q->used_last++;
    return true;
}

bool vq_submit_wait(struct vq *q, u16 head, u32 timeout_ms)
{
    vq_push(q, head);
    u64 until = deadline_ms(timeout_ms);
    u32 id, len;
    for (;;) {
        if (vq_pop(q, &id, &len)) return id == head;
        if (expired(until)) return false;
        cpu_relax();
    }
}
