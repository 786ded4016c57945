// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// netping.rom: real traffic over a legacy virtio-net PCI function
// (1AF4:1000), from a driver of our own, by polling.
//
// boot64.S brings the BSP to 64-bit mode; everything here then runs at CPL0
// (emulated on the project's nested-KVM hosts, ~300 ns per instruction: the
// work is a handful of frames, so it stays well under a second of guest
// time). There is no firmware: the guest is its own.
//
//   1. scan PCI bus 0 (configuration mechanism #1, 0xCF8/0xCFC) for
//      1AF4:1000; program BAR0 (I/O) to IO_BASE and the command register
//      to I/O decode + bus master + INTx disable;
//   2. legacy virtio set-up through BAR0: reset, ACKNOWLEDGE|DRIVER, accept
//      VIRTIO_NET_F_MAC only (so the header is the legacy 10 bytes: no
//      MRG_RXBUF, no VERSION_1, no offloads), read the MAC from the device
//      configuration at BAR0+0x14 (MSI-X stays off), receiveq (0) at
//      RXQ_BASE and transmitq (1) at TXQ_BASE (Queue Address = page frame
//      number, legacy layout), NRX receive buffers posted, DRIVER_OK.
//      Frames use the legacy framing: the header in its own descriptor,
//      the frame in the next. The avail rings' NO_INTERRUPT flag is set;
//      completions are found by polling used.idx, no interrupt is needed.
//      Every refill of the receive queue and every frame sent is notified
//      (the device's NO_NOTIFY hint is not consulted: an extra notify is
//      harmless, a missing one would stall);
//   3. DHCP from whatever server answers on the link (dnsmasq in the
//      tests): DHCPDISCOVER (broadcast flag set, chaddr = the MAC) until a
//      DHCPOFFER, then DHCPREQUEST for the offered address until a DHCPACK;
//   4. ARP request for the server's address until a reply; from here on,
//      ARP requests for our address are answered;
//   5. ICMP echo request to the server until the echo reply (IP and ICMP
//      checksums and the 32 bytes of data checked);
//   6. exit value 0.
//
// Each step sends, waits up to WAIT_S RTC seconds (1..WAIT_S s of wall
// time, whatever the CPU speed: the MC146818 seconds register is the
// clock) and sends again, TRIES times in all. Received frames that are not
// the awaited answer are dropped (their buffers go back to the device).
//
// Serial output (COM1), after boot64.S's first line:
//   netping: virtio-net 00:<dev>.0 mac <mac> rx queue <n> tx queue <n>
//   netping: DHCPOFFER <ip> from server <ip>
//   netping: DHCPACK <ip>
//   netping: ARP <ip> is at <mac>
//   netping: ICMP echo reply from <ip> seq <n>
//   netping: ok                                    exit value 0 (QEMU: status 1;
//                                                  propolis-standalone: 0)
// Retries print "netping: no answer to <what>, try <n>"; an ARP request we
// answer prints "netping: answered ARP from <ip>".
// On failure the last line is "netping: FAIL: <what>", with exit value 1
// (no answer after TRIES tries, a DHCPNAK, an unexpected DHCPACK) or 2
// (set-up: no device, BAR, features, queue sizes, a bad used ring entry).
//
// RAM used (16 MiB is plenty): 0x20000 variables, 0x21000 the transmit
// header and frame, 0x22000 receive headers, 0x100000 receiveq,
// 0x140000 transmitq, 0x200000 receive buffers (NRX x RXBUF_SIZE).

#include "defs.h"

#define XSTR(x)         STR(x)
#define STR(x)          #x
#define BE16(x)         ((((x) & 0xFF) << 8) | (((x) >> 8) & 0xFF))

#define IO_BASE         0xC000          // BAR0 of the virtio function
#define PCI_ADDR        0xCF8
#define PCI_DATA        0xCFC
#define VIRTIO_NET_VENDOR_DEVICE 0x10001AF4
#define PCI_CMD_IO_BM_NOINTX 0x0405
#define RTC_INDEX       0x70
#define RTC_DATA        0x71

// Legacy virtio header in BAR0 (virtio 1.2 §4.1.4.10), MSI-X disabled.
#define VL_HOST_FEATURES 0x00
#define VL_GUEST_FEATURES 0x04
#define VL_QUEUE_PFN    0x08
#define VL_QUEUE_SIZE   0x0C
#define VL_QUEUE_SELECT 0x0E
#define VL_QUEUE_NOTIFY 0x10
#define VL_STATUS       0x12
#define VL_CONFIG       0x14            // virtio-net: mac[6] first
#define ST_ACK          1
#define ST_DRIVER       2
#define ST_DRIVER_OK    4
#define NET_F_MAC       (1 << 5)
#define RXQ             0
#define TXQ             1
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define AVAIL_F_NO_INTERRUPT 1
#define MAX_QSIZE       4096            // what fits the room below for one queue
#define VNET_HDR_LEN    10              // legacy header without MRG_RXBUF
#define NRX             16              // receive buffers posted
#define RXBUF_SIZE      2048            // >= 1514 (spec: at least 1526 with the header)

// Protocols (values as on the wire; BE16() where stored as 16 bits)
#define ETH_P_IP        0x0800
#define ETH_P_ARP       0x0806
#define IPPROTO_ICMP    1
#define IPPROTO_UDP     17
#define ARP_REQUEST     1
#define ARP_REPLY       2
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO       8
#define ICMP_ID         0x4E50          // "NP"
#define ECHO_DATA_LEN   32
#define DHCPDISCOVER    1
#define DHCPOFFER       2
#define DHCPREQUEST     3
#define DHCPACK         5
#define DHCPNAK         6
#define DHCP_COOKIE     0x63538263      // 63 82 53 63 as a little-endian u32

