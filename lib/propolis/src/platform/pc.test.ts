// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PC platform under real firmware: Debian's SeaBIOS (fetched from
// Debian's package into .cache, never checked in) boots on KVM, prints its
// banner on COM1, finds every vCPU, takes the ACPI tables through the
// fw_cfg table loader, and reaches "No bootable device"; every device's
// state then exports and imports into a fresh platform.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileBackend } from '../block/file.js';
import type { PciVirtioBlock } from '../hw/virtio/block.js';
import { PayloadOffers } from '../migrate.js';
import { debianFile } from '../testing/debian.js';
import { REPO_ROOT } from '../testing/guests.js';
import { PcPlatform, type PcConfig } from './pc.js';

const SEABIOS = (): Uint8Array =>
  new Uint8Array(readFileSync(debianFile('seabios', 'usr/share/seabios/bios-256k.bin')));

interface Boot {
  pc: PcPlatform;
  serial: string;
  debug: string;
}

/** Boot SeaBIOS until COM1 shows `until`; the platform is left paused. */
async function bootSeabios(
  cpus: number,
  until: RegExp,
  memoryMiB = 256,
  timeoutMs = 90000,
  extra: Partial<PcConfig> = {},
): Promise<Boot> {
  const pc = await PcPlatform.create({ name: 'seabios', cpus, memoryMiB, bootrom: SEABIOS(), ...extra });
  const com1 = pc.com.com1;
  com1.setSinkAttached(true);
  let serial = '';
  let debug = '';
  const dbg = pc.debugPort.pipeTo((b) => (debug += Buffer.from(b).toString('latin1')));
  let stop = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no ${until} in ${timeoutMs} ms; COM1: ${serial}\ndebug: ${debug}`)),
        timeoutMs,
      );
      pc.machine.onEvent((e) => reject(new Error(`unexpected ${JSON.stringify(e)}; debug: ${debug}`)));
      void (async () => {
        while (!stop) {
          await com1.output.waitReadable();
          serial += Buffer.from(com1.output.drain()).toString('latin1');
          com1.pump();
          if (until.test(serial)) {
            clearTimeout(t);
            resolve();
            return;
          }
        }
      })();
      pc.machine.start().catch(reject);
    });
  } finally {
    stop = true;
    com1.output.wake();
    if (pc.machine.cpus > 0) await pc.machine.pause().catch(() => {});
    await dbg.close();
  }
  return { pc, serial, debug };
}

describe('PC platform with SeaBIOS', () => {
  it('leaves no file descriptor behind: machines with disks on every thread, created and destroyed again and again', async () => {
    const image = join(REPO_ROOT, 'guests', 'out', 'diskread-small.img');
    const cycle = async (): Promise<void> => {
      const pc = await PcPlatform.create({
        name: 'fds',
        cpus: 2,
        memoryMiB: 16,
        bootrom: SEABIOS(),
        disks: [
          { name: 'v0', driver: 'virtio', pciPath: '0.4.0', backend: FileBackend.describe('a', { path: image }) },
          { name: 'n0', driver: 'nvme', pciPath: '0.5.0', backend: FileBackend.describe('b', { path: image }) },
        ],
      });
      await pc.machine.start();
      await pc.machine.destroy();
    };
    const fds = (): number => readdirSync('/proc/self/fd').length;
    await cycle(); // first use opens what the process keeps (libuv, koffi)
    const before = fds();
    for (let i = 0; i < 3; i++) await cycle();
    assert.equal(fds(), before, 'no descriptor left behind (doorbell and MSI eventfds, block targets)');
  });

  it('serves virtio queue notifies on the I/O thread: SeaBIOS boots a disk without one notify exit', async () => {
    const image = join(REPO_ROOT, 'guests', 'out', 'diskread-small.img');
    const { pc, serial } = await bootSeabios(1, /diskread: (ok|FAIL)[^\n]*\n/, 64, 90000, {
      disks: [
        {
          name: 'disk0',
          driver: 'virtio',
          pciPath: '0.4.0',
          backend: FileBackend.describe('img', { path: image, readOnly: true }),
        },
      ],
    });
    try {
      assert.match(serial, /diskread: ok/);
      assert.ok(pc.machine.hasIoThread, 'a virtio disk gives the machine an I/O thread');
      const disk = pc.disks.get('disk0') as PciVirtioBlock;
      const s = disk.transport.stats;
      assert.ok(s.doorbellNotifies > 0, `doorbell notifies: ${JSON.stringify(s)}`);
      assert.equal(s.notifies, s.doorbellNotifies, `every notify came through a doorbell: ${JSON.stringify(s)}`);
      assert.equal(s.droppedNotifies, 0);
    } finally {
      await pc.machine.destroy();
    }
  });

  it('boots to "No bootable device" with the banner on COM1 (1 vCPU)', async () => {
    const { pc, serial, debug } = await bootSeabios(1, /No bootable device/);
    try {
      assert.match(serial, /SeaBIOS \(version [^)]+\)/);
      assert.match(serial, new RegExp(`Machine UUID ${pc.uuid}`), 'SMBIOS type 1 UUID as the firmware read it');
      assert.match(debug, /Found QEMU fw_cfg/);
      assert.match(debug, /QEMU fw_cfg DMA interface supported/);
      assert.match(debug, /Found 1 cpu\(s\)/);
      assert.match(debug, /ACPI: parse DSDT/, 'tables installed through the table loader');
      assert.match(debug, /PS2 keyboard initialized/);
      assert.match(debug, /Found 4 serial ports/);
      assert.doesNotMatch(debug, /WARNING/);
      const s = pc.machine.stats();
      assert.equal(s[0]?.deviceErrors, 0);
      assert.equal(s[0]?.failure, 0);
    } finally {
      await pc.machine.destroy();
    }
  });

  it('finds 4 CPUs on a 4-vCPU machine', async () => {
    const { pc, debug } = await bootSeabios(4, /No bootable device/);
    try {
      assert.match(debug, /Found 4 cpu\(s\) max supported 4 cpu\(s\)/);
    } finally {
      await pc.machine.destroy();
    }
  });

  it('exports every device after boot and imports the state into a fresh platform', async () => {
    const { pc } = await bootSeabios(2, /No bootable device/);
    const fresh = await PcPlatform.create({ name: 'copy', cpus: 2, memoryMiB: 256, bootrom: SEABIOS(), uuid: pc.uuid });
    try {
      const state = JSON.parse(JSON.stringify(pc.machine.exportDevices())) as ReturnType<
        typeof pc.machine.exportDevices
      >;
      const names = state.map((d) => d.name);
      for (const key of ['pci-i440fx-hb', 'pci-piix3-lpc', 'pci-piix3-pm', 'com1', 'qemu-fwcfg']) {
        assert.ok(names.includes(key), `${key} exported (have ${names.join(', ')})`);
      }
      assert.ok(names.some((n) => /rtc/.test(n)));
      assert.ok(names.some((n) => /ps2/.test(n)));
      fresh.machine.importDevices(state);
      // What the fresh platform exports now carries the same kinds and
      // versions; register contents that don't move with time match.
      const again = fresh.machine.exportDevices();
      assert.deepEqual(
        again.map((d) => [d.name, d.payloads.map((p) => `${p.kind}/${p.version}`)]),
        state.map((d) => [d.name, d.payloads.map((p) => `${p.kind}/${p.version}`)]),
      );
      const com1 = (s: typeof state): unknown => s.find((d) => d.name === 'com1')?.payloads;
      assert.deepEqual(com1(again), com1(state));
      // A payload of the wrong kind is refused, and leaves the device usable.
      const hb = fresh.machine.device('pci-i440fx-hb');
      const m = hb?.migrate();
      assert.ok(m && typeof m === 'object');
      assert.throws(() => m.import(new PayloadOffers([{ kind: 'uart-16550', version: 1, data: {} }])));
    } finally {
      await pc.machine.destroy();
      await fresh.machine.destroy();
    }
  });
});
