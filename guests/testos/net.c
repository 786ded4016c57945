/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: `net dhcp` over the first legacy virtio-net function (1AF4:1000),
 * polled.
 *
 * Set-up (once): legacy virtio with only VIRTIO_NET_F_MAC accepted, so the
 * per-frame header is the legacy 10 bytes (virtio 1.2 §5.1.6, no
 * MRG_RXBUF); the MAC from the device configuration; receiveq (0) with
 * RX_BUFS two-descriptor chains (header, frame) posted; transmitq (1) with
 * one chain (header, frame). Both avail rings have NO_INTERRUPT set.
 *
 * DHCP (RFC 2131) as a client with the broadcast flag set: DHCPDISCOVER
 * until a DHCPOFFER with our transaction id, then DHCPREQUEST for the offered
 * address (with the server identifier) until a DHCPACK. Each message is
 * sent up to TRIES times, TRY_MS apart. Frames that are not the awaited
 * answer are dropped.
 */

#include "testos.h"
#include "virtio.h"

#define NET_F_MAC (1u << 5)
#define HDR_LEN 10
#define FRAME_MAX 1514
#define RX_BUFS 16
#define RX_BUF_BYTES 2048
#define TRIES 4
#define TRY_MS 1000
#define DHCPDISCOVER 1
#define DHCPOFFER 2
#define DHCPREQUEST 3
#define DHCPACK 5
#define DHCPNAK 6

/* Offsets in a frame: Ethernet, IPv4 without options, UDP, BOOTP. */
#define ETH_TYPE 12
#define IP 14
#define UDP (IP + 20)
#define BOOTP (UDP + 8)
#define BOOTP_XID (BOOTP + 4)
#define BOOTP_FLAGS (BOOTP + 10)
#define BOOTP_YIADDR (BOOTP + 16)
#define BOOTP_CHADDR (BOOTP + 28)
#define BOOTP_COOKIE (BOOTP + 236)
#define BOOTP_OPTIONS (BOOTP + 240)
#define BOOTP_MIN 300 /* the smallest BOOTP message servers expect */

struct net {
    bool up;
    u16 io;
    u8 mac[6];
    struct vq rx, tx;
    u8 *rx_hdr; /* RX_BUFS headers, 16 bytes apart */
    u8 *rx_buf; /* RX_BUFS buffers of RX_BUF_BYTES */
    u8 *tx_hdr, *tx_frame;
    u32 xid;
};

static struct net net;

static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8), p[1] = (u8)v; }
static u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }

static u16 ip_checksum(const u8 *p, u32 n)
{
    u32 s = 0;
    for (u32 i = 0; i + 1 < n; i += 2) s += get16(p + i);
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return (u16)~s;
}

static void post_rx(struct net *n, u16 slot)
{
    struct vq *q = &n->rx;
    u16 d = (u16)(2 * slot);
    q->desc[d] = (struct vring_desc){(u64)(n->rx_hdr + 16 * slot), HDR_LEN, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
                                     (u16)(d + 1)};
    q->desc[d + 1] = (struct vring_desc){(u64)(n->rx_buf + RX_BUF_BYTES * slot), RX_BUF_BYTES, VRING_DESC_F_WRITE, 0};
    vq_push(q, d);
}

struct find_ctx {
    u8 dev, fn;
    bool found;
};

static void find_nic(u8 dev, u8 fn, void *ctx)
{
    struct find_ctx *c = ctx;
    if (!c->found && pci_read32(dev, fn, 0) == 0x10001AF4) c->dev = dev, c->fn = fn, c->found = true;
}

