// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The block-throughput section of `npm run bench`: guests/out/blkbench.rom
// drives a legacy virtio-blk function from CPL3 by polling (see the guest's
// header comment), once under propolis-ts and once under QEMU 7.2
// (`virtio-blk-pci,disable-modern=on`, `cache=writeback,aio=threads`), on
// the same image, in alternating rounds. Three workloads, each a fixed
// number of requests with QD requests in flight:
//   1. 4 KiB random reads over a 256 MiB read region,
//   2. 1 MiB sequential reads over the read region,
//   3. 1 MiB sequential writes over a separate 256 MiB write region.
// The guest prints a marker before (B<k>) and after (E<k> …) each phase on
// COM1; the host timestamps the markers as they arrive and computes MiB/s
// and requests/s from its own clock. The guest also reports its TSC ticks
// per phase (the same clock on both sides: KVM does not scale the TSC
// here), kept in the JSON as a cross-check, and how many notifies it wrote.
//
// propolis-ts runs in this process (PcPlatform, as the standalone builds
// it, so queue notifies are doorbells served by the machine's I/O thread),
// so its exit counts and virtio counters can be read after each run;
// QEMU runs as a child with the serial port on stdout.
//
// The image (.cache/bench/blkbench.img, 513 MiB) is created once and kept:
// 4 KiB block 0 holds the guest's parameter block, rewritten every run;
// blocks 256.. the read region, every 4 KiB block starting with its own
// block number (the guest checks them) and filled with pseudo-random bytes
// (no holes, nothing a file system could compress); then the write region.
// The whole file is read once before the rounds so both sides start from a
// warm page cache.
//
// The host has 2 CPUs: other work on it skews the comparison (QEMU more
// than us, since it needs the polling vCPU and its I/O thread busy at once),
// so the CPUs the rest of the machine keeps busy just before and after the
// rounds are reported with the results.
//
// Nothing here asserts on a time: the target ratio (≥ 1.0x: at least
// QEMU's throughput) is printed next to each result.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileBackend } from '../lib/propolis/src/block/file.js';
import { PciVirtioBlock } from '../lib/propolis/src/hw/virtio/block.js';
import { PcPlatform } from '../lib/propolis/src/platform/pc.js';
import type { ExitStats, MachineEvent } from '../lib/propolis/src/vmm/machine.js';
import { findQemu } from './qemu.js';
import { startAndWait } from './guest-run.js';

export class BlkBenchError extends Error {
  readonly code = 'BENCH_BLK';
}

const ROUNDS = 5;
const TARGET_RATIO = 1.0;
const MEMORY_MIB = 256;
/** A run takes a few seconds; one still going after this is stuck. */
const RUN_TIMEOUT_MS = 60_000;
const DISK_NAME = 'disk0';
const PCI_PATH = '0.4.0';

// ---- the image and the guest's parameter block (layout: guests/src/blkbench.S) ----

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 4096;
const READ_START = 256;
const READ_BLOCKS = (256 * MiB) / BLOCK;
const WRITE_START = READ_START + READ_BLOCKS;
const WRITE_BLOCKS = (256 * MiB) / BLOCK;
const IMAGE_BLOCKS = WRITE_START + WRITE_BLOCKS;
/** Written after the parameter block, so an image from another layout is rebuilt. */
const IMAGE_TAG = `blkbench image v1: read ${READ_START}+${READ_BLOCKS} write ${WRITE_START}+${WRITE_BLOCKS}`;
const IMAGE_TAG_OFFSET = 128;
const PARAM_MAGIC = 0x424b4c42; // "BLKB"
const PARAM_VERSION = 1;
const SEED = 0x2545f491;

export interface Workload {
  /** Phase number, as the guest's markers name it. */
  phase: number;
  key: 'rand4k' | 'seqRead' | 'seqWrite';
  label: string;
  /** Bytes per request. */
  bytes: number;
}

const SEQ_BYTES = MiB;
/** One data segment per 1 MiB request (both devices' SEG_MAX allow far more). */
const SEG_BYTES = MiB;
const QUEUE_DEPTH = 32;

