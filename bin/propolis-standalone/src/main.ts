// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-standalone: run one VM from a TOML file, with its serial console
// on the unix socket ./ttya (and, with --serial-stdout, on stdout too).
//
//   propolis-standalone <CONFIG.toml> [--serial-stdout] [--socket PATH] [--log-level LEVEL]
//
// As in the seed, the VM starts when a console client connects to ./ttya —
// or at once with --serial-stdout. It runs until the guest halts (exit
// status `exit_on_halt`, or what the guest wrote to a debug-exit device),
// resets (`exit_on_reboot`, when set) or Ctrl-C. A debug-exit write of v
// exits with (v << 1) | 1 as QEMU does, except v = 0, which exits 0. Operator errors print one
// line naming the problem and exit 2; a failed guest exits 3.

import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KvmUnavailableError } from '../../../lib/kvm/src/index.js';
import { FwCfgConfigError } from '../../../lib/propolis/src/hw/qemu/fwcfg.js';
import { BlockBackendError } from '../../../lib/propolis/src/block/errors.js';
import { FileBackend } from '../../../lib/propolis/src/block/file.js';
import { InMemoryBackend } from '../../../lib/propolis/src/block/in-memory.js';
import type { BackendDescriptor } from '../../../lib/propolis/src/block/types.js';
import { PciPathError } from '../../../lib/propolis/src/hw/pci/path.js';
import { PcConfigError, PcPlatform } from '../../../lib/propolis/src/platform/pc.js';
import { InstanceSpecError } from '../../../lib/propolis/src/platform/from-spec.js';
import { standalonePcConfig } from './spec.js';
import { MachineConfigError, type MachineEvent } from '../../../lib/propolis/src/vmm/machine.js';
import { ConfigError, loadConfig, type StandaloneConfig } from './config.js';
import { ConsoleError, SerialConsole } from './console.js';

const USAGE =
  'usage: propolis-standalone <CONFIG.toml> [--serial-stdout] [--socket PATH] [--log-level error|warn|info|debug]';
const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
type Level = (typeof LEVELS)[number];

class UsageError extends Error {
  readonly code = 'USAGE';
}

let logLevel: Level = 'info';
function log(level: Level, msg: string): void {
  if (LEVELS.indexOf(level) <= LEVELS.indexOf(logLevel))
    process.stderr.write(`propolis-standalone: ${level}: ${msg}\n`);
}

