// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The Machine on real KVM: the project's own guests boot from the reset
// vector, reach 64-bit mode, print on COM1 and report through debug-exit;
// the SMP guest starts every vCPU; a hostile guest cannot hurt the VMM.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvmUnavailableError } from '../../../kvm/src/index.js';
import { QemuDebugExit } from '../hw/qemu/debug-exit.js';
import { QemuFwCfg } from '../hw/qemu/fwcfg.js';
import { LpcUart } from '../hw/uart/lpc-uart.js';
import { PayloadOffers } from '../migrate.js';
import { guestRom } from '../testing/guests.js';
import { Machine, MachineConfigError, type MachineEvent } from './machine.js';

interface Run {
  event: MachineEvent;
  serial: string;
  machine: Machine;
}

async function boot(bootrom: Uint8Array, cpus: number, timeoutMs = 60000): Promise<Run> {
  const machine = Machine.create({ name: 'test', cpus, memoryMiB: 32, bootrom });
  const com1 = machine.addDevice(LpcUart, LpcUart.describe('com1'));
  machine.addDevice(QemuFwCfg, QemuFwCfg.describe({ cpus }));
  machine.addDevice(QemuDebugExit, QemuDebugExit.describe('exit'));
  com1.setSinkAttached(true);
  let serial = '';
  let stop = false;
  const drain = (async () => {
    while (!stop) {
      await com1.output.waitReadable();
      serial += Buffer.from(com1.output.drain()).toString('latin1');
      com1.pump();
    }
  })();
  const event = await new Promise<MachineEvent>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`guest did not finish in ${timeoutMs} ms; serial so far: ${serial}`)),
      timeoutMs,
    );
    machine.onEvent((e) => {
      clearTimeout(t);
      resolve(e);
    });
    machine.start().catch(reject);
  });
  await machine.pause();
  stop = true;
  com1.output.wake();
  await drain;
  serial += Buffer.from(com1.output.drain()).toString('latin1');
  return { event, serial, machine };
}

