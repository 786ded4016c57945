// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The config TOML of propolis-cli (the original's `propolis-config-toml`)
// turned into instance-spec components, under the original's keys:
//
//   [main] boot_order = ["disk0", …]     → `boot-settings` {order: [{id}]}
//   [[pci_bridge]] pci-path, downstream-bus
//                                        → `pci-bridge-<pci-path>` pci_pci_bridge
//   [chipset] enable-pcie = bool         → SpecConfig.enablePcie (for the board)
//   [cpuid.<n>] vendor, "<leaf>[-<subleaf>]" = [eax, ebx, ecx, edx]  (hex keys)
//                                        → SpecConfig.cpuidProfiles (a board's Cpuid)
//   [block_dev.<b>] type = "file", path, readonly, block_size (512), workers
//                                        → `<b>` file_storage_backend
//   [dev.<n>] driver = "pci-virtio-block" | "pci-nvme", block_dev = "<b>", pci-path
//                                        → `<n>` virtio_disk / nvme_disk (serial: <n>
//                                          space-padded to 20 bytes), backend `<b>`
//   [dev.<n>] driver = "pci-virtio-viona", vnic, pci-path
//                                        → `<n>` virtio_nic (nil interface id) and
//                                          `<n>-backend` virtio_network_backend
//   [dev.test-migration-failure] fail_exports, fail_imports
//                                        → `test-migration-failure` migration_failure_injector
//
// The original's remaining drivers (pci-virtio-socket, pci-virtio-9p and the
// SoftNPU ones) describe devices this VMM cannot run; they are refused by
// name instead of producing components the server would refuse later.
//
// Unlike the original, which ignores keys it does not know, every table and
// key is checked: a typo is an error naming the file, the table and the key,
// never a silently different VM. `readonly` takes a bool or the strings
// "true"/"false" as in the original; `read_only` (the standalone's
// spelling, which the original's spec conversion silently ignores) is
// accepted as a synonym. `pci-path` is a string, as in the original. Block
// devices no device uses are refused (the original drops them).
//
// Callers that read more of the same file (propolis-standalone: [main] name,
// cpus, …; its own drivers) name what they read in SpecConfigOptions and
// get the raw tables back; everything else is still checked here.
//
// Pure: no I/O (read.ts reads files), no state; safe anywhere.

import { parse, TomlError } from 'smol-toml';
import type { Component, Cpuid, CpuidEntry, PciPath } from '../../api-types/src/index.js';
import { ConfigTomlError, formatTable, type ConfigTomlErrorCode, type ConfigTomlLocation } from './error.js';
import { parsePciPath } from './pci-path.js';

/** A `[dev.<n>]` of this name is the migration failure injector, whatever its driver. */
export const MIGRATION_FAILURE_DEVICE_NAME = 'test-migration-failure';
/** The component key of the boot order made from `[main] boot_order`. */
export const BOOT_SETTINGS_KEY = 'boot-settings';
/** The interface id of NICs from a config file (the original uses the nil UUID). */
export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
/** Length of an NVMe serial number in bytes (Identify Controller SN). */
export const NVME_SERIAL_LEN = 20;

/** The drivers that become components. */
export const SPEC_DRIVERS = ['pci-virtio-block', 'pci-nvme', 'pci-virtio-viona'] as const;

/** The original's drivers whose devices this VMM cannot run, with what they are. */
const UNSUPPORTED_DRIVERS: ReadonlyMap<string, string> = new Map([
  ['pci-virtio-socket', 'virtio-socket (vsock)'],
  ['pci-virtio-9p', 'virtio 9P file sharing'],
  ['softnpu-pci-port', 'SoftNPU, which the original builds only with its falcon feature'],
  ['softnpu-port', 'SoftNPU, which the original builds only with its falcon feature'],
  ['softnpu-p9', 'SoftNPU, which the original builds only with its falcon feature'],
]);

/** Drivers only propolis-standalone knows; an instance spec has no component for them. */
const STANDALONE_DRIVERS: ReadonlyMap<string, string> = new Map([
  ['qemu-pvpanic', 'a spec built from this file always has pvpanic (enable_isa = true)'],
  ['qemu-isa-debug-exit', 'an instance spec has no debug-exit device'],
]);

