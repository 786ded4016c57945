// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// virtio-net against real traffic: the device's tap lives in a throw-away
// network namespace with an address, and a guest-side driver (the
// virtqueue fakes over guest memory in a plain shared buffer) sends and
// receives through the device. ARP, ICMP echo and DHCP (dnsmasq) get
// answers; frames wait in the tap while the guest has posted no buffers;
// MRG_RXBUF spreads a large frame; offloads follow the negotiated
// features; the control queue; RX driven by the main-thread poller and by
// a dedicated RX thread; a hostile driver; state export and import.
//
// Needs root and /dev/net/tun; fails (does not skip) without them.
//
// Threading: main thread, plus the RX poller worker and one RX-loop worker.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { startDnsmasq } from '../../../../dladm/src/dnsmasq.js';
import { LinkNotFoundError } from '../../../../dladm/src/errors.js';
import { createTap, setMtu } from '../../../../dladm/src/link.js';
import { formatMac, parseMac } from '../../../../dladm/src/names.js';
import { listNetns, NetNs } from '../../../../dladm/src/netns.js';
import { queryLink } from '../../../../dladm/src/query.js';
import {
  arpRequest,
  DHCPOFFER,
  dhcpDiscover,
  ETH_P_ARP,
  ETH_P_IP,
  ethernet,
  icmpEchoRequest,
  inetChecksum,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  ipv4,
  ipv4Packet,
  parseArp,
  parseDhcp,
  parseEthernet,
  parseIcmpEcho,
  parseIpv4,
  parseUdp,
} from '../../../../dladm/src/testing/frames.js';
import { requireNetAdmin } from '../../../../dladm/src/testing/preflight.js';
import { PayloadOffers, type Payload } from '../../migrate.js';
import { GuestMemory, Prot } from '../../vmm/memory.js';
import { PciPath } from '../pci/path.js';
import { PciTopology } from '../pci/topology.js';
import { VirtioMode } from './bits.js';
import {
  DESC_F_NEXT,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  FakeCfg,
  FakeDriverQueue,
  LegacyDriver,
  MemoryWatch,
  ModernDriver,
  STATUS_NEEDS_RESET,
  VirtioTestHost,
  pciWindows,
  type Buf,
} from './driver-fake.js';
import { macFromName, PciVirtioNet, VirtioNetConfigError, type VirtioNetOptions } from './net.js';
import type { RxLoopWorkerData } from './net-rx-loop-worker.js';

// The test's own numbers (virtio 1.2 §5.1).
const F_CSUM = 1n << 0n;
const F_GUEST_CSUM = 1n << 1n;
const F_MTU = 1n << 3n;
const F_MAC = 1n << 5n;
const F_GUEST_TSO4 = 1n << 7n;
const F_GUEST_TSO6 = 1n << 8n;
const F_GUEST_ECN = 1n << 9n;
const F_HOST_TSO4 = 1n << 11n;
const F_HOST_TSO6 = 1n << 12n;
const F_HOST_ECN = 1n << 13n;
const F_MRG_RXBUF = 1n << 15n;
const F_STATUS = 1n << 16n;
const F_CTRL_VQ = 1n << 17n;
const F_CTRL_RX = 1n << 18n;
const F_MQ = 1n << 22n;
const F_CTRL_MAC_ADDR = 1n << 23n;
const BASIC = F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX;
const HDR_F_NEEDS_CSUM = 1;
const CTRL_RX = 0;
const CTRL_MAC = 1;
const CTRL_VLAN = 2;
const CTRL_MQ = 4;
const OK = 0;
const ERR = 1;

const DEV = 6;
const MSI_ADDR = 0xfee0_0000;
const NS_IP = '10.203.0.1';
const GUEST_IP = '10.203.0.2';
const GUEST_MAC = parseMac('02:00:5e:10:00:02');

// Guest memory: 4 MiB of RAM in a SharedArrayBuffer (the RX-loop worker
// maps it too), a hole, one read-only page.
const RAM_SIZE = 0x40_0000;
const HOLE = 0x50_0000;
const ROM_BASE = 0x80_0000;
const RXQ_AT = 0x1_0000; // legacy: page frame 0x10
const TXQ_AT = 0x2_0000;
const CTRLQ_AT = 0x2_8000;
const CTRL_BUF = 0x3_0000;
const TX_BUF = 0x4_0000;
const RX_BUFS = 0x10_0000;
const RX_BUFS_END = 0x30_0000;

const nsList: NetNs[] = [];
const devices: PciVirtioNet[] = [];

/** A namespace with IPv6 off (no router solicitations or MLD reports among the test's frames). */
function quietNs(): NetNs {
  const ns = NetNs.create();
  nsList.push(ns);
  ns.exec('sh', [
    '-c',
    'for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 /proc/sys/net/ipv6/conf/all/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true',
  ]);
  return ns;
}

interface Net {
  ns: NetNs;
  tapName: string;
  desc: ReturnType<typeof PciVirtioNet.describe>;
  dev: PciVirtioNet;
  host: VirtioTestHost;
  mem: GuestMemory;
  ramSab: SharedArrayBuffer;
  ram: Uint8Array;
  rom: Uint8Array;
  cfg: FakeCfg;
  intx: boolean[];
}

function guestMemory(): { mem: GuestMemory; ramSab: SharedArrayBuffer; ram: Uint8Array; rom: Uint8Array } {
  const ramSab = new SharedArrayBuffer(RAM_SIZE);
  const ram = new Uint8Array(ramSab);
  const rom = new Uint8Array(0x1000).fill(0xa5);
  const mem = GuestMemory.fromBuffers([
    { gpa: 0, bytes: ram },
    { gpa: ROM_BASE, bytes: rom, prot: Prot.Read },
  ]);
  return { mem, ramSab, ram, rom };
}

