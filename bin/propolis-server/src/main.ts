// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-server: serve the instance API for at most one VM at a time.
//
//   propolis-server run <BOOTROM> <IP:PORT> [<VNC_IP:PORT>]
//                   [--bootrom-version S] [--metric-addr disable|IP:PORT]
//                   [--log-level trace|debug|info|warn|error]
//                   [--kernel PATH [--initrd PATH] [--cmdline STR] [--linuxboot-rom PATH]]
//
// As the seed: no config file; the instance comes from `PUT /instance`.
// A VNC address is accepted and reported as unavailable (there is no
// framebuffer server here). Port 0 binds a free port; the log line
// "propolis-server listening" names it. SIGINT or SIGTERM stops the VM in
// order (Stopping → Stopped → Destroyed) and exits 0.
//
// --kernel (an extension, not in upstream Propolis) boots that Linux
// bzImage directly in every VM the server creates, as QEMU's -kernel,
// -initrd and -append do: SeaBIOS runs QEMU's linuxboot_dma.bin option ROM
// (default /usr/share/qemu/linuxboot_dma.bin, Debian qemu-system-data),
// which loads the kernel through fw_cfg. See lib/propolis/src/platform/direct-boot.ts.
//
// Bad arguments print one line on stderr and exit 2; a failure to start
// (the address in use, …) exits 1.

import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import {
  DirectBootError,
  LINUXBOOT_ROM_DEFAULT_PATH,
  loadLinuxbootRom,
  parseBzImage,
  type DirectBootConfig,
} from '../../../lib/propolis/src/platform/direct-boot.js';
import { startPropolisServer, type RunningServer, type SocketAddr } from './app.js';
import { isLogLevel, Logger, LOG_LEVELS, type LogLevel } from './log.js';

const USAGE =
  'usage: propolis-server run <BOOTROM> <IP:PORT> [<VNC_IP:PORT>] [--bootrom-version S] ' +
  `[--metric-addr disable|IP:PORT] [--log-level ${LOG_LEVELS.join('|')}] ` +
  '[--kernel PATH [--initrd PATH] [--cmdline STR] [--linuxboot-rom PATH]]';

const HELP = `${USAGE}

Serves the Propolis instance API (OpenAPI at GET /openapi.json) for one VM at a time.

  <BOOTROM>            firmware image (a non-empty multiple of 4 KiB, at most 2 MiB)
  <IP:PORT>            API address, e.g. 127.0.0.1:12400 or [::1]:12400 (port 0: any free port)
  <VNC_IP:PORT>        accepted for compatibility; VNC is not available here
  --bootrom-version S  firmware version for SMBIOS type 0 (default "v0.8")
  --metric-addr A      Prometheus metrics on their own listener at A, or "disable" (default);
                       they are also at GET /metrics on the API address
  --log-level L        ${LOG_LEVELS.join(', ')} (default info); logs are JSON lines on stderr
  --kernel PATH        boot this Linux bzImage directly in every VM (an extension; like QEMU's -kernel)
  --initrd PATH        initial ramdisk for --kernel
  --cmdline STR        kernel command line for --kernel
  --linuxboot-rom PATH the loader option ROM SeaBIOS runs for --kernel
                       (default ${LINUXBOOT_ROM_DEFAULT_PATH}, Debian package qemu-system-data)
`;

class UsageError extends Error {
  readonly code = 'USAGE';
}

/** `IP:PORT` or `[IPv6]:PORT`. */
function parseSocketAddr(text: string, what: string): SocketAddr {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(text) ?? /^([^:[\]]+):([0-9]+)$/.exec(text);
  const host = m?.[1];
  const port = Number(m?.[2]);
  if (!m || host === undefined || isIP(host) === 0 || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`${what} "${text}" is not an IP:PORT address (e.g. 127.0.0.1:12400 or [::1]:12400)`);
  }
  if (isIP(host) === 6 && !text.startsWith('[')) {
    throw new UsageError(`${what} "${text}": write an IPv6 address in brackets, e.g. [::1]:12400`);
  }
  return { host, port };
}

function readBootrom(path: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`bootrom ${path} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`bootrom ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
  if (size === 0 || size % 4096 !== 0 || size > 2 * 1024 * 1024) {
    throw new UsageError(`bootrom ${path} is ${size} bytes; it must be a non-empty multiple of 4 KiB, at most 2 MiB`);
  }
  return new Uint8Array(readFileSync(path));
}

