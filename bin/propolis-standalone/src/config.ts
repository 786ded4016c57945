// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-standalone's TOML configuration, in the seed's format:
//
//   [main]      name, cpus, memory (MiB), bootrom, exit_on_halt, exit_on_reboot, …
//   [dev.<n>]   driver = "…" and the driver's keys
//   [cloudinit] user-data, meta-data, network-config (text) or *-path (a file)
//
// Every key is checked: an unknown key, a wrong type or a value out of range
// is a ConfigError naming the file, the table and the key. Keys and drivers
// the seed has but this VMM does not implement yet are refused by name
// rather than silently ignored.

import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import type { CpuidEntry } from '../../../lib/kvm/src/index.js';
import {
  CpuidProfileError,
  profileToCpuid,
  type CpuidProfileLeaf,
  type CpuidVendor,
} from '../../../lib/propolis/src/vmm/cpuid.js';

export class ConfigError extends Error {
  constructor(
    readonly code: 'CONFIG_READ' | 'CONFIG_SYNTAX' | 'CONFIG_KEY' | 'CONFIG_VALUE' | 'CONFIG_UNSUPPORTED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export interface DebugExitDev {
  driver: 'qemu-isa-debug-exit';
  name: string;
  iobase: number;
  iosize: number;
}

export interface PvpanicDev {
  driver: 'qemu-pvpanic';
  name: string;
  enableIsa: boolean;
}

export interface StorageDev {
  driver: 'pci-virtio-block' | 'pci-nvme';
  name: string;
  blockDev: string;
  pciPath: string;
}

export interface NicDev {
  driver: 'pci-virtio-viona';
  name: string;
  vnic: string;
  pciPath: string;
  rxQueueSize: number | undefined;
  txQueueSize: number | undefined;
}

export type DevConfig = DebugExitDev | PvpanicDev | StorageDev | NicDev;

/** `[block_dev.<n>]` with `type = "file"` or `"mem-async"` (an in-memory disk). */
export type BlockDevConfig =
  | {
      type: 'file';
      name: string;
      path: string;
      readOnly: boolean;
      blockSize: number;
      workers: number;
      skipFlush: boolean;
    }
  | { type: 'mem-async'; name: string; size: number; readOnly: boolean; blockSize: number; workers: number }
  /** The seed's `type = "cloudinit"`: the `[cloudinit]` volume (read-only, 512-byte blocks). */
  | { type: 'cloudinit'; name: string };

/** One `[cloudinit]` file: text given in the table, or a file to read (relative to the CWD, as `bootrom`). */
export type CloudInitSource = { text: string } | { path: string };

/** `[cloudinit]`: the files of the NoCloud seed (see cloudinit.ts). */
export interface CloudInitConfig {
  userData: CloudInitSource | undefined;
  metaData: CloudInitSource | undefined;
  networkConfig: CloudInitSource | undefined;
}

export interface StandaloneConfig {
  main: {
    name: string;
    cpus: number;
    memory: number;
    bootrom: string;
    bootromVersion: string | undefined;
    exitOnHalt: number;
    exitOnReboot: number | undefined;
    /** Device names, first to boot first. */
    bootOrder: string[] | undefined;
  };
  devices: DevConfig[];
  blockDevs: BlockDevConfig[];
  /** The profile named by `[main] cpuid_profile`, as CPUID entries. */
  cpuid: CpuidEntry[] | undefined;
  /** `[cloudinit]`, when present. */
  cloudInit?: CloudInitConfig | undefined;
}

type Table = Record<string, unknown>;

const MAIN_KEYS = new Set([
  'name',
  'cpus',
  'memory',
  'bootrom',
  'bootrom_version',
  'exit_on_halt',
  'exit_on_reboot',
  'use_reservoir',
  'cpu_binding',
  'cpuid_profile',
  'boot_order',
]);
/** Seed keys that this VMM does not implement yet; refused by name. */
const MAIN_NOT_YET = new Set(['acpi_variant']);
const SEED_DRIVERS_NOT_YET = new Set([
  'pci-virtio-socket',
  'pci-virtio-9p',
  'softnpu-pci-port',
  'softnpu-port',
  'softnpu-p9',
]);

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

class Reader {
  constructor(
    private readonly file: string,
    private readonly where: string,
    private readonly t: Table,
  ) {}