/** A device on a tap in `ns` (created unless `attach`), the namespace's end at NS_IP and up. */
function netSetup(
  ns: NetNs,
  opts: Partial<Omit<VirtioNetOptions, 'tap'>> & { tapName?: string; attach?: boolean } = {},
): Net {
  const { tapName = 'vnet0', attach = false, ...devOpts } = opts;
  const m = guestMemory();
  const desc = PciVirtioNet.describe({
    name: 'net0',
    pciPath: new PciPath(0, DEV, 0),
    tap: { name: tapName, mode: attach ? 'attach' : 'create', netns: ns.name },
    mac: GUEST_MAC,
    rxThread: 'external',
    ...devOpts,
  });
  ns.addAddress(tapName, `${NS_IP}/24`);
  ns.setUp(tapName);
  const mem = m.mem;
  const host = new VirtioTestHost(mem);
  const dev = PciVirtioNet.attach(desc, host);
  devices.push(dev);
  const topo = pciWindows(host);
  const intx: boolean[] = [];
  topo.setIntxRouter({ setIntx: (_d, _p, level) => void intx.push(level) });
  const cfg = new FakeCfg(topo, 0, DEV, 0);
  const mode = devOpts.mode ?? VirtioMode.Transitional;
  cfg.enable({ io: mode !== VirtioMode.Modern, modern: mode !== VirtioMode.Legacy });
  return { ns, tapName, desc, dev, host, mem, ramSab: m.ramSab, ram: m.ram, rom: m.rom, cfg, intx };
}

interface Rx {
  hdr: Uint8Array;
  frame: Uint8Array;
  /** Used lengths of the buffers the frame was spread over. */
  lens: number[];
}

/** The guest's driver: brings the device up, sends frames, posts and reads RX buffers, sends control commands. */
class GuestNic {
  rxq!: FakeDriverQueue;
  txq!: FakeDriverQueue;
  ctrlq!: FakeDriverQueue;
  readonly hdrLen: number;
  readonly mrg: boolean;
  private notifyFn!: (q: number) => void;
  private rxNext = RX_BUFS;
  private readonly rxBufs = new Map<number, { addr: number; len: number }>();
  private usedBacklog: { id: number; len: number }[] = [];
  /** RX buffers the device returned with length 0. */
  empties = 0;
  /** Frames read that a wait did not match. */
  readonly skipped: Rx[] = [];
  dev: PciVirtioNet;

  constructor(
    readonly s: Net,
    readonly features: bigint,
    readonly legacy = false,
  ) {
    this.dev = s.dev;
    this.mrg = (features & F_MRG_RXBUF) !== 0n;
    this.hdrLen = legacy && !this.mrg ? 10 : 12;
    if (legacy) this.legacyUp();
    else this.modernUp();
  }

  private modernUp(): void {
    const { s } = this;
    const drv = new ModernDriver(s.host, s.cfg);
    assert.ok(drv.negotiate(this.features | F_VERSION_1), 'FEATURES_OK kept');
    for (let v = 0; v < 4; v++) s.cfg.msixVector(s.host, v, MSI_ADDR, 0x30 + v);
    s.cfg.msixEnable(true);
    drv.w(0x10, 2, 0);
    this.rxq = FakeDriverQueue.at(s.mem, 256, RXQ_AT);
    this.txq = FakeDriverQueue.at(s.mem, 64, TXQ_AT);
    this.ctrlq = FakeDriverQueue.at(s.mem, 32, CTRLQ_AT);
    drv.setupQueue(0, this.rxq, 1);
    drv.setupQueue(1, this.txq, 2);
    drv.setupQueue(2, this.ctrlq, 3);
    drv.driverOk();
    this.notifyFn = (q) => drv.notify(q);
  }

  private legacyUp(): void {
    const { s } = this;
    const drv = new LegacyDriver(s.host);
    drv.negotiate(Number(this.features & 0xffff_ffffn));
    this.rxq = FakeDriverQueue.legacy(s.mem, 2048, RXQ_AT / 4096);
    this.txq = FakeDriverQueue.legacy(s.mem, 256, TXQ_AT / 4096);
    this.ctrlq = FakeDriverQueue.legacy(s.mem, 32, CTRLQ_AT / 4096);
    drv.setupQueue(0, this.rxq);
    drv.setupQueue(1, this.txq);
    drv.setupQueue(2, this.ctrlq);
    drv.driverOk();
    this.notifyFn = (q) => drv.notify(q);
  }

  /** Continue with another device instance (after an import), through `host`'s buses. */
  rebind(dev: PciVirtioNet, host: VirtioTestHost): void {
    this.dev = dev;
    const drv = new ModernDriver(host, new FakeCfg(PciTopology.of(host), 0, DEV, 0));
    this.notifyFn = (q) => drv.notify(q);
  }

  notify(q: number): void {
    this.notifyFn(q);
  }

  /** Send one frame: header and frame in two device-readable buffers, as Linux's legacy layout does. */
  send(frame: Uint8Array, hdr: Uint8Array = new Uint8Array(this.hdrLen)): void {
    const ram = this.s.ram;
    ram.set(hdr, TX_BUF);
    ram.set(frame, TX_BUF + 0x100);
    this.sendChain([
      { addr: TX_BUF, len: hdr.length },
      { addr: TX_BUF + 0x100, len: frame.length },
    ]);
  }

  sendChain(bufs: Buf[]): void {
    const head = this.txq.addChain(bufs);
    this.txq.publish(head);
    this.notify(1);
    assert.deepEqual(this.txq.takeUsed(), [{ id: head, len: 0 }], 'TX chain returned at once, length 0');
  }

  /** Post `n` device-writable buffers of `size` bytes (each its own chain); the heads. */
  postRx(n: number, size: number, notify = true): number[] {
    const heads: number[] = [];
    for (let i = 0; i < n; i++) {
      if (this.rxNext + size > RX_BUFS_END) this.rxNext = RX_BUFS;
      heads.push(this.postChain([{ addr: this.rxNext, len: size, write: true }]));
      this.rxNext += Math.ceil(size / 16) * 16;
    }
    if (notify) this.notify(0);
    return heads;
  }