/** Keys only propolis-standalone reads, and where a spec user should look instead. */
const STANDALONE_KEYS: ReadonlyMap<string, string> = new Map([
  ['main.name', 'the instance name is the argument of `propolis-cli new`'],
  ['main.cpus', 'use `propolis-cli new -c`'],
  ['main.memory', 'use `propolis-cli new -m`'],
  ['main.cpuid_profile', 'use `propolis-cli new --cpuid-profile`'],
  ['main.bootrom', "the bootrom is propolis-server's first argument"],
  ['main.bootrom_version', 'propolis-server takes --bootrom-version'],
  ['main.exit_on_halt', 'a server instance ends in the Destroyed state'],
  ['main.exit_on_reboot', 'a server instance reboots in place'],
  ['main.use_reservoir', 'an instance spec has no place for it'],
  ['main.cpu_binding', 'an instance spec has no place for it'],
  ['main.acpi_variant', 'an instance spec has no place for it'],
  ['dev.rx-queue-size', 'an instance spec has no place for it'],
  ['dev.tx-queue-size', 'an instance spec has no place for it'],
  ['dev.tx_copy_data', 'an instance spec has no place for it'],
  ['dev.tx_header_pad', 'an instance spec has no place for it'],
  ['dev.has_write_cache', 'API 5.0.0 has no NVMe write-cache setting'],
  ['block_dev.skip_flush', 'an instance spec has no place for it'],
]);

const TOP_TABLES = new Set(['main', 'pci_bridge', 'chipset', 'cpuid', 'block_dev', 'dev']);

export type Table = Record<string, unknown>;

export interface SpecConfigOptions {
  /** `[main]` keys the caller reads itself besides `boot_order` (e.g. propolis-standalone's name, cpus, …). */
  mainKeys?: readonly string[];
  /** Top-level tables the caller reads itself (e.g. `cloudinit`). */
  tables?: readonly string[];
  /** Drivers the caller builds itself: their `[dev.<n>]` tables make no component and are returned in `devices`. */
  extraDrivers?: readonly string[];
  /** Further keys a driver's table may have, read by the caller from `devices[].table`. */
  extraDeviceKeys?: Readonly<Record<string, readonly string[]>>;
  /** Further keys a `[block_dev]` table may have, read by the caller from `blockDevs[].table`. */
  extraBlockDevKeys?: readonly string[];
}

export interface SpecConfig {
  /** The file name errors cite. */
  file: string;
  /** `[chipset] enable-pcie` (default false). */
  enablePcie: boolean;
  /**
   * Components by spec key: devices in table order (each followed by its
   * backend), then bridges, then boot settings. (Table order is the file's,
   * except that names which are integers come first: JavaScript's key order.)
   */
  components: Record<string, Component>;
  /** `[cpuid.<n>]` tables by name, as the board's `cpuid` (entries sorted by leaf and subleaf). */
  cpuidProfiles: ReadonlyMap<string, Cpuid>;
  /** `[main] boot_order`, when given. */
  bootOrder: readonly string[] | undefined;
  /** The raw `[main]` table (empty if absent), for callers' own keys. */
  main: Readonly<Table>;
  /** Every `[dev.<n>]`, in table order, with its raw table. */
  devices: readonly { name: string; driver: string; table: Readonly<Table> }[];
  /** Every `[block_dev.<n>]`, in table order, with its raw table. */
  blockDevs: readonly { name: string; type: string; table: Readonly<Table> }[];
}

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (typeof v === 'bigint') return 'an integer';
  if (typeof v === 'number') return 'a float';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  return 'a table';
}

/** Typed access to one table's keys; every error names file, table and key. */
class Reader {
  private readonly read = new Set<string>();

  constructor(
    readonly file: string,
    readonly table: string,
    readonly t: Table,
  ) {}

  fail(code: ConfigTomlErrorCode, key: string | undefined, problem: string): never {
    const where: ConfigTomlLocation = { file: this.file, table: this.table };
    if (key !== undefined) where.key = key;
    throw new ConfigTomlError(code, where, problem);
  }

  private get(key: string): unknown {
    this.read.add(key);
    return this.t[key];
  }

  has(key: string): boolean {
    return this.t[key] !== undefined;
  }

  str(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail('CONFIG_VALUE', key, `must be a string, not ${typeName(v)}`);
    return v;
  }