  private name(key: string): string {
    return `${this.file}: [${this.where}] ${key}`;
  }

  str(key: string): string | undefined {
    const v = this.t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ConfigError('CONFIG_VALUE', `${this.name(key)} must be a string`);
    return v;
  }

  reqStr(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === '') throw new ConfigError('CONFIG_KEY', `${this.name(key)} is required`);
    return v;
  }

  int(key: string, min: number, max: number): number | undefined {
    const v = this.t[key];
    if (v === undefined) return undefined;
    // smol-toml yields integers as numbers (or bigint beyond 2^53).
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      throw new ConfigError('CONFIG_VALUE', `${this.name(key)} must be an integer`);
    }
    if (n < min || n > max) {
      throw new ConfigError('CONFIG_VALUE', `${this.name(key)} = ${n} is out of range (${min}..${max})`);
    }
    return n;
  }

  reqInt(key: string, min: number, max: number): number {
    const v = this.int(key, min, max);
    if (v === undefined) throw new ConfigError('CONFIG_KEY', `${this.name(key)} is required`);
    return v;
  }

  strList(key: string): string[] | undefined {
    const v = this.t[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      throw new ConfigError('CONFIG_VALUE', `${this.name(key)} must be a list of strings`);
    }
    return v as string[];
  }

  bool(key: string): boolean | undefined {
    const v = this.t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw new ConfigError('CONFIG_VALUE', `${this.name(key)} must be true or false`);
    return v;
  }

  onlyKeys(allowed: Set<string>, notYet: Set<string> = new Set()): void {
    for (const k of Object.keys(this.t)) {
      if (notYet.has(k)) {
        throw new ConfigError('CONFIG_UNSUPPORTED', `${this.name(k)} is not supported by propolis-ts yet`);
      }
      if (!allowed.has(k)) throw new ConfigError('CONFIG_KEY', `${this.name(k)}: unknown key`);
    }
  }
}

