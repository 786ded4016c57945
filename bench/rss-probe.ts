// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Child process of the benchmark (bench/run.ts) that measures how much
// resident memory the VMM needs beyond the guest's own RAM.
//
//   node dist/bench/rss-probe.js <CPUS>
//
// Builds the machine propolis-standalone builds (four COM ports, fw_cfg,
// debug-exit at 0x501) with 256 MiB of RAM and CPUS vCPUs, boots
// guests/out/smp.rom, waits for its halt (status 2*CPUS+1), pauses the
// vCPUs and sums Rss over /proc/self/smaps: all mappings, and the guest
// memory mappings (RAM and the bootrom window). The difference is the VMM's
// overhead. With CPUS = 0 it creates no machine and reports the bare
// process (Node.js, koffi and these modules loaded), for scale.
//
// Prints one JSON line on stdout; errors go to stderr with exit status 1.
// It runs in its own process so that nothing from earlier measurements
// (other machines, freed heaps not yet returned) is counted.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QemuDebugExit } from '../lib/propolis/src/hw/qemu/debug-exit.js';
import { QemuFwCfg } from '../lib/propolis/src/hw/qemu/fwcfg.js';
import { LpcUart } from '../lib/propolis/src/hw/uart/lpc-uart.js';
import { LAYOUT, Machine, MiB, type MachineEvent } from '../lib/propolis/src/vmm/machine.js';
import { startAndWait } from './guest-run.js';

const root = join(import.meta.dirname, '..', '..');
const MEMORY_MIB = 256;
const HALT_TIMEOUT_MS = 60_000;

export interface RssProbeResult {
  cpus: number;
  memoryMiB: number;
  /** Debug-exit status the guest halted with (2*cpus+1 when every vCPU came up); absent for cpus = 0. */
  status?: number;
  /** How the guest mappings were found: the Machine's own list, or by size and kind. */
  guestBy: 'layout' | 'size' | 'none';
  guestMappings: { start: string; size: number; rssKiB: number }[];
  totalRssKiB: number;
  guestRssKiB: number;
  overheadKiB: number;
}

interface SmapsEntry {
  start: bigint;
  end: bigint;
  name: string;
  rssKiB: number;
}

function readSmaps(): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  let cur: SmapsEntry | undefined;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+ *(.*)$/.exec(line);
    if (head) {
      cur = { start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), name: head[3] ?? '', rssKiB: 0 };
      out.push(cur);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    if (rss && cur) cur.rssKiB = Number(rss[1]);
  }
  return out;
}

/** Host ranges of guest memory, if this Machine exposes them (see the report: `memoryLayout`). */
function machineRanges(m: Machine): { start: bigint; size: number }[] | undefined {
  const layout = (m as unknown as { memoryLayout?: readonly { hostAddr: bigint; size: number }[] }).memoryLayout;
  return Array.isArray(layout) ? layout.map((e) => ({ start: e.hostAddr, size: e.size })) : undefined;
}

function measure(cpus: number, machine: Machine | undefined, status: number | undefined): RssProbeResult {
  const smaps = readSmaps();
  const totalRssKiB = smaps.reduce((s, e) => s + e.rssKiB, 0);
  let guestBy: RssProbeResult['guestBy'] = 'none';
  let guest: SmapsEntry[] = [];
  if (machine) {
    const ranges = machineRanges(machine);
    if (ranges) {
      guestBy = 'layout';
      guest = smaps.filter((e) => ranges.some((r) => e.start >= r.start && e.end <= r.start + BigInt(r.size)));
    } else {
      // Guest memory is MAP_SHARED | MAP_ANONYMOUS, which the kernel shows as
      // "/dev/zero (deleted)"; its sizes are the RAM size and the ROM window.
      guestBy = 'size';
      const sizes = new Set([BigInt(MEMORY_MIB * MiB), BigInt(LAYOUT.romSize)]);
      guest = smaps.filter((e) => e.name.startsWith('/dev/zero') && sizes.has(e.end - e.start));
    }
  }
  const guestRssKiB = guest.reduce((s, e) => s + e.rssKiB, 0);
  return {
    cpus,
    memoryMiB: machine ? MEMORY_MIB : 0,
    ...(status === undefined ? {} : { status }),
    guestBy,
    guestMappings: guest.map((e) => ({
      start: `0x${e.start.toString(16)}`,
      size: Number(e.end - e.start),
      rssKiB: e.rssKiB,
    })),
    totalRssKiB,
    guestRssKiB,
    overheadKiB: totalRssKiB - guestRssKiB,
  };
}

async function probe(cpus: number): Promise<RssProbeResult> {
  if (cpus === 0) return measure(0, undefined, undefined);
  const machine = Machine.create({
    name: `rss-probe-${cpus}`,
    cpus,
    memoryMiB: MEMORY_MIB,
    bootrom: new Uint8Array(readFileSync(join(root, 'guests', 'out', 'smp.rom'))),
  });
  try {
    // As propolis-standalone's build(): COM1-4, fw_cfg, and the debug-exit device.
    for (const c of ['com1', 'com2', 'com3', 'com4'] as const) machine.addDevice(LpcUart, LpcUart.describe(c));
    machine.addDevice(QemuFwCfg, QemuFwCfg.describe({ cpus }));
    machine.addDevice(QemuDebugExit, QemuDebugExit.describe('exit'));
    const halted = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`smp.rom did not halt within ${HALT_TIMEOUT_MS} ms`)),
        HALT_TIMEOUT_MS,
      );
      machine.onEvent((e: MachineEvent) => {
        clearTimeout(timer);
        if (e.type === 'halt' && e.status !== undefined) resolve(e.status);
        else reject(new Error(`guest ${e.type}: ${e.reason}`));
      });
    });
    const status = await startAndWait(machine, halted);
    if (status !== 2 * cpus + 1) {
      throw new Error(`smp.rom saw ${(status - 1) / 2} of ${cpus} vCPUs (debug-exit status ${status})`);
    }
    return measure(cpus, machine, status);
  } finally {
    await machine.destroy();
  }
}

const arg = process.argv[2] ?? '';
const cpus = Number(arg);
if (!/^\d+$/.test(arg) || cpus > 32) {
  process.stderr.write('usage: node dist/bench/rss-probe.js <CPUS 0..32>\n');
  process.exit(1);
}
probe(cpus).then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`rss-probe: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(1);
  },
);