const WORKLOADS: readonly Workload[] = [
  { phase: 1, key: 'rand4k', label: '4 KiB random reads', bytes: BLOCK },
  { phase: 2, key: 'seqRead', label: '1 MiB sequential reads', bytes: SEQ_BYTES },
  { phase: 3, key: 'seqWrite', label: '1 MiB sequential writes', bytes: SEQ_BYTES },
];

type Counts = Record<Workload['key'], number>;

/** Requests per phase: 0.5 to 2 s each on the development machines. */
const COUNTS: Counts = { rand4k: 200_000, seqRead: 8192, seqWrite: 4096 };
/** The warm-up run of each side. */
const WARMUP_COUNTS: Counts = { rand4k: 5_000, seqRead: 256, seqWrite: 128 };

function paramBlock(c: Counts): Buffer {
  const b = Buffer.alloc(64);
  const words = [
    PARAM_MAGIC,
    PARAM_VERSION,
    QUEUE_DEPTH,
    c.rand4k,
    c.seqRead,
    c.seqWrite,
    SEQ_BYTES,
    SEG_BYTES,
    READ_START,
    READ_BLOCKS,
    WRITE_START,
    WRITE_BLOCKS,
    SEED,
  ];
  words.forEach((w, i) => b.writeUInt32LE(w, 4 * i));
  return b;
}

/** Create the image unless a complete one of this layout is there; returns whether it was built. */
function ensureImage(path: string): boolean {
  const size = IMAGE_BLOCKS * BLOCK;
  if (existsSync(path) && statSync(path).size === size) {
    const fd = openSync(path, 'r');
    try {
      const tag = Buffer.alloc(IMAGE_TAG.length);
      readSync(fd, tag, 0, tag.length, IMAGE_TAG_OFFSET);
      if (tag.toString('latin1') === IMAGE_TAG) return false;
    } finally {
      closeSync(fd);
    }
  }
  // A 1 MiB pattern of xorshift32 output, reused for every MiB, each 4 KiB
  // block stamped with its own number.
  const chunk = Buffer.alloc(MiB);
  let x = 0x9e3779b9;
  for (let off = 0; off < MiB; off += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    chunk.writeUInt32LE(x >>> 0, off);
  }
  const fd = openSync(path, 'w', 0o644);
  try {
    const per = MiB / BLOCK;
    for (let first = 0; first < IMAGE_BLOCKS; first += per) {
      const n = Math.min(per, IMAGE_BLOCKS - first);
      for (let i = 0; i < n; i++) chunk.writeBigUInt64LE(BigInt(first + i), i * BLOCK);
      if (first === 0) chunk.fill(0, 0, BLOCK);
      writeSync(fd, chunk, 0, n * BLOCK, first * BLOCK);
    }
    writeSync(fd, Buffer.from(IMAGE_TAG, 'latin1'), 0, IMAGE_TAG.length, IMAGE_TAG_OFFSET);
  } finally {
    closeSync(fd);
  }
  return true;
}

function writeParams(path: string, c: Counts): void {
  const fd = openSync(path, 'r+');
  try {
    const p = paramBlock(c);
    writeSync(fd, p, 0, p.length, 0);
  } finally {
    closeSync(fd);
  }
}

/** Read the whole image once, so that both sides find it in the page cache. */
function warmPageCache(path: string): void {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    let pos = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
}

// ---- the guest's serial output ----

interface PhaseResult {
  /** Host milliseconds from the B marker to the E marker. */
  ms: number;
  /** Guest TSC ticks the phase took. */
  tsc: number;
  /** Notifies the guest wrote (the others were suppressed by VIRTQ_USED_F_NO_NOTIFY). */
  kicks: number;
  statusErrors: number;
  dataErrors: number;
}

/** Splits serial output into lines, each stamped with the time its first byte arrived. */
class MarkerClock {
  private line = '';
  private lineStart = 0;
  private readonly begins = new Map<number, number>();
  readonly phases = new Map<number, PhaseResult>();
  readonly lines: string[] = [];

  feed(text: string, now: number): void {
    for (const ch of text) {
      if (this.line === '') this.lineStart = now;
      if (ch === '\n') {
        this.endLine(this.line.replace(/\r$/, ''), this.lineStart);
        this.line = '';
      } else {
        this.line += ch;
      }
    }
  }