// Frame offsets: Ethernet, then IPv4 (IHL 5 only), UDP/ICMP, DHCP; or ARP.
#define ETH_DST         0
#define ETH_SRC         6
#define ETH_TYPE        12
#define IP              14
#define IP_VIHL         (IP + 0)
#define IP_LEN          (IP + 2)
#define IP_FRAG         (IP + 6)
#define IP_TTL          (IP + 8)
#define IP_PROTO        (IP + 9)
#define IP_CSUM         (IP + 10)
#define IP_SRC          (IP + 12)
#define IP_DST          (IP + 16)
#define L4              34
#define UDP_SPORT       (L4 + 0)
#define UDP_DPORT       (L4 + 2)
#define UDP_LEN         (L4 + 4)
#define ICMP_TYPE       (L4 + 0)
#define ICMP_CSUM       (L4 + 2)
#define ICMP_IDENT      (L4 + 4)
#define ICMP_SEQ        (L4 + 6)
#define ICMP_DATA       (L4 + 8)
#define DHCP            42
#define DHCP_OP         (DHCP + 0)      // op, htype, hlen, hops
#define DHCP_XID        (DHCP + 4)
#define DHCP_FLAGS      (DHCP + 10)
#define DHCP_YIADDR     (DHCP + 16)
#define DHCP_CHADDR     (DHCP + 28)
#define DHCP_COOKIE_AT  (DHCP + 236)
#define DHCP_OPTIONS    (DHCP + 240)
#define DHCP_MSG_LEN    300             // BOOTP's minimum message size
#define DHCP_FRAME_LEN  (DHCP + DHCP_MSG_LEN)
#define ARP             14
#define ARP_HTYPE       (ARP + 0)
#define ARP_PTYPE       (ARP + 2)
#define ARP_HLEN        (ARP + 4)       // hlen, plen
#define ARP_OPER        (ARP + 6)
#define ARP_SHA         (ARP + 8)
#define ARP_SPA         (ARP + 14)
#define ARP_THA         (ARP + 18)
#define ARP_TPA         (ARP + 24)
#define ARP_FRAME_LEN   60              // 42, padded to Ethernet's minimum
#define ECHO_IP_LEN     (20 + 8 + ECHO_DATA_LEN)
#define ECHO_FRAME_LEN  (IP + ECHO_IP_LEN)

// Retries
#define TRIES           5
#define WAIT_S          2               // RTC second changes per try: 1..2 s

// RAM
#define VARS            0x20000
#define TX_HDR          0x21000
#define TX_FRAME        0x21010         // up to 1514 bytes
#define RX_HDRS         0x22000         // 16 bytes per receive buffer
#define RXQ_BASE        0x100000
#define TXQ_BASE        0x140000
#define QUEUES_END      0x180000
#define RX_BUFS         0x200000

// Variables, at VARS + offset (RBP = VARS throughout)
#define V_IOBASE        0               // u32
#define V_DEVFN         4
#define V_RXQ_SIZE      8
#define V_RXQ_MASK      12
#define V_TXQ_SIZE      16
#define V_TXQ_MASK      20
#define V_RX_DESC       24              // u64 addresses
#define V_RX_AVAIL      32
#define V_RX_USED       40
#define V_TX_DESC       48
#define V_TX_AVAIL      56
#define V_TX_USED       64
#define V_RX_AVAIL_IDX  72              // u32s, low 16 bits published/compared
#define V_RX_USED_LAST  76
#define V_TX_AVAIL_IDX  80
#define V_FEATURES      84
#define V_MAC           88              // 6 bytes
#define V_SRVMAC        96              // 6 bytes
#define V_XID           104             // addresses: u32s in wire byte order
#define V_MYIP          108             // ours once DHCPACKed; 0 before
#define V_OFFER_IP      112
#define V_SERVER        116
#define V_DHCP_WANT     120             // message type awaited
#define V_DHCP_GOT      124             // message type matched (or DHCPNAK)
#define V_GOT_YIADDR    128
#define V_GOT_SERVER    132
#define V_SEQ           136
#define V_TRY           140
#define V_DL_WAIT       144             // deadline of wait_frame (16 bytes)
#define V_DL_TX         160             // deadline of tx_send (16 bytes)
// A deadline: u32s at these offsets.
#define DL_LIMIT        0               // RTC second changes allowed
#define DL_CHANGES      4
#define DL_LAST         8
#define DL_ITER         12

// COPY6 dst, src: copy 6 bytes through EAX.
.macro COPY6 dst, src
        movl    \src, %eax
        movl    %eax, \dst
        movw    4+\src, %ax
        movw    %ax, 4+\dst
.endm

        .text
        .code64
        .globl  main64
main64:
        cld
        movl    $VARS, %ebp
        // Variables and both queues start zeroed (nothing is assumed of RAM).
        movl    $VARS, %edi
        xorl    %eax, %eax
        movl    $(0x1000 / 8), %ecx
        rep stosq
        movl    $RXQ_BASE, %edi
        movl    $((QUEUES_END - RXQ_BASE) / 8), %ecx
        rep stosq

        // ---- find 1AF4:1000 on bus 0 ----
        xorl    %ebx, %ebx              // device << 11
1:      movl    %ebx, %eax
        orl     $0x80000000, %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movw    $PCI_DATA, %dx
        inl     %dx, %eax
        cmpl    $VIRTIO_NET_VENDOR_DEVICE, %eax
        je      2f
        addl    $(1 << 11), %ebx
        cmpl    $(32 << 11), %ebx
        jb      1b
        leaq    msg_nodev(%rip), %rsi
        jmp     fail_setup
2:      movl    %ebx, %eax
        shrl    $11, %eax
        movl    %eax, V_DEVFN(%rbp)
        // BAR0 = IO_BASE, then the command register.
        leal    0x80000010(%rbx), %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movl    $IO_BASE, %eax
        movw    $PCI_DATA, %dx
        outl    %eax, %dx
        inl     %dx, %eax
        andl    $0xFFFC, %eax
        cmpl    $IO_BASE, %eax
        je      3f
        leaq    msg_nobar(%rip), %rsi
        jmp     fail_setup
3:      movl    %eax, V_IOBASE(%rbp)
        leal    0x80000004(%rbx), %eax
        movw    $PCI_ADDR, %dx
        outl    %eax, %dx
        movl    $PCI_CMD_IO_BM_NOINTX, %eax
        movw    $PCI_DATA, %dx
        outl    %eax, %dx

        // ---- legacy virtio set-up ----
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_STATUS, %edx
        xorl    %eax, %eax
        outb    %al, %dx                // reset
        movb    $ST_ACK, %al
        outb    %al, %dx
        movb    $(ST_ACK | ST_DRIVER), %al
        outb    %al, %dx
        movl    V_IOBASE(%rbp), %edx
        inl     %dx, %eax               // VL_HOST_FEATURES
        movl    %eax, V_FEATURES(%rbp)
        testl   $NET_F_MAC, %eax
        jnz     4f
        leaq    msg_nomac(%rip), %rsi
        jmp     fail_setup
