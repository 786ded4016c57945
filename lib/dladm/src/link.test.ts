// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Link administration against the real kernel: names checked before any
// command runs, missing links and namespaces as typed errors, the life of a
// persistent tap (up, MTU, bridge port, delete), and a bridge that forwards
// a guest's frames from a tap to a veth whose other end lives in a second
// namespace, and the answers back.
//
// Needs root and /dev/net/tun; fails (does not skip) without them.
//
// Threading: main thread.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  LinkCommandError,
  LinkExistsError,
  LinkNameError,
  LinkNotFoundError,
  NetnsNameError,
  NetnsNotFoundError,
} from './errors.js';
import {
  attachToBridge,
  createBridge,
  createTap,
  deleteLink,
  detachFromBridge,
  linkExists,
  listLinks,
  moveLink,
  setLinkUp,
  setMtu,
  showLink,
} from './link.js';
import { checkLinkName, parseMac } from './names.js';
import { listNetns, NetNs } from './netns.js';
import { queryLink } from './query.js';
import { Tap } from './tap.js';
import {
  arpRequest,
  awaitFrame,
  ETH_P_ARP,
  ETH_P_IP,
  ethernet,
  icmpEchoRequest,
  IPPROTO_ICMP,
  ipv4Packet,
  parseArp,
  parseEthernet,
  parseIcmpEcho,
  parseIpv4,
  withVnetHdr,
} from './testing/frames.js';
import { requireNetAdmin } from './testing/preflight.js';

const GUEST_MAC = parseMac('02:00:5e:00:01:02');
const GUEST_IP = '10.201.0.2';
const PEER_IP = '10.201.0.3';

const BAD_NAMES = ['', 'sixteen-bytes-xx', 'a b', 'a/b', 'a:b', '-up', 'tap%d', '.', '..', 'tap\n0', 'ünï'];

