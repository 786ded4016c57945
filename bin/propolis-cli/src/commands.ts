// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-cli's command line: the global options, the commands with their
// options and arguments (the original's, §5 of the reference), their help
// texts, and the parse of argv into a typed Invocation. Everything a
// command needs is checked here, before any file is read or the server is
// contacted, so bad usage always fails fast with exit status 2.
//
// Pure: no I/O.

import type { InstanceStateRequested } from '../../../lib/api-types/src/index.js';
import {
  formatOptions,
  formatRows,
  intValue,
  isHelpFlag,
  optionLabel,
  parseArgs,
  UsageError,
  uuidValue,
  type ArgumentSpec,
  type OptionSpec,
} from './args.js';

export const PROGRAM = 'propolis-cli';
export const DEFAULT_PORT = 12400;
/** Console history replayed by `serial` without -b: the latest 16 KiB. */
export const DEFAULT_SERIAL_HISTORY = 16384;

/** Exit statuses (also documented in main.ts and `--help`). */
export const EXIT = {
  OK: 0,
  /** The server answered with an error (or the operation failed otherwise). */
  SERVER_ERROR: 1,
  /** Bad usage: arguments, or an unreadable or invalid spec/config file. */
  USAGE: 2,
  /** The server could not be reached (refused, unresolvable, timed out, connection lost). */
  UNREACHABLE: 3,
  /** The operation is not supported by propolis-ts. */
  UNSUPPORTED: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface GlobalOptions {
  server: string;
  port: number;
  debug: boolean;
  json: boolean;
}

export type SpecSource =
  | { kind: 'none' }
  | { kind: 'spec'; path: string }
  | { kind: 'toml'; path: string; cpus: number; memoryMb: number; cpuidProfile: string | undefined };

export type Command =
  | { kind: 'help'; topic: string | undefined }
  | {
      kind: 'new';
      name: string;
      uuid: string | undefined;
      source: SpecSource;
      hyperV: boolean;
      siloId: string | undefined;
      projectId: string | undefined;
      sledId: string | undefined;
      sledModel: string;
      sledRevision: number;
      sledSerial: string;
      crucibleDisks: string | undefined;
      cloudInit: string | undefined;
    }
  | { kind: 'get' }
  | { kind: 'state'; state: InstanceStateRequested }
  | { kind: 'serial'; byteOffset: number | undefined }
  | { kind: 'monitor' }
  | { kind: 'migrate'; dst: string; dstPort: number; dstUuid: string | undefined; crucibleDisks: string | undefined }
  | { kind: 'inject-nmi' }
  | { kind: 'vcr'; diskId: string; vcrReplace: string };

export type Invocation = { global: GlobalOptions | undefined; json: boolean; command: Command };

interface CommandSpec {
  name: Exclude<Command['kind'], 'help'> | 'help';
  summary: string;
  /** Paragraphs after the usage line. */
  details?: string;
  args: ArgumentSpec[];
  options: OptionSpec[];
}

export const GLOBAL_OPTIONS: OptionSpec[] = [
  { long: 'server', short: 's', value: '<HOST>', help: 'propolis-server address (host name or IP) [required]' },
  { long: 'port', short: 'p', value: '<PORT>', help: 'propolis-server port', default: String(DEFAULT_PORT) },
  { long: 'debug', short: 'd', help: 'Log every HTTP request (and the spec `new` sends) on stderr' },
  {
    long: 'json',
    help: 'Machine-readable output: one JSON document on stdout (monitor: one per line); errors as JSON on stderr',
  },
  { long: 'help', short: 'h', help: 'Print help (also after a command)' },
];

const HELP_OPTION: OptionSpec = { long: 'help', short: 'h', help: 'Print this help' };

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'new',
    summary: 'Create an instance (not started) from a spec file or a config TOML',
    details:
      'With -s, the JSON file is the instance spec, sent as is. With -t, the spec is built from the config\n' +
      'TOML (devices, block devices, bridges, chipset, CPUID profiles, boot order) plus a board of -c vCPUs\n' +
      'and -m MiB, serial ports com1-com4 and pvpanic. With neither, the spec is that board and those\n' +
      'devices alone. The instance id (-u, else random) is printed.\n\n' +
      '--cloud-init attaches a cloud-init NoCloud seed as the virtio disk "cloud-init" at PCI 0.24.0: a\n' +
      'FAT volume labelled CIDATA holding the file as user-data and a meta-data of the instance id\n' +
      '(instance-id) and name (local-hostname). A file that already is a disk image (a FAT or ISO 9660\n' +
      'volume) is attached as it is, as the original CLI does with every file.',
    args: [{ name: '<NAME>', help: 'Instance name', required: true }],
    options: [
      { long: 'uuid', short: 'u', value: '<UUID>', help: 'Instance id [default: random]' },
      { long: 'spec', short: 's', value: '<FILE>', help: 'A JSON file holding the whole instance spec' },
      { long: 'config-toml', short: 't', value: '<FILE>', help: 'A config TOML to build the spec from' },
      { long: 'vcpus', short: 'c', value: '<N>', help: 'vCPUs (with -t)', default: '4' },
      { long: 'memory', short: 'm', value: '<MIB>', help: 'Guest memory in MiB (with -t)', default: '1024' },
      { long: 'cpuid-profile', value: '<NAME>', help: 'Use [cpuid.<NAME>] of the config TOML as the CPUID (with -t)' },
      { long: 'hyperv', help: 'Expose the Hyper-V interface with the reference TSC enlightenment' },
      { long: 'silo-id', value: '<UUID>', help: 'Silo id for metrics [default: random]' },
      { long: 'project-id', value: '<UUID>', help: 'Project id for metrics [default: random]' },
      { long: 'sled-id', value: '<UUID>', help: 'Sled id for metrics [default: random]' },
      { long: 'sled-model', value: '<MODEL>', help: 'Sled model for metrics', default: 'fake-gimlet' },
      { long: 'sled-revision', value: '<N>', help: 'Sled revision for metrics', default: '1' },
      { long: 'sled-serial', value: '<SERIAL>', help: 'Sled serial number for metrics', default: 'fake-serial' },
      { long: 'crucible-disks', value: '<FILE>', help: 'Crucible disks (not supported: no Crucible here; exit 4)' },
      { long: 'cloud-init', value: '<FILE>', help: 'cloud-init user-data (or a seed image) for a cidata disk' },
      HELP_OPTION,
    ],
  },
  {
    name: 'get',
    summary: "Print the instance's properties and state",
    args: [],
    options: [HELP_OPTION],
  },
  {
    name: 'state',
    summary: 'Ask the instance to run, stop or reboot (queued; returns at once)',
    args: [{ name: '<STATE>', help: 'run, stop or reboot', required: true }],
    options: [HELP_OPTION],
  },
  {
    name: 'serial',
    summary: "Attach to the instance's serial console (COM1)",
    details:
      'On a terminal, the terminal is put in raw mode (and always restored): Ctrl-C detaches, Ctrl-A sends\n' +
      'the next key as is (Ctrl-A Ctrl-C sends Ctrl-C, Ctrl-A Ctrl-A sends Ctrl-A). Without a terminal,\n' +
      'stdin is sent as is (until it ends) and output is copied to stdout until the server closes the\n' +
      'console (exit 0), the connection breaks (exit 3) or a signal arrives. Follows live migrations.',
    args: [],
    options: [
      {
        long: 'byte-offset',
        short: 'b',
        value: '<N>',
        help: 'Replay history from byte N of the output (N >= 0) or the last -N bytes (N < 0)',
        default: String(-DEFAULT_SERIAL_HISTORY),
      },
      HELP_OPTION,
    ],
  },
  {
    name: 'monitor',
    summary: 'Print every state change; exit 0 once the instance is Destroyed (1 if it Failed)',
    args: [],
    options: [HELP_OPTION],
  },
  {
    name: 'migrate',
    summary: 'Live-migrate the instance to another server (not implemented yet; exit 4)',
    args: [{ name: '<DST>', help: 'Destination propolis-server address', required: true }],
    options: [
      { long: 'dst-port', short: 'p', value: '<PORT>', help: 'Destination port', default: String(DEFAULT_PORT) },
      { long: 'dst-uuid', short: 'u', value: '<UUID>', help: 'Id of the destination instance [default: random]' },
      { long: 'crucible-disks', value: '<FILE>', help: 'Crucible disks to replace on the destination' },
      HELP_OPTION,
    ],
  },
  {
    name: 'inject-nmi',
    summary: 'Inject an NMI into vCPU 0',
    args: [],
    options: [HELP_OPTION],
  },
  {
    name: 'vcr',
    summary: 'Replace a Crucible volume construction request (not supported: no Crucible here; exit 4)',
    args: [],
    options: [
      { long: 'disk-id', short: 'd', value: '<ID>', help: 'The backend id of the disk' },
      { long: 'vcr-replace', value: '<FILE>', help: 'A JSON file holding the InstanceVCRReplace' },
      HELP_OPTION,
    ],
  },
  {
    name: 'help',
    summary: "Print this help, or a command's",
    args: [{ name: '[COMMAND]', help: 'The command to explain', required: false }],
    options: [],
  },
];

