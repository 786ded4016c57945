// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-cli's command line, without a server: every command parses into
// what it means, every misuse is one UsageError naming the offending word,
// and every command has help.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs, UsageError } from './args.js';
import { COMMANDS, commandHelp, parseCommandLine, programHelp, type Command } from './commands.js';

const S = ['-s', '127.0.0.1'];

function cmd(...argv: string[]): Command {
  return parseCommandLine([...S, ...argv]).command;
}

function usage(argv: string[], words: (string | RegExp)[], command?: string): void {
  assert.throws(
    () => parseCommandLine(argv),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      for (const w of words) {
        if (typeof w === 'string') assert.ok(e.message.includes(w), `${JSON.stringify(w)} not in: ${e.message}`);
        else assert.match(e.message, w);
      }
      assert.equal(e.command, command);
      return true;
    },
  );
}

describe('global options', () => {
  it('server, port, debug, json', () => {
    const inv = parseCommandLine(['-s', 'vmhost', '-p', '8080', '-d', '--json', 'get']);
    assert.deepEqual(inv.global, { server: 'vmhost', port: 8080, debug: true, json: true });
    assert.deepEqual(parseCommandLine(['--server=::1', 'get']).global, {
      server: '::1',
      port: 12400,
      debug: false,
      json: false,
    });
    assert.equal(parseCommandLine(['--port=1', '-s10.0.0.1', 'get']).global?.port, 1);
  });

  it('misuse', () => {
    usage(['get'], ['missing required option -s/--server']);
    usage([], ['no command given']);
    usage([...S, 'frobnicate'], ["unknown command 'frobnicate'"]);
    usage([...S, '--verbose', 'get'], ["unknown option '--verbose'"]);
    usage([...S, '-x', 'get'], ["unknown option '-x'"]);
    usage([...S, '-p'], ['option -p needs a value <PORT>']);
    usage([...S, '-p', '0', 'get'], ['-p/--port must be in 1..65535']);
    usage([...S, '-p', 'http', 'get'], ['-p/--port must be an integer']);
    usage([...S, '-s', 'b', 'get'], ['-s/--server is given more than once']);
    usage(['-s', 'http://x', 'get'], ['-s/--server must be a host name or IP address']);
    usage([...S, '--json=yes', 'get'], ['option --json takes no value']);
    usage([...S, '-dd', 'get'], ["unknown option '-dd'"]);
  });
});

