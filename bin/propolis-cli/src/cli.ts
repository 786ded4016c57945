// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-cli's commands, run against propolis-server through
// PropolisClient. `runCli(argv, io)` parses, runs one command and returns
// the exit status; it never calls process.exit, so tests run it in-process
// with captured output.
//
// Output contract: results on stdout (human text, or with --json one JSON
// document; `monitor` writes one document per line, `serial` the console's
// raw bytes); every error on stderr as one line `propolis-cli: …` (with
// --json, one JSON document `{"error": {kind, exit_code, message, …}}`).
//
// Main thread; one command per call.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import type { ReadStream } from 'node:tty';
import { WebSocket } from 'ws';
import {
  InstanceEnsureRequest,
  InstanceSpec,
  validate,
  type InstanceStateMonitorResponse,
} from '../../../lib/api-types/src/index.js';
import { buildInstanceSpec, ConfigTomlError, readSpecConfig } from '../../../lib/config-toml/src/index.js';
import { buildCloudInitVolume, CidataError } from '../../../lib/propolis/src/block/cidata.js';
import {
  CLIENT_API_VERSION,
  PropolisApiError,
  PropolisClient,
  type MigratingNotice,
  type SerialConsole,
  type SerialOffset,
  type WebSocketClass,
} from '../../../lib/propolis-client/src/index.js';
import { UsageError } from './args.js';
import {
  commandHelp,
  DEFAULT_SERIAL_HISTORY,
  EXIT,
  helpHint,
  parseCommandLine,
  PROGRAM,
  programHelp,
  type Command,
  type ExitCode,
  type GlobalOptions,
} from './commands.js';
import { ConsoleInput } from './console-input.js';
import { nodeFetch } from './http.js';
import { RawTerminal } from './terminal.js';

