// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The SeaBIOS section of `npm run bench`: how long Debian's bios-256k.bin
// takes from process start to its banner and to its boot hand-off under
// propolis-standalone, against QEMU 7.2 (`-M pc -enable-kvm`) running the
// same file in the same run, and how many exits of each kind each side took.
//
// Timed runs (ROUNDS per side, alternating, after one warm-up each): the
// bench spawns the process and timestamps its stdout (the guest's COM1;
// SeaBIOS mirrors its screen there) until the banner, `SeaBIOS (version`,
// and until the hand-off. No disk is attached yet, so SeaBIOS's boot ends in
// "No bootable device." on both sides; that is the hand-off point until the
// disk devices land. Then the child is stopped (SIGINT for ours, which
// makes the standalone print its exit counts at --log-level debug).
//
// Counting runs (one per side, untimed, because counting costs time):
//   - ours: bench/seabios-probe.ts builds the same VM in-process with a
//     port counter and records when each SeaBIOS debug-log line arrived;
//   - QEMU: `-trace kvm_run_exit` (exits by reason) and
//     `-trace memory_region_ops_*` (accesses by port), then a second run
//     with an isa-debugcon at 0x402 to timestamp SeaBIOS's debug log, so
//     the two boots can be compared phase by phase.
//
// Every child runs under a deadline and is killed (SIGKILL) when it passes
// it; the section then fails with what the child had printed so far. Nothing
// here asserts on a time: the target ratio is printed next to the result.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { debianFile } from '../lib/propolis/src/testing/debian.js';
import type { ExitStats } from '../lib/propolis/src/vmm/machine.js';
import { findQemu } from './qemu.js';
import type { SeabiosProbeResult } from './seabios-probe.js';

export class SeabiosBenchError extends Error {
  readonly code = 'BENCH_SEABIOS';
}

const ROUNDS = 5;
const TARGET_RATIO = 1.0;
/** A boot takes ~3 s on the development machines; a child still running at this point is stuck. */
const RUN_TIMEOUT_MS = 30_000;
/** How long a child may take to exit once told to stop. */
const STOP_GRACE_MS = 10_000;
const BANNER = 'SeaBIOS (version';
const HANDOFF = 'No bootable device';
const FIRMWARE = 'usr/share/seabios/bios-256k.bin';

const HANDOFF_NOTE =
  'no disk is attached, so the hand-off is SeaBIOS giving up: "No bootable device." (the block section below times disks)';

// ---- running a child against the clock ----

interface TimedRun {
  /** Milliseconds from spawn to the banner on stdout; undefined if it never came. */
  bannerMs: number | undefined;
  handoffMs: number;
  stdout: string;
  stderr: string;
  /** Lines the child sent to `debugSocket`, with ms since spawn. */
  debugLines: { ms: number; line: string }[];
  /** Wall-clock time of the spawn (performance.timeOrigin + now()). */
  spawnEpochMs: number;
}

interface RunOptions {
  cwd: string;
  stopSignal: NodeJS.Signals;
  /**
   * Listen on this Unix socket and collect the lines sent to it (QEMU's
   * debug console, `-chardev socket,path=...`). Not a pipe on fd 3: Node
   * gives children a socket pair there, which QEMU cannot open by path.
   */
  debugSocket?: string;
}

const tail = (s: string, n = 400): string => {
  // eslint-disable-next-line no-control-regex -- the terminal escapes SeaBIOS's serial console sends
  const t = s.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').trim();
  return t.length > n ? `…${t.slice(-n)}` : t;
};

/**
 * Spawn `cmd`, time its stdout until the hand-off, then stop it and wait
 * for it to exit. Rejects, with the child killed, when it fails to start,
 * exits early, misses the deadline or ignores the stop signal.
 */