4:      addl    $VL_GUEST_FEATURES, %edx
        movl    $NET_F_MAC, %eax
        outl    %eax, %dx
        // The MAC, a byte at a time from the device configuration.
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_CONFIG, %edx
        leaq    V_MAC(%rbp), %rdi
        movl    $6, %ecx
5:      inb     %dx, %al
        movb    %al, (%rdi)
        incl    %edx
        incq    %rdi
        decl    %ecx
        jnz     5b

        // receiveq
        movl    $RXQ, %eax
        movl    $RXQ_BASE, %edi
        call    queue_setup
        cmpl    $(2 * NRX), %ecx
        jae     6f
        leaq    msg_rxsmall(%rip), %rsi
        jmp     fail_setup
6:      movl    %ecx, V_RXQ_SIZE(%rbp)
        decl    %ecx
        movl    %ecx, V_RXQ_MASK(%rbp)
        movq    %rdi, V_RX_DESC(%rbp)
        movq    %rsi, V_RX_AVAIL(%rbp)
        movq    %rdx, V_RX_USED(%rbp)
        // NRX chains: header descriptor 2i, buffer descriptor 2i+1.
        xorl    %ecx, %ecx
7:      movl    %ecx, %eax
        shll    $4, %eax
        addl    $RX_HDRS, %eax
        movq    %rax, (%rdi)
        movl    $VNET_HDR_LEN, 8(%rdi)
        movw    $(DESC_F_NEXT | DESC_F_WRITE), 12(%rdi)
        leal    1(%rcx,%rcx), %eax
        movw    %ax, 14(%rdi)
        movl    %ecx, %eax
        shll    $11, %eax               // RXBUF_SIZE
        addl    $RX_BUFS, %eax
        movq    %rax, 16(%rdi)
        movl    $RXBUF_SIZE, 24(%rdi)
        movw    $DESC_F_WRITE, 28(%rdi)
        movw    $0, 30(%rdi)
        leal    (%rcx,%rcx), %eax
        movw    %ax, 4(%rsi,%rcx,2)     // avail.ring[i] = 2i
        addq    $32, %rdi
        incl    %ecx
        cmpl    $NRX, %ecx
        jb      7b
        movl    $NRX, V_RX_AVAIL_IDX(%rbp)
        movw    $NRX, 2(%rsi)

        // transmitq: one chain, header descriptor 0 and frame descriptor 1.
        movl    $TXQ, %eax
        movl    $TXQ_BASE, %edi
        call    queue_setup
        movl    %ecx, V_TXQ_SIZE(%rbp)
        decl    %ecx
        movl    %ecx, V_TXQ_MASK(%rbp)
        movq    %rdi, V_TX_DESC(%rbp)
        movq    %rsi, V_TX_AVAIL(%rbp)
        movq    %rdx, V_TX_USED(%rbp)
        movq    $TX_HDR, (%rdi)
        movl    $VNET_HDR_LEN, 8(%rdi)
        movw    $DESC_F_NEXT, 12(%rdi)
        movw    $1, 14(%rdi)
        movq    $TX_FRAME, 16(%rdi)
        // TX_HDR stays zero: no checksum offload, no GSO.

        movl    V_IOBASE(%rbp), %edx
        addl    $VL_STATUS, %edx
        movb    $(ST_ACK | ST_DRIVER | ST_DRIVER_OK), %al
        outb    %al, %dx
        call    rx_notify

        // "netping: virtio-net 00:<dev>.0 mac <mac> rx queue <n> tx queue <n>"
        leaq    msg_dev(%rip), %rsi
        call    puts64
        movl    V_DEVFN(%rbp), %eax
        call    puthex8
        leaq    msg_fn0mac(%rip), %rsi
        call    puts64
        leaq    V_MAC(%rbp), %rsi
        call    putmac
        leaq    msg_rxq(%rip), %rsi
        call    puts64
        movl    V_RXQ_SIZE(%rbp), %eax
        call    putdec64
        leaq    msg_txq(%rip), %rsi
        call    puts64
        movl    V_TXQ_SIZE(%rbp), %eax
        call    putdec64
        call    putcrlf

        // A transaction id that differs from run to run.
        rdtsc
        xorl    $0x4E504E47, %eax
        movl    %eax, V_XID(%rbp)

        // ---- DHCPDISCOVER until a DHCPOFFER ----
        movl    $1, V_TRY(%rbp)
.Ldiscover:
        movb    $DHCPDISCOVER, %al
        call    build_dhcp
        call    tx_send
        movl    $DHCPOFFER, V_DHCP_WANT(%rbp)
        leaq    match_dhcp(%rip), %r12
        call    wait_frame
        testl   %eax, %eax
        jnz     1f
        leaq    what_discover(%rip), %rsi
        call    next_try
        jmp     .Ldiscover
1:      cmpl    $DHCPOFFER, V_DHCP_GOT(%rbp)
        je      2f
        leaq    msg_nak(%rip), %rsi
        jmp     fail_net
2:      movl    V_GOT_SERVER(%rbp), %eax
        testl   %eax, %eax
        jnz     3f
        leaq    msg_noserverid(%rip), %rsi
        jmp     fail_net
3:      movl    %eax, V_SERVER(%rbp)
        movl    V_GOT_YIADDR(%rbp), %eax
        movl    %eax, V_OFFER_IP(%rbp)
        leaq    msg_offer(%rip), %rsi
        call    puts64
        movl    V_OFFER_IP(%rbp), %eax
        call    putip
        leaq    msg_fromserver(%rip), %rsi
        call    puts64
        movl    V_SERVER(%rbp), %eax
        call    putip
        call    putcrlf

        // ---- DHCPREQUEST until a DHCPACK ----
        movl    $1, V_TRY(%rbp)
