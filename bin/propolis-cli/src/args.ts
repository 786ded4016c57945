// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A small, strict command-line parser: options are declared (long name,
// optional short letter, whether they take a value) and anything else is a
// UsageError naming the offending word. Accepted forms:
//
//   --name value   --name=value   -n value   -nVALUE   (options with a value)
//   --name         -n                                   (flags)
//   --                                                  (the rest are arguments)
//
// A value is taken as is, even when it starts with '-' (`-b -100`). An
// option given twice, a flag given a value, a value-taking option at the
// end of the line and a surplus or missing argument are errors. No
// bundling of short flags (`-dv`), no abbreviations of long names.
//
// Pure: no I/O.

export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help explains the fix (undefined: the program's). */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** Long name without dashes: `server` for `--server`. */
  long: string;
  /** One letter: `s` for `-s`. */
  short?: string;
  /** Present for options that take a value: its placeholder in help (`<HOST>`). */
  value?: string;
  help: string;
  /** Shown in help as `[default: …]`. */
  default?: string;
}

export interface ArgumentSpec {
  name: string;
  help: string;
  required: boolean;
}

export interface Parsed {
  /** Values by long name; flags map to `true`. */
  options: Map<string, string | true>;
  args: string[];
}

export function optionLabel(o: OptionSpec): string {
  return o.short !== undefined ? `-${o.short}/--${o.long}` : `--${o.long}`;
}

/** True for `-h` and `--help`. */
export function isHelpFlag(a: string): boolean {
  return a === '-h' || a === '--help';
}

/**
 * Parse `argv` against `options` and `args`. With `stopAtArgument`, parsing
 * stops at the first argument, which is returned with everything after it
 * (how the global options end at the command name).
 */
export function parseArgs(
  argv: readonly string[],
  options: readonly OptionSpec[],
  args: readonly ArgumentSpec[],
  command: string | undefined,
  stopAtArgument = false,
): Parsed & { rest: string[] } {
  const where = command === undefined ? '' : ` for '${command}'`;
  const out = new Map<string, string | true>();
  const positional: string[] = [];
  const set = (o: OptionSpec, v: string | true): void => {
    if (out.has(o.long)) throw new UsageError(`option ${optionLabel(o)} is given more than once`, command);
    out.set(o.long, v);
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      i = argv.length;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const o = options.find((x) => x.long === name);
      if (o === undefined) throw new UsageError(`unknown option '--${name}'${where}`, command);
      if (o.value === undefined) {
        if (eq >= 0) throw new UsageError(`option --${name} takes no value`, command);
        set(o, true);
      } else if (eq >= 0) {
        set(o, a.slice(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value ${o.value}`, command);
        set(o, argv[++i]!);
      }
      continue;
    }
    if (a.length > 1 && a.startsWith('-')) {
      const o = options.find((x) => x.short !== undefined && x.short === a[1]);
      if (o === undefined || (o.value === undefined && a.length > 2)) {
        throw new UsageError(`unknown option '${a}'${where}`, command);
      }
      if (o.value === undefined) {
        set(o, true);
      } else if (a.length > 2) {
        set(o, a.slice(2));
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`option -${o.short} needs a value ${o.value}`, command);
        set(o, argv[++i]!);
      }
      continue;
    }
    positional.push(a);
    if (stopAtArgument) {
      i++;
      break;
    }
  }
  const rest = argv.slice(i);
  if (!stopAtArgument) {
    if (positional.length > args.length) {
      throw new UsageError(`unexpected argument '${positional[args.length]}'${where}`, command);
    }
    const missing = args.slice(positional.length).find((x) => x.required);
    if (missing !== undefined) throw new UsageError(`missing argument ${missing.name}${where}`, command);
  }
  return { options: out, args: positional, rest };
}

/** The options block of a help text, aligned. */
export function formatOptions(options: readonly OptionSpec[]): string {
  const rows = options.map((o) => {
    const head = `${o.short !== undefined ? `-${o.short}, ` : '    '}--${o.long}${o.value !== undefined ? ` ${o.value}` : ''}`;
    const help = o.default !== undefined ? `${o.help} [default: ${o.default}]` : o.help;
    return [head, help] as const;
  });
  return formatRows(rows);
}

export function formatRows(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([h]) => h.length));
  return rows.map(([h, text]) => `  ${h.padEnd(width)}  ${text}`).join('\n');
}

// ---- value checks shared by the commands ----

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A decimal integer in [min, max], or a UsageError naming `what`. */
export function intValue(v: string, what: string, min: number, max: number, command?: string): number {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${what} must be an integer, not '${v}'`, command);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${what} must be in ${min}..${max}, not ${v}`, command);
  }
  return n;
}

export function uuidValue(v: string, what: string, command?: string): string {
  if (!UUID.test(v)) throw new UsageError(`${what} must be a UUID (8-4-4-4-12 hex digits), not '${v}'`, command);
  return v.toLowerCase();
}
