// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// virtio-net names and numbers (virtio 1.2 §5.1): feature bits, the
// device configuration layout, the per-packet header and the control
// queue's classes, commands and acks — plus the layout of the words the
// instances of one virtio-net device share (net.ts), which the RX poller
// worker (net-rx-poller.ts) reads too and so lives here, away from the
// device module.
//
// Threading: constants and pure functions only.

/** Feature bit numbers (spec §5.1.3). */
export const VIRTIO_NET_F = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  GUEST_TSO6: 8,
  GUEST_ECN: 9,
  GUEST_UFO: 10,
  HOST_TSO4: 11,
  HOST_TSO6: 12,
  HOST_ECN: 13,
  HOST_UFO: 14,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
} as const;

/** struct virtio_net_config (spec §5.1.4), as far as this device exposes it. */
export const NET_CFG = {
  MAC: 0x00,
  STATUS: 0x06,
  MAX_VIRTQUEUE_PAIRS: 0x08,
  MTU: 0x0a,
  SIZE: 0x0c,
} as const;

export const VIRTIO_NET_S_LINK_UP = 1;
export const ETH_ALEN = 6;

/** struct virtio_net_hdr (spec §5.1.6): field offsets and the two sizes. */
export const VNET_HDR = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
  /** Only in the 12-byte header (VERSION_1 or MRG_RXBUF). */
  NUM_BUFFERS: 10,
  /** Legacy without MRG_RXBUF. */
  LEN_LEGACY: 10,
  /** VERSION_1 or MRG_RXBUF. */
  LEN: 12,
} as const;

export const VIRTIO_NET_HDR_F = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;

export const VIRTIO_NET_HDR_GSO = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, ECN: 0x80 } as const;

/** Control queue classes and commands (spec §5.1.6.5). */
export const VIRTIO_NET_CTRL = {
  RX: 0,
  MAC: 1,
  VLAN: 2,
  ANNOUNCE: 3,
  MQ: 4,
  GUEST_OFFLOADS: 5,
} as const;

export const VIRTIO_NET_CTRL_RX = {
  PROMISC: 0,
  ALLMULTI: 1,
  ALLUNI: 2,
  NOMULTI: 3,
  NOUNI: 4,
  NOBCAST: 5,
} as const;

export const VIRTIO_NET_CTRL_MAC = { TABLE_SET: 0, ADDR_SET: 1 } as const;
export const VIRTIO_NET_CTRL_MQ = { VQ_PAIRS_SET: 0 } as const;

export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;

/**
 * The largest Ethernet frame a tap hands over or takes with segmentation
 * offloads: a 64 KiB IP packet plus an Ethernet and a VLAN header (the
 * same bound as dladm's MAX_GSO_FRAME, restated so this file imports
 * nothing). Frames are bounded by this, not counting the vnet header.
 */
export const MAX_FRAME = 65535 + 14 + 4;

/**
 * Words shared by every instance of one virtio-net device (an Int32Array
 * over a SharedArrayBuffer). Which lock guards which word is said per
 * word; "RX lock" is the receive queue's SplitQueue lock.
 */
export const NW = {
  /** SharedMutex word guarding CONFIGURED and the tap configuration calls. */
  CFG_LOCK: 0,
  /** The tap's header size and offloads follow the negotiated features (cleared by reset). */
  CONFIGURED: 1,
  /** Negotiated vnet header size (10 or 12), valid while CONFIGURED. */
  HDR_LEN: 2,
  /** Low 32 bits of the negotiated features, valid while CONFIGURED. */
  FEATURES_LO: 3,
  /** 1 if VERSION_1 was negotiated, valid while CONFIGURED. */
  VERSION_1: 4,
  /** Someone should wait for the tap to become readable (see net.ts, "RX and who waits"). */
  ARMED: 5,
  /** The RX poller saw the tap readable; the main thread's instance runs an RX pass. */
  READY: 6,
  /** RX loops and the poller exit. */
  STOP: 7,
  /** Lifecycle pause: RX passes do nothing. */
  PAUSED: 8,
  /** The tap reported an error or hang-up: it is gone. */
  GONE: 9,
  /** RX lock: bytes in the hold buffer (vnet header included); 0 = no frame held. */
  HOLD_LEN: 10,
  /** RX lock: bytes of the held frame already copied into held chains (MRG_RXBUF). */
  HOLD_DONE: 11,
  /** RX lock: chains popped for the held frame and not yet returned (MRG_RXBUF). */
  HOLD_CHAINS: 12,
  /** Control queue lock: queue pairs the driver asked for (VQ_PAIRS_SET). */
  ACTIVE_PAIRS: 13,
  WORDS: 16,
} as const;

/** Counters (a Float64Array), each written only under the lock of the queue it counts for. */
export const NS = {
  TX_FRAMES: 0,
  TX_BYTES: 1,
  /** TX chains with a device-writable descriptor, or without a whole header. */
  TX_BAD_CHAIN: 2,
  /** TX frames longer than MAX_FRAME. */
  TX_TOO_LONG: 3,
  /** TX buffers outside guest RAM. */
  TX_FAULT: 4,
  /** The tap refused a frame (bad GSO header, congestion): -errno from write. */
  TX_TAP_ERRORS: 5,
  RX_FRAMES: 6,
  RX_BYTES: 7,
  /** RX chains that cannot take a frame (device-readable parts, smaller than the header, outside RAM). */
  RX_BAD_CHAIN: 8,
  /** RX frames dropped: too large for a chain without MRG_RXBUF, or for the whole ring. */
  RX_TOO_BIG: 9,
  /** RX frames dropped: offload flags the driver did not negotiate. */
  RX_OFFLOAD_DROPS: 10,
  /** RX frames dropped by a device reset or a pause that released their chains. */
  RX_FLUSHED: 11,
  /** Reads from the tap that failed (-errno). */
  RX_TAP_ERRORS: 12,
  /** RX passes that stopped because the driver had posted no (more) buffers. */
  RX_STARVED: 13,
  CTRL_OK: 14,
  CTRL_ERR: 15,
  /** Control chains with no device-writable byte for the ack. */
  CTRL_NO_ACK: 16,
  /** Tap configuration calls (header size, offloads) that failed. */
  TAP_CONFIG_ERRORS: 17,
  COUNT: 18,
} as const;

/** The names `stats` reports the counters under, in NS order. */
export const NS_NAMES = [
  'txFrames',
  'txBytes',
  'txBadChain',
  'txTooLong',
  'txFault',
  'txTapErrors',
  'rxFrames',
  'rxBytes',
  'rxBadChain',
  'rxTooBig',
  'rxOffloadDrops',
  'rxFlushed',
  'rxTapErrors',
  'rxStarved',
  'ctrlOk',
  'ctrlErr',
  'ctrlNoAck',
  'tapConfigErrors',
] as const;

export type VirtioNetStats = Record<(typeof NS_NAMES)[number], number>;

/** How long a blocking RX wait lasts before it looks at the stop word again. */
export const RX_WAIT_SLICE_MS = 100;