/** A file given with a flag, read whole; a clear usage error when it cannot be. */
function readInput(path: string, what: string): Uint8Array {
  try {
    if (!statSync(path).isFile()) throw new UsageError(`${what} ${path} is not a regular file`);
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${what} ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
}

/** --kernel and its companions; checked now so a bad kernel fails at start, not at the first instance. */
function parseDirectBoot(values: {
  kernel?: string | undefined;
  initrd?: string | undefined;
  cmdline?: string | undefined;
  'linuxboot-rom'?: string | undefined;
}): DirectBootConfig | undefined {
  if (values.kernel === undefined) {
    for (const f of ['initrd', 'cmdline', 'linuxboot-rom'] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} needs --kernel`);
    }
    return undefined;
  }
  try {
    const kernel = readInput(values.kernel, 'kernel');
    parseBzImage(kernel);
    return {
      kernel,
      ...(values.initrd === undefined ? {} : { initrd: readInput(values.initrd, 'initrd') }),
      ...(values.cmdline === undefined ? {} : { cmdline: values.cmdline }),
      linuxbootRom: loadLinuxbootRom(values['linuxboot-rom'] ?? LINUXBOOT_ROM_DEFAULT_PATH),
    };
  } catch (e) {
    if (e instanceof DirectBootError) throw new UsageError(e.message);
    throw e;
  }
}

interface Args {
  bootrom: Uint8Array;
  directBoot: DirectBootConfig | undefined;
  listen: SocketAddr;
  vnc: SocketAddr | undefined;
  bootromVersion: string | undefined;
  metrics: SocketAddr | undefined;
  logLevel: LogLevel;
}

function parse(argv: string[]): Args | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'bootrom-version': { type: 'string' },
        'metric-addr': { type: 'string', default: 'disable' },
        'log-level': { type: 'string', default: 'info' },
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        cmdline: { type: 'string' },
        'linuxboot-rom': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const [cmd, ...rest] = positionals;
  if (cmd === undefined) throw new UsageError('missing command (run)');
  if (cmd !== 'run') throw new UsageError(`unknown command "${cmd}" (the one command is run)`);
  if (rest.length < 2) throw new UsageError('run needs <BOOTROM> and <IP:PORT>');
  if (rest.length > 3) throw new UsageError(`unexpected argument "${rest[3]}"`);
  const level = values['log-level'] as string;
  if (!isLogLevel(level)) throw new UsageError(`unknown log level "${level}" (one of ${LOG_LEVELS.join(', ')})`);
  const metricAddr = values['metric-addr'] as string;
  let metrics: SocketAddr | undefined;
  if (metricAddr === 'dns') {
    throw new UsageError(
      '--metric-addr dns (registering with Oximeter through internal DNS) is not available here; use disable or IP:PORT',
    );
  } else if (metricAddr !== 'disable') {
    metrics = parseSocketAddr(metricAddr, '--metric-addr');
  }
  const listen = parseSocketAddr(rest[1]!, 'API address');
  const vnc = rest[2] === undefined ? undefined : parseSocketAddr(rest[2], 'VNC address');
  return {
    bootrom: readBootrom(rest[0]!),
    directBoot: parseDirectBoot(values),
    listen,
    vnc,
    bootromVersion: values['bootrom-version'] as string | undefined,
    metrics,
    logLevel: level,
  };
}

async function main(argv: string[]): Promise<void> {
  let args: Args | 'help';
  try {
    args = parse(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`propolis-server: error: ${e.message} (see propolis-server --help)\n`);
      process.exit(2);
    }
    throw e;
  }
  if (args === 'help') {
    process.stdout.write(HELP);
    return;
  }
  const log = Logger.create({ level: args.logLevel });
  if (args.vnc) {
    log.warn('VNC is not available in this server; the VNC address is ignored', {
      vnc: `${args.vnc.host}:${args.vnc.port}`,
    });
  }
  // A bug must not take the VM down with it: report, carry on.
  process.on('unhandledRejection', (e) => log.error('unhandled promise rejection', { err: e }));
  process.on('uncaughtException', (e) => log.error('uncaught exception', { err: e, stack: e.stack }));

  let server: RunningServer;
  try {
    server = await startPropolisServer({
      bootrom: args.bootrom,
      listen: args.listen,
      log,
      ...(args.bootromVersion === undefined ? {} : { bootromVersion: args.bootromVersion }),
      ...(args.metrics === undefined ? {} : { metrics: args.metrics }),
      ...(args.directBoot === undefined ? {} : { directBoot: args.directBoot }),
      // For tests and unusual hosts: where to find the KVM device.
      ...(process.env['PROPOLIS_KVM_DEVICE'] ? { kvmPath: process.env['PROPOLIS_KVM_DEVICE'] } : {}),
    });
  } catch (e) {
    log.error('failed to start', { err: e });
    process.stderr.write(`propolis-server: error: ${(e as Error).message}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn('already shutting down', { signal });
      return;
    }
    stopping = true;
    log.info('shutting down: stopping the VM', { signal });
    // A VM that cannot be stopped within this must not keep the process.
    const force = setTimeout(() => {
      log.error('shutdown timed out; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    server.shutdown().then(
      () => {
        log.info('shut down');
        process.exit(0);
      },
      (e: unknown) => {
        log.error('shutdown failed', { err: e });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`propolis-server: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(70);
});