async function timedRun(label: string, cmd: string, args: string[], opts: RunOptions): Promise<TimedRun> {
  const debugLines: TimedRun['debugLines'] = [];
  let server: Server | undefined;
  const connections: Promise<void>[] = [];
  let t0 = 0;
  if (opts.debugSocket !== undefined) {
    const srv = createServer((sock) => {
      let partial = '';
      sock.setEncoding('latin1');
      sock.on('data', (chunk: string) => {
        const ms = performance.now() - t0;
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) debugLines.push({ ms, line });
      });
      sock.on('error', () => {});
      connections.push(
        new Promise((resolve) =>
          sock.once('close', () => {
            if (partial !== '') debugLines.push({ ms: performance.now() - t0, line: partial });
            resolve();
          }),
        ),
      );
    });
    server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e) =>
        reject(new SeabiosBenchError(`${label}: cannot listen on ${opts.debugSocket}: ${e.message}`)),
      );
      srv.listen(opts.debugSocket, () => resolve());
    });
  }
  try {
    const run = await spawnTimed(label, cmd, args, opts, debugLines, (t) => (t0 = t));
    // The child has exited; what it wrote to the socket last may still be in
    // flight (the hand-off line, for one). Its end of the socket is closed,
    // so this is quick; the timeout only guards against the unexpected.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(connections),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS))),
    ]);
    clearTimeout(timer);
    return run;
  } finally {
    server?.close();
  }
}

function spawnTimed(
  label: string,
  cmd: string,
  args: string[],
  opts: RunOptions,
  debugLines: TimedRun['debugLines'],
  started: (t0: number) => void,
): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const spawnEpochMs = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    started(t0);
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    // Both are pipes, as asked for above.
    const out = child.stdout!;
    const err = child.stderr!;
    let stdout = '';
    let stderr = '';
    let bannerMs: number | undefined;
    let handoffMs: number | undefined;
    let failure: string | undefined;
    let stopTimer: NodeJS.Timeout | undefined;

    const fail = (why: string): void => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const deadline = setTimeout(
      () =>
        fail(
          `no "${HANDOFF}" within ${RUN_TIMEOUT_MS / 1000} s ` +
            `(banner ${bannerMs === undefined ? 'never seen' : `seen at ${Math.round(bannerMs)} ms`}); killed it`,
        ),
      RUN_TIMEOUT_MS,
    );

    out.setEncoding('latin1');
    out.on('data', (chunk: string) => {
      const now = performance.now() - t0;
      // A marker can straddle two chunks: search from just before the new text.
      const from = Math.max(0, stdout.length - HANDOFF.length);
      stdout += chunk;
      if (bannerMs === undefined && stdout.includes(BANNER, Math.max(0, from - BANNER.length))) bannerMs = now;
      if (handoffMs === undefined && stdout.includes(HANDOFF, from)) {
        handoffMs = now;
        clearTimeout(deadline);
        child.kill(opts.stopSignal);
        stopTimer = setTimeout(
          () => fail(`did not exit within ${STOP_GRACE_MS / 1000} s of ${opts.stopSignal}; killed it`),
          STOP_GRACE_MS,
        );
      }
    });
    err.setEncoding('utf8');
    err.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (e) => {
      clearTimeout(deadline);
      clearTimeout(stopTimer);
      reject(new SeabiosBenchError(`${label}: cannot run ${cmd}: ${e.message}`));
    });
    child.once('close', (status, signal) => {
      clearTimeout(deadline);
      clearTimeout(stopTimer);
      const how = signal ? `signal ${signal}` : `status ${status}`;
      if (failure === undefined && handoffMs === undefined) failure = `exited (${how}) before "${HANDOFF}"`;
      if (failure !== undefined || handoffMs === undefined) {
        reject(
          new SeabiosBenchError(
            `${label}: ${failure}\n  stdout: ${tail(stdout) || '(nothing)'}\n  stderr: ${tail(stderr) || '(nothing)'}`,
          ),
        );
        return;
      }
      resolve({ bannerMs, handoffMs, stdout, stderr, debugLines, spawnEpochMs });
    });
  });
}