  private endLine(line: string, t: number): void {
    this.lines.push(line);
    const b = /^B(\d)$/.exec(line);
    if (b) {
      this.begins.set(Number(b[1]), t);
      return;
    }
    const e = /^E(\d) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)$/.exec(line);
    if (e) {
      const k = Number(e[1]);
      const start = this.begins.get(k);
      if (start === undefined) return;
      const hex = (i: number): number => parseInt(e[i]!, 16);
      this.phases.set(k, { ms: t - start, tsc: hex(2), kicks: hex(3), statusErrors: hex(4), dataErrors: hex(5) });
    }
  }

  text(): string {
    return [...this.lines, this.line].join('\n').trim();
  }
}

interface GuestRun {
  /** By phase number. */
  phases: Map<number, PhaseResult>;
  /** Our side only: the vCPU's exits and the device's counters over the whole run. */
  ours?: { exits: ExitStats; notifies: number; droppedNotifies: number; requests: number; ioerr: number };
}

const tail = (s: string, n = 600): string => (s.length > n ? `…${s.slice(-n)}` : s);

function checkPhases(side: string, clock: MarkerClock, status: number | undefined, counts: Counts): GuestRun {
  const out = tail(clock.text()) || '(nothing)';
  if (status !== 1) {
    const why =
      status === 3
        ? 'the guest saw failed requests or wrong data'
        : status === 5
          ? 'the guest could not set up the device'
          : status === 7
            ? 'the guest took a CPU exception'
            : `exit status ${status}`;
    throw new BlkBenchError(`${side}: ${why}; serial output:\n${out}`);
  }
  for (const w of WORKLOADS) {
    if (counts[w.key] > 0 && !clock.phases.has(w.phase)) {
      throw new BlkBenchError(`${side}: no timing for phase ${w.phase}; serial output:\n${out}`);
    }
  }
  return { phases: clock.phases };
}

// ---- the two sides ----

async function runOurs(rom: Uint8Array, image: string, counts: Counts): Promise<GuestRun> {
  const pc = await PcPlatform.create({
    name: 'blkbench',
    cpus: 1,
    memoryMiB: MEMORY_MIB,
    bootrom: rom,
    standalone: true,
    debugExits: [{ name: 'exit', port: 0x501, size: 1 }],
    disks: [
      {
        name: DISK_NAME,
        driver: 'virtio',
        pciPath: PCI_PATH,
        backend: FileBackend.describe('blkbench', { path: image }),
      },
    ],
  });
  const machine = pc.machine;
  const clock = new MarkerClock();
  const com1 = pc.com.com1;
  com1.setSinkAttached(true);
  let open = true;
  const drain = (): void => {
    const bytes = com1.output.drain();
    if (bytes.length > 0) {
      clock.feed(Buffer.from(bytes).toString('latin1'), performance.now());
      com1.pump();
    }
  };
  const pump = (async (): Promise<void> => {
    while (open) {
      await com1.output.waitReadable();
      drain();
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  try {
    const halted = new Promise<number | undefined>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new BlkBenchError(`propolis-ts: the guest did not finish within ${RUN_TIMEOUT_MS / 1000} s`)),
        RUN_TIMEOUT_MS,
      );
      machine.onEvent((e: MachineEvent) => {
        clearTimeout(timer);
        if (e.type === 'halt') resolve(e.status);
        else reject(new BlkBenchError(`propolis-ts: guest ${e.type}: ${e.reason}`));
      });
    });
    // Awaited below, unless start() fails first.
    halted.catch(() => {});
    const status = await startAndWait(machine, halted);
    open = false;
    com1.output.wake();
    await pump;
    drain();
    const run = checkPhases('propolis-ts', clock, status, counts);
    const disk = pc.disks.get(DISK_NAME) as PciVirtioBlock;
    const t = disk.transport.stats;
    const d = disk.stats;
    run.ours = {
      exits: machine.stats()[0]!,
      notifies: t.notifies,
      droppedNotifies: t.droppedNotifies,
      requests: d.requests,
      ioerr: d.ioerr,
    };
    return run;
  } finally {
    clearTimeout(timer);
    open = false;
    com1.output.wake();
    await pump;
    await machine.destroy();
  }
}