static const char *net_setup(struct net *n)
{
    struct find_ctx c = {0};
    pci_each(find_nic, &c);
    if (!c.found) return "no virtio-net (1af4:1000) on PCI bus 0";
    n->io = pci_io_bar(c.dev, c.fn, 0);
    if (!n->io) return "virtio-net: no legacy I/O BAR";
    pci_enable_master(c.dev, c.fn);
    u16 cfg;
    const char *err = virtio_legacy_setup(c.dev, c.fn, n->io, NET_F_MAC, &cfg);
    if (err) return err;
    if (inl(n->io) & NET_F_MAC) {
        for (int i = 0; i < 6; i++) n->mac[i] = inb((u16)(cfg + i));
    } else {
        static const u8 fallback[6] = {0x02, 0x54, 0x53, 0x4f, 0x53, 0x01}; /* locally administered */
        memcpy(n->mac, fallback, 6);
    }
    if ((err = vq_setup(&n->rx, n->io, 0)) || (err = vq_setup(&n->tx, n->io, 1))) return err;
    if (n->rx.size < 2 * RX_BUFS || n->tx.size < 2) return "virtio-net: queues too small";
    u8 *mem = dma_alloc(RX_BUFS * RX_BUF_BYTES + 2 * 4096);
    if (!mem) return "out of DMA memory";
    n->rx_buf = mem;
    n->rx_hdr = mem + RX_BUFS * RX_BUF_BYTES;
    n->tx_hdr = n->rx_hdr + 4096 - 16;
    n->tx_frame = n->rx_hdr + 4096;
    virtio_driver_ok(n->io);
    for (u16 i = 0; i < RX_BUFS; i++) post_rx(n, i);
    n->xid = (u32)rdtsc() ^ 0x7e570500u;
    n->up = true;
    return NULL;
}

static bool send_frame(struct net *n, u32 len)
{
    struct vq *q = &n->tx;
    memset(n->tx_hdr, 0, HDR_LEN);
    q->desc[0] = (struct vring_desc){(u64)n->tx_hdr, HDR_LEN, VRING_DESC_F_NEXT, 1};
    q->desc[1] = (struct vring_desc){(u64)n->tx_frame, len, 0, 0};
    return vq_submit_wait(q, 0, 1000);
}

static u8 *add_opt(u8 *o, u8 code, u8 len, const void *v)
{
    o[0] = code, o[1] = len;
    memcpy(o + 2, v, len);
    return o + 2 + len;
}

static bool send_dhcp(struct net *n, u8 type, const u8 *ip, const u8 *server)
{
    u8 *f = n->tx_frame;
    u32 len = BOOTP + BOOTP_MIN;
    memset(f, 0, len);
    memset(f, 0xFF, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + ETH_TYPE, 0x0800);
    f[IP] = 0x45;
    put16(f + IP + 2, (u16)(len - IP));
    f[IP + 8] = 64; /* TTL */
    f[IP + 9] = 17; /* UDP */
    memset(f + IP + 16, 0xFF, 4);
    put16(f + IP + 10, ip_checksum(f + IP, 20));
    put16(f + UDP, 68);
    put16(f + UDP + 2, 67);
    put16(f + UDP + 4, (u16)(len - UDP)); /* UDP checksum 0: none (IPv4) */
    f[BOOTP] = 1;                         /* BOOTREQUEST */
    f[BOOTP + 1] = 1;                     /* Ethernet */
    f[BOOTP + 2] = 6;
    memcpy(f + BOOTP_XID, &n->xid, 4);
    put16(f + BOOTP_FLAGS, 0x8000); /* broadcast the reply */
    memcpy(f + BOOTP_CHADDR, n->mac, 6);
    static const u8 cookie[4] = {99, 130, 83, 99};
    static const u8 params[3] = {1, 3, 6}; /* subnet mask, router, DNS */
    memcpy(f + BOOTP_COOKIE, cookie, 4);
    u8 *o = add_opt(f + BOOTP_OPTIONS, 53, 1, &type);
    if (ip) o = add_opt(o, 50, 4, ip);
    if (server) o = add_opt(o, 54, 4, server);
    o = add_opt(o, 55, sizeof params, params);
    *o = 255;
    return send_frame(n, len);
}

