// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Real traffic through propolis-standalone's virtio-net (pci-virtio-viona):
// the project's own guest driver (guests/src/netping.S) gets a DHCP lease
// from dnsmasq, ARPs for the server and pings it, across a tap in a
// throw-away network namespace. The standalone runs inside that namespace
// (`ip netns exec`), so its `vnic` is the tap the test made there; nothing
// touches the host's own links.
//
// Needs root, /dev/net/tun and /dev/kvm; fails (does not skip) without them.
//
// Threading: main thread (child processes).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';

import { startDnsmasq } from '../../../lib/dladm/src/dnsmasq.js';
import { createTap } from '../../../lib/dladm/src/link.js';
import { formatMac } from '../../../lib/dladm/src/names.js';
import { NetNs } from '../../../lib/dladm/src/netns.js';
import { requireNetAdmin } from '../../../lib/dladm/src/testing/preflight.js';
import { macFromName } from '../../../lib/propolis/src/hw/virtio/net.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';

const MAIN = join(REPO_ROOT, 'dist', 'bin', 'propolis-standalone', 'src', 'main.js');
const ROM = join(REPO_ROOT, 'guests', 'out', 'netping.rom');
const TAP = 'ptsnet0';
const NIC = 'net0';
const HOST_IP = '10.204.0.1';
const RANGE_FIRST = 100;
const RANGE_LAST = 150;
/** The guest tries each step 5 times, 1–2 s apart: four steps fit well inside this. */
const RUN_TIMEOUT_MS = 90_000;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the standalone inside `ns` with COM1 on stdout; killed after RUN_TIMEOUT_MS. */
function runIn(ns: NetNs, cfg: string, cwd: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = ns.spawn(process.execPath, [MAIN, cfg, '--serial-stdout'], { cwd });
    let stdout = '';
    let stderr = '';
    p.stdout?.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(
        new Error(`propolis-standalone did not exit within ${RUN_TIMEOUT_MS} ms; stdout=${stdout} stderr=${stderr}`),
      );
    }, RUN_TIMEOUT_MS);
    p.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    p.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The namespace's IPv6 off: no router solicitations or MLD reports among the guest's frames. */
function disableIpv6(ns: NetNs): void {
  ns.exec('sh', [
    '-c',
    'for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 /proc/sys/net/ipv6/conf/all/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true',
  ]);
}

/** `s` for a RegExp, its dots literal. */
const esc = (s: string): string => s.replace(/\./g, '\\.');

/** The namespace's ICMP counters (the `Icmp:` lines of its /proc/net/snmp). */
function icmpCounters(ns: NetNs): Record<string, number> {
  const lines = ns
    .exec('cat', ['/proc/net/snmp'])
    .stdout.split('\n')
    .filter((l) => l.startsWith('Icmp: '));
  const [names, values] = lines.map((l) => l.split(' ').slice(1));
  assert.ok(names && values && names.length === values.length, `no Icmp counters in ${ns.name}'s /proc/net/snmp`);
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}