  reqStr(key: string): string {
    const v = this.str(key);
    if (v === undefined) this.fail('CONFIG_KEY', key, 'is required');
    if (v === '') this.fail('CONFIG_VALUE', key, 'must not be empty');
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail('CONFIG_VALUE', key, `must be true or false, not ${typeName(v)}`);
    return v;
  }

  /** A bool, or the strings "true"/"false" (the original parses strings with Rust's `bool::from_str`). */
  boolOrString(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    return this.fail('CONFIG_VALUE', key, `must be true or false (or "true"/"false"), not ${JSON.stringify(v)}`);
  }

  int(key: string, min: number, max: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'bigint') this.fail('CONFIG_VALUE', key, `must be an integer, not ${typeName(v)}`);
    if (v < BigInt(min) || v > BigInt(max)) this.fail('CONFIG_VALUE', key, `${v} is out of range (${min}..${max})`);
    return Number(v);
  }

  reqInt(key: string, min: number, max: number): number {
    const v = this.int(key, min, max);
    if (v === undefined) this.fail('CONFIG_KEY', key, 'is required');
    return v;
  }

  strList(key: string): string[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      this.fail('CONFIG_VALUE', key, 'must be an array of strings');
    }
    return v as string[];
  }

  pciPath(key: string): { path: PciPath; text: string } {
    const v = this.get(key);
    if (v === undefined) this.fail('CONFIG_KEY', key, 'is required');
    if (typeof v !== 'string') {
      this.fail('CONFIG_VALUE', key, `must be a string such as "0.4.0", not ${typeName(v)}`);
    }
    const p = parsePciPath(v);
    if (typeof p === 'string') this.fail('CONFIG_VALUE', key, p);
    return { path: p, text: v };
  }

  /**
   * Refuse every key not read so far and not in `alsoAllowed`; keys the
   * standalone reads get a hint saying where their meaning went.
   */
  done(hintPrefix: string, alsoAllowed: readonly string[] = []): void {
    for (const k of Object.keys(this.t)) {
      if (this.read.has(k) || alsoAllowed.includes(k)) continue;
      const hint = STANDALONE_KEYS.get(`${hintPrefix}.${k}`);
      if (hint !== undefined) this.fail('CONFIG_KEY', k, `is a propolis-standalone key, not part of a spec (${hint})`);
      this.fail('CONFIG_KEY', k, 'unknown key');
    }
  }
}

/** Adds components and refuses a key that is already taken, naming both owners. */
class Components {
  readonly map: Record<string, Component> = {};
  private readonly owners = new Map<string, string>();

  constructor(private readonly file: string) {}

  add(key: string, component: Component, owner: string): void {
    const prev = this.owners.get(key);
    if (prev !== undefined) {
      throw new ConfigTomlError(
        'CONFIG_VALUE',
        { file: this.file, table: owner },
        `spec key "${key}" is also produced by ${formatTable(prev)}; component keys must be unique`,
      );
    }
    this.owners.set(key, owner);
    this.map[key] = component;
  }
}

/**
 * An NVMe serial number made from text: its UTF-8 bytes, cut at 20, padded
 * to 20 with `pad` (the original's `nvme_serial_from_str`; config files pad
 * with spaces).
 */
export function nvmeSerialFromString(s: string, pad = 0x20): number[] {
  const bytes = [...new TextEncoder().encode(s).subarray(0, NVME_SERIAL_LEN)];
  while (bytes.length < NVME_SERIAL_LEN) bytes.push(pad);
  return bytes;
}