/** Parse config text; `file` names it in errors. Paths are kept as written. */
export function parseConfig(text: string, file: string): StandaloneConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    const msg = e instanceof TomlError ? e.message.split('\n')[0] : String(e);
    const pos = e instanceof TomlError ? ` (line ${e.line}, column ${e.column})` : '';
    throw new ConfigError('CONFIG_SYNTAX', `${file}: not valid TOML${pos}: ${msg}`, { cause: e });
  }
  for (const k of Object.keys(doc)) {
    if (k !== 'main' && k !== 'dev' && k !== 'cpuid' && k !== 'block_dev' && k !== 'cloudinit')
      throw new ConfigError('CONFIG_KEY', `${file}: unknown table or key '${k}'`);
  }
  const mainT = doc['main'];
  if (!isTable(mainT)) throw new ConfigError('CONFIG_KEY', `${file}: a [main] table is required`);
  const m = new Reader(file, 'main', mainT);
  m.onlyKeys(MAIN_KEYS, MAIN_NOT_YET);
  if (m.bool('use_reservoir') === true) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${file}: [main] use_reservoir = true: KVM hosts have no VMM reservoir`,
    );
  }
  const binding = m.str('cpu_binding');
  if (binding !== undefined && binding !== 'any' && binding !== 'upper-half') {
    throw new ConfigError('CONFIG_VALUE', `${file}: [main] cpu_binding must be "any" or "upper-half"`);
  }
  const main = {
    name: m.reqStr('name'),
    cpus: m.reqInt('cpus', 1, 32),
    memory: m.reqInt('memory', 2, 1024 * 1024),
    bootrom: m.reqStr('bootrom'),
    bootromVersion: m.str('bootrom_version'),
    exitOnHalt: m.int('exit_on_halt', 0, 255) ?? 0,
    exitOnReboot: m.int('exit_on_reboot', 0, 255),
    bootOrder: m.strList('boot_order'),
  };
  const blockDevs = parseBlockDevs(doc['block_dev'], file);
  const cloudInit = parseCloudInit(doc['cloudinit'], file);
  const ciDev = blockDevs.find((b) => b.type === 'cloudinit');
  if (ciDev && !cloudInit) {
    throw new ConfigError(
      'CONFIG_KEY',
      `${file}: [block_dev.${ciDev.name}] type "cloudinit" needs a [cloudinit] table with the volume's files`,
    );
  }

  const devices: DevConfig[] = [];
  const devT = doc['dev'];
  if (devT !== undefined) {
    if (!isTable(devT)) throw new ConfigError('CONFIG_KEY', `${file}: dev must be a table of [dev.<name>] tables`);
    for (const [name, body] of Object.entries(devT)) {
      if (!isTable(body)) throw new ConfigError('CONFIG_KEY', `${file}: [dev.${name}] must be a table`);
      const r = new Reader(file, `dev.${name}`, body);
      const driver = r.reqStr('driver');
      if (driver === 'qemu-isa-debug-exit') {
        r.onlyKeys(new Set(['driver', 'iobase', 'iosize']));
        const iosize = r.int('iosize', 1, 4) ?? 1;
        devices.push({ driver, name, iobase: r.int('iobase', 0, 0x10000 - iosize) ?? 0x501, iosize });
      } else if (driver === 'qemu-pvpanic') {
        r.onlyKeys(new Set(['driver', 'enable_isa']));
        if (devices.some((d) => d.driver === 'qemu-pvpanic')) {
          throw new ConfigError('CONFIG_VALUE', `${file}: [dev.${name}] only one qemu-pvpanic device is allowed`);
        }
        devices.push({ driver, name, enableIsa: r.bool('enable_isa') ?? false });
      } else if (driver === 'pci-virtio-block' || driver === 'pci-nvme') {
        r.onlyKeys(new Set(['driver', 'block_dev', 'pci-path']));
        const blockDev = r.reqStr('block_dev');
        if (!blockDevs.some((b) => b.name === blockDev)) {
          throw new ConfigError(
            'CONFIG_VALUE',
            `${file}: [dev.${name}] block_dev "${blockDev}" has no [block_dev.${blockDev}] table`,
          );
        }
        if (devices.some((d) => 'blockDev' in d && d.blockDev === blockDev)) {
          throw new ConfigError(
            'CONFIG_VALUE',
            `${file}: [dev.${name}] block_dev "${blockDev}" is already used by another device`,
          );
        }
        const pciPath = pciPathOf(r, file, name, devices);
        devices.push({ driver, name, blockDev, pciPath });
      } else if (driver === 'pci-virtio-viona') {
        // tx_copy_data and tx_header_pad tune illumos viona; nothing to do on a tap.
        r.onlyKeys(
          new Set(['driver', 'vnic', 'pci-path', 'rx-queue-size', 'tx-queue-size', 'tx_copy_data', 'tx_header_pad']),
        );
        const pciPath = pciPathOf(r, file, name, devices);
        devices.push({
          driver,
          name,
          vnic: r.reqStr('vnic'),
          pciPath,
          rxQueueSize: r.int('rx-queue-size', 2, 32768),
          txQueueSize: r.int('tx-queue-size', 2, 32768),
        });
      } else if (SEED_DRIVERS_NOT_YET.has(driver)) {
        throw new ConfigError(
          'CONFIG_UNSUPPORTED',
          `${file}: [dev.${name}] driver "${driver}" is not supported by propolis-ts yet`,
        );
      } else {
        throw new ConfigError('CONFIG_VALUE', `${file}: [dev.${name}] unknown driver "${driver}"`);
      }
    }
  }
  const profiles = parseCpuidProfiles(doc['cpuid'], file);
  const profileName = m.str('cpuid_profile');
  let cpuid: CpuidEntry[] | undefined;
  if (profileName !== undefined) {
    cpuid = profiles.get(profileName);
    if (!cpuid)
      throw new ConfigError(
        'CONFIG_VALUE',
        `${file}: [main] cpuid_profile "${profileName}" has no [cpuid.${profileName}] table`,
      );
  }
  for (const b of main.bootOrder ?? []) {
    if (!devices.some((d) => d.name === b && 'blockDev' in d)) {
      throw new ConfigError('CONFIG_VALUE', `${file}: [main] boot_order names "${b}", which is not a disk device`);
    }
  }
  return { main, devices, cpuid, blockDevs, ...(cloudInit ? { cloudInit } : {}) };
}