describe('propolis-standalone: virtio-net traffic from the netping guest', () => {
  before(() => {
    requireNetAdmin();
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
    if (!existsSync(ROM)) throw new Error(`test guest ${ROM} is missing: run \`npm run build\` first`);
  });

  it('DHCP from dnsmasq, ARP and ICMP echo across a tap in a namespace', async () => {
    const mac = formatMac(macFromName(NIC));
    const dir = mkdtempSync(join(tmpdir(), 'propolis-net-'));
    const ns = NetNs.create();
    try {
      disableIpv6(ns);
      // Made first (persistent) so that it has its address and dnsmasq
      // before the guest's first frame; the standalone attaches to it.
      createTap(TAP, { netns: ns.name });
      ns.addAddress(TAP, `${HOST_IP}/24`);
      ns.setUp(TAP);
      const dnsmasq = await startDnsmasq(ns, {
        iface: TAP,
        rangeStart: `10.204.0.${RANGE_FIRST}`,
        rangeEnd: `10.204.0.${RANGE_LAST}`,
        netmask: '255.255.255.0',
      });
      try {
        const cfg = join(dir, 'netping.toml');
        writeFileSync(
          cfg,
          `[main]\nname = "netping"\ncpus = 1\nmemory = 32\nbootrom = "${ROM}"\n\n` +
            `[dev.${NIC}]\ndriver = "pci-virtio-viona"\nvnic = "${TAP}"\npci-path = "0.4.0"\n` +
            `rx-queue-size = 256\ntx-queue-size = 256\n\n` +
            `[dev.exit]\ndriver = "qemu-isa-debug-exit"\niobase = 0x501\n`,
        );
        const started = Date.now();
        const r = await runIn(ns, cfg, dir);
        const elapsed = Date.now() - started;
        const why = `exit ${r.code ?? r.signal} after ${elapsed} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}\ndnsmasq:\n${dnsmasq.log.join('\n')}`;

        // The guest's side.
        assert.equal(r.code, 0, why);
        assert.match(
          r.stdout,
          new RegExp(`netping: virtio-net 00:04\\.0 mac ${mac} rx queue 256 tx queue 256\\r\\n`),
          why,
        );
        const offer = /netping: DHCPOFFER (\d+)\.(\d+)\.(\d+)\.(\d+) from server (\S+)\r\n/.exec(r.stdout);
        assert.ok(offer, `no DHCPOFFER line; ${why}`);
        const [, a, b, c, d, server] = offer;
        const ip = `${a}.${b}.${c}.${d}`;
        assert.equal(`${a}.${b}.${c}`, '10.204.0', `offered ${ip}; ${why}`);
        assert.ok(Number(d) >= RANGE_FIRST && Number(d) <= RANGE_LAST, `offered ${ip}, outside the range; ${why}`);
        assert.equal(server, HOST_IP, why);
        assert.match(r.stdout, new RegExp(`netping: DHCPACK ${esc(ip)}\\r\\n`), why);
        const tapMac = JSON.parse(ns.ip(['-j', 'link', 'show', 'dev', TAP]))[0].address as string;
        assert.match(r.stdout, new RegExp(`netping: ARP ${esc(HOST_IP)} is at ${tapMac}\\r\\n`), why);
        assert.match(r.stdout, new RegExp(`netping: ICMP echo reply from ${esc(HOST_IP)} seq \\d+\\r\\n`), why);
        assert.match(r.stdout, /netping: ok\r\n$/, why);
        assert.doesNotMatch(r.stdout, /FAIL/, why);

        // The host's side: dnsmasq saw the guest's MAC and leased it the
        // address it printed; the namespace's kernel answered an echo
        // request. (Its neighbour entry for the guest is gone by now: the
        // tap lost its carrier when the VMM closed it.)
        assert.ok(
          dnsmasq.log.some((l) => l.includes(`DHCPDISCOVER(${TAP}) ${mac}`)),
          `dnsmasq logged no DHCPDISCOVER from ${mac}; ${why}`,
        );
        assert.ok(
          dnsmasq.log.some((l) => l.includes(`DHCPACK(${TAP}) ${ip} ${mac}`)),
          `dnsmasq logged no DHCPACK of ${ip} to ${mac}; ${why}`,
        );
        assert.deepEqual(
          dnsmasq.leases().map((l) => ({ mac: l.mac, ip: l.ip })),
          [{ mac, ip }],
          `dnsmasq's leases; ${why}`,
        );
        const icmp = icmpCounters(ns);
        assert.ok(
          (icmp.InEchos ?? 0) >= 1 && (icmp.OutEchoReps ?? 0) >= 1,
          `ICMP counters in ${ns.name}: ${JSON.stringify(icmp)}`,
        );
      } finally {
        await dnsmasq.stop();
      }
    } finally {
      ns.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