function qemuArgs(rom: string, image: string): string[] {
  return [
    ...['-M', 'pc', '-enable-kvm', '-m', String(MEMORY_MIB), '-smp', '1'],
    ...['-nodefaults', '-nographic', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'],
    ...['-bios', rom, '-device', 'isa-debug-exit,iobase=0x501,iosize=1'],
    ...['-drive', `file=${image},format=raw,if=none,id=d0,cache=writeback,aio=threads`],
    ...['-device', 'virtio-blk-pci,drive=d0,disable-modern=on,addr=4'],
  ];
}

function runQemu(qemu: string, rom: string, image: string, counts: Counts): Promise<GuestRun> {
  return new Promise((resolve, reject) => {
    const clock = new MarkerClock();
    const child = spawn(qemu, qemuArgs(rom, image), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => clock.feed(chunk, performance.now()));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new BlkBenchError(`cannot run ${qemu}: ${e.message}`));
    });
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      if (timedOut || signal !== null) {
        const why = timedOut ? `did not finish within ${RUN_TIMEOUT_MS / 1000} s` : `killed by ${signal}`;
        reject(new BlkBenchError(`QEMU ${why}; serial output:\n${tail(clock.text()) || '(nothing)'}`));
        return;
      }
      try {
        resolve(checkPhases('QEMU', clock, status ?? undefined, counts));
      } catch (e) {
        if (e instanceof BlkBenchError && stderr.trim() !== '') e.message += `\n  stderr: ${tail(stderr.trim())}`;
        reject(e as Error);
      }
    });
  });
}

// ---- the section ----