  /** Post one RX chain as given (hostile tests); its head. Data is read back from its first writable buffer. */
  postChain(bufs: Buf[]): number {
    const head = this.rxq.addChain(bufs);
    const w = bufs.find((b) => b.write) ?? bufs[0]!;
    this.rxBufs.set(head, { addr: w.addr, len: w.len });
    this.rxq.publish(head);
    return head;
  }

  /** Complete frames the device returned (merging MRG_RXBUF buffers by num_buffers). */
  takeRx(): Rx[] {
    this.usedBacklog.push(...this.rxq.takeUsed());
    const out: Rx[] = [];
    const ram = this.s.ram;
    while (this.usedBacklog.length > 0) {
      const first = this.usedBacklog[0]!;
      if (first.len === 0) {
        this.empties++;
        this.usedBacklog.shift();
        continue;
      }
      const b = this.rxBufs.get(first.id)!;
      const nb = this.mrg ? ram[b.addr + 10]! | (ram[b.addr + 11]! << 8) : 1;
      assert.ok(nb >= 1, 'num_buffers at least 1');
      if (this.usedBacklog.length < nb) break;
      const parts = this.usedBacklog.splice(0, nb);
      const bytes = parts.map((u) => ram.slice(this.rxBufs.get(u.id)!.addr, this.rxBufs.get(u.id)!.addr + u.len));
      const all = new Uint8Array(bytes.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of bytes) {
        all.set(p, at);
        at += p.length;
      }
      out.push({ hdr: all.slice(0, this.hdrLen), frame: all.slice(this.hdrLen), lens: parts.map((u) => u.len) });
    }
    return out;
  }