const EXIT_HELP =
  'Exit status:\n' +
  formatRows([
    ['0', 'success'],
    ['1', 'the server answered with an error (status, error_code, message and request id are printed)'],
    ['2', 'bad usage: unknown command or option, missing or malformed value, unreadable or invalid spec/config'],
    ['3', 'the server cannot be reached (refused, unresolvable, timed out, connection lost)'],
    ['4', 'the operation is not supported by propolis-ts (migrate, vcr, Crucible, vsock, 9p, …)'],
  ]);

export function programHelp(): string {
  return [
    `${PROGRAM}: drive a propolis-server instance through its HTTP API`,
    '',
    `Usage: ${PROGRAM} [OPTIONS] -s <HOST> <COMMAND> [COMMAND OPTIONS] [ARGS]`,
    '',
    'Commands:',
    formatRows(COMMANDS.map((c) => [c.name, c.summary] as const)),
    '',
    'Options (before the command):',
    formatOptions(GLOBAL_OPTIONS),
    '',
    EXIT_HELP,
    '',
    `Run '${PROGRAM} <COMMAND> --help' for a command's options.`,
    '',
  ].join('\n');
}

export function commandHelp(name: string): string {
  const c = COMMANDS.find((x) => x.name === name);
  if (c === undefined) throw new UsageError(`unknown command '${name}'`);
  const usageArgs = c.args.map((a) => a.name).join(' ');
  const lines = [
    `${PROGRAM} ${c.name}: ${c.summary}`,
    '',
    `Usage: ${PROGRAM} [OPTIONS] -s <HOST> ${c.name}${c.options.length > 0 ? ' [OPTIONS]' : ''}${usageArgs ? ` ${usageArgs}` : ''}`,
  ];
  if (c.details !== undefined) lines.push('', c.details);
  if (c.args.length > 0) lines.push('', 'Arguments:', formatRows(c.args.map((a) => [a.name, a.help] as const)));
  if (c.options.length > 0) lines.push('', 'Options:', formatOptions(c.options));
  lines.push('', EXIT_HELP, '');
  return lines.join('\n');
}