/** `[cloudinit]`: each file as text or as `<key>-path`, not both. */
function parseCloudInit(t: unknown, file: string): CloudInitConfig | undefined {
  if (t === undefined) return undefined;
  if (!isTable(t)) throw new ConfigError('CONFIG_KEY', `${file}: cloudinit must be a [cloudinit] table`);
  const r = new Reader(file, 'cloudinit', t);
  const items = ['user-data', 'meta-data', 'network-config'] as const;
  r.onlyKeys(new Set(items.flatMap((k) => [k, `${k}-path`])));
  const source = (key: (typeof items)[number]): CloudInitSource | undefined => {
    const text = r.str(key);
    const path = r.str(`${key}-path`);
    if (text !== undefined && path !== undefined) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `${file}: [cloudinit] ${key} and ${key}-path both given; use one (the text, or the file to read it from)`,
      );
    }
    if (path === '') throw new ConfigError('CONFIG_VALUE', `${file}: [cloudinit] ${key}-path is empty`);
    return text !== undefined ? { text } : path !== undefined ? { path } : undefined;
  };
  return { userData: source('user-data'), metaData: source('meta-data'), networkConfig: source('network-config') };
}

/** A device's `pci-path`: `bus.device.function`, not used by another device. */
function pciPathOf(r: Reader, file: string, name: string, devices: DevConfig[]): string {
  const pciPath = r.reqStr('pci-path');
  if (!/^\d{1,3}\.\d{1,2}\.\d$/.test(pciPath)) {
    throw new ConfigError('CONFIG_VALUE', `${file}: [dev.${name}] pci-path "${pciPath}" is not bus.device.function`);
  }
  if (devices.some((d) => 'pciPath' in d && d.pciPath === pciPath)) {
    throw new ConfigError('CONFIG_VALUE', `${file}: [dev.${name}] pci-path ${pciPath} is used twice`);
  }
  return pciPath;
}

function parseBlockDevs(t: unknown, file: string): BlockDevConfig[] {
  const out: BlockDevConfig[] = [];
  if (t === undefined) return out;
  if (!isTable(t))
    throw new ConfigError('CONFIG_KEY', `${file}: block_dev must be a table of [block_dev.<name>] tables`);
  for (const [name, body] of Object.entries(t)) {
    if (!isTable(body)) throw new ConfigError('CONFIG_KEY', `${file}: [block_dev.${name}] must be a table`);
    const r = new Reader(file, `block_dev.${name}`, body);
    const type = r.reqStr('type');
    // The seed reads `read_only` (standalone) and `readonly` (CLI config): accept either.
    const readOnly = r.bool('read_only') ?? r.bool('readonly') ?? false;
    const blockSize = r.int('block_size', 512, 65536) ?? 512;
    if ((blockSize & (blockSize - 1)) !== 0) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `${file}: [block_dev.${name}] block_size ${blockSize} is not a power of two`,
      );
    }
    if (type === 'file') {
      r.onlyKeys(new Set(['type', 'path', 'read_only', 'readonly', 'block_size', 'workers', 'skip_flush']));
      const workers = r.int('workers', 1, 1024) ?? 8;
      out.push({
        type,
        name,
        path: r.reqStr('path'),
        readOnly,
        blockSize,
        // As the seed: more than 32 workers falls back to the default.
        workers: workers > 32 ? 8 : workers,
        skipFlush: r.bool('skip_flush') ?? false,
      });
    } else if (type === 'mem-async') {
      r.onlyKeys(new Set(['type', 'size', 'read_only', 'readonly', 'block_size', 'workers']));
      const size = r.reqInt('size', blockSize, 64 * 1024 * 1024 * 1024);
      if (size % blockSize !== 0) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `${file}: [block_dev.${name}] size ${size} is not a multiple of block_size`,
        );
      }
      out.push({ type, name, size, readOnly, blockSize, workers: r.int('workers', 1, 32) ?? 1 });
    } else if (type === 'cloudinit') {
      // The seed builds this volume read-only with 512-byte blocks whatever the table says; say so instead.
      r.onlyKeys(new Set(['type', 'read_only', 'readonly', 'block_size']));
      if (body['read_only'] === false || body['readonly'] === false || blockSize !== 512) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `${file}: [block_dev.${name}] a cloudinit volume is always read-only with 512-byte blocks`,
        );
      }
      out.push({ type, name });
    } else if (type === 'crucible' || type === 'crucible-mem') {
      throw new ConfigError(
        'CONFIG_UNSUPPORTED',
        `${file}: [block_dev.${name}] type "${type}" is not supported by propolis-ts yet`,
      );
    } else {
      throw new ConfigError('CONFIG_VALUE', `${file}: [block_dev.${name}] unknown type "${type}"`);
    }
  }
  return out;
}

