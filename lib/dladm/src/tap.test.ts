// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Tap devices against the real kernel, inside throw-away namespaces: frames
// written into the fd reach the namespace's stack and its answers come back
// (ARP, ICMP echo), link facts agree with `ip link show`, vnet header sizes
// and offloads take effect (a UDP datagram arrives with a partial checksum
// only when checksum offload is on), attach/create/persist/multi-queue
// semantics, a worker thread reading like a virtio-net RX thread, and a
// deleted device reported as gone.
//
// Needs root and /dev/net/tun; fails (does not skip) without them.
//
// Threading: main thread, plus one worker in the worker test.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { close, EFD_CLOEXEC, eventfd, eventfdSignal } from '../../kvm/src/libc.js';
import { LinkExistsError, LinkNotFoundError, LinkSyscallError, LinkOptionError } from './errors.js';
import { createTap, deleteLink, setMtu, showLink } from './link.js';
import { formatMac, parseMac } from './names.js';
import { listNetns, NetNs } from './netns.js';
import { queryLink } from './query.js';
import { Tap, TapReady, tunOffloadFlags } from './tap.js';
import {
  arpRequest,
  awaitFrame,
  ETH_P_ARP,
  ETH_P_IP,
  ethernet,
  icmpEchoRequest,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  ipv4Packet,
  parseArp,
  parseEthernet,
  parseIcmpEcho,
  parseIpv4,
  parseUdp,
  inetChecksum,
  ipv4,
  withVnetHdr,
} from './testing/frames.js';
import { requireNetAdmin } from './testing/preflight.js';
import {
  EBUSY,
  EINVAL,
  IFF_MULTI_QUEUE,
  IFF_NO_PI,
  IFF_PERSIST,
  IFF_TAP,
  IFF_VNET_HDR,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
} from './uapi.js';

// The test's own numbers (so a wrong constant in the code cannot hide).
const HOST_IP = '10.200.0.1';
const GUEST_IP = '10.200.0.2';
const GUEST_MAC = parseMac('02:00:5e:00:00:02');
const ETH_IP_HDRS = 14 + 20;
const UDP_CSUM_FIELD = 6;

const nsList: NetNs[] = [];

function freshNs(): NetNs {
  const ns = NetNs.create();
  nsList.push(ns);
  return ns;
}

/** A tap in a fresh namespace with HOST_IP on it, up. */
function hostTap(opts: { vnetHdrLen?: 10 | 12; name?: string } = {}): { ns: NetNs; tap: Tap } {
  const ns = freshNs();
  const tap = Tap.open({ name: opts.name ?? 'vm0', mode: 'create', netns: ns.name, vnetHdrLen: opts.vnetHdrLen });
  ns.addAddress(tap.name, `${HOST_IP}/24`);
  ns.setUp(tap.name);
  return { ns, tap };
}

/** UDP source of the test: bash's /dev/udp inside the namespace. */
function sendUdpFromNs(ns: NetNs, dstIp: string, port: number, text: string): void {
  ns.exec('bash', ['-c', `printf %s "$1" > /dev/udp/${dstIp}/${port}`, 'send', text]);
}