/** The hint that ends every usage error. */
export function helpHint(command: string | undefined): string {
  return command === undefined ? `see '${PROGRAM} --help'` : `see '${PROGRAM} ${command} --help'`;
}

function hostValue(v: string, what: string, command?: string): string {
  if (v === '' || /[\s/?#@]/.test(v))
    throw new UsageError(`${what} must be a host name or IP address, not '${v}'`, command);
  return v;
}

const STATES: Record<string, InstanceStateRequested> = { run: 'Run', stop: 'Stop', reboot: 'Reboot' };

/**
 * The invocation `argv` (without node and the script) asks for. Throws
 * UsageError; `--help` anywhere before `--` wins over every other problem
 * of its command line.
 */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const g = parseArgs(argv, GLOBAL_OPTIONS, [], undefined, true);
  const json = g.options.has('json');
  const name = g.args[0];
  if (g.options.has('help') || name === undefined) {
    if (name === undefined && !g.options.has('help')) throw new UsageError('no command given');
    return { global: undefined, json, command: { kind: 'help', topic: name === 'help' ? undefined : name } };
  }
  const spec = COMMANDS.find((c) => c.name === name);
  if (spec === undefined) throw new UsageError(`unknown command '${name}'`);
  const dashdash = g.rest.indexOf('--');
  if (g.rest.slice(0, dashdash < 0 ? undefined : dashdash).some(isHelpFlag)) {
    return { global: undefined, json, command: { kind: 'help', topic: name } };
  }
  const p = parseArgs(g.rest, spec.options, spec.args, name);
  if (name === 'help') {
    const topic = p.args[0];
    if (topic !== undefined && !COMMANDS.some((c) => c.name === topic))
      throw new UsageError(`unknown command '${topic}'`);
    return { global: undefined, json, command: { kind: 'help', topic } };
  }

  const server = g.options.get('server');
  if (server === undefined) throw new UsageError('missing required option -s/--server <HOST> (before the command)');
  const portText = g.options.get('port');
  const global: GlobalOptions = {
    server: hostValue(server as string, '-s/--server'),
    port: portText === undefined ? DEFAULT_PORT : intValue(portText as string, '-p/--port', 1, 65535),
    debug: g.options.has('debug'),
    json,
  };
  return { global, json, command: commandOf(spec.name, p.options, p.args) };
}

function commandOf(name: CommandSpec['name'], o: Map<string, string | true>, args: string[]): Command {
  const str = (k: string): string | undefined => {
    const v = o.get(k);
    return v === true ? undefined : v;
  };
  const label = (k: string): string => {
    const spec = COMMANDS.find((c) => c.name === name)!.options.find((x) => x.long === k)!;
    return optionLabel(spec);
  };
  const uuidOpt = (k: string): string | undefined => {
    const v = str(k);
    return v === undefined ? undefined : uuidValue(v, label(k), name);
  };
  switch (name) {
    case 'new': {
      const specPath = str('spec');
      const tomlPath = str('config-toml');
      if (specPath !== undefined && tomlPath !== undefined) {
        throw new UsageError('-s/--spec and -t/--config-toml cannot be used together', name);
      }
      for (const k of ['vcpus', 'memory', 'cpuid-profile']) {
        if (o.has(k) && tomlPath === undefined) throw new UsageError(`${label(k)} needs -t/--config-toml`, name);
      }
      for (const k of ['hyperv', 'crucible-disks', 'cloud-init']) {
        if (o.has(k) && specPath !== undefined) {
          throw new UsageError(`${label(k)} cannot be used with -s/--spec (the spec is sent as is)`, name);
        }
      }
      const vcpus = str('vcpus');
      const memory = str('memory');
      const revision = str('sled-revision');
      let source: SpecSource = { kind: 'none' };
      if (specPath !== undefined) source = { kind: 'spec', path: specPath };
      if (tomlPath !== undefined) {
        source = {
          kind: 'toml',
          path: tomlPath,
          cpus: vcpus === undefined ? 4 : intValue(vcpus, '-c/--vcpus', 1, 255, name),
          memoryMb: memory === undefined ? 1024 : intValue(memory, '-m/--memory', 1, Number.MAX_SAFE_INTEGER, name),
          cpuidProfile: str('cpuid-profile'),
        };
      }
      return {
        kind: 'new',
        name: args[0]!,
        uuid: uuidOpt('uuid'),
        source,
        hyperV: o.has('hyperv'),
        siloId: uuidOpt('silo-id'),
        projectId: uuidOpt('project-id'),
        sledId: uuidOpt('sled-id'),
        sledModel: str('sled-model') ?? 'fake-gimlet',
        sledRevision: revision === undefined ? 1 : intValue(revision, '--sled-revision', 0, 0xffff_ffff, name),
        sledSerial: str('sled-serial') ?? 'fake-serial',
        crucibleDisks: str('crucible-disks'),
        cloudInit: str('cloud-init'),
      };
    }
    case 'state': {
      const s = STATES[args[0]!.toLowerCase()];
      if (s === undefined) throw new UsageError(`state must be run, stop or reboot, not '${args[0]}'`, name);
      return { kind: 'state', state: s };
    }
    case 'serial': {
      const b = str('byte-offset');
      return {
        kind: 'serial',
        byteOffset:
          b === undefined
            ? undefined
            : intValue(b, '-b/--byte-offset', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, name),
      };
    }
    case 'migrate': {
      const port = str('dst-port');
      return {
        kind: 'migrate',
        dst: hostValue(args[0]!, '<DST>', name),
        dstPort: port === undefined ? DEFAULT_PORT : intValue(port, '-p/--dst-port', 1, 65535, name),
        dstUuid: uuidOpt('dst-uuid'),
        crucibleDisks: str('crucible-disks'),
      };
    }
    case 'vcr': {
      const diskId = str('disk-id');
      const vcrReplace = str('vcr-replace');
      if (diskId === undefined) throw new UsageError('missing required option -d/--disk-id <ID>', name);
      if (vcrReplace === undefined) throw new UsageError('missing required option --vcr-replace <FILE>', name);
      return { kind: 'vcr', diskId, vcrReplace };
    }
    case 'get':
    case 'monitor':
    case 'inject-nmi':
      return { kind: name };
    case 'help':
      return { kind: 'help', topic: args[0] };
  }
}
