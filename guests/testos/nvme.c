/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: a polled NVMe driver (NVMe 1.4): BAR0 registers by MMIO, the
 * controller disabled and enabled again with an admin queue pair of
 * ADMIN_ENTRIES, Identify Controller and Identify Namespace 1, one I/O queue
 * pair (id 1) of IO_ENTRIES created without interrupts, and Read/Write of
 * namespace 1 with PRP1/PRP2 or a PRP list. Completions are found by
 * polling the phase tag. One command at a time.
 */

#include "testos.h"

#define REG_CAP 0x00
#define REG_CC 0x14
#define REG_CSTS 0x1C
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define REG_DOORBELLS 0x1000
#define CC_EN 0x1
#define CC_IOSQES (6u << 16) /* 64-byte entries */
#define CC_IOCQES (4u << 20) /* 16-byte entries */
#define CSTS_RDY 0x1
#define CSTS_CFS 0x2
#define ADMIN_ENTRIES 16
#define IO_ENTRIES 64
#define OPC_CREATE_SQ 0x01
#define OPC_CREATE_CQ 0x05
#define OPC_IDENTIFY 0x06
#define OPC_WRITE 0x01
#define OPC_READ 0x02
#define CMD_TIMEOUT_MS 5000
#define PAGE 4096

struct sqe {
    u32 cdw0; /* opcode 7:0, command id 31:16 */
    u32 nsid;
    u64 rsvd;
    u64 mptr;
    u64 prp1, prp2;
    u32 cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct cqe {
    u32 dw0, dw1;
    u16 sq_head, sq_id;
    u16 cid;
    u16 status; /* phase tag in bit 0 */
};

struct queue {
    struct sqe *sq;
    volatile struct cqe *cq;
    u16 entries, tail, head;
    u8 phase;
    u64 sq_doorbell, cq_doorbell;
};

struct nvme {
    u64 bar;
    struct queue admin, io;
    u16 cid;
    u64 *prp_list;
    u8 *identify;
};

static const char *wait_csts(u64 bar, u32 want_rdy, u32 ms)
{
    u64 until = deadline_ms(ms);
    for (;;) {
        u32 s = mmio_read32(bar + REG_CSTS);
        if (want_rdy && (s & CSTS_CFS)) return "controller fatal status";
        if ((s & CSTS_RDY) == want_rdy) return NULL;
        if (expired(until)) return want_rdy ? "timed out enabling the controller" : "timed out disabling the controller";
        cpu_relax();
    }
}

static void queue_init(struct queue *q, void *sq, void *cq, u16 entries, u64 bar, u32 stride, u16 qid)
{
    q->sq = sq;
    q->cq = cq;
    q->entries = entries;
    q->tail = q->head = 0;
    q->phase = 1;
    q->sq_doorbell = bar + REG_DOORBELLS + (2u * qid) * stride;
    q->cq_doorbell = bar + REG_DOORBELLS + (2u * qid + 1) * stride;
}

/* Submit one command and wait for its completion; returns an error or NULL. */
static const char *run(struct nvme *n, struct queue *q, struct sqe *cmd, u32 *result)
{
    u16 cid = n->cid++;
    cmd->cdw0 = (cmd->cdw0 & 0xFF) | (u32)cid << 16;
    q->sq[q->tail] = *cmd;
    q->tail = (u16)((q->tail + 1) % q->entries);
    barrier();
    mmio_write32(q->sq_doorbell, q->tail);
    u64 until = deadline_ms(CMD_TIMEOUT_MS);
    for (;;) {
        volatile struct cqe *e = &q->cq[q->head];
        if ((e->status & 1) == q->phase) {
            barrier();
            u16 status = e->status >> 1, got = e->cid;
            if (result) *result = e->dw0;
            if (++q->head == q->entries) q->head = 0, q->phase ^= 1;
            mmio_write32(q->cq_doorbell, q->head);
            if (got != cid) return "completion for another command";
            if (status) return (status >> 8 & 7) == 0 && (status & 0xFF) == 0x80 ? "LBA out of range" : "command failed";
            return NULL;
        }
        if (expired(until)) return "command timed out";
        cpu_relax();
    }
}

static const char *nvme_rw(struct disk *d, bool write, u64 lba, u32 count, void *buf)
{
    struct nvme *n = d->priv;
    u64 bytes = (u64)count * SECTOR, b = (u64)buf;
    struct sqe c = {0};
    c.cdw0 = write ? OPC_WRITE : OPC_READ;
    c.nsid = 1;
    c.prp1 = b;
    if (bytes > 2 * PAGE) {
        for (u64 off = PAGE, i = 0; off < bytes; off += PAGE, i++) n->prp_list[i] = b + off;
        c.prp2 = (u64)n->prp_list;
    } else if (bytes > PAGE) {
        c.prp2 = b + PAGE;
    }
    c.cdw10 = (u32)lba;
    c.cdw11 = (u32)(lba >> 32);
    c.cdw12 = count - 1;
    return run(n, &n->io, &c, NULL);
}

static const struct disk_ops nvme_ops = {nvme_rw};

const char *nvme_init(struct disk *d)
{
    struct nvme *n = dma_alloc(sizeof *n);
    u8 *mem = dma_alloc(7 * PAGE);
    if (!n || !mem) return "out of DMA memory";
    u64 bar = pci_mem_bar(d->dev, d->fn, 0);
    if (!bar) return "BAR0 not usable (unassigned or above 4 GiB)";
    pci_enable_master(d->dev, d->fn);
    n->bar = bar;
    u64 cap = mmio_read64(bar + REG_CAP);
    u32 stride = 4u << ((cap >> 32) & 0xF);
    u32 mqes = (u32)(cap & 0xFFFF) + 1;
    if (mqes < IO_ENTRIES || ((cap >> 48) & 0xF) != 0) return "unsupported CAP (queue size or page size)";
    u32 to_ms = (u32)((cap >> 24) & 0xFF) * 500;
    if (to_ms < 2000) to_ms = 2000;

    /* Whatever the firmware left running goes. */
    mmio_write32(bar + REG_CC, mmio_read32(bar + REG_CC) & ~CC_EN);
    const char *err = wait_csts(bar, 0, to_ms);
    if (err) return err;
    queue_init(&n->admin, mem, mem + PAGE, ADMIN_ENTRIES, bar, stride, 0);
    queue_init(&n->io, mem + 2 * PAGE, mem + 3 * PAGE, IO_ENTRIES, bar, stride, 1);
    n->prp_list = (u64 *)(mem + 4 * PAGE);
    n->identify = mem + 5 * PAGE;
    mmio_write32(bar + REG_AQA, (ADMIN_ENTRIES - 1) << 16 | (ADMIN_ENTRIES - 1));
    mmio_write64(bar + REG_ASQ, (u64)n->admin.sq);
    mmio_write64(bar + REG_ACQ, (u64)n->admin.cq);
    mmio_write32(bar + REG_CC, CC_EN | CC_IOSQES | CC_IOCQES);
    if ((err = wait_csts(bar, 1, to_ms))) return err;

    struct sqe c = {0};
    c.cdw0 = OPC_IDENTIFY;
    c.prp1 = (u64)n->identify;
    c.cdw10 = 1; /* controller */
    if ((err = run(n, &n->admin, &c, NULL))) return err;
    u32 nn;
    memcpy(&nn, n->identify + 516, 4);
    if (nn < 1) return "no namespaces";
    c = (struct sqe){0};
    c.cdw0 = OPC_IDENTIFY;
    c.nsid = 1;
    c.prp1 = (u64)n->identify;
    c.cdw10 = 0; /* namespace */
    if ((err = run(n, &n->admin, &c, NULL))) return err;
    u64 nsze;
    memcpy(&nsze, n->identify, 8);
    u8 flbas = n->identify[26] & 0xF;
    u32 lbaf;
    memcpy(&lbaf, n->identify + 128 + 4 * flbas, 4);
    if (((lbaf >> 16) & 0xFF) != 9) return "namespace 1 does not use 512-byte blocks";

    c = (struct sqe){0};
    c.cdw0 = OPC_CREATE_CQ;
    c.prp1 = (u64)n->io.cq;
    c.cdw10 = (u32)(IO_ENTRIES - 1) << 16 | 1;
    c.cdw11 = 1; /* physically contiguous, no interrupts */
    if ((err = run(n, &n->admin, &c, NULL))) return err;
    c = (struct sqe){0};
    c.cdw0 = OPC_CREATE_SQ;
    c.prp1 = (u64)n->io.sq;
    c.cdw10 = (u32)(IO_ENTRIES - 1) << 16 | 1;
    c.cdw11 = 1u << 16 | 1; /* completion queue 1, physically contiguous */
    if ((err = run(n, &n->admin, &c, NULL))) return err;

    d->sectors = nsze;
    d->ops = &nvme_ops;
    d->priv = n;
    return NULL;
}