.Lrequest:
        movb    $DHCPREQUEST, %al
        call    build_dhcp
        call    tx_send
        movl    $DHCPACK, V_DHCP_WANT(%rbp)
        leaq    match_dhcp(%rip), %r12
        call    wait_frame
        testl   %eax, %eax
        jnz     1f
        leaq    what_request(%rip), %rsi
        call    next_try
        jmp     .Lrequest
1:      cmpl    $DHCPACK, V_DHCP_GOT(%rbp)
        je      2f
        leaq    msg_nak(%rip), %rsi
        jmp     fail_net
2:      movl    V_GOT_YIADDR(%rbp), %eax
        cmpl    V_OFFER_IP(%rbp), %eax
        je      3f
        leaq    msg_ackother(%rip), %rsi
        jmp     fail_net
3:      movl    %eax, V_MYIP(%rbp)
        leaq    msg_ack(%rip), %rsi
        call    puts64
        movl    V_MYIP(%rbp), %eax
        call    putip
        call    putcrlf

        // ---- ARP for the server until it answers ----
        movl    $1, V_TRY(%rbp)
.Larp:
        movw    $BE16(ARP_REQUEST), %r8w
        leaq    mac_broadcast(%rip), %rsi
        leaq    mac_zero(%rip), %rdx
        movl    V_SERVER(%rbp), %r11d
        call    build_arp
        call    tx_send
        leaq    match_arp_reply(%rip), %r12
        call    wait_frame
        testl   %eax, %eax
        jnz     1f
        leaq    what_arp(%rip), %rsi
        call    next_try
        jmp     .Larp
1:      leaq    msg_arp(%rip), %rsi
        call    puts64
        movl    V_SERVER(%rbp), %eax
        call    putip
        leaq    msg_isat(%rip), %rsi
        call    puts64
        leaq    V_SRVMAC(%rbp), %rsi
        call    putmac
        call    putcrlf

        // ---- ICMP echo to the server until it replies ----
        movl    $1, V_TRY(%rbp)
.Lecho:
        movl    V_TRY(%rbp), %eax
        movl    %eax, V_SEQ(%rbp)
        call    build_echo
        call    tx_send
        leaq    match_echo_reply(%rip), %r12
        call    wait_frame
        testl   %eax, %eax
        jnz     1f
        leaq    what_echo(%rip), %rsi
        call    next_try
        jmp     .Lecho
1:      leaq    msg_echo(%rip), %rsi
        call    puts64
        movl    V_SERVER(%rbp), %eax
        call    putip
        leaq    msg_seq(%rip), %rsi
        call    puts64
        movl    V_SEQ(%rbp), %eax
        call    putdec64
        call    putcrlf

        leaq    msg_ok(%rip), %rsi
        call    puts64
        xorl    %eax, %eax
        jmp     exit64

// ---------------------------------------------------------------------------
// Failure and retries.

// fail_setup / fail_net: print "netping: FAIL: " and the string at RSI,
// exit with value 2 / 1.
fail_setup:
        movl    $2, %r8d
        jmp     1f
fail_net:
        movl    $1, %r8d
1:      pushq   %rsi
        leaq    msg_fail(%rip), %rsi
        call    puts64
        popq    %rsi
        call    puts64
        call    putcrlf
        movl    %r8d, %eax
        jmp     exit64

// next_try: count a try that got no answer; fail after TRIES, else print
// "netping: no answer to <what at RSI>, try <n>" and return.
next_try:
        incl    V_TRY(%rbp)
        cmpl    $TRIES, V_TRY(%rbp)
        jbe     1f
        pushq   %rsi
        leaq    msg_fail(%rip), %rsi
        call    puts64
        leaq    msg_noanswer(%rip), %rsi
        call    puts64
        popq    %rsi
        call    puts64
        leaq    msg_aftertries(%rip), %rsi
        call    puts64
        movl    $1, %eax
        jmp     exit64
1:      pushq   %rsi
        leaq    msg_retry(%rip), %rsi
        call    puts64
        popq    %rsi
        call    puts64
        leaq    msg_try(%rip), %rsi
        call    puts64
        movl    V_TRY(%rbp), %eax
        call    putdec64
        jmp     putcrlf

// ---------------------------------------------------------------------------
// Queues.

// queue_setup: select queue EAX, check its size (a power of two, 2 ..
// MAX_QSIZE), lay it out at RDI (legacy: descriptors, avail ring, used ring
// at the next 4 KiB), set NO_INTERRUPT and write its page frame number.
// Returns ECX = size, RDI/RSI/RDX = descriptors/avail/used.
queue_setup:
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_SELECT, %edx
        outw    %ax, %dx
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_SIZE, %edx
        inw     %dx, %ax
        movzwl  %ax, %ecx
        cmpl    $2, %ecx
        jb      1f
        cmpl    $MAX_QSIZE, %ecx
        ja      1f
        leal    -1(%rcx), %eax
        testl   %eax, %ecx
        jz      2f
1:      leaq    msg_qsize(%rip), %rsi
        jmp     fail_setup
2:      movl    %ecx, %eax
        shll    $4, %eax
        leaq    (%rdi,%rax), %rsi
        leaq    6 + 0xFFF(%rsi,%rcx,2), %rdx
        andq    $~0xFFF, %rdx
        movw    $AVAIL_F_NO_INTERRUPT, (%rsi)
        pushq   %rdx
        movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_PFN, %edx
        movl    %edi, %eax
        shrl    $12, %eax
        outl    %eax, %dx
        popq    %rdx
        ret

// rx_notify / tx_notify: notify the receive / transmit queue. Clobbers RAX, RDX.
rx_notify:
        xorl    %eax, %eax
        jmp     1f
tx_notify:
        movl    $TXQ, %eax
1:      movl    V_IOBASE(%rbp), %edx
        addl    $VL_QUEUE_NOTIFY, %edx
        outw    %ax, %dx
        ret