/** CPUs' worth of work the rest of the machine does while this process sleeps for `ms` (from /proc/stat). */
async function othersBusy(ms: number): Promise<number | undefined> {
  const sample = (): { busy: number; total: number } | undefined => {
    try {
      const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
      const total = f.reduce((a, b) => a + b, 0);
      // idle and iowait
      return { busy: total - f[3]! - (f[4] ?? 0), total };
    } catch {
      return undefined;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  if (!a || !b || b.total === a.total) return undefined;
  return ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Rate {
  mibPerS: number;
  reqPerS: number;
}

function rate(w: Workload, count: number, p: PhaseResult): Rate {
  const s = p.ms / 1000;
  return { mibPerS: (count * w.bytes) / MiB / s, reqPerS: count / s };
}

export interface BlkSection {
  lines: string[];
  json: unknown;
}

export async function blkBench(root: string, log: (s: string) => void): Promise<BlkSection> {
  const romPath = join(root, 'guests', 'out', 'blkbench.rom');
  if (!existsSync(romPath)) throw new BlkBenchError(`${romPath} is missing: run \`npm run build\` first`);
  const qemu = findQemu(log);
  const v = spawnSync(qemu, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const qemuVersion = /version (\S+)/.exec(v.stdout ?? '')?.[1] ?? 'unknown';
  if (!qemuVersion.startsWith('7.2')) {
    log(`bench: warning: the peer is QEMU ${qemuVersion}, not 7.2 as the comparison is specified\n`);
  }
  const rom = new Uint8Array(readFileSync(romPath));
  const cache = join(root, '.cache', 'bench');
  const image = join(cache, 'blkbench.img');
  mkdirSync(cache, { recursive: true });
  const started = performance.now();
  const imageStep = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new BlkBenchError(`cannot ${what} ${image}: ${(e as Error).message}`, { cause: e });
    }
  };
  if (imageStep('create', () => ensureImage(image))) {
    log(`bench: block: built ${image} (${(IMAGE_BLOCKS * BLOCK) / MiB} MiB)\n`);
  }
  imageStep('read', () => warmPageCache(image));
  const busyBefore = await othersBusy(1000);

  log(`bench: block throughput, ${ROUNDS} rounds per side after a warm-up each (about a minute)\n`);
  imageStep('write the parameter block of', () => writeParams(image, WARMUP_COUNTS));
  await runOurs(rom, image, WARMUP_COUNTS);
  await runQemu(qemu, romPath, image, WARMUP_COUNTS);

  imageStep('write the parameter block of', () => writeParams(image, COUNTS));
  const ours: GuestRun[] = [];
  const theirs: GuestRun[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which side goes first, as the other sections do.
    if (i % 2 === 0) {
      ours.push(await runOurs(rom, image, COUNTS));
      theirs.push(await runQemu(qemu, romPath, image, COUNTS));
    } else {
      theirs.push(await runQemu(qemu, romPath, image, COUNTS));
      ours.push(await runOurs(rom, image, COUNTS));
    }
    const brief = (r: GuestRun): string =>
      WORKLOADS.map((w) => rate(w, COUNTS[w.key], r.phases.get(w.phase)!).mibPerS.toFixed(0)).join('/');
    log(
      `bench:   round ${i + 1}: MiB/s (rand/seq read/seq write) propolis-ts ${brief(ours[i]!)}, QEMU ${brief(theirs[i]!)}\n`,
    );
  }

  const busyAfter = await othersBusy(1000);

  // ---- results ----
  const perWorkload = WORKLOADS.map((w) => {
    const count = COUNTS[w.key];
    const o = ours.map((r) => rate(w, count, r.phases.get(w.phase)!));
    const q = theirs.map((r) => rate(w, count, r.phases.get(w.phase)!));
    const oMed = median(o.map((r) => r.mibPerS));
    const qMed = median(q.map((r) => r.mibPerS));
    const pairRatios = o.map((r, i) => r.mibPerS / q[i]!.mibPerS);
    const kicks = (runs: GuestRun[]): number => median(runs.map((r) => r.phases.get(w.phase)!.kicks));
    // TSC ticks per host millisecond: both sides should agree with the host clock.
    const tscPerMs = (runs: GuestRun[]): number[] =>
      runs.map((r) => r.phases.get(w.phase)!.tsc / r.phases.get(w.phase)!.ms);
    return {
      workload: w,
      count,
      ours: { runs: o, mibPerS: oMed, reqPerS: (oMed * MiB) / w.bytes, kicks: kicks(ours), tscPerMs: tscPerMs(ours) },
      qemu: {
        runs: q,
        mibPerS: qMed,
        reqPerS: (qMed * MiB) / w.bytes,
        kicks: kicks(theirs),
        tscPerMs: tscPerMs(theirs),
      },
      ratio: oMed / qMed,
      pairRatios,
      phaseMs: { ours: ours.map((r) => r.phases.get(w.phase)!.ms), qemu: theirs.map((r) => r.phases.get(w.phase)!.ms) },
    };
  });
  const lastOurs = ours[ours.length - 1]!.ours!;
  const allTscPerUs = perWorkload.flatMap((p) => [...p.ours.tscPerMs, ...p.qemu.tscPerMs]).map((x) => x / 1000);
  const tscLo = Math.min(...allTscPerUs);
  const tscHi = Math.max(...allTscPerUs);
  const totalRequests = WORKLOADS.reduce((n, w) => n + COUNTS[w.key], 0) + 1; // + the parameter block

  const f0 = (x: number): string => x.toFixed(0);
  const busy = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(2));
  const f2 = (x: number): string => x.toFixed(2);
  const pad = (s: string, n: number): string => s.padStart(n);
  const row = (label: string, a: string, b: string, c: string, note = ''): string =>
    `    ${label.padEnd(26)} ${pad(a, 22)} ${pad(b, 22)} ${pad(c, 7)}${note === '' ? '' : `   ${note}`}`;
  const both = (r: { mibPerS: number; reqPerS: number }): string => `${f0(r.mibPerS)} MiB/s ${f0(r.reqPerS)}/s`;
  const lines = [
    `block throughput: blkbench.rom polling a legacy virtio-blk queue from CPL3, QD ${QUEUE_DEPTH}, 1 vCPU, ` +
      `${MEMORY_MIB} MiB; propolis-ts (in-process PcPlatform) vs QEMU ${qemuVersion} ` +
      `(virtio-blk-pci,disable-modern=on; cache=writeback,aio=threads), same image in the page cache, same run`,
    `  median of ${ROUNDS} rounds; host clock between the guest's phase markers on COM1`,
    `  other work on this host: ${busy(busyBefore)} of ${os.cpus().length} CPUs busy just before the rounds, ` +
      `${busy(busyAfter)} just after (it skews both sides, QEMU more: it needs two busy threads, the polling ` +
      `vCPU and its I/O thread)`,
    row('', 'propolis-ts', 'QEMU', 'ratio', `(target ≥ ${f2(TARGET_RATIO)}x)`),
    ...perWorkload.map((p) =>
      row(
        `${p.workload.label} (${p.count})`,
        both(p.ours),
        both(p.qemu),
        `${f2(p.ratio)}x`,
        p.ratio >= TARGET_RATIO ? 'meets the target' : 'below the target',
      ),
    ),
    ...perWorkload.map(
      (p) =>
        `    per round, ${p.workload.key.padEnd(8)}  propolis-ts ${p.ours.runs.map((r) => f0(r.mibPerS)).join(' ')}; ` +
        `QEMU ${p.qemu.runs.map((r) => f0(r.mibPerS)).join(' ')}; ratio ${p.pairRatios.map(f2).join(' ')} MiB/s`,
    ),
    `  notifies the guest wrote per phase (median; fewer when the device still works and sets NO_NOTIFY)`,
    ...perWorkload.map((p) =>
      row(
        p.workload.label,
        `${f0(p.ours.kicks)} (${f2(p.count / p.ours.kicks)} req each)`,
        `${f0(p.qemu.kicks)} (${f2(p.count / p.qemu.kicks)} req each)`,
        '',
      ),
    ),
    `  propolis-ts, one whole run (boot, set-up, three phases, markers): exits io ${lastOurs.exits.io}, ` +
      `mmio ${lastOurs.exits.mmio}, intr ${lastOurs.exits.intr}, hlt ${lastOurs.exits.hlt}, other ${lastOurs.exits.other}; ` +
      `virtio notifies ${lastOurs.notifies} (dropped ${lastOurs.droppedNotifies}), requests ${lastOurs.requests} ` +
      `of ${totalRequests} (I/O errors ${lastOurs.ioerr})`,
    `  notifies ring a doorbell (KVM_IOEVENTFD) served by the I/O thread: the vCPU does not exit for them and ` +
      `keeps polling while the I/O thread runs the requests`,
    `  cross-check: guest TSC ticks per host µs over every timed phase ${f2(tscLo)}–${f2(tscHi)} ` +
      `(spread ${f2((tscHi / tscLo - 1) * 100)}%: the host's marker timestamps track the guest's own clock)`,
  ];
  const json = {
    rom: 'guests/out/blkbench.rom',
    image: {
      path: image,
      bytes: IMAGE_BLOCKS * BLOCK,
      readRegion: [READ_START, READ_BLOCKS],
      writeRegion: [WRITE_START, WRITE_BLOCKS],
    },
    queueDepth: QUEUE_DEPTH,
    memoryMiB: MEMORY_MIB,
    rounds: ROUNDS,
    targetRatio: TARGET_RATIO,
    qemu: { path: qemu, version: qemuVersion, args: qemuArgs('<rom>', '<image>') },
    workloads: perWorkload.map((p) => ({
      key: p.workload.key,
      label: p.workload.label,
      requestBytes: p.workload.bytes,
      requests: p.count,
      ours: p.ours,
      qemu: p.qemu,
      ratio: p.ratio,
      pairRatios: p.pairRatios,
      phaseMs: p.phaseMs,
    })),
    oursLastRun: lastOurs,
    othersBusyCpus: { before: busyBefore, after: busyAfter },
    durationS: (performance.now() - started) / 1000,
  };
  return { lines, json };
}

// `node dist/bench/blk-bench.js`: this section alone.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = join(import.meta.dirname, '..', '..');
  blkBench(root, (s) => process.stderr.write(s)).then(
    (r) => {
      process.stdout.write(`${r.lines.join('\n')}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`bench: block: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