function readBootrom(path: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new ConfigError('CONFIG_VALUE', `bootrom ${path} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(
      'CONFIG_VALUE',
      `bootrom ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`,
      { cause: e },
    );
  }
  if (size === 0 || size % 4096 !== 0 || size > 2 * 1024 * 1024) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `bootrom ${path} is ${size} bytes; it must be a non-empty multiple of 4 KiB, at most 2 MiB`,
    );
  }
  return new Uint8Array(readFileSync(path));
}

/** Backend descriptors for `[block_dev.<n>]` tables (opens and checks the files). */
function backends(cfg: StandaloneConfig): Map<string, BackendDescriptor> {
  const out = new Map<string, BackendDescriptor>();
  for (const b of cfg.blockDevs) {
    if (b.type === 'cloudinit') continue; // carried by the instance spec as a blob (spec.ts)
    out.set(
      b.name,
      b.type === 'file'
        ? FileBackend.describe(b.name, {
            path: b.path,
            readOnly: b.readOnly,
            blockSize: b.blockSize,
            workers: b.workers,
            skipFlush: b.skipFlush,
          })
        : InMemoryBackend.describe(b.name, {
            size: b.size,
            readOnly: b.readOnly,
            blockSize: b.blockSize,
            workers: b.workers,
          }),
    );
  }
  return out;
}

function build(cfg: StandaloneConfig): Promise<PcPlatform> {
  // The same path as propolis-server: configuration → instance spec → PcConfig (spec.ts).
  return PcPlatform.create(
    standalonePcConfig(cfg, backends(cfg), {
      bootrom: readBootrom(cfg.main.bootrom),
      // For tests and unusual hosts: where to find the KVM device.
      kvmPath: process.env['PROPOLIS_KVM_DEVICE'] ?? '/dev/kvm',
    }),
  );
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'serial-stdout': { type: 'boolean', default: false },
        socket: { type: 'string', default: './ttya' },
        'log-level': { type: 'string', default: process.env['PROPOLIS_LOG'] ?? 'info' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const level = args.values['log-level'] as string;
  if (!(LEVELS as readonly string[]).includes(level)) throw new UsageError(`unknown log level '${level}'\n${USAGE}`);
  logLevel = level as Level;
  if (args.positionals.length !== 1) throw new UsageError(`expected one config file\n${USAGE}`);

  const cfg = loadConfig(args.positionals[0] as string);
  const pc = await build(cfg);
  const machine = pc.machine;
  // The seed writes what the guest sends to the QEMU debug port into ./debug.out.
  const debugOut = pc.debugPort.pipeTo((bytes) => appendFileSync('debug.out', bytes));
  pc.pvpanic?.onPanic((total) => log('warn', `guest reported a panic (pvpanic: ${JSON.stringify(total)})`));
  const console_ = new SerialConsole(pc.com.com1, {
    socketPath: args.values.socket as string,
    stdout: args.values['serial-stdout'] as boolean,
  });

  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => (finish = r));
  machine.onEvent((e: MachineEvent) => {
    switch (e.type) {
      case 'halt':
        log('info', `guest halted: ${e.reason}${e.status === undefined ? '' : ` (status ${e.status})`}`);
        // A debug-exit status is QEMU's (v << 1) | 1; v = 0, the conventional
        // "success", exits 0 so that a passing guest is a passing command.
        finish(e.status === undefined ? cfg.main.exitOnHalt : e.status === 1 ? 0 : e.status & 0xff);
        return;
      case 'reset':
        if (cfg.main.exitOnReboot !== undefined) {
          log('info', `guest reset (${e.reason}); exit_on_reboot is set`);
          finish(cfg.main.exitOnReboot);
        } else {
          log('info', `guest reset (${e.reason}); restarting in place`);
          machine.reset().catch((err: unknown) => {
            log('error', `reset failed: ${(err as Error).message}`);
            finish(3);
          });
        }
        return;
      case 'failure':
        log('error', `guest failed: ${e.reason}`);
        finish(3);
        return;
    }
  });
  // Every Ctrl-C asks for the same orderly halt: a second one while the VM
  // is stopping must not kill the process half-way (Node's default).
  let interrupted = false;
  process.on('SIGINT', () => {
    if (!interrupted) log('info', 'interrupted; halting the VM');
    interrupted = true;
    finish(cfg.main.exitOnHalt);
  });

  try {
    await console_.listen();
    if (!args.values['serial-stdout']) {
      log('info', `waiting for a console client on ${args.values.socket} before starting`);
      await Promise.race([console_.waitForClient(), finished]);
    }
    log('info', `starting ${cfg.main.name}: ${cfg.main.cpus} vCPU(s), ${cfg.main.memory} MiB`);
    await machine.start();
    const code = await finished;
    await machine.pause();
    log('debug', `exit counts: ${JSON.stringify(machine.stats())}`);
    return code;
  } finally {
    await console_.close();
    await debugOut.close().catch((e: unknown) => log('warn', `debug.out: ${(e as Error).message}`));
    await machine.destroy();
  }
}

function isOperatorError(e: unknown): e is Error {
  return (
    e instanceof ConfigError ||
    e instanceof UsageError ||
    e instanceof KvmUnavailableError ||
    e instanceof MachineConfigError ||
    e instanceof ConsoleError ||
    e instanceof FwCfgConfigError ||
    e instanceof BlockBackendError ||
    e instanceof PcConfigError ||
    e instanceof InstanceSpecError ||
    e instanceof PciPathError
  );
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isOperatorError(e)) {
      process.stderr.write(`propolis-standalone: error: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`propolis-standalone: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  },
);