/**
 * `[cpuid.<name>]`: `vendor = "intel" | "amd"` and leaf keys in hex, `"7"`
 * or `"7-0"` (leaf-subleaf), each `[eax, ebx, ecx, edx]`.
 */
function parseCpuidProfiles(t: unknown, file: string): Map<string, CpuidEntry[]> {
  const out = new Map<string, CpuidEntry[]>();
  if (t === undefined) return out;
  if (!isTable(t)) throw new ConfigError('CONFIG_KEY', `${file}: cpuid must be a table of [cpuid.<name>] tables`);
  for (const [name, body] of Object.entries(t)) {
    if (!isTable(body)) throw new ConfigError('CONFIG_KEY', `${file}: [cpuid.${name}] must be a table`);
    const vendor = body['vendor'];
    if (vendor !== 'intel' && vendor !== 'amd') {
      throw new ConfigError('CONFIG_VALUE', `${file}: [cpuid.${name}] vendor must be "intel" or "amd"`);
    }
    const leaves: CpuidProfileLeaf[] = [];
    for (const [key, v] of Object.entries(body)) {
      if (key === 'vendor') continue;
      const m = /^([0-9a-fA-F]{1,8})(?:-([0-9a-fA-F]{1,8}))?$/.exec(key);
      if (!m) throw new ConfigError('CONFIG_KEY', `${file}: [cpuid.${name}] ${key}: not a hex leaf or leaf-subleaf`);
      const regs = Array.isArray(v) ? v.map((x) => (typeof x === 'bigint' ? Number(x) : x)) : [];
      if (regs.length !== 4 || !regs.every((x) => typeof x === 'number' && Number.isInteger(x))) {
        throw new ConfigError('CONFIG_VALUE', `${file}: [cpuid.${name}] ${key} must be [eax, ebx, ecx, edx] integers`);
      }
      leaves.push({
        leaf: parseInt(m[1] as string, 16),
        ...(m[2] === undefined ? {} : { subleaf: parseInt(m[2], 16) }),
        values: regs as [number, number, number, number],
      });
    }
    try {
      out.set(name, profileToCpuid(name, vendor as CpuidVendor, leaves));
    } catch (e) {
      if (e instanceof CpuidProfileError) throw new ConfigError('CONFIG_VALUE', `${file}: ${e.message}`, { cause: e });
      throw e;
    }
  }
  return out;
}

export function loadConfig(path: string): StandaloneConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new ConfigError('CONFIG_READ', `cannot read config ${path}: ${why}`, { cause: e });
  }
  return parseConfig(text, path);
}