/* A DHCP reply to us in frame f (len bytes): its message type, yiaddr and server identifier. */
static int parse_dhcp(const struct net *n, const u8 *f, u32 len, u8 *yiaddr, u8 *server)
{
    if (len < BOOTP_OPTIONS || get16(f + ETH_TYPE) != 0x0800 || f[IP] != 0x45 || f[IP + 9] != 17) return -1;
    if (get16(f + UDP + 2) != 68 || f[BOOTP] != 2 || memcmp(f + BOOTP_XID, &n->xid, 4)) return -1;
    if (f[BOOTP_COOKIE] != 99 || f[BOOTP_COOKIE + 1] != 130 || f[BOOTP_COOKIE + 2] != 83 || f[BOOTP_COOKIE + 3] != 99)
        return -1;
    int type = -1;
    memcpy(yiaddr, f + BOOTP_YIADDR, 4);
    memset(server, 0, 4);
    for (u32 i = BOOTP_OPTIONS; i < len && f[i] != 255;) {
        if (f[i] == 0) {
            i++;
            continue;
        }
        if (i + 2 > len || i + 2 + f[i + 1] > len) break;
        if (f[i] == 53 && f[i + 1] == 1) type = f[i + 2];
        if (f[i] == 54 && f[i + 1] == 4) memcpy(server, f + i + 2, 4);
        i += 2u + f[i + 1];
    }
    return type;
}

/* Wait up to TRY_MS for a DHCP reply of type `want` (or a DHCPNAK); returns its type, or -1. */
static int await_dhcp(struct net *n, int want, u8 *yiaddr, u8 *server)
{
    u64 until = deadline_ms(TRY_MS);
    while (!expired(until)) {
        u32 id, len;
        if (!vq_pop(&n->rx, &id, &len)) {
            cpu_relax();
            continue;
        }
        u16 slot = (u16)(id / 2);
        if (id % 2 || slot >= RX_BUFS) continue; /* not one of ours: nothing to give back */
        int type = -1;
        if (len > HDR_LEN) type = parse_dhcp(n, n->rx_buf + RX_BUF_BYTES * slot, len - HDR_LEN, yiaddr, server);
        post_rx(n, slot);
        if (type == want || type == DHCPNAK) return type;
    }
    return -1;
}

static int dhcp(struct net *n)
{
    u8 ip[4], server[4], ack_ip[4], ack_server[4];
    n->xid++;
    int got = -1;
    for (int t = 0; t < TRIES && got != DHCPOFFER; t++) {
        if (!send_dhcp(n, DHCPDISCOVER, NULL, NULL)) return fail("net: DHCPDISCOVER not sent (transmit timed out)");
        got = await_dhcp(n, DHCPOFFER, ip, server);
    }
    if (got != DHCPOFFER) return fail("net: no DHCPOFFER");
    got = -1;
    for (int t = 0; t < TRIES && got != DHCPACK; t++) {
        if (!send_dhcp(n, DHCPREQUEST, ip, server)) return fail("net: DHCPREQUEST not sent (transmit timed out)");
        got = await_dhcp(n, DHCPACK, ack_ip, ack_server);
        if (got == DHCPNAK) return fail("net: DHCPNAK");
    }
    if (got != DHCPACK) return fail("net: no DHCPACK");
    if (!ack_server[0] && !ack_server[1] && !ack_server[2] && !ack_server[3]) memcpy(ack_server, server, 4);
    kprintf("ip=%u.%u.%u.%u server=%u.%u.%u.%u\n", ack_ip[0], ack_ip[1], ack_ip[2], ack_ip[3], ack_server[0],
            ack_server[1], ack_server[2], ack_server[3]);
    return 0;
}

int cmd_net(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "dhcp")) return fail("usage: net dhcp");
    if (!net.up) {
        const char *err = net_setup(&net);
        if (err) return fail("%s", err);
    }
    return dhcp(&net);
}