export interface CliIo {
  stdout: { write(chunk: string | Uint8Array): unknown };
  stderr: { write(chunk: string): unknown };
  /** The console's keyboard: a TTY gets raw mode; anything else is piped as is. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** A failure with a known exit status and JSON error kind. */
export class CliFailure extends Error {
  constructor(
    readonly exit: ExitCode,
    readonly kind: 'api' | 'config' | 'unreachable' | 'unsupported' | 'failed',
    message: string,
  ) {
    super(message);
    this.name = 'CliFailure';
  }
}

const DESCRIPTION = 'propolis-cli generated instance';

interface Ctx {
  io: CliIo;
  global: GlobalOptions;
  baseUrl: string;
  client: PropolisClient;
  debug: (line: string) => void;
}

function baseUrlOf(host: string, port: number): string {
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}

/**
 * ws's WebSocket, sending the `api-version` header that the server wants on
 * every request, the console's upgrade request included (a browser's
 * WebSocket cannot send headers; Node's can).
 */
class VersionedWebSocket extends WebSocket {
  constructor(url: string) {
    super(url, { headers: { 'api-version': CLIENT_API_VERSION } });
  }
}

function clientFor(baseUrl: string, debug: ((line: string) => void) | undefined): PropolisClient {
  // ws's WebSocket has the browser-style on* handlers the client uses; its
  // event types are richer than the client's minimal interface.
  return new PropolisClient(baseUrl, {
    fetch: nodeFetch(debug),
    WebSocket: VersionedWebSocket as unknown as WebSocketClass,
  });
}

/** Parse `argv` (without node and the script), run the command, return the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  // Before parsing succeeds, --json anywhere asks for JSON errors.
  let json = argv.includes('--json');
  try {
    const inv = parseCommandLine(argv);
    json = inv.json;
    const cmd = inv.command;
    if (cmd.kind === 'help') {
      io.stdout.write(cmd.topic === undefined ? programHelp() : commandHelp(cmd.topic));
      return EXIT.OK;
    }
    const global = inv.global!;
    const baseUrl = baseUrlOf(global.server, global.port);
    const debug = (line: string): void => {
      if (global.debug) io.stderr.write(`${PROGRAM}: ${line}\n`);
    };
    const ctx: Ctx = { io, global, baseUrl, client: clientFor(baseUrl, global.debug ? debug : undefined), debug };
    return await run(ctx, cmd);
  } catch (e) {
    return report(io, json, e);
  }
}

async function run(ctx: Ctx, cmd: Exclude<Command, { kind: 'help' }>): Promise<ExitCode> {
  const { io, client } = ctx;
  const out = (human: string | undefined, doc: unknown): void => {
    if (ctx.global.json) io.stdout.write(`${JSON.stringify(doc)}\n`);
    else if (human !== undefined) io.stdout.write(`${human}\n`);
  };
  switch (cmd.kind) {
    case 'new': {
      if (cmd.crucibleDisks !== undefined) {
        throw new CliFailure(
          EXIT.UNSUPPORTED,
          'unsupported',
          '--crucible-disks: Crucible disks are not supported by propolis-ts',
        );
      }
      const id = cmd.uuid ?? randomUUID();
      const spec = instanceSpecFor(
        cmd,
        cmd.cloudInit === undefined ? undefined : cloudInitImage(cmd.cloudInit, id, cmd.name),
      );
      const req: InstanceEnsureRequest = {
        properties: {
          id,
          name: cmd.name,
          description: DESCRIPTION,
          metadata: {
            silo_id: cmd.siloId ?? randomUUID(),
            project_id: cmd.projectId ?? randomUUID(),
            sled_id: cmd.sledId ?? randomUUID(),
            sled_model: cmd.sledModel,
            sled_revision: cmd.sledRevision,
            sled_serial: cmd.sledSerial,
          },
        },
        init: { method: 'Spec', value: { spec } },
      };
      const checked = validate(InstanceEnsureRequest, req);
      if (!checked.ok)
        throw new CliFailure(EXIT.USAGE, 'config', `the instance request is invalid: ${checked.message}`);
      ctx.debug(`instance spec: ${JSON.stringify(spec)}`);
      const res = await client.instanceEnsure(req);
      out(`created instance "${cmd.name}" (id ${id})`, { id, name: cmd.name, migrate: res.migrate ?? null });
      return EXIT.OK;
    }
    case 'get': {
      const res = await client.instanceGet();
      const p = res.instance.properties;
      const m = p.metadata;
      out(
        [
          `name:        ${p.name}`,
          `id:          ${p.id}`,
          `state:       ${res.instance.state}`,
          `description: ${p.description}`,
          `silo id:     ${m.silo_id}`,
          `project id:  ${m.project_id}`,
          `sled:        ${m.sled_id} (model ${m.sled_model}, revision ${m.sled_revision}, serial ${m.sled_serial})`,
        ].join('\n'),
        res,
      );
      return EXIT.OK;
    }
    case 'state':
      await client.instanceStatePut(cmd.state);
      out(undefined, { ok: true, requested: cmd.state });
      return EXIT.OK;
    case 'inject-nmi':
      await client.instanceIssueNmi();
      out(undefined, { ok: true });
      return EXIT.OK;
    case 'monitor':
      return monitor(ctx);
    case 'serial':
      return serial(ctx, cmd.byteOffset);
    case 'migrate':
      throw new CliFailure(
        EXIT.UNSUPPORTED,
        'unsupported',
        'live migration is not implemented in propolis-ts yet; the instance was left as it is',
      );
    case 'vcr':
      throw new CliFailure(
        EXIT.UNSUPPORTED,
        'unsupported',
        'vcr: Crucible volumes are not supported by propolis-ts, so there is no volume construction request to replace',
      );
  }
}

/** Whether `b` already is a volume: a boot sector's signature, or ISO 9660's identifier in its first descriptor. */
function isDiskImage(b: Uint8Array): boolean {
  if (b.length === 0 || b.length % 512 !== 0) return false;
  const iso = b.length >= 0x8006 && Buffer.from(b.subarray(0x8001, 0x8006)).toString('latin1') === 'CD001';
  return iso || (b[510] === 0x55 && b[511] === 0xaa);
}

/** A YAML scalar: plain when nothing in it could be read as syntax, else double-quoted. */
function yamlScalar(s: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s) ? s : JSON.stringify(s);
}

/**
 * The disk `new --cloud-init <file>` attaches. The original sends the
 * file's bytes as the disk (a seed image made elsewhere); here the file is
 * the user-data and the CLI makes the NoCloud seed around it, with the
 * meta-data cloud-init needs: the instance id (a new id means a new
 * instance to cloud-init, which then runs its first-boot modules) and the
 * name as the host name. A file that already is a volume still goes as is.
 */