describe('Machine with the first guest', () => {
  it('boots hello.rom from the reset vector into 64-bit mode and prints on COM1', async () => {
    const { event, serial, machine } = await boot(guestRom('hello'), 1);
    try {
      assert.equal(event.type, 'halt', JSON.stringify(event));
      assert.equal(event.type === 'halt' && event.status, 1, 'debug-exit status (0 << 1) | 1');
      assert.match(serial, /propolis-ts guest: reset vector reached\r\n/);
      assert.match(serial, /propolis-ts guest: hello from 64-bit mode\r\n/);
      const s = machine.stats()[0]!;
      assert.ok(s.io >= serial.length, `every byte printed was a port exit (${s.io} exits)`);
      assert.equal(s.failure, 0);
    } finally {
      await machine.destroy();
    }
  });

  for (const cpus of [1, 2, 4]) {
    it(`starts every vCPU of a ${cpus}-vCPU machine with INIT/SIPI (smp.rom)`, async () => {
      const { event, serial, machine } = await boot(guestRom('smp'), cpus);
      try {
        assert.equal(event.type, 'halt', JSON.stringify(event));
        assert.equal(event.type === 'halt' && event.status, (cpus << 1) | 1, serial);
        for (let id = 0; id < cpus; id++) assert.match(serial, new RegExp(`cpu ${id} up\\r\\n`));
        assert.match(serial, new RegExp(`: ${cpus} cpus up\\r\\n`));
      } finally {
        await machine.destroy();
      }
    });
  }

  it('resets every vCPU and device in place: the SMP guest boots again, all vCPUs included', async () => {
    const bootrom = guestRom('smp');
    const machine = Machine.create({ name: 'reset', cpus: 4, memoryMiB: 32, bootrom });
    const com1 = machine.addDevice(LpcUart, LpcUart.describe('com1'));
    machine.addDevice(QemuFwCfg, QemuFwCfg.describe({ cpus: 4 }));
    machine.addDevice(QemuDebugExit, QemuDebugExit.describe('exit'));
    com1.setSinkAttached(true);
    try {
      const statuses: number[] = [];
      await new Promise<void>((resolve, reject) => {
        machine.onEvent((e) => {
          if (e.type !== 'halt') return reject(new Error(JSON.stringify(e)));
          statuses.push(e.status ?? -1);
          if (statuses.length < 3) machine.reset().catch(reject);
          else resolve();
        });
        machine.start().catch(reject);
      });
      await machine.pause();
      assert.deepEqual(statuses, [9, 9, 9]);
      assert.equal(machine.resets, 2);
      const serial = Buffer.from(com1.output.drain()).toString('latin1');
      assert.equal(serial.match(/reset vector reached/g)?.length, 3);
      assert.equal(serial.match(/: 4 cpus up/g)?.length, 3, serial);
    } finally {
      await machine.destroy();
    }
  });

  it('exports device state while paused, and imports it into another machine', async () => {
    const a = await boot(guestRom('hello'), 1);
    const b = Machine.create({ name: 'b', cpus: 1, memoryMiB: 32, bootrom: guestRom('hello') });
    try {
      const state = a.machine.exportDevices();
      const com1 = state.find((s) => s.name === 'com1');
      assert.ok(com1, 'COM1 state exported');
      assert.equal(com1.payloads[0]?.kind, 'uart-16550');
      b.addDevice(LpcUart, LpcUart.describe('com1'));
      b.addDevice(QemuFwCfg, QemuFwCfg.describe({ cpus: 1 }));
      b.importDevices(JSON.parse(JSON.stringify(state)));
      assert.deepEqual(b.exportDevices(), state);
      assert.throws(() => b.importDevices([{ name: 'nope', payloads: [] }]), /no device named nope/);
      void PayloadOffers;
    } finally {
      await a.machine.destroy();
      await b.destroy();
    }
  });

  it('exports every vCPU as versioned payloads and imports them into another machine', async () => {
    const a = await boot(guestRom('smp'), 2);
    const b = Machine.create({ name: 'b', cpus: 2, memoryMiB: 32, bootrom: guestRom('smp') });
    try {
      const state = JSON.parse(JSON.stringify(a.machine.exportVcpus())) as ReturnType<Machine['exportVcpus']>;
      assert.deepEqual(
        state.map((s) => s.name),
        ['vcpu-0', 'vcpu-1'],
      );
      const kinds = state[0]!.payloads.map((p) => p.kind).sort();
      assert.deepEqual(kinds, [
        'kvm-x86-cpu-msregs',
        'kvm-x86-lapic',
        'kvm-x86-vcpu-ctrlregs',
        'kvm-x86-vcpu-dbgregs',
        'kvm-x86-vcpu-fpu',
        'kvm-x86-vcpu-gpregs',
        'kvm-x86-vcpu-runstate',
        'kvm-x86-vcpu-segregs',
      ]);
      b.importVcpus(state);
      const again = JSON.parse(JSON.stringify(b.exportVcpus())) as typeof state;
      // The guest halted in 64-bit mode: its registers, segments and control
      // registers are the ones carried over.
      for (const kind of ['kvm-x86-vcpu-gpregs', 'kvm-x86-vcpu-segregs', 'kvm-x86-vcpu-ctrlregs', 'kvm-x86-lapic']) {
        for (let i = 0; i < 2; i++) {
          const pick = (s: typeof state): unknown => s[i]!.payloads.find((p) => p.kind === kind)?.data;
          assert.deepEqual(pick(again), pick(state), `${kind} of vcpu-${i}`);
        }
      }
      const bad = JSON.parse(JSON.stringify(state)) as typeof state;
      (bad[0]!.payloads.find((p) => p.kind === 'kvm-x86-lapic')!.data as { regs: number[] }).regs.pop();
      assert.throws(() => b.importVcpus(bad), /lapic: 1023 bytes/);
    } finally {
      await a.machine.destroy();
      await b.destroy();
    }
  });

  it('injects an NMI into a running vCPU: the guest leaves its loop through the real-mode vector 2', async () => {
    // A 4 KiB bootrom whose reset vector is `jmp $`: the vCPU spins at CS base 0xFFFF_0000 until the
    // NMI sends it through IVT entry 2, which (RAM is zero) is 0000:0000.
    const rom = new Uint8Array(4096).fill(0xf4);
    rom.set([0xeb, 0xfe], 4096 - 16);
    const machine = Machine.create({ name: 'nmi', cpus: 1, memoryMiB: 4, bootrom: rom });
    const csBase = (): bigint => {
      const seg = machine.exportVcpus()[0]!.payloads.find((p) => p.kind === 'kvm-x86-vcpu-segregs')!;
      return BigInt((seg.data as { bases: (string | bigint)[] }).bases[0]!);
    };
    try {
      await assert.rejects(machine.injectNmi(0), /started machine/);
      await machine.start();
      await new Promise((r) => setTimeout(r, 50));
      await machine.pause();
      assert.equal(csBase(), 0xffff_0000n, 'spinning in the ROM before the NMI');
      await machine.resume();
      await machine.injectNmi(0);
      await new Promise((r) => setTimeout(r, 50));
      await machine.pause();
      assert.equal(csBase(), 0n, 'the NMI moved it to the vector in low RAM');
      await assert.rejects(machine.injectNmi(1), /no vCPU 1/);
    } finally {
      await machine.destroy();
    }
  });

  it('survives a guest that reads and writes every I/O port', async () => {
    // Real mode at the reset vector: for dx in 0..0xffff (but 0x501):
    // in al,dx; mov al,0xa5; out dx,al. Then debug-exit with 0x2a.
    const rom = new Uint8Array(65536).fill(0xf4);
    rom.set([0x31, 0xd2, 0x81, 0xfa, 0x01, 0x05, 0x74, 0x04, 0xec, 0xb0, 0xa5, 0xee, 0x42, 0x75, 0xf3], 0);
    rom.set([0xba, 0x01, 0x05, 0xb0, 0x2a, 0xee, 0xf4, 0xeb, 0xfd], 0x0f);
    rom.set([0xe9, 0x0d, 0x00], 0xfff0); // near jump to offset 0 of the segment
    const { event, machine } = await boot(rom, 1, 120000);
    try {
      assert.equal(event.type, 'halt', JSON.stringify(event));
      assert.equal(event.type === 'halt' && event.status, (0x2a << 1) | 1);
      const s = machine.stats()[0]!;
      assert.equal(s.deviceErrors, 0);
      assert.equal(s.failure, 0);
      // The UART is still a UART: its state exports and validates.
      const com1 = machine.exportDevices().find((d) => d.name === 'com1');
      assert.ok(com1);
    } finally {
      await machine.destroy();
    }
  });

  it('reports a missing or inaccessible KVM device clearly', () => {
    assert.throws(
      () =>
        Machine.create({
          name: 'x',
          cpus: 1,
          memoryMiB: 16,
          bootrom: new Uint8Array(4096),
          kvmPath: '/nonexistent/kvm',
        }),
      (e: unknown) => e instanceof KvmUnavailableError && /\/nonexistent\/kvm does not exist/.test(e.message),
    );
  });

  it('refuses bad machine shapes with a message naming the problem', () => {
    const rom = new Uint8Array(4096);
    const bad: [object, RegExp][] = [
      [{ cpus: 0 }, /cpus must be an integer from 1 to 32/],
      [{ cpus: 33 }, /cpus must be/],
      [{ memoryMiB: 1 }, /memory must be/],
      [{ bootrom: new Uint8Array(100) }, /bootrom must be a non-empty multiple of 4 KiB/],
      [{ bootrom: new Uint8Array(4 * 1024 * 1024) }, /at most 2 MiB/],
    ];
    for (const [patch, re] of bad) {
      assert.throws(
        () => Machine.create({ name: 'x', cpus: 1, memoryMiB: 16, bootrom: rom, ...patch }),
        (e: unknown) => e instanceof MachineConfigError && re.test(e.message),
      );
    }
  });
});