// tx_send: send the ECX-byte frame at TX_FRAME (behind the zero header at
// TX_HDR) and wait until the device has used it, so TX_FRAME may be
// rebuilt. Clobbers RAX, RCX, RDX, RSI, RDI, R8. (Its deadline is its
// own: sending an ARP reply does not restart wait_frame's.)
tx_send:
        movq    V_TX_DESC(%rbp), %rdi
        movl    %ecx, 24(%rdi)          // descriptor 1's length
        movq    V_TX_AVAIL(%rbp), %rsi
        movl    V_TX_AVAIL_IDX(%rbp), %r8d
        movl    %r8d, %edx
        andl    V_TXQ_MASK(%rbp), %edx
        movw    $0, 4(%rsi,%rdx,2)      // head: descriptor 0
        incl    %r8d
        movl    %r8d, V_TX_AVAIL_IDX(%rbp)
        movw    %r8w, 2(%rsi)           // x86 keeps the stores in order
        call    tx_notify
        movl    $WAIT_S, %eax
        leaq    V_DL_TX(%rbp), %rdi
        call    deadline_start
        movq    V_TX_USED(%rbp), %rsi
1:      movzwl  2(%rsi), %eax
        cmpw    %ax, %r8w
        je      2f
        leaq    V_DL_TX(%rbp), %rdi
        call    deadline_passed
        testl   %eax, %eax
        jz      1b
        leaq    msg_txstuck(%rip), %rsi
        jmp     fail_setup
2:      ret

// rx_next: the next used receive buffer, if any: EAX = 1 with RBX = the
// frame, R13D = its length (0 when the device returned it empty or short),
// R14D = its head descriptor (give it back with rx_recycle); else EAX = 0.
// Clobbers RCX, RDX, RSI.
rx_next:
        movq    V_RX_USED(%rbp), %rsi
        movl    V_RX_USED_LAST(%rbp), %ecx
        movzwl  2(%rsi), %eax
        cmpw    %ax, %cx
        jne     1f
        xorl    %eax, %eax
        ret
1:      movl    %ecx, %edx
        andl    V_RXQ_MASK(%rbp), %edx
        movl    4(%rsi,%rdx,8), %r14d   // used.ring[i].id
        movl    8(%rsi,%rdx,8), %r13d   // used.ring[i].len
        incl    %ecx
        movl    %ecx, V_RX_USED_LAST(%rbp)
        cmpl    $(2 * NRX), %r14d
        jae     3f
        testl   $1, %r14d
        jnz     3f
        cmpl    $(VNET_HDR_LEN + RXBUF_SIZE), %r13d
        ja      4f
        subl    $VNET_HDR_LEN, %r13d
        jae     2f
        xorl    %r13d, %r13d
2:      movl    %r14d, %ebx
        shll    $10, %ebx               // (id / 2) * RXBUF_SIZE
        addl    $RX_BUFS, %ebx
        movl    $1, %eax
        ret
3:      leaq    msg_badid(%rip), %rsi
        jmp     fail_setup
4:      leaq    msg_badlen(%rip), %rsi
        jmp     fail_setup

// rx_recycle: post the chain headed by R14D again and notify. Clobbers
// RAX, RDX, RSI.
rx_recycle:
        movq    V_RX_AVAIL(%rbp), %rsi
        movl    V_RX_AVAIL_IDX(%rbp), %eax
        movl    %eax, %edx
        andl    V_RXQ_MASK(%rbp), %edx
        movw    %r14w, 4(%rsi,%rdx,2)
        incl    %eax
        movl    %eax, V_RX_AVAIL_IDX(%rbp)
        movw    %ax, 2(%rsi)
        jmp     rx_notify

// wait_frame: hand every received frame to the matcher at R12 (RBX =
// frame, R13D = length; it returns EAX = 1 to stop waiting; it may clobber
// RAX, RCX, RDX, RSI, RDI, R8-R11) after answering ARP requests for our
// address, until the matcher says so (EAX = 1) or WAIT_S RTC seconds pass
// (EAX = 0). Clobbers RBX, R13-R15 and what the matcher clobbers.
wait_frame:
        movl    $WAIT_S, %eax
        leaq    V_DL_WAIT(%rbp), %rdi
        call    deadline_start
1:      call    rx_next
        testl   %eax, %eax
        jz      2f
        call    arp_responder
        call    *%r12
        movl    %eax, %r15d
        call    rx_recycle
        testl   %r15d, %r15d
        jz      1b
        movl    $1, %eax
        ret
2:      leaq    V_DL_WAIT(%rbp), %rdi
        call    deadline_passed
        testl   %eax, %eax
        jz      1b
        xorl    %eax, %eax
        ret

// ---------------------------------------------------------------------------
// Time: the RTC's seconds register, read every 64th poll.

// deadline_start: start the deadline at RDI, allowing EAX changes of the
// RTC seconds (EAX-1 .. EAX s). Clobbers RAX.
deadline_start:
        movl    %eax, DL_LIMIT(%rdi)
        movl    $0, DL_CHANGES(%rdi)
        movl    $0, DL_ITER(%rdi)
        call    rtc_seconds
        movl    %eax, DL_LAST(%rdi)
        ret

// deadline_passed: EAX = 1 once the deadline at RDI has passed, else 0.
deadline_passed:
        incl    DL_ITER(%rdi)
        testl   $63, DL_ITER(%rdi)
        jnz     1f
        call    rtc_seconds
        cmpl    %eax, DL_LAST(%rdi)
        je      1f
        movl    %eax, DL_LAST(%rdi)
        incl    DL_CHANGES(%rdi)
1:      movl    DL_CHANGES(%rdi), %eax
        cmpl    DL_LIMIT(%rdi), %eax
        setae   %al
        movzbl  %al, %eax
        ret

// rtc_seconds: EAX = the RTC's seconds register (only compared for change;
// a read during an update cycle can at worst count one change early).
rtc_seconds:
        xorl    %eax, %eax
        outb    %al, $RTC_INDEX
        inb     $RTC_DATA, %al
        movzbl  %al, %eax
        ret

// ---------------------------------------------------------------------------
// Frames we send (built at TX_FRAME; each returns ECX = the frame length).

// csum16: the Internet checksum of the ECX bytes (even, non-zero) at RSI,
// as a 16-bit value to store as is (one's complement sums do not care for
// byte order). Over a header that includes its checksum, 0 means valid.
// Clobbers RCX, RDX, RSI.
csum16:
        xorl    %eax, %eax