function cloudInitImage(path: string, id: string, name: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new CliFailure(EXIT.USAGE, 'config', `${path}: cannot read the cloud-init file (${why})`);
  }
  if (isDiskImage(bytes)) return bytes;
  try {
    return buildCloudInitVolume({
      userData: bytes,
      metaData: new TextEncoder().encode(`instance-id: ${id}\nlocal-hostname: ${yamlScalar(name)}\n`),
    });
  } catch (e) {
    if (e instanceof CidataError) throw new CliFailure(EXIT.USAGE, 'config', `${path}: ${e.message}`);
    throw e;
  }
}

function instanceSpecFor(cmd: Extract<Command, { kind: 'new' }>, cloudInit: Uint8Array | undefined): InstanceSpec {
  const src = cmd.source;
  if (src.kind === 'spec') {
    let text: string;
    try {
      text = readFileSync(src.path, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new CliFailure(EXIT.USAGE, 'config', `${src.path}: cannot read the spec file (${why})`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new CliFailure(EXIT.USAGE, 'config', `${src.path}: not valid JSON: ${(e as Error).message}`);
    }
    const v = validate(InstanceSpec, value);
    if (!v.ok) throw new CliFailure(EXIT.USAGE, 'config', `${src.path}: not an instance spec: ${v.message}`);
    return v.value;
  }
  const config = src.kind === 'toml' ? readSpecConfig(src.path) : undefined;
  return buildInstanceSpec(config, {
    ...(src.kind === 'toml' ? { cpus: src.cpus, memoryMb: src.memoryMb } : {}),
    ...(src.kind === 'toml' && src.cpuidProfile !== undefined ? { cpuidProfile: src.cpuidProfile } : {}),
    hyperV: cmd.hyperV,
    ...(cloudInit === undefined ? {} : { cloudInitImage: cloudInit }),
  });
}

/** Long-poll the state from generation 0; one line (or JSON document) per state seen. */
async function monitor(ctx: Ctx): Promise<ExitCode> {
  let gen = 0;
  let retried = false;
  for (;;) {
    let r: InstanceStateMonitorResponse;
    try {
      r = await ctx.client.instanceStateMonitor(gen);
      retried = false;
    } catch (e) {
      // Something between us and the server may drop a long-idle poll; ask
      // again, but not twice in a row (then the server is really gone).
      const reset = e instanceof PropolisApiError && e.status === 0 && /ECONNRESET|socket hang up/.test(e.message);
      if (reset && !retried) {
        retried = true;
        ctx.debug(`state monitor: ${(e as Error).message}; asking again`);
        continue;
      }
      throw e;
    }
    if (ctx.global.json) {
      ctx.io.stdout.write(`${JSON.stringify(r)}\n`);
    } else {
      const mig = [
        r.migration.migration_in ? `in ${r.migration.migration_in.id} ${r.migration.migration_in.state}` : '',
        r.migration.migration_out ? `out ${r.migration.migration_out.id} ${r.migration.migration_out.state}` : '',
      ].filter((s) => s !== '');
      ctx.io.stdout.write(`gen ${r.gen}: ${r.state}${mig.length > 0 ? ` (migration ${mig.join(', ')})` : ''}\n`);
    }
    if (r.state === 'Destroyed') return EXIT.OK;
    if (r.state === 'Failed') throw new CliFailure(EXIT.SERVER_ERROR, 'failed', 'the instance Failed');
    gen = r.gen + 1;
  }
}

/**
 * The serial console: guest output to stdout, stdin to the guest, until
 * the server closes the console, the user leaves (Ctrl-C on a terminal) or
 * the connection breaks. A migration notice moves the session to the
 * destination server, continuing from the offset it names.
 */
async function serial(ctx: Ctx, byteOffset: number | undefined): Promise<ExitCode> {
  const { io } = ctx;
  // Fail with the server's own answer (no instance: 424) before opening the
  // socket, whose handshake failure carries no details.
  await ctx.client.instanceGet();

  let offset: SerialOffset =
    byteOffset === undefined
      ? { mostRecent: DEFAULT_SERIAL_HISTORY }
      : byteOffset >= 0
        ? { fromStart: byteOffset }
        : { mostRecent: -byteOffset };
  const stdin = io.stdin;
  const tty = stdin.isTTY === true && typeof (stdin as Partial<ReadStream>).setRawMode === 'function';
  const keys = new ConsoleInput();
  const term = tty ? new RawTerminal(stdin as ReadStream) : undefined;
  let current: SerialConsole | undefined;
  let leave: () => void = () => {};
  const left = new Promise<'left'>((resolve) => (leave = () => resolve('left')));
  const onInput = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!tty) {
      current?.write(bytes);
      return;
    }
    const { send, exit } = keys.feed(bytes);
    if (send.length > 0) current?.write(send);
    if (exit) leave();
  };
  const nl = tty ? '\r\n' : '\n';
  const notice = (s: string): void => {
    if (!ctx.global.json) io.stderr.write(`${nl}${PROGRAM}: ${s}${nl}`);
  };

  let baseUrl = ctx.baseUrl;
  let client = ctx.client;
  stdin.on('data', onInput);
  try {
    // Raw before the first byte of history arrives, so it is shown as sent.
    term?.enter();
    for (;;) {
      const con = client.serialConsole(offset);
      // Before awaiting the open: history may arrive in the same read as the handshake.
      let migrating: MigratingNotice | undefined;
      con.onMigrating((m) => (migrating = m));
      con.onData((b) => io.stdout.write(b));
      try {
        await con.opened;
      } catch {
        throw new CliFailure(
          EXIT.SERVER_ERROR,
          'api',
          `${baseUrl}: the server refused the serial console connection (is the instance running?)`,
        );
      }
      current = con;
      stdin.resume();
      const how = await Promise.race([con.closed, left]);
      if (how === 'left') {
        con.close();
        return EXIT.OK;
      }
      if (migrating !== undefined) {
        notice(`instance migrating to ${migrating.destination}; following it`);
        baseUrl = `http://${migrating.destination}`;
        client = clientFor(baseUrl, ctx.global.debug ? ctx.debug : undefined);
        offset = { fromStart: migrating.fromStart };
        continue;
      }
      const why = how.reason ? `${how.code} ${how.reason}` : String(how.code);
      if (how.code === 1000 || how.code === 1001) {
        notice(`serial console closed by the server (${why})`);
        return EXIT.OK;
      }
      if (how.code === 1006)
        throw new CliFailure(EXIT.UNREACHABLE, 'unreachable', `${baseUrl}: serial console connection lost`);
      throw new CliFailure(EXIT.SERVER_ERROR, 'api', `${baseUrl}: serial console closed with an error (${why})`);
    }
  } finally {
    term?.restore();
    stdin.removeListener('data', onInput);
    stdin.pause();
  }
}

