// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PHD test OS (guests/testos, built by `npm run build`) on the PC
// platform, in-process: booted straight from its bootrom, and from its disk
// image through Debian's SeaBIOS, with its shell driven over COM1 as the PHD
// framework drives it (guests/testos/README.md has the protocol). Both
// paths run the same kernel; the SeaBIOS one also has ACPI tables.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileBackend } from '../block/file.js';
import { PcPlatform, type PcDisk } from '../platform/pc.js';
import type { MachineEvent } from '../vmm/machine.js';
import { debianFile } from './debian.js';
import { REPO_ROOT } from './guests.js';

const ROM = join(REPO_ROOT, 'guests', 'out', 'testos.rom');
const IMG = join(REPO_ROOT, 'guests', 'out', 'testos.img');
const PROMPT = 'testos# ';

/** A booted testos and its COM1 console. */
class Testos {
  private text = '';
  private open = true;
  private readonly pump: Promise<void>;
  readonly events: MachineEvent[] = [];

  constructor(readonly pc: PcPlatform) {
    const com1 = pc.com.com1;
    com1.setSinkAttached(true);
    pc.machine.onEvent((e) => this.events.push(e));
    this.pump = (async () => {
      while (this.open) {
        await com1.output.waitReadable();
        const bytes = com1.output.drain();
        if (bytes.length > 0) {
          this.text += Buffer.from(bytes).toString('latin1');
          com1.pump();
        }
      }
    })();
  }

  /** Everything COM1 has printed since the last `take`. */
  private take(): string {
    const t = this.text;
    this.text = '';
    return t;
  }