1:      movzwl  (%rsi), %edx
        addl    %edx, %eax
        addq    $2, %rsi
        subl    $2, %ecx
        jnz     1b
        movl    %eax, %edx
        shrl    $16, %edx
        andl    $0xFFFF, %eax
        addl    %edx, %eax
        movl    %eax, %edx
        shrl    $16, %edx
        addl    %edx, %eax
        notl    %eax
        movzwl  %ax, %eax
        ret

// build_dhcp: a DHCP message of type AL (DHCPDISCOVER, or DHCPREQUEST for
// V_OFFER_IP from V_SERVER), from 0.0.0.0:68 to 255.255.255.255:67,
// broadcast flag set. Clobbers RAX, RCX, RDX, RSI, RDI, R8.
build_dhcp:
        movzbl  %al, %r8d
        movl    $TX_FRAME, %edi
        xorl    %eax, %eax
        movl    $((DHCP_FRAME_LEN + 7) / 8), %ecx
        rep stosq
        movl    $TX_FRAME, %edi
        movl    $0xFFFFFFFF, ETH_DST(%rdi)
        movw    $0xFFFF, ETH_DST+4(%rdi)
        COPY6   ETH_SRC(%rdi), V_MAC(%rbp)
        movw    $BE16(ETH_P_IP), ETH_TYPE(%rdi)
        movb    $0x45, IP_VIHL(%rdi)
        movw    $BE16(20 + 8 + DHCP_MSG_LEN), IP_LEN(%rdi)
        movb    $64, IP_TTL(%rdi)
        movb    $IPPROTO_UDP, IP_PROTO(%rdi)
        movl    $0xFFFFFFFF, IP_DST(%rdi)
        leaq    IP(%rdi), %rsi
        movl    $20, %ecx
        call    csum16
        movw    %ax, IP_CSUM(%rdi)
        movw    $BE16(68), UDP_SPORT(%rdi)
        movw    $BE16(67), UDP_DPORT(%rdi)
        movw    $BE16(8 + DHCP_MSG_LEN), UDP_LEN(%rdi)
        // UDP checksum 0: none (allowed over IPv4).
        movl    $0x00060101, DHCP_OP(%rdi)      // BOOTREQUEST, Ethernet, 6, 0 hops
        movl    V_XID(%rbp), %eax
        movl    %eax, DHCP_XID(%rdi)
        movw    $BE16(0x8000), DHCP_FLAGS(%rdi) // broadcast: we have no address yet
        COPY6   DHCP_CHADDR(%rdi), V_MAC(%rbp)
        movl    $DHCP_COOKIE, DHCP_COOKIE_AT(%rdi)
        leaq    DHCP_OPTIONS(%rdi), %rsi
        movb    $53, (%rsi)                     // message type
        movb    $1, 1(%rsi)
        movb    %r8b, 2(%rsi)
        addq    $3, %rsi
        cmpl    $DHCPREQUEST, %r8d
        jne     1f
        movb    $50, (%rsi)                     // requested address
        movb    $4, 1(%rsi)
        movl    V_OFFER_IP(%rbp), %eax
        movl    %eax, 2(%rsi)
        movb    $54, 6(%rsi)                    // server identifier
        movb    $4, 7(%rsi)
        movl    V_SERVER(%rbp), %eax
        movl    %eax, 8(%rsi)
        addq    $12, %rsi
1:      movb    $255, (%rsi)                    // end; zeros pad to DHCP_MSG_LEN
        movl    $DHCP_FRAME_LEN, %ecx
        ret

// build_arp: an ARP packet with operation R8W (wire order), Ethernet
// destination at RSI, target hardware address at RDX, target protocol
// address R11D; sender: our MAC and V_MYIP. Clobbers RAX, RCX, RDI.
build_arp:
        movl    $TX_FRAME, %edi
        xorl    %eax, %eax
        movl    $(ARP_FRAME_LEN / 4), %ecx
        rep stosl
        movl    $TX_FRAME, %edi
        COPY6   ETH_DST(%rdi), 0(%rsi)
        COPY6   ETH_SRC(%rdi), V_MAC(%rbp)
        movw    $BE16(ETH_P_ARP), ETH_TYPE(%rdi)
        movw    $BE16(1), ARP_HTYPE(%rdi)
        movw    $BE16(ETH_P_IP), ARP_PTYPE(%rdi)
        movw    $0x0406, ARP_HLEN(%rdi)         // hlen 6, plen 4
        movw    %r8w, ARP_OPER(%rdi)
        COPY6   ARP_SHA(%rdi), V_MAC(%rbp)
        movl    V_MYIP(%rbp), %eax
        movl    %eax, ARP_SPA(%rdi)
        COPY6   ARP_THA(%rdi), 0(%rdx)
        movl    %r11d, ARP_TPA(%rdi)
        movl    $ARP_FRAME_LEN, %ecx
        ret

// build_echo: ICMP echo request V_SEQ from V_MYIP to V_SERVER (at
// V_SRVMAC) carrying echo_data. Clobbers RAX, RCX, RDX, RSI, RDI.
build_echo:
        movl    $TX_FRAME, %edi
        COPY6   ETH_DST(%rdi), V_SRVMAC(%rbp)
        COPY6   ETH_SRC(%rdi), V_MAC(%rbp)
        movw    $BE16(ETH_P_IP), ETH_TYPE(%rdi)
        movw    $0x0045, IP_VIHL(%rdi)          // version 4, IHL 5, TOS 0
        movw    $BE16(ECHO_IP_LEN), IP_LEN(%rdi)
        movl    V_SEQ(%rbp), %eax
        xchgb   %al, %ah
        movw    %ax, IP+4(%rdi)                 // identification
        movw    $BE16(0x4000), IP_FRAG(%rdi)    // don't fragment
        movb    $64, IP_TTL(%rdi)
        movb    $IPPROTO_ICMP, IP_PROTO(%rdi)
        movw    $0, IP_CSUM(%rdi)
        movl    V_MYIP(%rbp), %eax
        movl    %eax, IP_SRC(%rdi)
        movl    V_SERVER(%rbp), %eax
        movl    %eax, IP_DST(%rdi)
        leaq    IP(%rdi), %rsi
        movl    $20, %ecx
        call    csum16
        movw    %ax, IP_CSUM(%rdi)
        movw    $ICMP_ECHO, ICMP_TYPE(%rdi)     // type, code 0
        movw    $0, ICMP_CSUM(%rdi)
        movw    $BE16(ICMP_ID), ICMP_IDENT(%rdi)
        movl    V_SEQ(%rbp), %eax
        xchgb   %al, %ah
        movw    %ax, ICMP_SEQ(%rdi)
        leaq    echo_data(%rip), %rsi
        xorl    %ecx, %ecx