/** Parse config TOML text; `file` names it in errors. Paths are kept as written. */
export function parseSpecConfig(text: string, file: string, options: SpecConfigOptions = {}): SpecConfig {
  let doc: Table;
  try {
    // Integers as bigint so that `512.0` (a float) is told apart from `512`.
    doc = parse(text, { integersAsBigInt: true }) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      const msg = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new ConfigTomlError(
        'CONFIG_SYNTAX',
        { file },
        `not valid TOML (line ${e.line}, column ${e.column}): ${msg}`,
        { cause: e },
      );
    }
    throw e;
  }
  const loc = (table?: string): ConfigTomlLocation => (table === undefined ? { file } : { file, table });
  const callerTables = options.tables ?? [];
  for (const [k, v] of Object.entries(doc)) {
    if (callerTables.includes(k)) continue;
    if (!TOP_TABLES.has(k)) {
      const hint = k === 'cloudinit' ? ' ([cloudinit] is read by propolis-standalone only)' : '';
      throw new ConfigTomlError('CONFIG_KEY', { file, key: k }, `unknown top-level table or key${hint}`);
    }
    const isArrayOfTables = k === 'pci_bridge';
    if (isArrayOfTables ? !Array.isArray(v) : !isTable(v)) {
      const form = isArrayOfTables
        ? `[[${k}]] tables`
        : k === 'main' || k === 'chipset'
          ? `a [${k}] table`
          : `[${k}.<name>] tables`;
      throw new ConfigTomlError('CONFIG_KEY', { file, key: k }, `must be ${form}`);
    }
  }

  // [main]
  const mainT = isTable(doc['main']) ? doc['main'] : {};
  const main: Reader = new Reader(file, 'main', mainT);
  const bootOrder = main.strList('boot_order');
  main.done('main', options.mainKeys);

  // [chipset]
  const chipsetT = isTable(doc['chipset']) ? doc['chipset'] : {};
  const chipset: Reader = new Reader(file, 'chipset', chipsetT);
  const enablePcie = chipset.bool('enable-pcie') ?? false;
  chipset.done('chipset');

  // [block_dev.<b>]: read now, turned into backends as devices claim them.
  const blockDevs: { name: string; type: string; table: Table }[] = [];
  const backends = new Map<string, { component: Component; usedBy: string | undefined }>();
  for (const [name, body] of Object.entries(isTable(doc['block_dev']) ? doc['block_dev'] : {})) {
    const table = `block_dev.${name}`;
    if (!isTable(body)) throw new ConfigTomlError('CONFIG_KEY', loc(table), 'must be a table');
    const r: Reader = new Reader(file, table, body);
    const type = r.reqStr('type');
    blockDevs.push({ name, type, table: body });
    if (type === 'file') {
      backends.set(name, { component: fileBackend(r, options.extraBlockDevKeys), usedBy: undefined });
    } else if (type === 'crucible' || type === 'crucible-mem') {
      r.fail('CONFIG_UNSUPPORTED', 'type', `"${type}": Crucible storage is not supported by propolis-ts`);
    } else if (type === 'mem-async' || type === 'cloudinit') {
      r.fail('CONFIG_VALUE', 'type', `"${type}" is a propolis-standalone backend; a spec config has only "file"`);
    } else {
      r.fail('CONFIG_VALUE', 'type', `unknown block device type "${type}" (a spec config has only "file")`);
    }
  }

  const comps = new Components(file);
  const pciOwners = new Map<string, string>();
  const claimPciPath = (r: Reader, key: string): { path: PciPath; text: string } => {
    const { path, text } = r.pciPath(key);
    const canonical = `${path.bus}.${path.device}.${path.function}`;
    const prev = pciOwners.get(canonical);
    if (prev !== undefined) r.fail('CONFIG_VALUE', key, `PCI path ${text} is also used by ${formatTable(prev)}`);
    pciOwners.set(canonical, r.table);
    return { path, text };
  };

  // [dev.<n>]
  const devices: { name: string; driver: string; table: Table }[] = [];
  const diskNames = new Set<string>();
  for (const [name, body] of Object.entries(isTable(doc['dev']) ? doc['dev'] : {})) {
    const table = `dev.${name}`;
    if (!isTable(body)) throw new ConfigTomlError('CONFIG_KEY', loc(table), 'must be a table');
    const r: Reader = new Reader(file, table, body);
    const driver = r.reqStr('driver');
    devices.push({ name, driver, table: body });
    const extraKeys = options.extraDeviceKeys?.[driver] ?? [];

    if (name === MIGRATION_FAILURE_DEVICE_NAME) {
      const fail_exports = r.int('fail_exports', 0, 0xffff_ffff) ?? 0;
      const fail_imports = r.int('fail_imports', 0, 0xffff_ffff) ?? 0;
      r.done('dev', extraKeys);
      comps.add(name, { type: 'migration_failure_injector', component: { fail_exports, fail_imports } }, table);
      continue;
    }
    if (options.extraDrivers?.includes(driver)) {
      r.done('dev', extraKeys);
      continue;
    }
    switch (driver) {
      case 'pci-virtio-block':
      case 'pci-nvme': {
        const backendName = r.reqStr('block_dev');
        const pci_path = claimPciPath(r, 'pci-path').path;
        r.done('dev', extraKeys);
        const backend = backends.get(backendName);
        if (backend === undefined) {
          r.fail('CONFIG_VALUE', 'block_dev', `"${backendName}" has no [block_dev.${backendName}] table`);
        }
        if (backend.usedBy !== undefined) {
          r.fail(
            'CONFIG_VALUE',
            'block_dev',
            `"${backendName}" is already the backend of ${formatTable(backend.usedBy)}`,
          );
        }
        backend.usedBy = table;
        comps.add(
          name,
          driver === 'pci-virtio-block'
            ? { type: 'virtio_disk', component: { backend_id: backendName, pci_path } }
            : {
                type: 'nvme_disk',
                component: { backend_id: backendName, pci_path, serial_number: nvmeSerialFromString(name) },
              },
          table,
        );
        comps.add(backendName, backend.component, `block_dev.${backendName}`);
        diskNames.add(name);
        break;
      }
      case 'pci-virtio-viona': {
        const vnic = r.reqStr('vnic');
        const pci_path = claimPciPath(r, 'pci-path').path;
        r.done('dev', extraKeys);
        const backendKey = `${name}-backend`;
        comps.add(
          name,
          { type: 'virtio_nic', component: { backend_id: backendKey, interface_id: NIL_UUID, pci_path } },
          table,
        );
        comps.add(backendKey, { type: 'virtio_network_backend', component: { vnic_name: vnic } }, table);
        break;
      }
      default: {
        const unsupported = UNSUPPORTED_DRIVERS.get(driver);
        if (unsupported !== undefined) {
          r.fail('CONFIG_UNSUPPORTED', 'driver', `"${driver}" (${unsupported}) is not supported by propolis-ts`);
        }
        const standalone = STANDALONE_DRIVERS.get(driver);
        if (standalone !== undefined) {
          r.fail('CONFIG_VALUE', 'driver', `"${driver}" is a propolis-standalone device; ${standalone}`);
        }
        r.fail('CONFIG_VALUE', 'driver', `unknown driver "${driver}" (known: ${SPEC_DRIVERS.join(', ')})`);
      }
    }
  }
  for (const [name, b] of backends) {
    if (b.usedBy === undefined) {
      throw new ConfigTomlError('CONFIG_VALUE', loc(`block_dev.${name}`), 'is not the block_dev of any [dev.<name>]');
    }
  }

  // [[pci_bridge]]
  const bridges = Array.isArray(doc['pci_bridge']) ? (doc['pci_bridge'] as unknown[]) : [];
  bridges.forEach((body, i) => {
    const table = `[[pci_bridge]] #${i + 1}`;
    if (!isTable(body)) throw new ConfigTomlError('CONFIG_KEY', loc(table), 'must be a table');
    const r: Reader = new Reader(file, table, body);
    const { path: pci_path, text } = claimPciPath(r, 'pci-path');
    const downstream_bus = r.reqInt('downstream-bus', 0, 255);
    r.done('pci_bridge');
    comps.add(`pci-bridge-${text}`, { type: 'pci_pci_bridge', component: { downstream_bus, pci_path } }, table);
  });

  // boot order: names of disk devices in this file.
  if (bootOrder !== undefined) {
    for (const id of bootOrder) {
      if (!diskNames.has(id)) {
        main.fail('CONFIG_VALUE', 'boot_order', `"${id}" is not a disk device ([dev.${id}] with a storage driver)`);
      }
    }
    if (new Set(bootOrder).size !== bootOrder.length) main.fail('CONFIG_VALUE', 'boot_order', 'names a device twice');
    comps.add(
      BOOT_SETTINGS_KEY,
      { type: 'boot_settings', component: { order: bootOrder.map((id) => ({ id })) } },
      'main',
    );
  }

  // [cpuid.<n>]
  const cpuidProfiles = new Map<string, Cpuid>();
  for (const [name, body] of Object.entries(isTable(doc['cpuid']) ? doc['cpuid'] : {})) {
    const table = `cpuid.${name}`;
    if (!isTable(body)) throw new ConfigTomlError('CONFIG_KEY', loc(table), 'must be a table');
    cpuidProfiles.set(name, cpuidProfile(new Reader(file, table, body)));
  }

  return {
    file,
    enablePcie,
    components: comps.map,
    cpuidProfiles,
    bootOrder,
    main: mainT,
    devices,
    blockDevs,
  };
}