/** Print `e` as the contract says; its exit status. */
function report(io: CliIo, json: boolean, e: unknown): ExitCode {
  let exit: ExitCode;
  let doc: Record<string, unknown>;
  let line: string;
  if (e instanceof UsageError) {
    exit = EXIT.USAGE;
    const hint = helpHint(e.command);
    doc = { kind: 'usage', message: e.message, hint };
    line = `${e.message}; ${hint}`;
  } else if (e instanceof ConfigTomlError) {
    exit = e.code === 'CONFIG_UNSUPPORTED' ? EXIT.UNSUPPORTED : EXIT.USAGE;
    doc = { kind: exit === EXIT.UNSUPPORTED ? 'unsupported' : 'config', message: e.message, code: e.code, ...e.where };
    line = e.message;
  } else if (e instanceof PropolisApiError) {
    if (e.status === 0) {
      exit = EXIT.UNREACHABLE;
      doc = { kind: 'unreachable', operation: e.operation, message: e.message };
      line = `cannot reach propolis-server: ${e.message}`;
    } else {
      exit = EXIT.SERVER_ERROR;
      doc = {
        kind: 'api',
        operation: e.operation,
        status: e.status,
        error_code: e.errorCode ?? null,
        message: e.message,
        request_id: e.requestId ?? null,
      };
      const reason = STATUS_CODES[e.status] ?? '';
      line =
        `${e.operation}: the server answered ${e.status}${reason ? ` ${reason}` : ''}` +
        `${e.errorCode ? ` (${e.errorCode})` : ''}: ${e.message}` +
        `${e.requestId ? ` [request id ${e.requestId}]` : ''}`;
    }
  } else if (e instanceof CliFailure) {
    exit = e.exit;
    doc = { kind: e.kind, message: e.message };
    line = e.message;
  } else {
    exit = EXIT.SERVER_ERROR;
    const msg = e instanceof Error ? e.message : String(e);
    doc = { kind: 'failed', message: msg };
    line = msg;
  }
  if (json) io.stderr.write(`${JSON.stringify({ error: { ...doc, exit_code: exit } })}\n`);
  else io.stderr.write(`${PROGRAM}: ${line}\n`);
  return exit;
}