1:      movq    (%rsi,%rcx), %rax
        movq    %rax, ICMP_DATA(%rdi,%rcx)
        addl    $8, %ecx
        cmpl    $ECHO_DATA_LEN, %ecx
        jb      1b
        leaq    L4(%rdi), %rsi
        movl    $(8 + ECHO_DATA_LEN), %ecx
        call    csum16
        movw    %ax, ICMP_CSUM(%rdi)
        movl    $ECHO_FRAME_LEN, %ecx
        ret

// ---------------------------------------------------------------------------
// Frames we receive: RBX = frame, R13D = length. Matchers return EAX = 1
// for the awaited answer; they and arp_responder keep RBX, RBP, R12-R15.

// match_dhcp: a BOOTREPLY to 0.0.0.0/68 for our xid and MAC with a
// DHCP message type of V_DHCP_WANT, or DHCPNAK; records the type in
// V_DHCP_GOT, yiaddr in V_GOT_YIADDR and the server identifier (0 if
// absent) in V_GOT_SERVER.
match_dhcp:
        cmpl    $DHCP_OPTIONS, %r13d
        jb      9f
        cmpw    $BE16(ETH_P_IP), ETH_TYPE(%rbx)
        jne     9f
        cmpb    $0x45, IP_VIHL(%rbx)
        jne     9f
        cmpb    $IPPROTO_UDP, IP_PROTO(%rbx)
        jne     9f
        cmpw    $BE16(68), UDP_DPORT(%rbx)
        jne     9f
        cmpb    $2, DHCP_OP(%rbx)               // BOOTREPLY
        jne     9f
        movl    V_XID(%rbp), %eax
        cmpl    %eax, DHCP_XID(%rbx)
        jne     9f
        movl    V_MAC(%rbp), %eax
        cmpl    %eax, DHCP_CHADDR(%rbx)
        jne     9f
        movw    V_MAC+4(%rbp), %ax
        cmpw    %ax, DHCP_CHADDR+4(%rbx)
        jne     9f
        cmpl    $DHCP_COOKIE, DHCP_COOKIE_AT(%rbx)
        jne     9f
        // Options, bounded by the frame: R8D = type, R9D = server identifier.
        leaq    DHCP_OPTIONS(%rbx), %rsi
        movl    %r13d, %edi
        addq    %rbx, %rdi
        xorl    %r8d, %r8d
        xorl    %r9d, %r9d
1:      cmpq    %rdi, %rsi
        jae     5f
        movzbl  (%rsi), %eax
        cmpl    $255, %eax                      // end
        je      5f
        testl   %eax, %eax                      // pad
        jnz     2f
        incq    %rsi
        jmp     1b
2:      leaq    2(%rsi), %rdx                   // the option's data
        cmpq    %rdi, %rdx
        ja      5f
        movzbl  1(%rsi), %ecx
        leaq    (%rdx,%rcx), %r10               // the next option
        cmpq    %rdi, %r10
        ja      5f
        cmpl    $53, %eax
        jne     3f
        cmpl    $1, %ecx
        jne     4f
        movzbl  (%rdx), %r8d
        jmp     4f
3:      cmpl    $54, %eax
        jne     4f
        cmpl    $4, %ecx
        jne     4f
        movl    (%rdx), %r9d
4:      movq    %r10, %rsi
        jmp     1b
5:      cmpl    V_DHCP_WANT(%rbp), %r8d
        je      6f
        cmpl    $DHCPNAK, %r8d
        jne     9f
6:      movl    %r8d, V_DHCP_GOT(%rbp)
        movl    DHCP_YIADDR(%rbx), %eax
        movl    %eax, V_GOT_YIADDR(%rbp)
        movl    %r9d, V_GOT_SERVER(%rbp)
        movl    $1, %eax
        ret
9:      xorl    %eax, %eax
        ret

// match_arp_reply: an ARP reply from V_SERVER; records its MAC in V_SRVMAC.
match_arp_reply:
        cmpl    $(ARP + 28), %r13d
        jb      9f
        cmpw    $BE16(ETH_P_ARP), ETH_TYPE(%rbx)
        jne     9f
        cmpw    $BE16(ETH_P_IP), ARP_PTYPE(%rbx)
        jne     9f
        cmpw    $0x0406, ARP_HLEN(%rbx)
        jne     9f
        cmpw    $BE16(ARP_REPLY), ARP_OPER(%rbx)
        jne     9f
        movl    V_SERVER(%rbp), %eax
        cmpl    %eax, ARP_SPA(%rbx)
        jne     9f
        COPY6   V_SRVMAC(%rbp), ARP_SHA(%rbx)
        movl    $1, %eax
        ret
9:      xorl    %eax, %eax
        ret

// match_echo_reply: an ICMP echo reply from V_SERVER to V_MYIP with our
// identifier, sequence number V_SEQ and data, both checksums valid.
match_echo_reply:
        cmpl    $ECHO_FRAME_LEN, %r13d
        jb      9f
        cmpw    $BE16(ETH_P_IP), ETH_TYPE(%rbx)
        jne     9f
        cmpb    $0x45, IP_VIHL(%rbx)
        jne     9f
        cmpw    $BE16(ECHO_IP_LEN), IP_LEN(%rbx)
        jne     9f
        cmpb    $IPPROTO_ICMP, IP_PROTO(%rbx)
        jne     9f
        movl    V_SERVER(%rbp), %eax
        cmpl    %eax, IP_SRC(%rbx)
        jne     9f
        movl    V_MYIP(%rbp), %eax
        cmpl    %eax, IP_DST(%rbx)
        jne     9f
        cmpw    $ICMP_ECHO_REPLY, ICMP_TYPE(%rbx)       // type, code 0
        jne     9f
        cmpw    $BE16(ICMP_ID), ICMP_IDENT(%rbx)
        jne     9f
        movl    V_SEQ(%rbp), %eax
        xchgb   %al, %ah
        cmpw    %ax, ICMP_SEQ(%rbx)
        jne     9f
        leaq    echo_data(%rip), %rsi
        xorl    %ecx, %ecx
