// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-standalone end to end: the CLI boots the test guests from TOML,
// serves COM1 on a unix socket, and turns bad input into one clear line.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { debianFile } from '../../../lib/propolis/src/testing/debian.js';
import { guestRomPath, REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';

const MAIN = join(REPO_ROOT, 'dist', 'bin', 'propolis-standalone', 'src', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'propolis-standalone-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run the standalone; with `interruptOn`, send one SIGINT (Ctrl-C) as soon
 * as stdout matches it.
 */
function run(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60000,
  interruptOn?: RegExp,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('latin1');
      if (interruptOn && !interrupted && interruptOn.test(stdout)) {
        interrupted = true;
        p.kill('SIGINT');
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`timed out; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

let n = 0;
function config(text: string): string {
  const p = join(dir, `cfg-${n++}.toml`);
  writeFileSync(p, text);
  return p;
}

const hello = (extra = ''): string =>
  config(
    `[main]\nname = "t"\ncpus = 1\nmemory = 32\nbootrom = "${guestRomPath('hello')}"\n${extra}\n[dev.exit]\ndriver = "qemu-isa-debug-exit"\n`,
  );

describe('propolis-standalone', () => {
  it('boots the first guest and mirrors COM1 to stdout with --serial-stdout', async () => {
    const r = await run([hello(), '--serial-stdout']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /propolis-ts guest: hello from 64-bit mode/);
  });

  it('boots the SMP guest on 4 vCPUs; the exit status is the debug-exit value', async () => {
    const cfg = config(
      `[main]\nname = "smp"\ncpus = 4\nmemory = 32\nbootrom = "${guestRomPath('smp')}"\n[dev.exit]\ndriver = "qemu-isa-debug-exit"\n`,
    );
    const r = await run([cfg, '--serial-stdout']);
    assert.equal(r.code, (4 << 1) | 1, r.stderr);
    for (let i = 0; i < 4; i++) assert.match(r.stdout, new RegExp(`cpu ${i} up`));
    assert.match(r.stdout, /4 cpus up/);
  });

  it('waits for a console client on the unix socket, then runs with COM1 on it', async () => {
    const sock = join(dir, 'ttya');
    const child = run([hello(), '--socket', sock]);
    // Connect once the socket exists; the VM must not have started before.
    let got = '';
    for (let i = 0; i < 200; i++) {
      try {
        await new Promise<void>((resolve, reject) => {
          const c = connect(sock);
          c.on('connect', () => resolve());
          c.on('error', reject);
          c.on('data', (d: Buffer) => (got += d.toString()));
        });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const r = await child;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /waiting for a console client/);
    assert.ok(r.stderr.indexOf('waiting for a console client') < r.stderr.indexOf('starting'));
    assert.match(got, /hello from 64-bit mode/);
    assert.equal(r.stdout, '', 'without --serial-stdout nothing goes to stdout');
  });

  const power = (guest: string, extra = ''): string =>
    config(
      `[main]\nname = "p"\ncpus = 1\nmemory = 16\nbootrom = "${join(REPO_ROOT, 'guests', 'out', `${guest}.rom`)}"\nexit_on_halt = 42\n${extra}\n[dev.exit]\ndriver = "qemu-isa-debug-exit"\n`,
    );

  for (const [guest, how] of [
    ['reset-cf9', /PIIX reset control/],
    ['reset-kbd', /8042/],
    ['reset-triple', /triple fault/],
  ] as const) {
    it(`resets in place on a guest reset (${guest}): three boots, then the guest's own status`, async () => {
      const r = await run([power(guest), '--serial-stdout']);
      assert.equal(r.code, 7, r.stderr);
      assert.match(r.stdout, /b1\nb2\nb3\n/);
      assert.equal(r.stderr.match(new RegExp(how.source, 'g'))?.length, 2, r.stderr);
    });
  }

  it('exits with exit_on_reboot at the first guest reset when it is set', async () => {
    const r = await run([power('reset-cf9', 'exit_on_reboot = 5'), '--serial-stdout']);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, 'b1\n');
  });

  it('exits with exit_on_halt when the guest enters ACPI S5', async () => {
    const r = await run([power('poweroff'), '--serial-stdout']);
    assert.equal(r.code, 42, r.stderr);
    assert.equal(r.stdout, 'bye\n');
    assert.match(r.stderr, /ACPI S5/);
  });

  it('boots Debian SeaBIOS to "No bootable device" and halts on Ctrl-C', async () => {
    const bios = debianFile('seabios', 'usr/share/seabios/bios.bin');
    const cfg = config(`[main]\nname = "bios"\ncpus = 2\nmemory = 128\nbootrom = "${bios}"\nexit_on_halt = 3\n`);
    const { code, stdout: out, stderr: err } = await run([cfg, '--serial-stdout'], {}, 90000, /No bootable device/);
    assert.equal(code, 3, err);
    assert.match(out, /SeaBIOS \(version/);
    assert.match(
      readFileSync(join(dir, 'debug.out'), 'latin1'),
      /Found 2 cpu\(s\)/,
      'debug port output in ./debug.out',
    );
  });

  const diskCfg = (disks: string, extra = ''): string =>
    config(
      `[main]\nname = "disk"\ncpus = 1\nmemory = 128\nbootrom = "${debianFile('seabios', 'usr/share/seabios/bios-256k.bin')}"\n${extra}\n${disks}\n[dev.exit]\ndriver = "qemu-isa-debug-exit"\n`,
    );
  const img = (name: string): string => join(REPO_ROOT, 'guests', 'out', name);

  for (const driver of ['pci-virtio-block', 'pci-nvme']) {
    it(`SeaBIOS boots from ${driver} and the guest reads 8 MiB through INT 13h intact`, async () => {
      const cfg = diskCfg(
        `[block_dev.img]\ntype = "file"\npath = "${img('diskread.img')}"\nread_only = true\n[dev.disk0]\ndriver = "${driver}"\nblock_dev = "img"\npci-path = "0.4.0"\n`,
      );
      const r = await run([cfg, '--serial-stdout'], {}, 120000);
      assert.match(r.stdout, /diskread: ok 8 MiB/, r.stderr);
      assert.equal(r.code, 0, r.stderr);
    });
  }

  it('follows boot_order: boots the NVMe disk named first, not the virtio disk found first', async () => {
    const cfg = diskCfg(
      `[block_dev.small]\ntype = "file"\npath = "${img('diskread-small.img')}"\nread_only = true\n` +
        `[block_dev.big]\ntype = "file"\npath = "${img('diskread.img')}"\nread_only = true\n` +
        `[dev.vdisk]\ndriver = "pci-virtio-block"\nblock_dev = "small"\npci-path = "0.4.0"\n` +
        `[dev.ndisk]\ndriver = "pci-nvme"\nblock_dev = "big"\npci-path = "0.5.0"\n`,
      'boot_order = ["ndisk"]',
    );
    const r = await run([cfg, '--serial-stdout'], {}, 120000);
    assert.match(r.stdout, /diskread: ok 8 MiB/, r.stderr);
    assert.equal(r.code, 0);
  });

  it('attaches a virtio-net NIC on a tap (vnic) that SeaBIOS enumerates', async () => {
    const vnic = `ptst${process.pid % 100000}`;
    const cfg = diskCfg(`[dev.net0]\ndriver = "pci-virtio-viona"\nvnic = "${vnic}"\npci-path = "0.6.0"\n`);
    rmSync(join(dir, 'debug.out'), { force: true });
    const { code, stderr: err } = await run([cfg, '--serial-stdout'], {}, 90000, /No bootable device/);
    assert.equal(code, 0, err);
    assert.match(readFileSync(join(dir, 'debug.out'), 'latin1'), /bdf=00:06\.0 id=1af4:1000/);
    assert.doesNotMatch(err, /failed|error/i);
  });

  const errors: [string, () => string[], RegExp, Record<string, string>?][] = [
    ['a missing config file', () => [join(dir, 'nope.toml')], /cannot read config .*nope\.toml: no such file/],
    ['malformed TOML', () => [config('[main\nname = 1')], /not valid TOML \(line 1/],
    [
      'an unknown key',
      () => [config('[main]\nname="x"\ncpus=1\nmemory=32\nbootrom="x"\nflavour="mint"\n')],
      /\[main\] flavour: unknown key/,
    ],
    [
      'a wrong type',
      () => [config('[main]\nname="x"\ncpus="two"\nmemory=32\nbootrom="x"\n')],
      /\[main\] cpus must be an integer/,
    ],
    [
      'too many vCPUs',
      () => [config('[main]\nname="x"\ncpus=64\nmemory=32\nbootrom="x"\n')],
      /cpus = 64 is out of range/,
    ],
    ['a missing [main]', () => [config('[dev.x]\ndriver="qemu-isa-debug-exit"\n')], /a \[main\] table is required/],
    ['an unknown driver', () => [hello('[dev.disk]\ndriver = "floppy"')], /\[dev\.disk\] unknown driver "floppy"/],
    [
      'a seed driver not built yet',
      () => [hello('[dev.vsock]\ndriver = "pci-virtio-socket"')],
      /"pci-virtio-socket" is not supported by propolis-ts yet/,
    ],
    [
      'a disk without its block_dev',
      () => [hello('[dev.disk]\ndriver = "pci-nvme"\nblock_dev = "nope"\npci-path = "0.4.0"')],
      /block_dev "nope" has no \[block_dev\.nope\] table/,
    ],
    [
      'a disk image that does not exist',
      () => [
        hello(
          '[block_dev.b]\ntype = "file"\npath = "/no/such.img"\n[dev.disk]\ndriver = "pci-nvme"\nblock_dev = "b"\npci-path = "0.4.0"',
        ),
      ],
      /\/no\/such\.img/,
    ],
    [
      'a bad pci-path',
      () => [
        hello(
          '[block_dev.b]\ntype = "mem-async"\nsize = 1048576\n[dev.disk]\ndriver = "pci-nvme"\nblock_dev = "b"\npci-path = "0.40.0"',
        ),
      ],
      /0\.40\.0/,
    ],
    [
      'a bootrom that does not exist',
      () => [config('[main]\nname="x"\ncpus=1\nmemory=32\nbootrom="/no/such/bios.bin"\n')],
      /bootrom \/no\/such\/bios\.bin does not exist/,
    ],
    [
      'a bootrom of a bad size',
      () => [config(`[main]\nname="x"\ncpus=1\nmemory=32\nbootrom="${join(dir, 'cfg-0.toml')}"\n`)],
      /must be a non-empty multiple of 4 KiB/,
    ],
    [
      'an inaccessible KVM device',
      () => [hello(), '--serial-stdout'],
      /\/nonexistent\/kvm does not exist/,
      { PROPOLIS_KVM_DEVICE: '/nonexistent/kvm' },
    ],
    [
      'a cpuid_profile without its table',
      () => [hello('cpuid_profile = "zen"')],
      /cpuid_profile "zen" has no \[cpuid\.zen\] table/,
    ],
    [
      'a cpuid profile with a leaf out of range',
      () => [
        config(
          `[main]\nname="x"\ncpus=1\nmemory=32\nbootrom="x"\ncpuid_profile="p"\n[cpuid.p]\nvendor="amd"\n"0"=[1,0,0,0]\n"40000000"=[0,0,0,0]\n`,
        ),
      ],
      /cpuid profile p: leaf 0x40000000 is outside/,
    ],
    [
      // Checked by the instance-spec rules the server applies too (platform/from-spec.ts): one code path.
      'a boot disk off PCI bus 0',
      () => [
        config(
          `[main]\nname="x"\ncpus=1\nmemory=32\nbootrom="${guestRomPath('hello')}"\nboot_order=["d0"]\n` +
            `[block_dev.a]\ntype="file"\npath="${img('diskread-small.img')}"\n` +
            `[dev.d0]\ndriver="pci-virtio-block"\nblock_dev="a"\npci-path="1.4.0"\n`,
        ),
      ],
      /boot disk "d0" must be on PCI bus 0 \(it is on bus 1\)/,
    ],
    ['an unknown flag', () => ['--frobnicate'], /Unknown option '--frobnicate'[\s\S]*usage: propolis-standalone/],
  ];
  for (const [what, args, re, env] of errors) {
    it(`refuses ${what} with one clear line and no stack`, async () => {
      const r = await run(args(), env);
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }
});