describe('commands', () => {
  it('new with a config TOML', () => {
    assert.deepEqual(
      cmd(
        'new',
        'vm0',
        '-t',
        'vm.toml',
        '-c',
        '2',
        '-m',
        '512',
        '--cpuid-profile',
        'epyc',
        '--hyperv',
        '-u',
        '0E8B6B47-2B55-4C3E-9C4B-3E1A9F4C8E11',
      ),
      {
        kind: 'new',
        name: 'vm0',
        uuid: '0e8b6b47-2b55-4c3e-9c4b-3e1a9f4c8e11',
        source: { kind: 'toml', path: 'vm.toml', cpus: 2, memoryMb: 512, cpuidProfile: 'epyc' },
        hyperV: true,
        siloId: undefined,
        projectId: undefined,
        sledId: undefined,
        sledModel: 'fake-gimlet',
        sledRevision: 1,
        sledSerial: 'fake-serial',
        crucibleDisks: undefined,
        cloudInit: undefined,
      },
    );
    const c = cmd('new', '--config-toml=vm.toml', 'vm1');
    assert.ok(c.kind === 'new' && c.source.kind === 'toml' && c.source.cpus === 4 && c.source.memoryMb === 1024);
  });

  it('new with a spec file, or neither; metadata options', () => {
    const id = '11111111-2222-3333-4444-555555555555';
    const c = cmd(
      'new',
      'vm',
      '-s',
      'spec.json',
      '--silo-id',
      id,
      '--project-id',
      id,
      '--sled-id',
      id,
      '--sled-model',
      'gimlet',
      '--sled-revision',
      '7',
      '--sled-serial',
      'BRM42',
    );
    assert.ok(c.kind === 'new');
    assert.deepEqual(c.source, { kind: 'spec', path: 'spec.json' });
    assert.deepEqual(
      [c.siloId, c.projectId, c.sledId, c.sledModel, c.sledRevision, c.sledSerial],
      [id, id, id, 'gimlet', 7, 'BRM42'],
    );
    const n = cmd('new', 'vm', '--hyperv');
    assert.ok(n.kind === 'new' && n.source.kind === 'none' && n.hyperV);
    const dash = cmd('new', '--', '-odd-name');
    assert.ok(dash.kind === 'new' && dash.name === '-odd-name');
    const unsupported = cmd('new', 'vm', '--crucible-disks', 'd.json', '--cloud-init', 'ci.iso');
    assert.ok(
      unsupported.kind === 'new' && unsupported.crucibleDisks === 'd.json' && unsupported.cloudInit === 'ci.iso',
    );
  });

  it('new: misuse', () => {
    usage([...S, 'new'], ["missing argument <NAME> for 'new'"], 'new');
    usage([...S, 'new', 'a', 'b'], ["unexpected argument 'b' for 'new'"], 'new');
    usage([...S, 'new', 'a', '-s', 'x.json', '-t', 'x.toml'], ['cannot be used together'], 'new');
    usage([...S, 'new', 'a', '-c', '2'], ['-c/--vcpus needs -t/--config-toml'], 'new');
    usage([...S, 'new', 'a', '-m', '2'], ['-m/--memory needs -t/--config-toml'], 'new');
    usage([...S, 'new', 'a', '--cpuid-profile', 'p'], ['--cpuid-profile needs -t/--config-toml'], 'new');
    usage([...S, 'new', 'a', '-s', 'x.json', '--hyperv'], ['--hyperv cannot be used with -s/--spec'], 'new');
    usage([...S, 'new', 'a', '-t', 'x', '-c', '0'], ['-c/--vcpus must be in 1..255, not 0'], 'new');
    usage([...S, 'new', 'a', '-t', 'x', '-c', '256'], ['-c/--vcpus must be in 1..255'], 'new');
    usage([...S, 'new', 'a', '-t', 'x', '-m', '1G'], ['-m/--memory must be an integer'], 'new');
    usage([...S, 'new', 'a', '-u', 'not-a-uuid'], ['-u/--uuid must be a UUID'], 'new');
    usage([...S, 'new', 'a', '--sled-id', '1234'], ['--sled-id must be a UUID'], 'new');
    usage([...S, 'new', 'a', '--sled-revision', '-1'], ['--sled-revision must be in 0..4294967295'], 'new');
    usage([...S, 'new', 'a', '--hyperv=true'], ['option --hyperv takes no value'], 'new');
    usage([...S, 'new', 'a', '-t'], ['option -t needs a value <FILE>'], 'new');
    usage([...S, 'new', 'a', '--vcpu', '2'], ["unknown option '--vcpu' for 'new'"], 'new');
    usage([...S, 'new', 'a', '-t', 'x', '-t', 'y'], ['-t/--config-toml is given more than once'], 'new');
  });

  it('get, monitor, inject-nmi take nothing', () => {
    assert.deepEqual(cmd('get'), { kind: 'get' });
    assert.deepEqual(cmd('monitor'), { kind: 'monitor' });
    assert.deepEqual(cmd('inject-nmi'), { kind: 'inject-nmi' });
    usage([...S, 'get', 'x'], ["unexpected argument 'x' for 'get'"], 'get');
    usage([...S, 'monitor', '-f'], ["unknown option '-f' for 'monitor'"], 'monitor');
  });

  it('state run|stop|reboot', () => {
    assert.deepEqual(cmd('state', 'run'), { kind: 'state', state: 'Run' });
    assert.deepEqual(cmd('state', 'Stop'), { kind: 'state', state: 'Stop' });
    assert.deepEqual(cmd('state', 'REBOOT'), { kind: 'state', state: 'Reboot' });
    usage([...S, 'state'], ['missing argument <STATE>'], 'state');
    usage([...S, 'state', 'pause'], ["state must be run, stop or reboot, not 'pause'"], 'state');
  });

  it('serial -b N: negative values are values, not options', () => {
    assert.deepEqual(cmd('serial'), { kind: 'serial', byteOffset: undefined });
    assert.deepEqual(cmd('serial', '-b', '-100'), { kind: 'serial', byteOffset: -100 });
    assert.deepEqual(cmd('serial', '-b0'), { kind: 'serial', byteOffset: 0 });
    assert.deepEqual(cmd('serial', '--byte-offset=4096'), { kind: 'serial', byteOffset: 4096 });
    usage([...S, 'serial', '-b', 'end'], ['-b/--byte-offset must be an integer'], 'serial');
    usage([...S, 'serial', '-b'], ['option -b needs a value <N>'], 'serial');
  });

  it('migrate and vcr parse (and are refused later, as unsupported)', () => {
    assert.deepEqual(cmd('migrate', '10.0.0.2', '-p', '12401'), {
      kind: 'migrate',
      dst: '10.0.0.2',
      dstPort: 12401,
      dstUuid: undefined,
      crucibleDisks: undefined,
    });
    assert.deepEqual(cmd('vcr', '-d', 'disk0-backend', '--vcr-replace', 'vcr.json'), {
      kind: 'vcr',
      diskId: 'disk0-backend',
      vcrReplace: 'vcr.json',
    });
    usage([...S, 'migrate'], ['missing argument <DST>'], 'migrate');
    usage([...S, 'vcr', '--vcr-replace', 'v.json'], ['missing required option -d/--disk-id'], 'vcr');
    usage([...S, 'vcr', '-d', 'x'], ['missing required option --vcr-replace'], 'vcr');
  });
});