1:      movq    (%rsi,%rcx), %rax
        cmpq    %rax, ICMP_DATA(%rbx,%rcx)
        jne     9f
        addl    $8, %ecx
        cmpl    $ECHO_DATA_LEN, %ecx
        jb      1b
        leaq    IP(%rbx), %rsi
        movl    $20, %ecx
        call    csum16
        testl   %eax, %eax
        jnz     9f
        leaq    L4(%rbx), %rsi
        movl    $(8 + ECHO_DATA_LEN), %ecx
        call    csum16
        testl   %eax, %eax
        jnz     9f
        movl    $1, %eax
        ret
9:      xorl    %eax, %eax
        ret

// arp_responder: once we have an address, answer an ARP request for it
// (the server needs our MAC to reply to the echo request, unless it learnt
// it from our own request). Clobbers RAX, RCX, RDX, RSI, RDI, R8, R11.
arp_responder:
        movl    V_MYIP(%rbp), %eax
        testl   %eax, %eax
        jz      9f
        cmpl    $(ARP + 28), %r13d
        jb      9f
        cmpw    $BE16(ETH_P_ARP), ETH_TYPE(%rbx)
        jne     9f
        cmpw    $BE16(ETH_P_IP), ARP_PTYPE(%rbx)
        jne     9f
        cmpw    $BE16(ARP_REQUEST), ARP_OPER(%rbx)
        jne     9f
        cmpl    %eax, ARP_TPA(%rbx)
        jne     9f
        movw    $BE16(ARP_REPLY), %r8w
        leaq    ARP_SHA(%rbx), %rsi
        leaq    ARP_SHA(%rbx), %rdx
        movl    ARP_SPA(%rbx), %r11d
        call    build_arp
        call    tx_send
        leaq    msg_answered(%rip), %rsi
        call    puts64
        movl    ARP_SPA(%rbx), %eax
        call    putip
        jmp     putcrlf
9:      ret

// ---------------------------------------------------------------------------
// Printing (boot64.S's putc64/puts64/putdec64, plus these).

// putcrlf: end a line. Clobbers RSI, AL.
putcrlf:
        leaq    msg_crlf(%rip), %rsi
        jmp     puts64

// puthex8: AL as two lower-case hex digits. Clobbers RAX.
puthex8:
        pushq   %rax
        shrb    $4, %al
        call    1f
        popq    %rax
        andb    $0xF, %al
1:      cmpb    $10, %al
        jb      2f
        addb    $('a' - 10 - '0'), %al
2:      addb    $'0', %al
        jmp     putc64

// putmac: the 6 bytes at RSI as aa:bb:cc:dd:ee:ff. Clobbers RAX, RCX, RSI.
putmac:
        movl    $6, %ecx
1:      movb    (%rsi), %al
        call    puthex8
        incq    %rsi
        decl    %ecx
        jz      2f
        movb    $':', %al
        call    putc64
        jmp     1b
2:      ret

// putip: EAX (an IPv4 address in wire byte order) as a.b.c.d. Clobbers
// RAX, RCX, RDX.
putip:
        pushq   %rbx
        pushq   %r8
        movl    %eax, %ebx
        movl    $4, %r8d
1:      movzbl  %bl, %eax
        call    putdec64
        shrl    $8, %ebx
        decl    %r8d
        jz      2f
        movb    $'.', %al
        call    putc64
        jmp     1b
2:      popq    %r8
        popq    %rbx
        ret

// ---------------------------------------------------------------------------
        .section .rodata
        .balign 8
echo_data:      .ascii  "propolis-ts netping echo payload"
echo_data_end:
        .if     echo_data_end - echo_data != ECHO_DATA_LEN
        .error  "echo_data must be ECHO_DATA_LEN bytes"
        .endif
mac_broadcast:  .byte   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
mac_zero:       .byte   0, 0, 0, 0, 0, 0

msg_crlf:       .asciz  "\r\n"
msg_dev:        .asciz  "netping: virtio-net 00:"
msg_fn0mac:     .asciz  ".0 mac "
msg_rxq:        .asciz  " rx queue "
msg_txq:        .asciz  " tx queue "
msg_offer:      .asciz  "netping: DHCPOFFER "
msg_fromserver: .asciz  " from server "
msg_ack:        .asciz  "netping: DHCPACK "
msg_arp:        .asciz  "netping: ARP "
msg_isat:       .asciz  " is at "
msg_echo:       .asciz  "netping: ICMP echo reply from "
msg_seq:        .asciz  " seq "
msg_answered:   .asciz  "netping: answered ARP from "
msg_ok:         .asciz  "netping: ok\r\n"
msg_retry:      .asciz  "netping: no answer to "
msg_try:        .asciz  ", try "
msg_fail:       .asciz  "netping: FAIL: "
msg_noanswer:   .asciz  "no answer to "
msg_aftertries: .ascii  " after "
                .ascii  XSTR(TRIES)
                .asciz  " tries\r\n"
what_discover:  .asciz  "DHCPDISCOVER"
what_request:   .asciz  "DHCPREQUEST"
what_arp:       .asciz  "ARP request"
what_echo:      .asciz  "ICMP echo request"
msg_nodev:      .asciz  "no virtio-net (1af4:1000) on PCI bus 0"
msg_nobar:      .asciz  "BAR0 did not take the I/O base"
msg_nomac:      .asciz  "the device does not offer VIRTIO_NET_F_MAC"
msg_qsize:      .asciz  "queue size is not a power of two from 2 to 4096"
msg_rxsmall:    .asciz  "receive queue is smaller than 32 entries"
msg_txstuck:    .asciz  "the device did not use a transmitted frame"
msg_badid:      .asciz  "used ring names a descriptor that heads no receive buffer"
msg_badlen:     .asciz  "used ring length exceeds the receive buffer"
msg_nak:        .asciz  "DHCPNAK"
msg_noserverid: .asciz  "DHCPOFFER without a server identifier"
msg_ackother:   .asciz  "DHCPACK for another address than offered"
