// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Test namespaces themselves: unique names, commands and processes inside,
// veth pairs across namespaces with addresses, teardown that leaves nothing
// (also when the test body throws, and for namespaces of a killed run), and
// dnsmasq answering a DHCPDISCOVER written into a tap, as a guest would see
// it.
//
// Needs root and /dev/net/tun; fails (does not skip) without them.
//
// Threading: main thread.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startDnsmasq } from './dnsmasq.js';
import { LinkCommandError, LinkOptionError, NetnsNotFoundError } from './errors.js';
import { listLinks, runIp } from './link.js';
import { parseMac } from './names.js';
import { listNetns, NetNs, sweepStaleNetns, withNetns } from './netns.js';
import { queryLink } from './query.js';
import { Tap } from './tap.js';
import {
  awaitFrame,
  DHCPOFFER,
  dhcpDiscover,
  IPPROTO_UDP,
  parseDhcp,
  parseEthernet,
  parseIpv4,
  parseUdp,
  withVnetHdr,
} from './testing/frames.js';
import { requireNetAdmin } from './testing/preflight.js';

/** Above any pid_max Linux allows (2^22), so never a live process. */
const DEAD_PID = 4194305;

function addrs(ns: NetNs, link: string): string[] {
  const j = JSON.parse(ns.ip(['-j', '-4', 'addr', 'show', 'dev', link])) as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return j[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
}

describe('test network namespaces', () => {
  let rootLinksBefore: string[] = [];
  before(() => {
    requireNetAdmin();
    rootLinksBefore = listLinks().map((l) => l.name);
  });
  after(() => {
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

  test('create, run a command inside, destroy (idempotent)', () => {
    const a = NetNs.create();
    const b = NetNs.create();
    try {
      assert.notEqual(a.name, b.name);
      assert.match(a.name, new RegExp(`^ptsns-${process.pid}-\\d+$`));
      assert.ok(listNetns().includes(a.name));
      assert.deepEqual(a.links(), ['lo']);
      assert.equal(queryLink('lo', { netns: a.name }).flags & 1, 1, 'loopback is up');
      const out = a.exec('ip', ['-o', 'link', 'show']);
      assert.match(out.stdout, /\blo\b/);
      assert.doesNotMatch(out.stdout, /\beth0\b/, 'the host NIC is not visible inside');
      assert.throws(() => a.exec('false', []), LinkCommandError);
    } finally {
      a.destroy();
      b.destroy();
    }
    a.destroy();
    assert.ok(!listNetns().includes(a.name));
    assert.ok(!listNetns().includes(b.name));
    assert.throws(() => a.enter(() => 0), NetnsNotFoundError);
  });

  test('veth pairs across namespaces with addresses; a link moved in', () => {
    const a = NetNs.create();
    const b = NetNs.create();
    try {
      a.addVeth('va', 'vb', b);
      a.addAddress('va', '10.203.0.1/24');
      b.addAddress('vb', '10.203.0.2/24');
      a.setUp('va');
      b.setUp('vb');
      assert.deepEqual(addrs(a, 'va'), ['10.203.0.1/24']);
      assert.deepEqual(addrs(b, 'vb'), ['10.203.0.2/24']);
      assert.ok(b.links().includes('vb'));
      assert.ok(!a.links().includes('vb'));
      // Reachability through the pair, from inside a, by the kernel's own ARP.
      a.exec('bash', ['-c', 'printf x > /dev/udp/10.203.0.2/9']);
      const neigh = a.ip(['neigh', 'show', '10.203.0.2', 'dev', 'va']);
      assert.match(neigh, /lladdr/);
      assert.throws(() => a.addAddress('va', '10.203.0.300/24'), LinkOptionError);

      a.addVeth('vx', 'vy');
      b.moveIn('vy', a);
      assert.ok(b.links().includes('vy'));
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  test('withNetns tears down after a failing body, processes and links included', async () => {
    let name = '';
    let pid: number | undefined;
    await assert.rejects(
      withNetns(async (ns) => {
        name = ns.name;
        ns.addVeth('v0', 'v1');
        pid = ns.spawn('sleep', ['30']).pid;
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.ok(name !== '' && !listNetns().includes(name));
    assert.ok(pid !== undefined);
    await new Promise((r) => setTimeout(r, 50));
    assert.throws(() => process.kill(pid!, 0), 'the process started inside was killed');
  });

  test('namespaces of a dead run are swept', () => {
    const stale = `ptsns-${DEAD_PID}-1`;
    runIp(['netns', 'add', stale]);
    runIp(['link', 'add', 'name', 'sv0', 'type', 'veth', 'peer', 'name', 'sv1'], undefined, { netns: stale });
    assert.ok(sweepStaleNetns().includes(stale));
    assert.ok(!listNetns().includes(stale));
  });

  test('dnsmasq in a namespace answers a DHCPDISCOVER written into a tap with an offer', async () => {
    await withNetns(async (ns) => {
      const tap = Tap.open({ name: 'dhcp0', mode: 'create', netns: ns.name });
      try {
        ns.addAddress('dhcp0', '10.202.0.1/24');
        ns.setUp('dhcp0');
        const dnsmasq = await startDnsmasq(ns, {
          iface: 'dhcp0',
          rangeStart: '10.202.0.100',
          rangeEnd: '10.202.0.150',
          netmask: '255.255.255.0',
          router: '10.202.0.1',
        });
        try {
          const mac = parseMac('02:00:5e:00:02:02');
          const xid = 0x1badcafe;
          tap.send(withVnetHdr(tap.vnetHdrLen, dhcpDiscover(mac, xid)));
          const offer = await awaitFrame(
            tap,
            (f) => {
              const ip = parseIpv4(parseEthernet(f)?.payload ?? new Uint8Array());
              const u = ip?.protocol === IPPROTO_UDP ? parseUdp(ip.payload) : undefined;
              return u?.srcPort === 67 && u.dstPort === 68 && parseDhcp(u.payload)?.xid === xid;
            },
            5000,
          );
          const ip = parseIpv4(parseEthernet(offer.frame)!.payload)!;
          const d = parseDhcp(parseUdp(ip.payload)!.payload)!;
          assert.equal(d.op, 2);
          assert.deepEqual(d.options.get(53), Uint8Array.of(DHCPOFFER));
          assert.deepEqual(d.chaddr, mac);
          const last = Number(d.yiaddr.split('.')[3]);
          assert.ok(d.yiaddr.startsWith('10.202.0.') && last >= 100 && last <= 150, `offered ${d.yiaddr}`);
          assert.deepEqual(d.options.get(54), Uint8Array.of(10, 202, 0, 1), 'server identifier');
          assert.deepEqual(d.options.get(3), Uint8Array.of(10, 202, 0, 1), 'router');
          assert.match(await dnsmasq.waitForLog(/DHCPOFFER/), /DHCPOFFER\(dhcp0\) 10\.202\.0\.\d+ 02:00:5e:00:02:02/);
        } finally {
          await dnsmasq.stop();
        }
        assert.ok(dnsmasq.child.exitCode !== null || dnsmasq.child.signalCode !== null, 'dnsmasq stopped');
      } finally {
        tap.close();
      }
    });
  });
});
