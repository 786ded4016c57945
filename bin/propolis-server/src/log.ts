// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Structured logs for propolis-server: one JSON object per line on stderr
// (the seed logs Bunyan records when stderr is not a terminal; this keeps
// the idea — machine-readable lines with a time, a level, a message and the
// component — without Bunyan's numeric levels). A child logger adds fields
// (`component`, `request_id`) to every record it writes; all loggers of one
// tree share one level filter.
//
// Threading: main thread. Writes are synchronous for files and pipes on
// Linux, so a record is never interleaved with another.

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export type LogFields = Record<string, unknown>;

/** Where records go; stderr unless a test captures them. */
export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => {
  process.stderr.write(line);
};

interface Shared {
  threshold: number;
  sink: LogSink;
}

export class Logger {
  private constructor(
    private readonly shared: Shared,
    private readonly fields: LogFields,
  ) {}

  static create(opts: { level: LogLevel; sink?: LogSink; component?: string }): Logger {
    return new Logger(
      { threshold: LOG_LEVELS.indexOf(opts.level), sink: opts.sink ?? stderrSink },
      { component: opts.component ?? 'server' },
    );
  }

  /** A logger whose records carry `fields` too (later fields win). */
  child(fields: LogFields): Logger {
    return new Logger(this.shared, { ...this.fields, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.shared.threshold;
  }

  trace(msg: string, fields?: LogFields): void {
    this.log('trace', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg, ...this.fields, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, replacer);
    } catch {
      // A field that cannot be serialised (a cycle) must not lose the record.
      line = JSON.stringify({ time: record['time'], level, msg, ...this.fields, unserialisable_fields: true });
    }
    try {
      this.shared.sink(`${line}\n`);
    } catch {
      // stderr closed: nothing sensible left to do with a log record.
    }
  }
}

/** Errors as {name, message, code}; bigints as decimal strings. */
function replacer(_key: string, v: unknown): unknown {
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code;
    return { name: v.name, message: v.message, ...(code === undefined ? {} : { code }) };
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}
