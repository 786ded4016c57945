// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Hand-built Ethernet frames for tests: what a guest's NIC driver would put
// on the wire (ARP, ICMP echo, a DHCP discover) and parsers for the
// kernel's answers. Enough of each protocol to prove traffic crosses a tap;
// not a network stack.
//
// Threading: pure functions over byte arrays, plus `awaitFrame`, which polls
// a tap on the calling thread in short slices and yields to the event loop
// between them (so child processes' output keeps flowing during a test).

import { setTimeout as sleep } from 'node:timers/promises';

import type { Tap } from '../tap.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_UDP = 17;
export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export function ipv4(s: string): Uint8Array {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${s}`);
  }
  return Uint8Array.from(parts);
}

export function formatIpv4(b: Uint8Array): string {
  return Array.from(b.subarray(0, 4)).join('.');
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The Internet checksum (RFC 1071) of `b`. */
export function inetChecksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += ((b[i] as number) << 8) | (b[i + 1] as number);
  if (b.length % 2 === 1) sum += (b[b.length - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: Uint8Array, src: Uint8Array, ethertype: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(14);
  h.set(dst, 0);
  h.set(src, 6);
  new DataView(h.buffer).setUint16(12, ethertype);
  return cat(h, payload);
}

export interface EthFrame {
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
  readonly ethertype: number;
  readonly payload: Uint8Array;
}

export function parseEthernet(f: Uint8Array): EthFrame | undefined {
  if (f.length < 14) return undefined;
  return {
    dst: f.subarray(0, 6),
    src: f.subarray(6, 12),
    ethertype: (f[12]! << 8) | f[13]!,
    payload: f.subarray(14),
  };
}

/** A broadcast ARP request: who has `targetIp`? tell `srcIp` at `srcMac`. */
export function arpRequest(srcMac: Uint8Array, srcIp: string, targetIp: string): Uint8Array {
  const a = new Uint8Array(28);
  const v = new DataView(a.buffer);
  v.setUint16(0, 1); // htype Ethernet
  v.setUint16(2, ETH_P_IP);
  a[4] = 6;
  a[5] = 4;
  v.setUint16(6, 1); // request
  a.set(srcMac, 8);
  a.set(ipv4(srcIp), 14);
  a.set(ipv4(targetIp), 24); // target MAC left zero
  return ethernet(BROADCAST_MAC, srcMac, ETH_P_ARP, a);
}

export interface Arp {
  readonly op: number;
  readonly senderMac: Uint8Array;
  readonly senderIp: string;
  readonly targetMac: Uint8Array;
  readonly targetIp: string;
}

export function parseArp(p: Uint8Array): Arp | undefined {
  if (p.length < 28) return undefined;
  return {
    op: (p[6]! << 8) | p[7]!,
    senderMac: p.subarray(8, 14),
    senderIp: formatIpv4(p.subarray(14, 18)),
    targetMac: p.subarray(18, 24),
    targetIp: formatIpv4(p.subarray(24, 28)),
  };
}

/** An IPv4 packet (no options, DF clear) with its header checksum. */
export function ipv4Packet(src: string, dst: string, protocol: number, payload: Uint8Array, ttl = 64): Uint8Array {
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  h[0] = 0x45;
  v.setUint16(2, 20 + payload.length);
  v.setUint16(4, 0x1234); // identification
  h[8] = ttl;
  h[9] = protocol;
  h.set(ipv4(src), 12);
  h.set(ipv4(dst), 16);
  v.setUint16(10, inetChecksum(h));
  return cat(h, payload);
}

export interface Ipv4 {
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly payload: Uint8Array;
  readonly headerChecksumOk: boolean;
}

export function parseIpv4(p: Uint8Array): Ipv4 | undefined {
  if (p.length < 20 || p[0]! >> 4 !== 4) return undefined;
  const ihl = (p[0]! & 0xf) * 4;
  const total = (p[2]! << 8) | p[3]!;
  if (ihl < 20 || total < ihl || total > p.length) return undefined;
  return {
    src: formatIpv4(p.subarray(12, 16)),
    dst: formatIpv4(p.subarray(16, 20)),
    protocol: p[9]!,
    payload: p.subarray(ihl, total),
    headerChecksumOk: inetChecksum(p.subarray(0, ihl)) === 0,
  };
}

/** ICMP echo request (type 8) with its checksum. */
export function icmpEchoRequest(id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const v = new DataView(m.buffer);
  m[0] = 8;
  v.setUint16(4, id);
  v.setUint16(6, seq);
  m.set(data, 8);
  v.setUint16(2, inetChecksum(m));
  return m;
}

export interface IcmpEcho {
  readonly type: number;
  readonly id: number;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly checksumOk: boolean;
}

export function parseIcmpEcho(m: Uint8Array): IcmpEcho | undefined {
  if (m.length < 8) return undefined;
  return {
    type: m[0]!,
    id: (m[4]! << 8) | m[5]!,
    seq: (m[6]! << 8) | m[7]!,
    data: m.subarray(8),
    checksumOk: inetChecksum(m) === 0,
  };
}

/** UDP datagram with checksum 0 (none), which IPv4 allows. */
export function udp(srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(8);
  const v = new DataView(h.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, 8 + payload.length);
  return cat(h, payload);
}

export interface Udp {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly checksum: number;
  readonly payload: Uint8Array;
}

export function parseUdp(p: Uint8Array): Udp | undefined {
  if (p.length < 8) return undefined;
  const len = (p[4]! << 8) | p[5]!;
  if (len < 8 || len > p.length) return undefined;
  return {
    srcPort: (p[0]! << 8) | p[1]!,
    dstPort: (p[2]! << 8) | p[3]!,
    checksum: (p[6]! << 8) | p[7]!,
    payload: p.subarray(8, len),
  };
}

const DHCP_MAGIC = [99, 130, 83, 99];
export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;

/**
 * A DHCPDISCOVER from `mac`, broadcast, with the BROADCAST flag set so the
 * server answers by broadcast (a client without an address cannot take a
 * unicast reply before it has configured one).
 */
export function dhcpDiscover(mac: Uint8Array, xid: number): Uint8Array {
  const b = new Uint8Array(240);
  const v = new DataView(b.buffer);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // Ethernet
  b[2] = 6;
  v.setUint32(4, xid);
  v.setUint16(10, 0x8000); // flags: BROADCAST
  b.set(mac, 28);
  b.set(DHCP_MAGIC, 236);
  const options = Uint8Array.from([53, 1, DHCPDISCOVER, 55, 3, 1, 3, 51, 255]);
  const bootp = cat(b, options);
  const datagram = udp(68, 67, bootp);
  return ethernet(BROADCAST_MAC, mac, ETH_P_IP, ipv4Packet('0.0.0.0', '255.255.255.255', IPPROTO_UDP, datagram));
}

export interface Dhcp {
  readonly op: number;
  readonly xid: number;
  readonly yiaddr: string;
  readonly chaddr: Uint8Array;
  /** Option code → value bytes. */
  readonly options: Map<number, Uint8Array>;
}

export function parseDhcp(p: Uint8Array): Dhcp | undefined {
  if (p.length < 240 || DHCP_MAGIC.some((x, i) => p[236 + i] !== x)) return undefined;
  const options = new Map<number, Uint8Array>();
  for (let i = 240; i < p.length;) {
    const code = p[i]!;
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    const len = p[i + 1];
    if (len === undefined || i + 2 + len > p.length) break;
    options.set(code, p.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return {
    op: p[0]!,
    xid: new DataView(p.buffer, p.byteOffset).getUint32(4),
    yiaddr: formatIpv4(p.subarray(16, 20)),
    chaddr: p.subarray(28, 34),
    options,
  };
}

/** The frame with a zeroed vnet header of `hdrLen` bytes in front: a frame with no offload requests. */
export function withVnetHdr(hdrLen: number, frame: Uint8Array): Uint8Array {
  return cat(new Uint8Array(hdrLen), frame);
}

export interface Received {
  /** The vnet header as the tap wrote it (the buffer's bytes there, for any the tap skips). */
  readonly hdr: Uint8Array;
  readonly frame: Uint8Array;
}

/**
 * Read frames from `tap` until one satisfies `match` (which sees the frame
 * without its vnet header), or fail after `timeoutMs`. Other frames (IPv6
 * router solicitations and the like) are skipped. `fill` pre-fills the
 * buffer, to see which header bytes the tap leaves alone.
 */
export async function awaitFrame(
  tap: Tap,
  match: (frame: Uint8Array, hdr: Uint8Array) => boolean,
  timeoutMs = 3000,
  fill = 0,
): Promise<Received> {
  const buf = new Uint8Array(tap.vnetHdrLen + 65550);
  const deadline = Date.now() + timeoutMs;
  const seen: string[] = [];
  for (;;) {
    buf.fill(fill, 0, tap.vnetHdrLen);
    const n = tap.recv(buf);
    if (n < 0) throw new Error(`reading ${tap.name} failed: errno ${-n}`);
    if (n > 0) {
      const hdr = buf.slice(0, tap.vnetHdrLen);
      const frame = buf.slice(tap.vnetHdrLen, n);
      if (match(frame, hdr)) return { hdr, frame };
      const e = parseEthernet(frame);
      seen.push(e === undefined ? `${frame.length} bytes` : `ethertype 0x${e.ethertype.toString(16)}`);
      continue;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(`no matching frame on ${tap.name} within ${timeoutMs} ms (saw: ${seen.join(', ') || 'nothing'})`);
    }
    tap.waitReadable(Math.min(left, 20));
    await sleep(0);
  }
}