describe('tap devices', () => {
  before(requireNetAdmin);
  after(() => {
    for (const ns of nsList) ns.destroy();
    const mine = listNetns().filter((n) => n.includes(`-${process.pid}-`));
    assert.deepEqual(mine, [], 'namespaces left behind');
  });

  test('frames written into the fd reach the stack: ARP and ICMP echo get answers', async () => {
    const { tap } = hostTap();
    try {
      assert.equal(tap.vnetHdrLen, 12);
      const hostMac = parseMac(tap.info().mac!);

      const arp = withVnetHdr(12, arpRequest(GUEST_MAC, GUEST_IP, HOST_IP));
      assert.equal(tap.send(arp), arp.length);
      const reply = await awaitFrame(tap, (f) => {
        const e = parseEthernet(f);
        return e?.ethertype === ETH_P_ARP && parseArp(e.payload)?.op === 2;
      });
      const a = parseArp(parseEthernet(reply.frame)!.payload)!;
      assert.equal(a.senderIp, HOST_IP);
      assert.deepEqual(a.senderMac, hostMac);
      assert.equal(a.targetIp, GUEST_IP);
      assert.deepEqual(a.targetMac, GUEST_MAC);
      assert.deepEqual(reply.hdr.subarray(0, 10), new Uint8Array(10), 'no offload flags on a plain frame');

      const data = new TextEncoder().encode('propolis-ts echo');
      const ping = ethernet(
        hostMac,
        GUEST_MAC,
        ETH_P_IP,
        ipv4Packet(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEchoRequest(0x4242, 7, data)),
      );
      assert.equal(tap.send(withVnetHdr(12, ping)), 12 + ping.length);
      const pong = await awaitFrame(tap, (f) => {
        const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
        return ip?.protocol === IPPROTO_ICMP && parseIcmpEcho(ip.payload)?.type === 0;
      });
      const e = parseEthernet(pong.frame)!;
      assert.deepEqual(e.dst, GUEST_MAC);
      const ip = parseIpv4(e.payload)!;
      assert.ok(ip.headerChecksumOk);
      assert.equal(ip.src, HOST_IP);
      assert.equal(ip.dst, GUEST_IP);
      const echo = parseIcmpEcho(ip.payload)!;
      assert.equal(echo.id, 0x4242);
      assert.equal(echo.seq, 7);
      assert.deepEqual(echo.data, data);
      assert.ok(echo.checksumOk);

      assert.equal(tap.recv(new Uint8Array(2048)), 0, 'non-blocking: nothing more waiting reads as 0');
      assert.equal(tap.waitReadable(0), 0);
    } finally {
      tap.close();
    }
  });

  test('scatter/gather: a frame sent from pieces, the answer read into header and frame buffers', async () => {
    const { tap } = hostTap();
    try {
      const arp = arpRequest(GUEST_MAC, GUEST_IP, HOST_IP);
      // As a descriptor chain would hand it over: header, then the frame split unevenly.
      const n = tap.sendv([new Uint8Array(12), arp.subarray(0, 5), arp.subarray(5)]);
      assert.equal(n, 12 + arp.length);

      // Views into a larger buffer, at an offset, like slices of guest memory.
      const guestRam = new Uint8Array(4096);
      const hdrView = guestRam.subarray(100, 112);
      const bodyView = guestRam.subarray(200, 200 + 1514);
      let got = 0;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        tap.waitReadable(50);
        got = tap.recvv([hdrView, bodyView]);
        if (got > 0 && parseArp(parseEthernet(bodyView.subarray(0, got - 12))?.payload ?? new Uint8Array())?.op === 2) {
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
      const a = parseArp(parseEthernet(bodyView.subarray(0, got - 12))!.payload)!;
      assert.equal(a.op, 2);
      assert.equal(a.senderIp, HOST_IP);
      assert.deepEqual(guestRam.subarray(0, 100), new Uint8Array(100), 'nothing written before the header view');
      assert.deepEqual(guestRam.subarray(112, 200), new Uint8Array(88), 'nothing written between the views');
    } finally {
      tap.close();
    }
  });

  test('MTU, MAC and ifindex from the SIOCGIF ioctls match `ip link show`', () => {
    const { ns, tap } = hostTap({ name: 'facts0' });
    try {
      setMtu('facts0', 9000, { netns: ns.name });
      const q = queryLink('facts0', { netns: ns.name });
      const raw = JSON.parse(ns.ip(['-j', 'link', 'show', 'dev', 'facts0'])) as {
        ifindex: number;
        mtu: number;
        address: string;
      }[];
      assert.equal(q.ifindex, raw[0]!.ifindex);
      assert.equal(q.mtu, 9000);
      assert.equal(q.mtu, raw[0]!.mtu);
      assert.equal(q.mac, raw[0]!.address);
      assert.equal(q.hwType, 1);
      assert.deepEqual(tap.info(), q);
      const d = showLink('facts0', { netns: ns.name });
      assert.equal(d.kind, 'tun');
      assert.equal(d.tunType, 'tap');
      assert.equal(d.up, true);
      assert.equal(d.ifindex, q.ifindex);

      const lo = queryLink('lo', { netns: ns.name });
      assert.equal(lo.mtu, 65536);
      assert.equal(lo.mac, undefined, 'loopback is not Ethernet');
      assert.equal(formatMac(parseMac('AA:bb:0c:0D:ee:0f')), 'aa:bb:0c:0d:ee:0f');
    } finally {
      tap.close();
    }
  });

  test('vnet header size and offloads: set, read back, and refused when invalid', () => {
    const { tap } = hostTap({ vnetHdrLen: 10 });
    try {
      assert.equal(tap.queryVnetHdrLen(), 10);
      tap.setVnetHdrLen(12);
      assert.equal(tap.queryVnetHdrLen(), 12);
      assert.throws(() => tap.setVnetHdrLen(8 as 10), LinkOptionError);

      const flags = tap.tunFlags();
      assert.equal(flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
      assert.equal(flags & IFF_MULTI_QUEUE, 0);

      assert.equal(tunOffloadFlags({}), 0);
      assert.equal(
        tunOffloadFlags({ csum: true, tso4: true, tso6: true, tsoEcn: true, ufo: true }),
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
      );
      tap.setOffloads({ csum: true });
      tap.setOffloads({ csum: true, tso4: true, tso6: true });
      tap.setOffloads({ csum: true, tso4: true, tso6: true, tsoEcn: true, ufo: true });
      tap.setOffloads({});
      assert.throws(() => tap.setOffloads({ tso4: true }), LinkOptionError);
      assert.throws(() => tap.setOffloads({ csum: true, tsoEcn: true }), LinkOptionError);
      // A bit the kernel does not know is refused by the kernel itself.
      assert.throws(
        () => tap.setOffloads(0x80),
        (e: unknown) => e instanceof LinkSyscallError && e.op === 'TUNSETOFFLOAD' && e.errno === EINVAL,
      );
    } finally {
      tap.close();
    }
  });

  test('checksum offload: the kernel hands over a partial UDP checksum only when csum is on', async () => {
    const { ns, tap } = hostTap();
    try {
      ns.ip(['neigh', 'replace', GUEST_IP, 'lladdr', formatMac(GUEST_MAC), 'dev', tap.name, 'nud', 'permanent']);
      const isUdp = (port: number) => (f: Uint8Array) => {
        const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
        return ip?.protocol === IPPROTO_UDP && parseUdp(ip.payload)?.dstPort === port;
      };

      // Off: a complete checksum, no flags. num_buffers (bytes 10-11) is
      // the device's to fill: older kernels (6.1) skip it, newer ones (6.18)
      // write 0; neither writes a count.
      sendUdpFromNs(ns, GUEST_IP, 4001, 'full');
      const full = await awaitFrame(tap, isUdp(4001), 3000, 0xaa);
      assert.equal(full.hdr[0], 0, 'no NEEDS_CSUM without checksum offload');
      const numBuffers = Array.from(full.hdr.subarray(10, 12));
      assert.ok(
        [0xaa, 0].includes(numBuffers[0]!) && numBuffers[0] === numBuffers[1],
        `num_buffers ${numBuffers}: neither skipped nor zeroed`,
      );
      const ipFull = parseIpv4(parseEthernet(full.frame)!.payload)!;
      const pseudo = (ip: { src: string; dst: string; payload: Uint8Array }): Uint8Array => {
        const p = new Uint8Array(12 + ip.payload.length);
        p.set(ipv4(ip.src), 0);
        p.set(ipv4(ip.dst), 4);
        p[9] = IPPROTO_UDP;
        new DataView(p.buffer).setUint16(10, ip.payload.length);
        p.set(ip.payload, 12);
        return p;
      };
      assert.equal(inetChecksum(pseudo(ipFull)), 0, 'UDP checksum is complete');

      // On: NEEDS_CSUM with the checksum's place in the frame.
      tap.setOffloads({ csum: true });
      sendUdpFromNs(ns, GUEST_IP, 4002, 'partial');
      const partial = await awaitFrame(tap, isUdp(4002));
      const hv = new DataView(partial.hdr.buffer);
      assert.equal(partial.hdr[0]! & VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_NEEDS_CSUM);
      assert.equal(hv.getUint16(6, true), ETH_IP_HDRS, 'csum_start: after the Ethernet and IP headers');
      assert.equal(hv.getUint16(8, true), UDP_CSUM_FIELD, 'csum_offset: the UDP checksum field');
    } finally {
      tap.close();
    }
  });

  test('create, attach, persist: pre-created taps are found by name, taken names and busy taps are refused', () => {
    const ns = freshNs();
    const netns = ns.name;
    createTap('pre0', { netns });
    const d = showLink('pre0', { netns });
    assert.equal(d.tunType, 'tap');
    assert.equal(d.up, false);

    assert.throws(() => createTap('pre0', { netns }), LinkExistsError);
    assert.throws(() => Tap.open({ name: 'pre0', mode: 'create', netns }), LinkExistsError);

    const t = Tap.open({ name: 'pre0', mode: 'attach', netns });
    try {
      assert.equal(t.name, 'pre0');
      assert.equal(t.tunFlags() & IFF_PERSIST, IFF_PERSIST);
      assert.equal(t.info().ifindex, d.ifindex);
      assert.throws(
        () => Tap.open({ name: 'pre0', mode: 'attach', netns }),
        (e: unknown) => e instanceof LinkSyscallError && e.errno === EBUSY && /already attached/.test(e.message),
      );
    } finally {
      t.close();
    }
    assert.equal(showLink('pre0', { netns }).ifindex, d.ifindex, 'a persistent tap outlives its fd');

    // An operator's `ip tuntap add` (no vnet_hdr, no multi_queue): the
    // attaching fd still gets its vnet header, since those flags are per attach.
    ns.ip(['tuntap', 'add', 'dev', 'ext0', 'mode', 'tap']);
    const ext = Tap.open({ name: 'ext0', mode: 'attach', netns });
    try {
      assert.equal(ext.tunFlags() & IFF_VNET_HDR, IFF_VNET_HDR);
      assert.equal(ext.queryVnetHdrLen(), 12);
    } finally {
      ext.close();
    }

    // A non-persistent tap disappears with its fd; the kernel may name it.
    const anon = Tap.open({ mode: 'create', netns });
    const anonName = anon.name;
    assert.match(anonName, /^tap\d+$/);
    anon.close();
    assert.throws(() => showLink(anonName, { netns }), LinkNotFoundError);

    ns.addVeth('veth0', 'veth1');
    assert.throws(
      () => Tap.open({ name: 'veth0', mode: 'attach', netns }),
      (e: unknown) => e instanceof LinkSyscallError && e.errno === EINVAL && /not a single-queue tap/.test(e.message),
    );

    deleteLink('pre0', { netns });
    assert.throws(
      () => Tap.open({ name: 'pre0', mode: 'attach', netns }),
      (e: unknown) => e instanceof LinkNotFoundError && e.link === 'pre0' && e.netns === netns,
    );
  });

  test('multi-queue: one fd per queue, queues can be disabled, single-queue opens are refused', () => {
    const ns = freshNs();
    const taps = Tap.openQueues({ name: 'mq0', mode: 'create', netns: ns.name }, 4);
    try {
      assert.equal(new Set(taps.map((t) => t.fd)).size, 4);
      for (const t of taps) assert.equal(t.tunFlags() & IFF_MULTI_QUEUE, IFF_MULTI_QUEUE);
      taps[3]!.setQueueEnabled(false);
      taps[3]!.setQueueEnabled(true);
      assert.throws(
        () => Tap.open({ name: 'mq0', mode: 'attach', netns: ns.name }),
        (e: unknown) => e instanceof LinkSyscallError && e.errno === EINVAL,
      );
    } finally {
      for (const t of taps) t.close();
    }
    assert.equal(ns.links().includes('mq0'), false, 'the last queue closing removes a non-persistent tap');
  });

  test('a worker adopts the tap and reads like a virtio-net RX thread, woken by an eventfd', async () => {
    const { tap } = hostTap();
    const wakeFd = eventfd(0, EFD_CLOEXEC);
    assert.ok(wakeFd >= 0);
    const worker = new Worker(new URL('./testing/tap-reader-worker.js', import.meta.url), {
      workerData: { handle: tap.handle(), wakeFd },
    });
    try {
      const gotArpReply = new Promise<void>((resolve, reject) => {
        worker.on('message', (m: { kind: string; bytes?: Uint8Array }) => {
          if (m.kind === 'frame') {
            const e = parseEthernet(m.bytes!.subarray(12));
            if (e?.ethertype === ETH_P_ARP && parseArp(e.payload)?.op === 2) resolve();
          } else if (m.kind !== 'done') reject(new Error(`worker: ${JSON.stringify(m)}`));
        });
        worker.on('error', reject);
      });
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      // Give the worker time to block in poll, so the frame wakes it.
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(tap.send(withVnetHdr(12, arpRequest(GUEST_MAC, GUEST_IP, HOST_IP))) > 0);
      await gotArpReply;
      assert.ok(eventfdSignal(wakeFd));
      assert.equal(await exited, 0);
    } finally {
      await worker.terminate();
      close(wakeFd);
      tap.close();
    }
  });

  test('a deleted device: poll reports it gone and reads fail with an errno, not a throw', () => {
    const { ns, tap } = hostTap({ name: 'gone0' });
    try {
      deleteLink('gone0', { netns: ns.name });
      assert.equal(tap.waitReadable(1000) & TapReady.Gone, TapReady.Gone);
      const n = tap.recv(new Uint8Array(2048));
      assert.ok(n < 0, `recv after deletion returned ${n}`);
      assert.ok(tap.send(withVnetHdr(12, arpRequest(GUEST_MAC, GUEST_IP, HOST_IP))) < 0);
    } finally {
      tap.close();
    }
    assert.throws(() => tap.waitReadable(0), LinkSyscallError, 'a closed tap refuses to wait');
  });
});