  async waitFor(test: (text: string) => boolean, what: string, timeoutMs: number): Promise<string> {
    const end = performance.now() + timeoutMs;
    while (!test(this.text)) {
      if (this.events.length > 0) throw new Error(`machine event ${JSON.stringify(this.events)} waiting for ${what}`);
      if (performance.now() > end)
        throw new Error(`no ${what} within ${timeoutMs} ms; COM1: ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return this.take();
  }

  async boot(timeoutMs: number): Promise<string> {
    void this.pc.machine.start().catch(() => {});
    return this.waitFor((t) => t.includes('testos: ready\r\n') && t.endsWith(PROMPT), 'shell prompt', timeoutMs);
  }

  /** Feed input through the UART's 16-byte receive FIFO as the guest drains it. */
  async type(input: string, timeoutMs = 5000): Promise<void> {
    let rest = Buffer.from(input, 'latin1');
    const end = performance.now() + timeoutMs;
    while (rest.length > 0) {
      rest = rest.subarray(this.pc.com.com1.sendInput(rest));
      if (rest.length === 0) break;
      if (performance.now() > end)
        throw new Error(`the guest stopped reading input; COM1: ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Run one command; its output lines (without the echoed command line). */
  async run(cmd: string, timeoutMs = 5000): Promise<string[]> {
    this.take();
    await this.type(`${cmd}\r`);
    const out = await this.waitFor((t) => t.endsWith(PROMPT), `prompt after "${cmd}"`, timeoutMs);
    const lines = out.slice(0, -PROMPT.length).split('\r\n');
    assert.equal(lines.shift(), cmd, 'the command line is echoed');
    assert.equal(lines.pop(), '', 'output ends with CR LF');
    return lines;
  }

  /** Send a command that ends the machine; wait for its event. */
  async runToEvent(cmd: string, timeoutMs = 5000): Promise<MachineEvent> {
    await this.type(`${cmd}\r`);
    const end = performance.now() + timeoutMs;
    while (this.events.length === 0) {
      if (performance.now() > end)
        throw new Error(`no machine event after "${cmd}"; COM1: ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return this.events[0] as MachineEvent;
  }

  async close(): Promise<void> {
    this.open = false;
    this.pc.com.com1.output.wake();
    await this.pump;
    await this.pc.machine.destroy();
  }
}

function disk(name: string, driver: 'virtio' | 'nvme', pciPath: string, path: string): PcDisk {
  return { name, driver, pciPath, backend: FileBackend.describe(name, { path }) };
}

/** The dwrite pattern (README.md): word i of sector lba = splitmix64 output number lba * 64 + i + 1. */
function pattern(seed: bigint, lba: number): Buffer {
  const b = Buffer.alloc(512);
  const M = (1n << 64n) - 1n;
  for (let i = 0; i < 64; i++) {
    let z = (seed + 0x9e3779b97f4a7c15n * BigInt(lba * 64 + i + 1)) & M;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    b.writeBigUInt64LE(z ^ (z >> 31n), 8 * i);
  }
  return b;
}

/** 64-bit FNV-1a, as `dsum` and `memsum` print it. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & ((1n << 64n) - 1n);
  return h.toString(16).padStart(16, '0');
}

describe('testos, the PHD test OS', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'testos-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'boots from its bootrom and runs the shell protocol (2 vCPUs, disks without firmware)',
    { timeout: 60000 },
    async () => {
      const vd = join(dir, 'rom-vd.img');
      const nv = join(dir, 'rom-nv.img');
      writeFileSync(vd, '');
      truncateSync(vd, 8 << 20);
      writeFileSync(nv, '');
      truncateSync(nv, 16 << 20);
      const pc = await PcPlatform.create({
        name: 'testos-rom',
        cpus: 2,
        memoryMiB: 64,
        bootrom: new Uint8Array(readFileSync(ROM)),
        standalone: true,
        disks: [disk('vd', 'virtio', '0.4.0', vd), disk('nv', 'nvme', '0.5.0', nv)],
      });
      const os = new Testos(pc);
      try {
        const banner = await os.boot(10000);
        assert.equal(banner, 'testos: booted via rom\r\ntestos: ready\r\ntestos# ');

        assert.deepEqual(await os.run('echo hello   propolis  world'), ['hello propolis world']);
        assert.deepEqual(await os.run('status'), ['0']);
        assert.deepEqual(await os.run('frobnicate 1 2'), ['error: unknown command frobnicate']);
        assert.deepEqual(await os.run('status'), ['1']);
        assert.deepEqual(await os.run('status'), ['0']);
        assert.deepEqual(await os.run(''), []);
        await os.type('ecXo\x08\x08ho typo\x7fed\r');
        assert.equal(
          await os.waitFor((t) => t.endsWith(PROMPT), 'prompt', 5000),
          'ecXo\b \b\b \bho typo\b \bed\r\ntyped\r\ntestos# ',
        );

        assert.deepEqual(await os.run('lines 3'), ['line 1', 'line 2', 'line 3']);
        const many = await os.run('lines 500');
        assert.equal(many.length, 500);
        assert.equal(many[499], 'line 500');
        const [long] = await os.run('longline 2345');
        assert.equal(long, '0123456789'.repeat(235).slice(0, 2345));

        assert.deepEqual(await os.run('nproc'), ['2']);
        assert.match(
          (await os.run('cpuid 0'))[0] ?? '',
          /^eax=[0-9a-f]{8} ebx=[0-9a-f]{8} ecx=[0-9a-f]{8} edx=[0-9a-f]{8}$/,
        );
        assert.match((await os.run('cpuid 0x80000000 0'))[0] ?? '', /^eax=8000[0-9a-f]{4} /);
        // The VM's brand string (CPUID at CPL0): KVM's default leaves leave it blank unless a profile sets one.
        assert.match((await os.run('brand'))[0] ?? '', /^(\S(.*\S)?)?$/);
        assert.deepEqual(await os.run('cpuid xyz'), ['error: bad leaf xyz']);

        const pci = await os.run('lspci');
        assert.equal(pci[0], '00:00.0 8086:1237 class 06.00.00', 'i440FX host bridge');
        assert.ok(pci.includes('00:01.3 8086:7113 class 06.80.00'), 'PIIX4 PM');
        assert.ok(pci.includes('00:04.0 1af4:1001 class 01.00.00'), 'virtio-blk');
        assert.ok(
          pci.some((l) => /^00:05\.0 [0-9a-f]{4}:[0-9a-f]{4} class 01\.08\.02$/.test(l)),
          'NVMe',
        );
        assert.deepEqual([...pci].sort(), pci, 'sorted');

        assert.deepEqual(await os.run('acpi'), ['error: no ACPI tables']);
        assert.deepEqual(await os.run('disks'), [
          'vda virtio 00:04.0 sectors=16384',
          'nvme0 nvme 00:05.0 sectors=32768',
        ]);
        for (const d of ['vda', 'nvme0']) {
          assert.deepEqual(await os.run(`dwrite ${d} 100 300 42`), ['ok']);
          assert.deepEqual(await os.run(`dverify ${d} 100 300 42`), ['ok']);
          assert.deepEqual(await os.run(`dverify ${d} 99 2 42`), ['error: mismatch at lba 99']);
          assert.deepEqual(await os.run(`dverify ${d} 100 1 43`), ['error: mismatch at lba 100']);
        }
        assert.deepEqual(await os.run('dread nvme0 0'), ['0'.repeat(128)]);
        assert.deepEqual(await os.run('dread vda 101'), [pattern(42n, 101).subarray(0, 64).toString('hex')]);
        const expected = Buffer.concat([pattern(42n, 100), pattern(42n, 101)]);
        assert.deepEqual(await os.run('dsum nvme0 100 2'), [`sum=${fnv1a(expected)}`]);
        assert.deepEqual(await os.run('dwrite vda 16383 2 1'), [
          'error: sectors 16383..16385 are beyond the end of vda (16384 sectors)',
        ]);
        assert.deepEqual(await os.run('dsum sdz 0 1'), ['error: no disk sdz']);
        // What the guest wrote is on the backing files.
        const onDisk = readFileSync(vd).subarray(100 * 512, 102 * 512);
        assert.ok(onDisk.equals(expected), 'vda sectors 100-101 hold the pattern');

        assert.deepEqual(await os.run('nmi'), ['nmis=0']);
        await pc.machine.injectNmi(0);
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(await os.run('nmi'), ['nmis=1']);

        assert.match((await os.run('memsum 100000 1000'))[0] ?? '', /^sum=[0-9a-f]{16}$/);
        assert.deepEqual(await os.run('memsum 0 0'), ['sum=cbf29ce484222325']);
        assert.match((await os.run('memsum 3ffffff 2'))[0] ?? '', /^error: /);
        const [dirtied] = await os.run('dirty 5', 3000);
        assert.match(dirtied ?? '', /^dirtied=\d+$/);
        assert.ok(Number(dirtied?.slice(8)) >= 1024, 'at least one pass over the 4 MiB');
        assert.match((await os.run('uptime'))[0] ?? '', /^uptime=\d+\.\d{3}$/);
        assert.match((await os.run('date'))[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);

        const e = await os.runToEvent('poweroff');
        assert.equal(e.type, 'halt');
        assert.equal(e.reason, 'ACPI S5 power-off');
      } finally {
        await os.close();
      }
    },
  );

  it('reports a CPU exception and halts (1 vCPU, 16 MiB, no disks)', { timeout: 30000 }, async () => {
    const pc = await PcPlatform.create({
      name: 'testos-crash',
      cpus: 1,
      memoryMiB: 16,
      bootrom: new Uint8Array(readFileSync(ROM)),
      standalone: true,
    });
    const os = new Testos(pc);
    try {
      await os.boot(10000);
      assert.deepEqual(await os.run('disks'), []);
      assert.deepEqual(await os.run('dirty'), ['error: needs RAM up to 0x1400000 (have 0x1000000)']);
      assert.deepEqual(await os.run('net dhcp'), ['error: no virtio-net (1af4:1000) on PCI bus 0']);
      await os.type('crash\r');
      const out = await os.waitFor((t) => t.includes(')\r\n'), 'the exception line', 5000);
      assert.match(out, /^crash\r\n\r\ntestos: exception 14 at 0x[0-9a-f]+ \(error 0x4, cr2 0x100000000, cs 0x23, /);
      await os.type('echo alive\r'); // fits the receive FIFO: nobody reads it any more
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await os.waitFor(() => true, 'nothing', 0), '', 'the shell is gone');
      assert.deepEqual(os.events, [], 'the CPU halted; the machine runs on');
    } finally {
      await os.close();
    }
  });

  it(
    'boots from its disk image through SeaBIOS: 4 CPUs, ACPI, virtio-blk and NVMe, NMI, power-off',
    { timeout: 90000 },
    async () => {
      const boot = join(dir, 'boot.img');
      const data = join(dir, 'data.img');
      copyFileSync(IMG, boot);
      writeFileSync(data, '');
      truncateSync(data, 64 << 20);
      const pc = await PcPlatform.create({
        name: 'testos-disk',
        cpus: 4,
        memoryMiB: 128,
        bootrom: new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin'))),
        disks: [disk('boot', 'virtio', '0.4.0', boot), disk('data', 'nvme', '0.5.0', data)],
      });
      const os = new Testos(pc);
      try {
        const banner = await os.boot(60000);
        assert.match(banner, /SeaBIOS/);
        assert.match(banner, /\r\ntestos: booted via disk\r\ntestos: ready\r\ntestos# $/);

        assert.deepEqual(await os.run('nproc'), ['4']);
        assert.deepEqual(await os.run('nproc'), ['4'], 'the APs are started once');
        const pci = await os.run('lspci');
        assert.ok(pci.includes('00:04.0 1af4:1001 class 01.00.00'), pci.join('\n'));
        assert.ok(
          pci.some((l) => /^00:05\.0 [0-9a-f]{4}:[0-9a-f]{4} class 01\.08\.02$/.test(l)),
          pci.join('\n'),
        );

        const acpi = await os.run('acpi');
        const sigs = acpi.map((l) => {
          assert.match(l, /^[A-Z0-9]{4} length=\d+ oem=\S+$/);
          return l.slice(0, 4);
        });
        for (const s of ['FACP', 'APIC', 'DSDT', 'FACS']) assert.ok(sigs.includes(s), `${s} in ${acpi.join(', ')}`);
        assert.ok(sigs[0] === 'RSDT' || sigs[0] === 'XSDT', 'the root table first');

        assert.deepEqual(await os.run('disks'), [
          'vda virtio 00:04.0 sectors=8192',
          'nvme0 nvme 00:05.0 sectors=131072',
        ]);
        // The boot disk: its first sector is the boot sector; from 1 MiB on it is free.
        assert.match((await os.run('dread vda 0'))[0] ?? '', /^[0-9a-f]{128}$/);
        assert.deepEqual(await os.run('dwrite vda 2048 256 7'), ['ok']);
        assert.deepEqual(await os.run('dverify vda 2048 256 7'), ['ok']);
        assert.deepEqual(await os.run('dwrite nvme0 131000 72 99'), ['ok']);
        assert.deepEqual(await os.run('dverify nvme0 131000 72 99'), ['ok']);
        assert.deepEqual(await os.run('dverify nvme0 131000 72 98'), ['error: mismatch at lba 131000']);
        assert.deepEqual(await os.run('dsum vda 2048 1'), [`sum=${fnv1a(pattern(7n, 2048))}`]);

        const [before] = await os.run('nmi');
        await pc.machine.injectNmi(0);
        await new Promise((r) => setTimeout(r, 20));
        const [afterNmi] = await os.run('nmi');
        assert.equal(Number(afterNmi?.slice(5)), Number(before?.slice(5)) + 1, `${before} then ${afterNmi}`);

        const e = await os.runToEvent('poweroff');
        assert.equal(e.type, 'halt');
        assert.equal(e.reason, 'ACPI S5 power-off');
      } finally {
        await os.close();
      }
    },
  );
});
