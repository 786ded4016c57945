/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: legacy virtio over PCI (virtio 1.2 §4.1.4.10) and split
 * virtqueues in the legacy layout (§2.7), polled. Shared by virtio-blk.c
 * and net.c.
 */
#ifndef TESTOS_VIRTIO_H
#define TESTOS_VIRTIO_H

#include "testos.h"

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct vring_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

struct vq {
    u16 io;    /* the function's legacy I/O base */
    u16 index; /* queue number */
    u16 size;
    struct vring_desc *desc;
    volatile u16 *avail; /* flags, idx, ring[size] */
    volatile u16 *used;  /* flags, idx, then {u32 id; u32 len}[size] */
    u16 avail_idx;
    u16 used_last;
};

/* Reset, ACKNOWLEDGE, DRIVER, accept `features` (those the device offers); *cfg = the device configuration's port. */
const char *virtio_legacy_setup(u8 dev, u8 fn, u16 io, u32 features, u16 *cfg);
/* Lay out queue `index` in DMA memory and give it to the device. */
const char *vq_setup(struct vq *q, u16 io, u16 index);
void virtio_driver_ok(u16 io);
/* Make descriptor chain `head` available; notify the device. */
void vq_push(struct vq *q, u16 head);
/* A used element, if one is there. */
bool vq_pop(struct vq *q, u32 *id, u32 *len);
/* Push `head` and wait (polling) for its completion; false on time-out. */
bool vq_submit_wait(struct vq *q, u16 head, u32 timeout_ms);

#endif