function fileBackend(r: Reader, extraKeys: readonly string[] = []): Component {
  const path = r.reqStr('path');
  const ro = r.boolOrString('readonly');
  const ro2 = r.bool('read_only');
  if (ro !== undefined && ro2 !== undefined && ro !== ro2) {
    r.fail('CONFIG_VALUE', 'read_only', 'contradicts readonly (give one of them)');
  }
  const block_size = r.int('block_size', 512, 65536) ?? 512;
  if ((block_size & (block_size - 1)) !== 0)
    r.fail('CONFIG_VALUE', 'block_size', `${block_size} is not a power of two`);
  const workers = r.int('workers', 1, Number.MAX_SAFE_INTEGER);
  r.done('block_dev', extraKeys);
  return {
    type: 'file_storage_backend',
    component: {
      path,
      readonly: ro ?? ro2 ?? false,
      block_size,
      ...(workers === undefined ? {} : { workers }),
    },
  };
}

const CPUID_KEY = /^([0-9a-fA-F]{1,8})(?:-([0-9a-fA-F]{1,8}))?$/;

function cpuidLeafInRange(leaf: number): boolean {
  return leaf <= 0xffff || (leaf >= 0x8000_0000 && leaf <= 0x8000_ffff);
}

/** `vendor` plus hex leaf keys `"7"` / `"7-0"` = [eax, ebx, ecx, edx], checked as the server will. */
function cpuidProfile(r: Reader): Cpuid {
  const vendor = r.str('vendor');
  if (vendor === undefined) r.fail('CONFIG_KEY', 'vendor', 'is required ("amd" or "intel")');
  if (vendor !== 'amd' && vendor !== 'intel')
    r.fail('CONFIG_VALUE', 'vendor', `must be "amd" or "intel", not "${vendor}"`);
  const entries: CpuidEntry[] = [];
  const seen = new Map<number, { subleaf: boolean; keys: Set<string> }>();
  for (const [key, v] of Object.entries(r.t)) {
    if (key === 'vendor') continue;
    const m = CPUID_KEY.exec(key);
    if (!m) r.fail('CONFIG_KEY', key, 'is not a hex leaf ("7") or leaf-subleaf ("7-0")');
    const leaf = parseInt(m[1]!, 16);
    const subleaf = m[2] === undefined ? undefined : parseInt(m[2], 16);
    if (!cpuidLeafInRange(leaf)) {
      r.fail('CONFIG_KEY', key, 'leaf is outside the standard (0-ffff) and extended (80000000-8000ffff) ranges');
    }
    const id = `${leaf}-${subleaf ?? ''}`;
    const prev = seen.get(leaf);
    if (prev !== undefined) {
      if (prev.subleaf !== (subleaf !== undefined)) {
        r.fail('CONFIG_KEY', key, `leaf ${m[1]} is given both with and without a subleaf`);
      }
      if (prev.keys.has(id)) r.fail('CONFIG_KEY', key, 'the same leaf (and subleaf) is given twice');
      prev.keys.add(id);
    } else {
      seen.set(leaf, { subleaf: subleaf !== undefined, keys: new Set([id]) });
    }
    if (!Array.isArray(v) || v.length !== 4) r.fail('CONFIG_VALUE', key, 'must be [eax, ebx, ecx, edx]');
    const regs = v.map((x: unknown) => {
      if (typeof x !== 'bigint' || x < 0n || x > 0xffff_ffffn) {
        r.fail('CONFIG_VALUE', key, 'register values must be integers in 0..0xffffffff');
      }
      return Number(x);
    });
    const [eax, ebx, ecx, edx] = regs as [number, number, number, number];
    entries.push({ leaf, ...(subleaf === undefined ? {} : { subleaf }), eax, ebx, ecx, edx });
  }
  // Sorted, as the original's (and JavaScript's own key order is not the file's).
  entries.sort((a, b) => a.leaf - b.leaf || (a.subleaf ?? -1) - (b.subleaf ?? -1));
  return { vendor, entries };
}