// ---- the two sides ----

interface Setup {
  bios: string;
  qemu: string;
  qemuVersion: string;
  standalone: string;
  probe: string;
  tmp: string;
}

function setup(root: string, log: (s: string) => void): Setup {
  const standalone = join(root, 'dist', 'bin', 'propolis-standalone', 'src', 'main.js');
  const probe = join(import.meta.dirname, 'seabios-probe.js');
  for (const p of [standalone, probe]) {
    if (!existsSync(p)) throw new SeabiosBenchError(`${p} is missing: run \`npm run build\` first`);
  }
  let bios: string;
  try {
    bios = debianFile('seabios', FIRMWARE);
  } catch (e) {
    throw new SeabiosBenchError(`cannot get SeaBIOS (${FIRMWARE}) from Debian: ${(e as Error).message}`);
  }
  const qemu = findQemu(log);
  const v = spawnSync(qemu, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const qemuVersion = /version (\S+)/.exec(v.stdout ?? '')?.[1];
  if (qemuVersion === undefined) {
    throw new SeabiosBenchError(`${qemu} --version did not say its version: ${tail(`${v.stdout}${v.stderr}`)}`);
  }
  if (!qemuVersion.startsWith('7.2')) {
    log(`bench: warning: the peer is QEMU ${qemuVersion}, not 7.2 as the comparison is specified\n`);
  }
  const tmp = mkdtempSync(join(os.tmpdir(), 'propolis-bench-seabios-'));
  return { bios, qemu, qemuVersion, standalone, probe, tmp };
}

/** A fresh directory per run: the standalone writes ./debug.out (appending) and ./ttya there. */
function runDir(s: Setup, name: string): string {
  return mkdtempSync(join(s.tmp, `${name}-`));
}

function writeConfig(dir: string, bios: string): string {
  const cfg = join(dir, 'bench.toml');
  // A JSON string is a valid TOML basic string for any path.
  writeFileSync(cfg, `[main]\nname = "seabios-bench"\ncpus = 1\nmemory = 256\nbootrom = ${JSON.stringify(bios)}\n`);
  return cfg;
}

interface OursRun {
  bannerMs: number | undefined;
  handoffMs: number;
  stats: ExitStats;
}

async function runOurs(s: Setup): Promise<OursRun> {
  const dir = runDir(s, 'ours');
  try {
    const cfg = writeConfig(dir, s.bios);
    const r = await timedRun(
      'propolis-standalone',
      process.execPath,
      [s.standalone, cfg, '--serial-stdout', '--log-level', 'debug'],
      { cwd: dir, stopSignal: 'SIGINT' },
    );
    const m = /exit counts: (\[.*\])\s*$/m.exec(r.stderr);
    if (!m) {
      throw new SeabiosBenchError(`propolis-standalone printed no exit counts after SIGINT; stderr: ${tail(r.stderr)}`);
    }
    const stats = (JSON.parse(m[1]!) as ExitStats[])[0];
    if (!stats) throw new SeabiosBenchError(`propolis-standalone's exit counts name no vCPU: ${m[1]}`);
    return { bannerMs: r.bannerMs, handoffMs: r.handoffMs, stats };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function qemuArgs(bios: string): string[] {
  // -nodefaults: no VGA, NIC (and its iPXE ROM) or CD-ROM, so SeaBIOS scans
  // about what ours has; the PIIX IDE and floppy controllers are part of
  // -M pc and stay (SeaBIOS tries both before giving up). Only with
  // -nographic does SeaBIOS mirror its screen to the serial port (checked:
  // with -display none it prints nothing there); -nodefaults leaves that
  // port for us to put on stdio.
  return [
    ...['-M', 'pc', '-enable-kvm', '-m', '256', '-smp', '1', '-bios', bios],
    ...['-nographic', '-nodefaults', '-serial', 'stdio', '-monitor', 'none', '-net', 'none', '-no-reboot'],
  ];
}

/** One QEMU run; with `debugcon`, SeaBIOS's debug log (port 0x402) is collected too. */
async function runQemu(s: Setup, extra: string[] = [], debugcon = false): Promise<TimedRun> {
  const dir = runDir(s, 'qemu');
  const sock = join(dir, 'debugcon.sock');
  const dbg = debugcon
    ? ['-chardev', `socket,id=dbg,path=${sock},server=off`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg']
    : [];
  try {
    return await timedRun('QEMU', s.qemu, [...qemuArgs(s.bios), ...extra, ...dbg], {
      cwd: dir,
      stopSignal: 'SIGTERM',
      ...(debugcon ? { debugSocket: sock } : {}),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- counting ----

/** KVM_EXIT_* reasons (linux/kvm.h) as ExitStats names them. */
const KVM_EXIT_KIND: Record<number, keyof ExitStats> = {
  2: 'io',
  5: 'hlt',
  6: 'mmio',
  7: 'other', // IRQ_WINDOW_OPEN
  8: 'shutdown',
  9: 'failure', // FAIL_ENTRY
  10: 'intr',
  17: 'failure', // INTERNAL_ERROR
  24: 'systemEvent',
};

interface QemuCounts {
  byReason: Record<string, number>;
  /** Device accesses QEMU dispatched to port I/O regions (memory_region_ops_*). */
  ports: { port: number; name: string; reads: number; writes: number }[];
  /** Accesses dispatched to MMIO regions. */
  mmioAccesses: number;
}

function parseQemuTrace(text: string): QemuCounts {
  const byReason: Record<string, number> = {};
  const ports = new Map<number, { port: number; name: string; reads: number; writes: number }>();
  let mmioAccesses = 0;
  for (const line of text.split('\n')) {
    const exit = /kvm_run_exit cpu_index \d+, reason (\d+)/.exec(line);
    if (exit) {
      byReason[exit[1]!] = (byReason[exit[1]!] ?? 0) + 1;
      continue;
    }
    const op = /memory_region_ops_(read|write) cpu -?\d+ mr 0x[0-9a-f]+ addr 0x([0-9a-f]+) .* name '([^']*)'/.exec(
      line,
    );
    if (!op) continue;
    const addr = parseInt(op[2]!, 16);
    // On a PC nothing is memory-mapped below 64 KiB, so these are ports.
    if (addr >= 0x10000) {
      mmioAccesses++;
      continue;
    }
    const e = ports.get(addr) ?? { port: addr, name: op[3]!, reads: 0, writes: 0 };
    if (op[1] === 'read') e.reads++;
    else e.writes++;
    ports.set(addr, e);
  }
  return { byReason, ports: [...ports.values()], mmioAccesses };
}

function qemuKinds(byReason: Record<string, number>): Record<string, number> {
  const k: Record<string, number> = { io: 0, mmio: 0, hlt: 0, shutdown: 0, systemEvent: 0, failure: 0, other: 0 };
  for (const [reason, n] of Object.entries(byReason)) {
    const kind = KVM_EXIT_KIND[Number(reason)] ?? 'other';
    k[kind] = (k[kind] ?? 0) + n;
  }
  return k;
}

// ---- phases ----

/** Debug-log lines both sides print, in boot order; [text, occurrence]. */
const PHASES: [string, string, number][] = [
  ['first debug-log line', BANNER, 1],
  ['"Running on KVM"', 'Running on KVM', 1],
  ['"PCI bus & bridge init"', '=== PCI bus & bridge init ===', 1],
  ['"Scan for VGA option rom"', 'Scan for VGA option rom', 1],
  ['"Turning on vga text mode console"', 'Turning on vga text mode console', 1],
  ['banner (debug log)', BANNER, 2],
  ['"Scan for option roms"', 'Scan for option roms', 1],
  ['"Space available for UMB"', 'Space available for UMB', 1],
  ['"enter handle_19" (boot)', 'enter handle_19', 1],
  ['"No bootable device"', HANDOFF, 1],
];

function phaseTimes(lines: { ms: number; line: string }[]): (number | undefined)[] {
  return PHASES.map(([, text, nth]) => lines.filter((l) => l.line.includes(text))[nth - 1]?.ms);
}

// ---- statistics and formatting ----

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const ms0 = (x: number | undefined): string => (x === undefined ? '—' : Math.round(x).toString());
const f2 = (x: number): string => x.toFixed(2);
const hex = (p: number): string => `0x${p.toString(16)}`;
const pad = (s: string | number, n: number): string => String(s).padStart(n);

/** Port groups the issue asks about, as [label, ports]. */
const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
const PORT_GROUPS: [string, number[]][] = [
  ['fw_cfg (0x510-0x51b)', range(0x510, 0x51b)],
  ['PCI config (0xcf8-0xcff)', range(0xcf8, 0xcff)],
  ['COM1 (0x3f8-0x3ff)', range(0x3f8, 0x3ff)],
  ['debug port (0x402)', [0x402]],
  ['RTC/CMOS (0x70-0x71)', [0x70, 0x71]],
  ['port 0x92 (A20)', [0x92]],
  ['8042 (0x60, 0x64)', [0x60, 0x64]],
];

export interface SeabiosSection {
  /** Lines of the report. */
  lines: string[];
  /** For .cache/bench/last.json. */
  json: Record<string, unknown>;
}

export async function seabiosBoot(root: string, log: (s: string) => void): Promise<SeabiosSection> {
  const s = setup(root, log);
  try {
    return await measure(s, log);
  } finally {
    rmSync(s.tmp, { recursive: true, force: true });
  }
}

async function measure(s: Setup, log: (msg: string) => void): Promise<SeabiosSection> {
  log(
    `bench: SeaBIOS boot, propolis-standalone vs QEMU ${s.qemuVersion}: 1 warm-up + ${ROUNDS} rounds each, ` +
      `then 3 counting runs (about ${Math.round(((ROUNDS + 1) * 2 + 3) * 3.5)} s)\n`,
  );
  await runOurs(s);
  await runQemu(s);
  const ours: OursRun[] = [];
  const qemu: TimedRun[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which side goes first, so a drift in the host's speed favours neither.
    if (i % 2 === 0) {
      ours.push(await runOurs(s));
      qemu.push(await runQemu(s));
    } else {
      qemu.push(await runQemu(s));
      ours.push(await runOurs(s));
    }
    log(
      `bench:   round ${i + 1}: banner / hand-off, propolis-ts ${ms0(ours[i]!.bannerMs)} / ${ms0(ours[i]!.handoffMs)} ms, ` +
        `QEMU ${ms0(qemu[i]!.bannerMs)} / ${ms0(qemu[i]!.handoffMs)} ms\n`,
    );
  }
  const missing = [...ours, ...qemu].some((r) => r.bannerMs === undefined);
  if (missing) throw new SeabiosBenchError(`a run reached "${HANDOFF}" without printing "${BANNER}" on COM1`);
  const bannerOurs = median(ours.map((r) => r.bannerMs!));
  const bannerQemu = median(qemu.map((r) => r.bannerMs!));
  const handoffOurs = median(ours.map((r) => r.handoffMs));
  const handoffQemu = median(qemu.map((r) => r.handoffMs));
  const bannerRatio = bannerOurs / bannerQemu;
  const handoffRatio = handoffOurs / handoffQemu;

  // Exit kinds of our timed runs, median per kind.
  const kinds: (keyof ExitStats)[] = ['io', 'mmio', 'intr', 'hlt', 'shutdown', 'systemEvent', 'failure', 'other'];
  const oursKinds = Object.fromEntries(kinds.map((k) => [k, median(ours.map((r) => r.stats[k]))])) as Record<
    string,
    number
  >;

  // ---- counting runs ----
  log('bench:   counting: propolis-ts with a port counter, QEMU with -trace, QEMU with isa-debugcon\n');
  const probeDir = runDir(s, 'probe');
  const resultPath = join(probeDir, 'result.json');
  const probeRun = await timedRun('seabios-probe', process.execPath, [s.probe, s.bios, resultPath], {
    cwd: probeDir,
    stopSignal: 'SIGINT',
  });
  let probe: SeabiosProbeResult;
  try {
    probe = JSON.parse(readFileSync(resultPath, 'utf8')) as SeabiosProbeResult;
  } catch (e) {
    throw new SeabiosBenchError(
      `seabios-probe wrote no result (${(e as Error).message}); stderr: ${tail(probeRun.stderr)}`,
    );
  }
  const traceLog = join(s.tmp, 'qemu-trace.log');
  const traceArgs = ['-trace', 'kvm_run_exit', '-trace', 'memory_region_ops_read', '-trace', 'memory_region_ops_write'];
  const traceRun = await runQemu(s, [...traceArgs, '-D', traceLog]);
  const qc = parseQemuTrace(existsSync(traceLog) ? readFileSync(traceLog, 'utf8') : '');
  if ((qc.byReason['2'] ?? 0) === 0) {
    throw new SeabiosBenchError(`QEMU's trace (${traceLog}) has no kvm_run_exit I/O lines: is tracing compiled in?`);
  }
  const qemuK = qemuKinds(qc.byReason);
  const qemuDebugRun = await runQemu(s, [], true);

  // ---- phases: ours from the probe's debug log, QEMU's from the debugcon run ----
  const oursLines = probe.debugLines.map((l) => ({ ms: l.epochMs - probeRun.spawnEpochMs, line: l.line }));
  const oursPhases = phaseTimes(oursLines);
  const qemuPhases = phaseTimes(qemuDebugRun.debugLines);
  const st = probe.steps;
  const startup = {
    nodeStartedMs: st.originEpochMs - probeRun.spawnEpochMs,
    modulesLoadedMs: st.bodyEpochMs - probeRun.spawnEpochMs,
    vmBuiltMs: st.builtEpochMs - probeRun.spawnEpochMs,
    vcpusRunningMs: st.startedEpochMs - probeRun.spawnEpochMs,
    firstDebugLineMs: oursPhases[0],
  };

  // ---- ports ----
  const oursPorts = probe.ports;
  const oursAccesses = oursPorts.reduce((n, p) => n + p.reads + p.writes, 0);
  const probeIo = probe.stats[0]?.io ?? 0;
  const qemuByPort = new Map(qc.ports.map((p) => [p.port, p]));
  const oursByPort = new Map(oursPorts.map((p) => [p.port, p]));
  const allPorts = [...new Set([...oursByPort.keys(), ...qemuByPort.keys()])];
  const total = (p: { reads: number; writes: number } | undefined): number => (p ? p.reads + p.writes : 0);
  allPorts.sort(
    (a, b) =>
      Math.max(total(oursByPort.get(b)), total(qemuByPort.get(b))) -
        Math.max(total(oursByPort.get(a)), total(qemuByPort.get(a))) || a - b,
  );
  const TOP = 18;
  const rest = allPorts.slice(TOP);
  const restOurs = rest.reduce((n, p) => n + total(oursByPort.get(p)), 0);
  const restQemu = rest.reduce((n, p) => n + total(qemuByPort.get(p)), 0);
  const groups = PORT_GROUPS.map(([label, ports]) => ({
    label,
    ours: ports.reduce((n, p) => n + total(oursByPort.get(p)), 0),
    qemu: ports.reduce((n, p) => n + total(qemuByPort.get(p)), 0),
  }));
  const handlerMsOurs = oursPorts.reduce((n, p) => n + p.handlerUs, 0) / 1000;

  // ---- report ----
  // Column layout: a label, then ours and QEMU right-aligned, then notes.
  const verdict = (r: number): string => `${f2(r)}x ${r <= TARGET_RATIO ? '(meets the target)' : '(above the target)'}`;
  const row = (label: string, o: string, q: string, note = ''): string =>
    `    ${label.padEnd(40)} ${pad(o, 11)} ${pad(q, 8)}${note === '' ? '' : `   ${note}`}`;
  const phaseRow = (label: string, o: string, od: string, q: string, qd: string): string =>
    `    ${label.padEnd(40)} ${pad(o, 6)} ${pad(od, 6)}   ${pad(q, 6)} ${pad(qd, 6)}`;
  const num = (x: number | undefined): string => (x === undefined ? 'n/a' : Math.round(x).toString());
  const rwText = (p: { reads: number; writes: number } | undefined): string => (p ? `${p.reads}r ${p.writes}w` : '—');
  const portRows = allPorts.slice(0, TOP).map((port) => {
    const o = oursByPort.get(port);
    const q = qemuByPort.get(port);
    const name = (o?.owner ?? q?.name ?? '?').slice(0, 24);
    const us = o && total(o) > 0 ? `${f2(o.handlerUs / total(o))} µs` : '';
    return row(`${hex(port).padEnd(7)} ${name}`, rwText(o), rwText(q), us);
  });
  const oursOther = oursKinds['shutdown']! + oursKinds['systemEvent']! + oursKinds['failure']! + oursKinds['other']!;
  const qemuOther = qemuK['shutdown']! + qemuK['systemEvent']! + qemuK['failure']! + qemuK['other']!;
  const firstOurs = oursPhases[0];
  const firstQemu = qemuPhases[0];
  const lastOurs = oursPhases[PHASES.length - 1];
  const lastQemu = qemuPhases[PHASES.length - 1];
  const span = (a: number | undefined, b: number | undefined): number | undefined =>
    a === undefined || b === undefined ? undefined : b - a;
  const lines = [
    `SeaBIOS boot: Debian's bios-256k.bin, 1 vCPU, 256 MiB; propolis-standalone vs QEMU ${s.qemuVersion} ` +
      `(-M pc -enable-kvm -nodefaults), same run`,
    `  ${HANDOFF_NOTE}`,
    `  ms from spawning the process, median of ${ROUNDS} rounds`,
    row('', 'propolis-ts', 'QEMU', `ratio (target ≤ ${f2(TARGET_RATIO)}x)`),
    row(`to the banner "${BANNER}" on COM1`, ms0(bannerOurs), ms0(bannerQemu), verdict(bannerRatio)),
    row(`to the hand-off "${HANDOFF}."`, ms0(handoffOurs), ms0(handoffQemu), verdict(handoffRatio)),
    `    per round, propolis-ts: banner ${ours.map((r) => ms0(r.bannerMs)).join(' ')}; ` +
      `hand-off ${ours.map((r) => ms0(r.handoffMs)).join(' ')}`,
    `    per round, QEMU:        banner ${qemu.map((r) => ms0(r.bannerMs)).join(' ')}; ` +
      `hand-off ${qemu.map((r) => ms0(r.handoffMs)).join(' ')}`,
    `  exits to userspace by kind, up to the hand-off (ours: median of the timed runs, from the standalone's`,
    `  "exit counts"; QEMU: a separate, untimed run with -trace kvm_run_exit, which does not see EINTR returns)`,
    row('', 'propolis-ts', 'QEMU'),
    row('io', num(oursKinds['io']), num(qemuK['io'])),
    row('mmio', num(oursKinds['mmio']), num(qemuK['mmio'])),
    row('intr', num(oursKinds['intr']), 'n/a'),
    row('hlt', num(oursKinds['hlt']), num(qemuK['hlt'])),
    row('other', num(oursOther), num(qemuOther)),
    `  port accesses, busiest first (one counting run each: ours through bench/port-counter.ts, QEMU from`,
    `  -trace memory_region_ops_*, which also shows coalesced writes that took no exit; rep ins/outs count per element)`,
    row('port    device', 'propolis-ts', 'QEMU', 'ours: handler time per access'),
    ...portRows,
    row(`${rest.length} more ports`, String(restOurs), String(restQemu)),
    ...groups.map((g) => row(`all of ${g.label}`, String(g.ours), String(g.qemu))),
    oursAccesses === 0 && probeIo > 0
      ? `    ours: the port counter saw none of ${probeIo} io exits (has the exit loop stopped calling PioBus.read/write?)`
      : `    ours: ${oursAccesses} accesses in ${probeIo} io exits; ${f2(handlerMsOurs)} ms in device handlers in all` +
        `${qc.mmioAccesses > 0 ? `; QEMU also dispatched ${qc.mmioAccesses} MMIO accesses` : ''}`,
    `  where the time goes: ms from spawn to SeaBIOS debug-log lines (one run each: ours the counting run, QEMU`,
    `  a run with an isa-debugcon at 0x402 as ours has; Δ is the time since the line above)`,
    phaseRow('', 'ours', 'Δ', 'QEMU', 'Δ'),
    ...PHASES.map(([label], i) => {
      const d = (xs: (number | undefined)[]): number | undefined => (i === 0 ? xs[0] : span(xs[i - 1], xs[i]));
      return phaseRow(label, ms0(oursPhases[i]), ms0(d(oursPhases)), ms0(qemuPhases[i]), ms0(d(qemuPhases)));
    }),
    row('start-up: spawn → first debug-log line', ms0(firstOurs), ms0(firstQemu)),
    row('SeaBIOS: first line → "No bootable device"', ms0(span(firstOurs, lastOurs)), ms0(span(firstQemu, lastQemu))),
    `    our start-up: Node.js process up ${ms0(startup.nodeStartedMs)} ms, modules loaded ` +
      `${ms0(startup.modulesLoadedMs)}, VM built ${ms0(startup.vmBuiltMs)}, vCPU running ${ms0(startup.vcpusRunningMs)}, ` +
      `first debug-log line ${ms0(startup.firstDebugLineMs)}`,
  ];

  const json = {
    firmware: s.bios,
    note: HANDOFF_NOTE,
    rounds: ROUNDS,
    targetRatio: TARGET_RATIO,
    qemu: { path: s.qemu, version: s.qemuVersion, args: qemuArgs('<firmware>') },
    oursMs: { banner: ours.map((r) => r.bannerMs), handoff: ours.map((r) => r.handoffMs) },
    qemuMs: { banner: qemu.map((r) => r.bannerMs), handoff: qemu.map((r) => r.handoffMs) },
    medianMs: {
      ours: { banner: bannerOurs, handoff: handoffOurs },
      qemu: { banner: bannerQemu, handoff: handoffQemu },
    },
    ratio: { banner: bannerRatio, handoff: handoffRatio },
    exits: {
      ours: { medianByKind: oursKinds, runs: ours.map((r) => r.stats) },
      qemu: { byKind: qemuK, byReason: qc.byReason, note: 'one -trace kvm_run_exit run; EINTR not traced' },
    },
    ports: {
      ours: oursPorts,
      oursIoExits: probeIo,
      qemu: qc.ports.sort((a, b) => b.reads + b.writes - (a.reads + a.writes)),
      qemuMmioAccesses: qc.mmioAccesses,
      groups,
    },
    phasesMs: PHASES.map(([label], i) => ({ label, ours: oursPhases[i], qemu: qemuPhases[i] })),
    oursStartupMs: startup,
    countingRuns: {
      probe: { bannerMs: probeRun.bannerMs, handoffMs: probeRun.handoffMs, stats: probe.stats },
      qemuTrace: { bannerMs: traceRun.bannerMs, handoffMs: traceRun.handoffMs },
      qemuDebugcon: { bannerMs: qemuDebugRun.bannerMs, handoffMs: qemuDebugRun.handoffMs },
    },
  };
  rmSync(probeDir, { recursive: true, force: true });
  return { lines, json };
}