describe('link administration', () => {
  const nsList: NetNs[] = [];
  const freshNs = (): NetNs => {
    const ns = NetNs.create();
    nsList.push(ns);
    return ns;
  };
  let rootLinksBefore: string[] = [];

  before(() => {
    requireNetAdmin();
    rootLinksBefore = listLinks().map((l) => l.name);
  });
  after(() => {
    for (const ns of nsList) ns.destroy();
    assert.deepEqual(
      listNetns().filter((n) => n.includes(`-${process.pid}-`)),
      [],
      'namespaces left behind',
    );
    assert.deepEqual(
      listLinks().map((l) => l.name),
      rootLinksBefore,
      'links left behind in the root namespace',
    );
  });

  test('bad names are typed errors before any command or syscall', () => {
    for (const bad of BAD_NAMES) {
      assert.throws(() => checkLinkName(bad), LinkNameError, JSON.stringify(bad));
      const ops: [string, () => unknown][] = [
        ['createTap', () => createTap(bad)],
        ['deleteLink', () => deleteLink(bad)],
        ['setLinkUp', () => setLinkUp(bad, true)],
        ['setMtu', () => setMtu(bad, 1500)],
        ['createBridge', () => createBridge(bad)],
        ['attachToBridge link', () => attachToBridge(bad, 'br0')],
        ['attachToBridge bridge', () => attachToBridge('lo', bad)],
        ['detachFromBridge', () => detachFromBridge(bad)],
        ['moveLink', () => moveLink(bad, 'ns')],
        ['showLink', () => showLink(bad)],
        ['linkExists', () => linkExists(bad)],
        ['queryLink', () => queryLink(bad)],
        ['Tap.open', () => Tap.open({ name: bad, mode: 'attach' })],
      ];
      for (const [what, op] of ops) {
        assert.throws(
          op,
          (e: unknown) => e instanceof LinkNameError && e.code === 'LINK_NAME_INVALID' && e.link === bad,
          `${what}(${JSON.stringify(bad)})`,
        );
      }
    }
    assert.throws(() => queryLink('lo', { netns: '../x' }), NetnsNameError);
    assert.throws(() => setLinkUp('lo', true, { netns: '-x' }), NetnsNameError);
  });

  test('missing links and namespaces are typed errors naming them', () => {
    const ns = freshNs();
    const netns = ns.name;
    const missing = (e: unknown): boolean =>
      e instanceof LinkNotFoundError && e.code === 'LINK_NOT_FOUND' && e.link === 'nosuch0' && e.netns === netns;
    assert.throws(() => deleteLink('nosuch0', { netns }), missing);
    assert.throws(() => setLinkUp('nosuch0', true, { netns }), missing);
    assert.throws(() => setMtu('nosuch0', 1500, { netns }), missing);
    assert.throws(() => showLink('nosuch0', { netns }), missing);
    assert.throws(() => queryLink('nosuch0', { netns }), missing);
    assert.throws(() => Tap.open({ name: 'nosuch0', mode: 'attach', netns }), missing);
    assert.equal(linkExists('nosuch0', { netns }), false);
    assert.throws(() => attachToBridge('lo', 'nosuch0', { netns }), missing);

    const noNs = `ptsns-${process.pid}-missing`;
    const nsMissing = (e: unknown): boolean => e instanceof NetnsNotFoundError && e.netns === noNs;
    assert.throws(() => setLinkUp('lo', true, { netns: noNs }), nsMissing);
    assert.throws(() => queryLink('lo', { netns: noNs }), nsMissing);
    assert.throws(() => moveLink('lo', noNs, { netns }), nsMissing);

    // Any other failure names the link and the command, with ip's reason.
    ns.addVeth('m0', 'm1');
    assert.throws(
      () => setMtu('m0', 10, { netns }),
      (e: unknown) =>
        e instanceof LinkCommandError &&
        e.link === 'm0' &&
        e.message.includes(`ip -n ${netns} link set dev m0 mtu 10`) &&
        /minimum/.test(e.stderr),
    );
  });

  test('a persistent tap: up, down, MTU, bridge port, delete', () => {
    const ns = freshNs();
    const netns = ns.name;
    createTap('ptap0', { netns });
    assert.equal(showLink('ptap0', { netns }).tunType, 'tap');
    setLinkUp('ptap0', true, { netns });
    assert.equal(showLink('ptap0', { netns }).up, true);
    setMtu('ptap0', 4000, { netns });
    assert.equal(queryLink('ptap0', { netns }).mtu, 4000);

    createBridge('br0', { netns });
    assert.throws(() => createBridge('br0', { netns }), LinkExistsError);
    assert.equal(showLink('br0', { netns }).kind, 'bridge');
    attachToBridge('ptap0', 'br0', { netns });
    assert.equal(showLink('ptap0', { netns }).master, 'br0');
    detachFromBridge('ptap0', { netns });
    assert.equal(showLink('ptap0', { netns }).master, undefined);

    setLinkUp('ptap0', false, { netns });
    assert.equal(showLink('ptap0', { netns }).up, false);
    deleteLink('ptap0', { netns });
    deleteLink('br0', { netns });
    assert.deepEqual(ns.links(), ['lo']);
  });

  test('a tap made in the root namespace can be moved into a test namespace', () => {
    const ns = freshNs();
    const name = `mv${process.pid}`;
    createTap(name);
    try {
      moveLink(name, ns.name);
    } catch (e) {
      deleteLink(name);
      throw e;
    }
    assert.equal(linkExists(name), false);
    assert.equal(showLink(name, { netns: ns.name }).tunType, 'tap');
  });

  test('a bridge forwards frames from a tap to a veth whose peer is in another namespace, and back', async () => {
    const bridgeNs = freshNs();
    const peerNs = freshNs();
    const netns = bridgeNs.name;
    const tap = Tap.open({ name: 'vm1', mode: 'create', netns });
    try {
      createBridge('br0', { netns });
      bridgeNs.addVeth('vport', 'vpeer', peerNs);
      attachToBridge('vm1', 'br0', { netns });
      attachToBridge('vport', 'br0', { netns });
      for (const l of ['br0', 'vm1', 'vport']) setLinkUp(l, true, { netns });
      peerNs.addAddress('vpeer', `${PEER_IP}/24`);
      peerNs.setUp('vpeer');
      const peerMac = parseMac(queryLink('vpeer', { netns: peerNs.name }).mac!);

      // The guest asks for the peer by ARP (broadcast, flooded by the bridge)
      // and gets the peer's own answer through the bridge.
      tap.send(withVnetHdr(12, arpRequest(GUEST_MAC, GUEST_IP, PEER_IP)));
      const arp = await awaitFrame(tap, (f) => {
        const e = parseEthernet(f);
        return e?.ethertype === ETH_P_ARP && parseArp(e.payload)?.op === 2;
      });
      const a = parseArp(parseEthernet(arp.frame)!.payload)!;
      assert.equal(a.senderIp, PEER_IP);
      assert.deepEqual(a.senderMac, peerMac);

      // A unicast echo request, forwarded by learned MAC, answered by the peer.
      const data = new TextEncoder().encode('across the bridge');
      const req = ethernet(
        peerMac,
        GUEST_MAC,
        ETH_P_IP,
        ipv4Packet(GUEST_IP, PEER_IP, IPPROTO_ICMP, icmpEchoRequest(9, 1, data)),
      );
      tap.send(withVnetHdr(12, req));
      const pong = await awaitFrame(tap, (f) => {
        const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
        return ip?.protocol === IPPROTO_ICMP && parseIcmpEcho(ip.payload)?.type === 0;
      });
      const ip = parseIpv4(parseEthernet(pong.frame)!.payload)!;
      assert.equal(ip.src, PEER_IP);
      assert.deepEqual(parseIcmpEcho(ip.payload)!.data, data);

      const fdb = bridgeNs.exec('bridge', ['fdb', 'show', 'br', 'br0']).stdout;
      assert.ok(fdb.includes('02:00:5e:00:01:02'), 'the bridge learned the guest MAC on the tap port');
    } finally {
      tap.close();
    }
  });
});