  /** Run RX passes (as a waiter would) until a frame matches. */
  async awaitRx(match: (f: Uint8Array) => boolean, timeoutMs = 3000, poll = true): Promise<Rx> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (poll) this.dev.pollRx();
      for (const r of this.takeRx()) {
        if (match(r.frame)) return r;
        this.skipped.push(r);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no matching frame within ${timeoutMs} ms (${this.skipped.length} others, ${this.empties} empty)`,
        );
      }
      await sleep(2);
    }
  }

  /** A control command; the ack (0xee if the device wrote none). */
  ctrl(cls: number, cmd: number, data: Uint8Array, ackBytes = 1): number {
    const ram = this.s.ram;
    ram[CTRL_BUF] = cls;
    ram[CTRL_BUF + 1] = cmd;
    ram.set(data, CTRL_BUF + 0x10);
    ram[CTRL_BUF + 0x1000] = 0xee;
    const bufs: Buf[] = [{ addr: CTRL_BUF, len: 2 }];
    if (data.length > 0) bufs.push({ addr: CTRL_BUF + 0x10, len: data.length });
    if (ackBytes > 0) bufs.push({ addr: CTRL_BUF + 0x1000, len: ackBytes, write: true });
    const head = this.ctrlq.addChain(bufs);
    this.ctrlq.publish(head);
    this.notify(2);
    assert.deepEqual(this.ctrlq.takeUsed(), [{ id: head, len: ackBytes > 0 ? 1 : 0 }]);
    return ram[CTRL_BUF + 0x1000]!;
  }
}

const isArpReply = (f: Uint8Array): boolean => {
  const e = parseEthernet(f);
  return e?.ethertype === ETH_P_ARP && parseArp(e.payload)?.op === 2;
};

const isEchoReply =
  (seq?: number) =>
  (f: Uint8Array): boolean => {
    const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
    const e = ip?.protocol === IPPROTO_ICMP ? parseIcmpEcho(ip.payload) : undefined;
    return e?.type === 0 && (seq === undefined || e.seq === seq);
  };

function nsMac(s: Net): Uint8Array {
  return parseMac(queryLink(s.tapName, { netns: s.ns.name }).mac!);
}

/** The namespace knows the guest's MAC without asking (the fake guest answers no ARP). */
function staticNeighbour(s: Net): void {
  s.ns.ip(['neigh', 'replace', GUEST_IP, 'lladdr', formatMac(GUEST_MAC), 'dev', s.tapName, 'nud', 'permanent']);
}

function echoRequest(s: Net, seq: number, data: Uint8Array): Uint8Array {
  return ethernet(
    nsMac(s),
    GUEST_MAC,
    ETH_P_IP,
    ipv4Packet(GUEST_IP, NS_IP, IPPROTO_ICMP, icmpEchoRequest(7, seq, data)),
  );
}

/** Run RX passes until `cond` holds (the namespace's answers take a moment to reach the tap). */
async function until(dev: PciVirtioNet, cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    dev.pollRx();
    await sleep(2);
  }
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
}

/** UDP checksum over the pseudo header: 0 when the datagram's checksum is complete and right. */
function udpChecksumOk(ipPacket: Uint8Array): boolean {
  const ip = parseIpv4(ipPacket)!;
  const seg = ip.payload;
  const pseudo = new Uint8Array(12 + seg.length);
  pseudo.set(ipv4(ip.src), 0);
  pseudo.set(ipv4(ip.dst), 4);
  pseudo[9] = IPPROTO_UDP;
  new DataView(pseudo.buffer).setUint16(10, seg.length);
  pseudo.set(seg, 12);
  return inetChecksum(pseudo) === 0;
}

describe('virtio-net over a tap', () => {
  before(requireNetAdmin);
  after(() => {
    for (const d of devices) d.halt();
    for (const ns of nsList) ns.destroy();
    const mine = listNetns().filter((n) => n.includes(`-${process.pid}-`));
    assert.deepEqual(mine, [], 'namespaces left behind');
  });

  test('identity, features and configuration: the seed’s transitional virtio-net', () => {
    const ns = quietNs();
    const s = netSetup(ns);
    assert.equal(s.dev.typeName, 'pci-virtio-viona');
    assert.equal(s.cfg.read(0x00, 4), 0x1000_1af4, 'vendor 1AF4, device 1000');
    assert.equal(s.cfg.read(0x0b, 1), 0x02, 'class network');
    assert.equal(s.cfg.read(0x0a, 1), 0x00);
    assert.equal(s.cfg.read(0x2c, 4), 0x0001_1af4, 'subsystem 1AF4:0001');
    const drv = new ModernDriver(s.host, s.cfg);
    const f = drv.deviceFeatures();
    for (const [name, bit] of Object.entries({
      F_CSUM,
      F_GUEST_CSUM,
      F_MTU,
      F_MAC,
      F_GUEST_TSO4,
      F_GUEST_TSO6,
      F_GUEST_ECN,
      F_HOST_TSO4,
      F_HOST_TSO6,
      F_HOST_ECN,
      F_MRG_RXBUF,
      F_STATUS,
      F_CTRL_VQ,
      F_CTRL_RX,
      F_VERSION_1,
      F_INDIRECT_DESC,
      F_EVENT_IDX,
    })) {
      assert.ok(f & bit, `${name} offered`);
    }
    assert.equal(f & F_MQ, 0n, 'one queue pair: no MQ');
    assert.equal(f & F_CTRL_MAC_ADDR, 0n);
    assert.equal(drv.r(0x12, 2), 3, 'RX, TX, control queues');
    assert.deepEqual(
      Array.from({ length: 6 }, (_, i) => drv.configRead(i, 1)),
      Array.from(GUEST_MAC),
    );
    assert.equal(drv.configRead(6, 2), 1, 'status LINK_UP');
    assert.equal(drv.configRead(8, 2), 1, 'max_virtqueue_pairs');
    assert.equal(drv.configRead(10, 2), 1500, 'mtu from the tap');
    drv.w(0x16, 2, 0);
    assert.equal(drv.r(0x18, 2), 2048, 'RX queue 2048');
    drv.w(0x16, 2, 1);
    assert.equal(drv.r(0x18, 2), 256, 'TX queue 256');
    // A modern driver that breaks a feature dependency is refused FEATURES_OK.
    assert.equal(drv.negotiate(F_VERSION_1 | F_GUEST_TSO4), false, 'GUEST_TSO4 without GUEST_CSUM');
    assert.equal(drv.negotiate(F_VERSION_1 | F_CTRL_RX), false, 'CTRL_RX without CTRL_VQ');
    assert.equal(drv.negotiate(F_VERSION_1 | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_ECN | BASIC), true);

    const m = macFromName('net0');
    assert.equal(m.length, 6);
    assert.equal(m[0]! & 3, 2, 'locally administered unicast');
    assert.deepEqual(macFromName('net0'), m, 'stable');
    assert.notDeepEqual(macFromName('net1'), m);
    const d2 = PciVirtioNet.describe({
      name: 'net9',
      pciPath: new PciPath(0, 9, 0),
      tap: { name: 'vnet9', mode: 'create', netns: ns.name },
    });
    const dev2 = PciVirtioNet.attach(d2, new VirtioTestHost(s.mem));
    devices.push(dev2);
    assert.deepEqual(dev2.mac, macFromName('net9'), 'default MAC from the name');
  });

  test('refuses bad options with typed errors, and a missing tap to attach to', () => {
    const ns = quietNs();
    const base = {
      name: 'n',
      pciPath: new PciPath(0, 7, 0),
      tap: { name: 'vbad0', mode: 'create' as const, netns: ns.name },
    };
    for (const o of [
      { mac: '01:00:5e:00:00:01' },
      { mac: 'zz' },
      { mac: new Uint8Array(6) },
      { rxQueueSize: 1000 },
      { txQueueSize: 65536 },
    ]) {
      assert.throws(() => PciVirtioNet.describe({ ...base, ...o }), VirtioNetConfigError, JSON.stringify(o));
    }
    assert.throws(
      () => PciVirtioNet.describe({ ...base, tap: { name: 'nosuch0', mode: 'attach', netns: ns.name } }),
      LinkNotFoundError,
    );
    assert.deepEqual(ns.links(), ['lo'], 'no tap left behind by a refused describe');
  });

  test('ARP: a request for the namespace address gets its reply into an RX buffer (modern, MSI-X)', async () => {
    const s = netSetup(quietNs());
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
    nic.postRx(8, 2048);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    const r = await nic.awaitRx(isArpReply);
    const e = parseEthernet(r.frame)!;
    const a = parseArp(e.payload)!;
    assert.deepEqual(e.dst, GUEST_MAC);
    assert.equal(a.senderIp, NS_IP);
    assert.deepEqual(a.senderMac, nsMac(s));
    assert.equal(a.targetIp, GUEST_IP);
    assert.deepEqual(a.targetMac, GUEST_MAC);
    assert.deepEqual(r.hdr.subarray(0, 10), new Uint8Array(10), 'no offload flags');
    assert.equal(r.hdr[10]! | (r.hdr[11]! << 8), 1, 'num_buffers 1');
    assert.deepEqual(r.lens, [12 + r.frame.length]);
    assert.ok(
      s.host.msis.some((m) => m.data === 0x31),
      'RX interrupt on the RX queue vector',
    );
    const st = s.dev.stats;
    assert.equal(st.txFrames, 1);
    assert.equal(st.txBytes, 42);
    assert.ok(st.rxFrames >= 1);
    assert.deepEqual(s.intx, []);
  });

  test('ARP through the legacy interface: 10-byte headers without MRG_RXBUF, INTx', async () => {
    const s = netSetup(quietNs());
    const nic = new GuestNic(s, BASIC, true);
    assert.equal(nic.hdrLen, 10);
    nic.postRx(4, 1526);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    const r = await nic.awaitRx(isArpReply);
    assert.deepEqual(r.lens, [10 + r.frame.length], 'header of 10 bytes, then the frame');
    assert.equal(parseArp(parseEthernet(r.frame)!.payload)!.senderIp, NS_IP);
    assert.ok(s.intx.includes(true), 'INTx raised');
  });

  test('ICMP echo to the namespace address gets an echo reply', async () => {
    const s = netSetup(quietNs());
    staticNeighbour(s);
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
    nic.postRx(8, 2048);
    const data = new TextEncoder().encode('propolis-ts virtio-net echo');
    nic.send(echoRequest(s, 1, data));
    const r = await nic.awaitRx(isEchoReply(1));
    const ip = parseIpv4(parseEthernet(r.frame)!.payload)!;
    assert.ok(ip.headerChecksumOk);
    assert.equal(ip.src, NS_IP);
    assert.equal(ip.dst, GUEST_IP);
    const echo = parseIcmpEcho(ip.payload)!;
    assert.equal(echo.id, 7);
    assert.deepEqual(echo.data, data);
    assert.ok(echo.checksumOk);
  });

  test('DHCP: dnsmasq in the namespace answers a DHCPDISCOVER with an offer', async () => {
    const s = netSetup(quietNs());
    const dnsmasq = await startDnsmasq(s.ns, {
      iface: s.tapName,
      rangeStart: '10.203.0.100',
      rangeEnd: '10.203.0.150',
      netmask: '255.255.255.0',
      router: NS_IP,
    });
    try {
      const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
      nic.postRx(8, 2048);
      const xid = 0x5eed_cafe;
      nic.send(dhcpDiscover(GUEST_MAC, xid));
      const r = await nic.awaitRx((f) => {
        const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
        const u = ip?.protocol === IPPROTO_UDP ? parseUdp(ip.payload) : undefined;
        return u?.srcPort === 67 && u.dstPort === 68 && parseDhcp(u.payload)?.xid === xid;
      }, 5000);
      const d = parseDhcp(parseUdp(parseIpv4(parseEthernet(r.frame)!.payload)!.payload)!.payload)!;
      assert.deepEqual(d.options.get(53), Uint8Array.of(DHCPOFFER));
      assert.deepEqual(d.chaddr, GUEST_MAC);
      assert.match(d.yiaddr, /^10\.203\.0\.(1[0-4]\d|150)$/);
      assert.deepEqual(d.options.get(3), Uint8Array.of(10, 203, 0, 1), 'router');
    } finally {
      await dnsmasq.stop();
    }
  });

  test('backpressure: frames arriving with no RX buffers wait in the tap and arrive once buffers are posted', async () => {
    const s = netSetup(quietNs());
    staticNeighbour(s);
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
    for (let seq = 1; seq <= 5; seq++) nic.send(echoRequest(s, seq, pattern(32, seq)));
    await until(s.dev, () => s.dev.stats.rxStarved >= 1, 'a reply with nowhere to go');
    await sleep(50); // the other replies queue in the tap behind it
    for (let i = 0; i < 3; i++) s.dev.pollRx();
    assert.deepEqual(nic.takeRx(), [], 'nothing delivered without buffers');
    assert.equal(s.dev.stats.rxFrames, 0);
    // The guest refills and notifies the RX queue: this thread (a vCPU's) moves the frames.
    nic.postRx(8, 2048);
    const got = nic.takeRx().filter((r) => isEchoReply()(r.frame));
    assert.ok(got.length >= 1, 'the refill notify delivered at once');
    while (got.length < 5) got.push(await nic.awaitRx(isEchoReply()));
    assert.deepEqual(
      got.map((r) => parseIcmpEcho(parseIpv4(parseEthernet(r.frame)!.payload)!.payload)!.seq),
      [1, 2, 3, 4, 5],
      'every reply, in order, none dropped',
    );
    assert.equal(s.dev.stats.rxTooBig + s.dev.stats.rxBadChain, 0);
  });

  test('MRG_RXBUF: a large frame is spread over several buffers, also across passes that ran out of them', async () => {
    const ns = quietNs();
    createTap('vbig0', { netns: ns.name });
    setMtu('vbig0', 9000, { netns: ns.name });
    const s = netSetup(ns, { tapName: 'vbig0', attach: true });
    staticNeighbour(s);
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF | F_MTU);
    assert.equal(new ModernDriver(s.host, s.cfg).configRead(10, 2), 9000, 'mtu of the tap');
    const data = pattern(4000, 3);
    // Two 1024-byte buffers: not enough for the 4042-byte reply plus header.
    nic.postRx(2, 1024);
    nic.send(echoRequest(s, 9, data));
    await until(s.dev, () => s.dev.stats.rxStarved >= 1, 'the reply, partly placed');
    assert.deepEqual(nic.takeRx(), [], 'a partly placed frame is not returned');
    nic.postRx(3, 1024);
    const r = await nic.awaitRx(isEchoReply(9));
    assert.deepEqual(r.lens, [1024, 1024, 1024, 12 + 14 + 20 + 8 + 4000 - 3 * 1024], 'full buffers but the last');
    const echo = parseIcmpEcho(parseIpv4(parseEthernet(r.frame)!.payload)!.payload)!;
    assert.deepEqual(echo.data, data);
    assert.ok(echo.checksumOk);
    nic.postRx(1, 1024);
    assert.deepEqual(nic.takeRx(), [], 'the spare buffer stays posted');
  });

  test('without MRG_RXBUF a frame too large for its buffer is dropped and the buffer returned empty', async () => {
    const ns = quietNs();
    createTap('vbig1', { netns: ns.name });
    setMtu('vbig1', 9000, { netns: ns.name });
    const s = netSetup(ns, { tapName: 'vbig1', attach: true });
    staticNeighbour(s);
    const nic = new GuestNic(s, BASIC);
    nic.postRx(1, 1526);
    nic.send(echoRequest(s, 1, pattern(3000, 1)));
    await until(s.dev, () => s.dev.stats.rxTooBig === 1, 'the reply, too big');
    assert.deepEqual(nic.takeRx(), []);
    assert.equal(nic.empties, 1);
    assert.equal(s.dev.stats.rxTooBig, 1);
    nic.postRx(2, 1526);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    const r = await nic.awaitRx(isArpReply);
    assert.equal(r.hdr[10]! | (r.hdr[11]! << 8), 1, 'VERSION_1 without MRG_RXBUF: num_buffers 1');
  });

  test('offloads follow the features: GUEST_CSUM lets partial checksums through, without it they are complete', async () => {
    const s = netSetup(quietNs());
    staticNeighbour(s);
    const udpFromNs = (text: string): void =>
      void s.ns.exec('bash', ['-c', `printf %s "$1" > /dev/udp/${GUEST_IP}/5555`, 'send', text]);
    const isUdp = (f: Uint8Array): boolean => {
      const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
      return ip?.protocol === IPPROTO_UDP && parseUdp(ip.payload)?.dstPort === 5555;
    };
    let nic = new GuestNic(s, BASIC | F_MRG_RXBUF | F_GUEST_CSUM | F_CSUM);
    nic.postRx(4, 2048);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP)); // the first pass configures the tap
    await nic.awaitRx(isArpReply);
    udpFromNs('partial');
    let r = await nic.awaitRx(isUdp);
    assert.equal(r.hdr[0]! & HDR_F_NEEDS_CSUM, HDR_F_NEEDS_CSUM, 'NEEDS_CSUM with GUEST_CSUM');

    nic = new GuestNic(s, BASIC | F_MRG_RXBUF); // reset and renegotiate without it
    nic.postRx(4, 2048);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    await nic.awaitRx(isArpReply);
    udpFromNs('complete');
    r = await nic.awaitRx(isUdp);
    assert.equal(r.hdr[0], 0, 'flags 0 without GUEST_CSUM');
    assert.ok(udpChecksumOk(parseEthernet(r.frame)!.payload), 'checksum complete');
  });

  test('RX waiters: the main thread’s poller worker, and a dedicated thread running runRxLoop', async () => {
    // The built-in fallback: start() spawns the poller; no pollRx from the test.
    {
      const s = netSetup(quietNs(), { rxThread: 'poller' });
      const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
      s.dev.start();
      try {
        nic.postRx(8, 2048);
        nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
        await nic.awaitRx(isArpReply, 3000, false);
      } finally {
        s.dev.halt();
      }
    }
    // A dedicated RX thread with its own instance over the shared state and guest RAM.
    {
      const s = netSetup(quietNs());
      const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
      const stop = new SharedArrayBuffer(4);
      const wd: RxLoopWorkerData = { role: 'virtio-net-rx-loop', desc: s.desc, ram: s.ramSab, stop };
      const worker = new Worker(new URL('./net-rx-loop-worker.js', import.meta.url), { workerData: wd });
      const messages: { kind: string; result?: string; msis?: number }[] = [];
      worker.on('message', (msg: { kind: string }) => messages.push(msg));
      try {
        while (!messages.some((x) => x.kind === 'ready')) await sleep(5);
        nic.postRx(8, 2048);
        for (let seq = 0; seq < 3; seq++) nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
        let replies = 0;
        const deadline = Date.now() + 3000;
        while (replies < 3 && Date.now() < deadline) {
          replies += nic.takeRx().filter((r) => isArpReply(r.frame)).length;
          await sleep(5);
        }
        assert.equal(replies, 3, 'the RX thread delivered every reply');
      } finally {
        Atomics.store(new Int32Array(stop), 0, 1);
        await once(worker, 'exit');
      }
      const done = messages.find((x) => x.kind === 'done');
      assert.equal(done?.result, 'stopped');
      assert.ok((done?.msis ?? 0) >= 1, 'the RX thread interrupted the guest');
    }
  });

  test('control queue: RX modes, MAC tables and address, queue pairs; everything else is an error', () => {
    const s = netSetup(quietNs());
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
    const f = s.dev.rxFilter;
    assert.equal(f.flags, 2, 'all-multicast by default');
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(1)), OK, 'PROMISC on');
    assert.equal(f.flags & 1, 1);
    assert.equal(f.level, 2);
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(0)), OK, 'PROMISC off');
    assert.equal(nic.ctrl(CTRL_RX, 1, Uint8Array.of(0)), OK, 'ALLMULTI off');
    assert.equal(f.flags, 0);
    assert.equal(f.level, 0);
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(1, 0)), ERR, 'two bytes of data');
    assert.equal(nic.ctrl(CTRL_RX, 0, new Uint8Array(0)), ERR, 'no data');
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(2)), ERR, 'neither on nor off');
    assert.equal(nic.ctrl(CTRL_RX, 3, Uint8Array.of(1)), ERR, 'NOMULTI needs CTRL_RX_EXTRA');

    const uni = [parseMac('02:00:00:00:00:01'), parseMac('02:00:00:00:00:02')];
    const multi = [parseMac('01:00:5e:00:00:01'), parseMac('33:33:00:00:00:01'), parseMac('01:80:c2:00:00:0e')];
    const table = (u: Uint8Array[], m: Uint8Array[], fixCount?: number): Uint8Array => {
      const b = new Uint8Array(8 + 6 * (u.length + m.length));
      const dv = new DataView(b.buffer);
      dv.setUint32(0, fixCount ?? u.length, true);
      u.forEach((x, i) => b.set(x, 4 + 6 * i));
      dv.setUint32(4 + 6 * u.length, m.length, true);
      m.forEach((x, i) => b.set(x, 8 + 6 * (u.length + i)));
      return b;
    };
    assert.equal(nic.ctrl(CTRL_MAC, 0, table(uni, multi)), OK, 'MAC_TABLE_SET');
    assert.deepEqual(f.unicast(), uni);
    assert.deepEqual(f.multicast(), multi);
    assert.equal(nic.ctrl(CTRL_MAC, 0, table(uni, multi, 3)), ERR, 'counts that do not match the data');
    assert.equal(nic.ctrl(CTRL_MAC, 0, table(uni, multi).subarray(0, 10)), ERR, 'truncated');
    assert.deepEqual(f.unicast(), uni, 'a refused table changes nothing');
    const many = Array.from({ length: 70 }, (_, i) => Uint8Array.of(1, 0, 0x5e, 0, 1, i));
    assert.equal(nic.ctrl(CTRL_MAC, 0, table([], many)), OK, 'a table too long to store overflows');
    assert.deepEqual(f.multicast(), []);
    assert.equal(f.level, 1, 'multicast overflow: all multicast');

    const addr = parseMac('02:aa:bb:cc:dd:ee');
    assert.equal(nic.ctrl(CTRL_MAC, 1, addr), OK, 'MAC_ADDR_SET');
    assert.deepEqual(s.dev.mac, addr, 'reflected in the configuration space');
    assert.equal(new ModernDriver(s.host, s.cfg).configRead(0, 1), 0x02);
    assert.equal(nic.ctrl(CTRL_MAC, 1, parseMac('01:00:00:00:00:01')), ERR, 'a multicast address');
    assert.equal(nic.ctrl(CTRL_MAC, 1, addr.subarray(0, 5)), ERR, 'five bytes');
    assert.equal(nic.ctrl(CTRL_MAC, 2, addr), ERR, 'unknown MAC command');

    assert.equal(nic.ctrl(CTRL_MQ, 0, Uint8Array.of(1, 0)), OK, 'one pair');
    assert.equal(nic.ctrl(CTRL_MQ, 0, Uint8Array.of(2, 0)), ERR, 'more pairs than there are');
    assert.equal(nic.ctrl(CTRL_MQ, 0, Uint8Array.of(1)), ERR, 'short');
    assert.equal(nic.ctrl(CTRL_VLAN, 0, Uint8Array.of(1, 0)), ERR, 'VLAN not offered');
    assert.equal(nic.ctrl(9, 0, new Uint8Array(0)), ERR, 'unknown class');
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(1), 0), 0xee, 'no writable byte: returned without an ack');
    assert.equal(s.dev.stats.ctrlNoAck, 1);

    // A device reset restores the filter and the MAC.
    const again = new GuestNic(s, F_MAC | F_MRG_RXBUF);
    assert.equal(f.flags, 2);
    assert.deepEqual(f.unicast(), []);
    assert.deepEqual(s.dev.mac, GUEST_MAC);
    assert.equal(again.ctrl(CTRL_RX, 0, Uint8Array.of(1)), ERR, 'CTRL_RX not negotiated');
  });

  test('a hostile driver: bad chains are dropped or returned empty, guest memory is touched only where allowed', async () => {
    const s = netSetup(quietNs());
    const nic = new GuestNic(s, BASIC);
    const st = (): PciVirtioNet['stats'] => s.dev.stats;
    // TX: a writable buffer, nothing readable, less than a header, too long, outside RAM, refused by the tap.
    nic.sendChain([
      { addr: TX_BUF, len: 12 },
      { addr: TX_BUF + 0x100, len: 60, write: true },
    ]);
    nic.sendChain([{ addr: TX_BUF, len: 64, write: true }]);
    nic.sendChain([{ addr: TX_BUF, len: 5 }]);
    nic.sendChain([{ addr: TX_BUF, len: 12 + 70_000 }]);
    nic.sendChain([
      { addr: TX_BUF, len: 12 },
      { addr: HOLE, len: 64 },
    ]);
    nic.sendChain([{ addr: TX_BUF, len: 12 + 5 }]);
    assert.equal(st().txBadChain, 3);
    assert.equal(st().txTooLong, 1);
    assert.equal(st().txFault, 1);
    assert.equal(st().txTapErrors, 1, 'a 5-byte frame: the tap says EINVAL');
    assert.equal(st().txFrames, 0);
    assert.equal(
      s.ram.subarray(TX_BUF + 0x100, TX_BUF + 0x100 + 60).some((b) => b !== 0),
      false,
      'TX writes nothing',
    );

    // RX: chains that cannot take a frame come back empty; the good one after them gets it.
    const good = RX_BUFS + 0x8000;
    const watch = new MemoryWatch(s.ram);
    const romBefore = s.rom.slice();
    nic.postChain([
      { addr: RX_BUFS, len: 16 },
      { addr: RX_BUFS + 0x100, len: 2048, write: true },
    ]);
    nic.postChain([{ addr: RX_BUFS + 0x1000, len: 4, write: true }]);
    nic.postChain([{ addr: ROM_BASE, len: 2048, write: true }]);
    nic.postChain([{ addr: HOLE, len: 2048, write: true }]);
    nic.postChain([{ addr: good, len: 2048, write: true }]);
    nic.notify(0);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    const r = await nic.awaitRx(isArpReply);
    assert.equal(nic.empties, 4);
    assert.equal(st().rxBadChain, 4);
    assert.deepEqual(s.rom, romBefore, 'ROM untouched');
    assert.deepEqual(
      watch.changedOutside([
        [good, good + 12 + r.frame.length],
        [RXQ_AT, CTRL_BUF],
        [TX_BUF, TX_BUF + 0x200],
      ]),
      [],
      'only the good buffer, the rings and the test’s TX buffers changed',
    );

    // With MRG_RXBUF a first buffer smaller than the header is refused too.
    const mrg = new GuestNic(s, BASIC | F_MRG_RXBUF);
    mrg.postChain([{ addr: RX_BUFS_END - 0x100, len: 8, write: true }]);
    mrg.postRx(2, 2048);
    mrg.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    await mrg.awaitRx(isArpReply);
    assert.equal(mrg.empties, 1);

    // A descriptor loop is a queue fault: DEVICE_NEEDS_RESET, nothing thrown.
    mrg.txq.setDesc(40, { addr: TX_BUF, len: 12, flags: DESC_F_NEXT, next: 41 });
    mrg.txq.setDesc(41, { addr: TX_BUF, len: 12, flags: DESC_F_NEXT, next: 40 });
    mrg.txq.publish(40);
    mrg.notify(1);
    assert.equal(new ModernDriver(s.host, s.cfg).status & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    assert.equal(s.dev.transport.stats.deviceErrors, 0, 'no device bug');
  });

  test('state: pci-virtio, pci-device and pci-virtio-viona round-trip; held chains come back first; bad state is refused', async () => {
    const ns = quietNs();
    createTap('vmig0', { netns: ns.name });
    setMtu('vmig0', 9000, { netns: ns.name });
    const s = netSetup(ns, { tapName: 'vmig0', attach: true });
    staticNeighbour(s);
    const nic = new GuestNic(s, BASIC | F_MRG_RXBUF);
    assert.equal(nic.ctrl(CTRL_RX, 0, Uint8Array.of(1)), OK);
    const macs = new Uint8Array(8 + 6 * 3);
    new DataView(macs.buffer).setUint32(0, 1, true);
    macs.set(parseMac('02:00:00:00:00:07'), 4);
    new DataView(macs.buffer).setUint32(10, 2, true);
    macs.set(parseMac('01:00:5e:00:00:fb'), 14);
    macs.set(parseMac('33:33:00:00:00:fb'), 20);
    assert.equal(nic.ctrl(CTRL_MAC, 0, macs), OK);
    // A frame partly placed in two buffers at the moment of export.
    const held = nic.postRx(2, 1024);
    nic.send(echoRequest(s, 3, pattern(3000, 5)));
    await until(s.dev, () => s.dev.stats.rxStarved >= 1, 'the reply, partly placed');
    assert.deepEqual(nic.takeRx(), []);

    s.dev.pause();
    const mig = s.dev.migrate();
    if (typeof mig === 'string') throw new Error('virtio-net must be migratable');
    const saved = JSON.parse(JSON.stringify(mig.export())) as Payload[];
    assert.deepEqual(
      saved.map((p) => `${p.kind} v${p.version}`),
      ['pci-virtio v1', 'pci-device v1', 'pci-virtio-viona v1'],
    );
    assert.deepEqual(saved[2]!.data, {
      promisc_level: 2,
      filter_flags: 3,
      unicast: [[2, 0, 0, 0, 0, 7]],
      multicast: [
        [1, 0, 0x5e, 0, 0, 0xfb],
        [0x33, 0x33, 0, 0, 0, 0xfb],
      ],
    });
    assert.deepEqual(
      nic.rxq.takeUsed().map((u) => [u.id, u.len]),
      held.map((h) => [h, 0]),
      'the partly used buffers were returned empty before the export',
    );
    assert.equal(s.dev.stats.rxFlushed, 1);

    // The destination: the source's tap is closed, a new device opens it again.
    s.dev.halt();
    const host2 = new VirtioTestHost(s.mem);
    const desc2 = PciVirtioNet.describe({
      name: 'net0',
      pciPath: new PciPath(0, DEV, 0),
      tap: { name: 'vmig0', mode: 'attach', netns: ns.name },
      mac: GUEST_MAC,
      rxThread: 'external',
    });
    const dev2 = PciVirtioNet.attach(desc2, host2);
    devices.push(dev2);
    pciWindows(host2);
    const mig2 = dev2.migrate();
    if (typeof mig2 === 'string') throw new Error('not migratable');
    mig2.import(new PayloadOffers(saved));
    assert.equal(dev2.rxFilter.flags, 3);
    assert.deepEqual(dev2.rxFilter.unicast(), [parseMac('02:00:00:00:00:07')]);
    assert.equal(dev2.rxFilter.multicast().length, 2);
    dev2.resume();
    // The guest carries on with the same rings through the new device.
    nic.rebind(dev2, host2);
    nic.postRx(8, 2048);
    nic.send(arpRequest(GUEST_MAC, GUEST_IP, NS_IP));
    await nic.awaitRx(isArpReply);
    assert.ok(
      host2.msis.some((m) => m.data === 0x31),
      'interrupts on the imported vectors',
    );

    // Refused: bad filter state, missing or leftover payloads.
    const fresh = (): ReturnType<PciVirtioNet['migrate']> => {
      const d = PciVirtioNet.attach(
        PciVirtioNet.describe({
          name: 'net1',
          pciPath: new PciPath(0, 8, 0),
          tap: { name: 'vmig1', mode: 'create', netns: ns.name },
          rxThread: 'external',
        }),
        new VirtioTestHost(s.mem),
      );
      devices.push(d);
      return d.migrate();
    };
    const target = fresh();
    if (typeof target === 'string') throw new Error('not migratable');
    const withNet = (data: unknown): Payload[] => [saved[0]!, saved[1]!, { ...saved[2]!, data }];
    const netData = saved[2]!.data as Record<string, unknown>;
    for (const [why, payloads] of [
      ['unknown filter flag', withNet({ ...netData, filter_flags: 0x13, promisc_level: 2 })],
      ['level not matching the flags', withNet({ ...netData, promisc_level: 0 })],
      ['a 5-byte MAC', withNet({ ...netData, unicast: [[2, 0, 0, 0, 0]] })],
      ['an unknown field', withNet({ ...netData, vlan: 1 })],
      ['no pci-virtio-viona', [saved[0]!, saved[1]!]],
      ['a leftover payload', [...saved, { kind: 'x', version: 1, data: {} }]],
    ] as const) {
      assert.throws(() => target.import(new PayloadOffers([...payloads])), /./, why);
    }
  });
});