describe('help', () => {
  it('--help, -h, help and <command> --help', () => {
    assert.deepEqual(parseCommandLine(['--help']).command, { kind: 'help', topic: undefined });
    assert.deepEqual(parseCommandLine(['-h', 'new']).command, { kind: 'help', topic: 'new' });
    assert.deepEqual(parseCommandLine(['help']).command, { kind: 'help', topic: undefined });
    assert.deepEqual(parseCommandLine(['help', 'serial']).command, { kind: 'help', topic: 'serial' });
    // No -s needed, and --help wins over everything else wrong on the line.
    assert.deepEqual(parseCommandLine(['state', '--help']).command, { kind: 'help', topic: 'state' });
    assert.deepEqual(parseCommandLine([...S, 'new', '--bogus', '-c', 'x', '-h']).command, {
      kind: 'help',
      topic: 'new',
    });
    // ... but not after `--`, where it is an argument.
    assert.deepEqual(cmd('new', '--', '--help'), parseCommandLine([...S, 'new', '--', '--help']).command);
    usage(['help', 'frob'], ["unknown command 'frob'"]);
  });

  it('the program help lists every command, the global options and the exit statuses', () => {
    const h = programHelp();
    for (const c of COMMANDS) assert.match(h, new RegExp(`^  ${c.name} +\\S`, 'm'), c.name);
    for (const o of ['-s, --server <HOST>', '-p, --port <PORT>', '-d, --debug', '--json', '[default: 12400]']) {
      assert.ok(h.includes(o), o);
    }
    for (const code of ['0', '1', '2', '3', '4']) assert.match(h, new RegExp(`^  ${code}  \\S`, 'm'));
  });

  it('every command has help naming each of its options', () => {
    for (const c of COMMANDS) {
      const h = commandHelp(c.name);
      assert.ok(h.startsWith(`propolis-cli ${c.name}: `), c.name);
      assert.ok(h.includes('Usage: propolis-cli'), c.name);
      for (const o of c.options) assert.ok(h.includes(`--${o.long}`), `${c.name} --${o.long}`);
      for (const a of c.args) assert.ok(h.includes(a.name), `${c.name} ${a.name}`);
      assert.ok(h.includes('Exit status:'), c.name);
    }
    assert.match(commandHelp('serial'), /Ctrl-A/);
    assert.match(commandHelp('new'), /\[default: 1024\]/);
  });
});

describe('parseArgs', () => {
  const opts = [
    { long: 'name', short: 'n', value: '<N>', help: '' },
    { long: 'flag', short: 'f', help: '' },
  ];
  it('accepts the documented forms only', () => {
    const p = parseArgs(['-n', 'a', 'x', '--flag'], opts, [{ name: 'X', help: '', required: true }], 'c');
    assert.deepEqual(
      [...p.options],
      [
        ['name', 'a'],
        ['flag', true],
      ],
    );
    assert.deepEqual(p.args, ['x']);
    assert.equal(
      parseArgs(['--name=', 'x'], opts, [{ name: 'X', help: '', required: true }], 'c').options.get('name'),
      '',
    );
    assert.throws(() => parseArgs(['--na', 'v'], opts, [], 'c'), /unknown option '--na'/);
    assert.throws(() => parseArgs(['-fn', 'v'], opts, [], 'c'), /unknown option '-fn'/);
  });
});
