// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Child process of the SeaBIOS section of the benchmark (bench/seabios-boot.ts):
// the counting run on our side. It builds the VM propolis-standalone builds
// for `[main] cpus = 1, memory = 256, bootrom = BIOS` (PcPlatform with the
// standalone's defaults), plus bench/port-counter.ts, and then behaves like
// `propolis-standalone --serial-stdout`: COM1 goes to stdout, the QEMU
// debug port to ./debug.out, and SIGINT halts the VM.
//
//   node dist/bench/seabios-probe.js <BIOS> <RESULT.json>
//
// On SIGINT it pauses the vCPUs and writes RESULT.json (SeabiosProbeResult):
// the exit counts, the per-port access counts, when each SeaBIOS debug-log
// line arrived, and when this process reached each step of its start-up.
// Times are wall-clock milliseconds (performance.timeOrigin + now()), so
// the parent can put them on the same axis as its own spawn time.
//
// Errors go to stderr with exit status 1; a guest failure exits 3.

import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { PcPlatform } from '../lib/propolis/src/platform/pc.js';
import type { ExitStats, MachineEvent } from '../lib/propolis/src/vmm/machine.js';
import { PortCounter, type PortCount } from './port-counter.js';

const wallMs = (): number => performance.timeOrigin + performance.now();
// Static imports are evaluated before this line runs.
const bodyEpochMs = wallMs();

export interface SeabiosProbeResult {
  stats: ExitStats[];
  ports: PortCount[];
  /** SeaBIOS's debug log, a line at a time, with the time its last byte was drained. */
  debugLines: { epochMs: number; line: string }[];
  steps: {
    /** When Node.js started this process. */
    originEpochMs: number;
    /** When this module's body started: Node.js up and every module loaded. */
    bodyEpochMs: number;
    /** PcPlatform.create returned: VM, memory, devices and firmware tables built. */
    builtEpochMs: number;
    /** machine.start() resolved: vCPU threads up and running the guest. */
    startedEpochMs: number;
  };
}

async function probe(biosPath: string, resultPath: string): Promise<number> {
  const pc = await PcPlatform.create({
    name: 'seabios-probe',
    cpus: 1,
    memoryMiB: 256,
    bootrom: new Uint8Array(readFileSync(biosPath)),
    kvmPath: process.env['PROPOLIS_KVM_DEVICE'] ?? '/dev/kvm',
    standalone: true,
    debugExits: [],
  });
  const machine = pc.machine;
  try {
    const counter = machine.addDevice(PortCounter, PortCounter.describe());
    const builtEpochMs = wallMs();

    const debugLines: SeabiosProbeResult['debugLines'] = [];
    let partial = '';
    const debugOut = pc.debugPort.pipeTo((bytes) => {
      appendFileSync('debug.out', bytes);
      const now = wallMs();
      const parts = (partial + Buffer.from(bytes).toString('latin1')).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) debugLines.push({ epochMs: now, line });
    });

    // COM1 to stdout, as the standalone's --serial-stdout does.
    const com1 = pc.com.com1;
    com1.setSinkAttached(true);
    let consoleOpen = true;
    const pump = (async (): Promise<void> => {
      while (consoleOpen) {
        await com1.output.waitReadable();
        const bytes = com1.output.drain();
        if (bytes.length > 0) {
          process.stdout.write(bytes);
          com1.pump();
        }
      }
    })();

    let finish: (code: number) => void = () => {};
    const finished = new Promise<number>((r) => (finish = r));
    machine.onEvent((e: MachineEvent) => {
      process.stderr.write(`seabios-probe: guest ${e.type}: ${e.reason}\n`);
      finish(e.type === 'failure' ? 3 : 1);
    });
    // `on`, not `once`: a second SIGINT while the counts are collected must
    // not kill the process before it has written them.
    process.on('SIGINT', () => finish(0));

    await machine.start();
    const startedEpochMs = wallMs();
    const code = await finished;
    await machine.pause();

    consoleOpen = false;
    com1.output.wake();
    await pump;
    await debugOut.close();
    if (partial !== '') debugLines.push({ epochMs: wallMs(), line: partial });

    const result: SeabiosProbeResult = {
      stats: machine.stats(),
      ports: counter.result(),
      debugLines,
      steps: { originEpochMs: performance.timeOrigin, bodyEpochMs, builtEpochMs, startedEpochMs },
    };
    writeFileSync(resultPath, `${JSON.stringify(result)}\n`);
    return code;
  } finally {
    await machine.destroy();
  }
}

const [bios, out] = process.argv.slice(2);
if (bios === undefined || out === undefined) {
  process.stderr.write('usage: node dist/bench/seabios-probe.js <BIOS> <RESULT.json>\n');
  process.exit(1);
}
probe(bios, out).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`seabios-probe: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
