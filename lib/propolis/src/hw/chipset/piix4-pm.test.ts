// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PIIX4 PM function: PM1 registers, sleep/power-off, SCI, GPE0, APM,
// the PM timer (on a fake clock for exact checks and on the real clock
// across two "threads"), and its configuration space.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { FakeHost } from '../../testing/fake-host.js';
import { PciTopology } from '../pci/topology.js';
import { Piix4Pm, type Piix4PmOptions } from './piix4-pm.js';
import { AcpiPmTimer } from './pm-timer.js';

// The test's own register map (PIIX4 datasheet, ACPI fixed hardware).
const PM1_STS = 0xb000;
const PM1_EN = 0xb002;
const PM1_CNT = 0xb004;
const PM_TMR = 0xb008;
const GPE0_STS = 0xafe0;
const GPE0_EN = 0xafe2;
const SLP_EN = 0x2000;
const SCI_EN = 0x0001;
const PWRBTN = 0x0100;

function setup(opts: Piix4PmOptions = {}, clock?: () => bigint): { host: FakeHost; pm: Piix4Pm; other: FakeHost } {
  const desc = Piix4Pm.describe(opts);
  const host = new FakeHost();
  const pm = clock ? Piix4Pm.attachWithClock(desc, host, clock) : Piix4Pm.attach(desc, host);
  const other = new FakeHost();
  if (clock) Piix4Pm.attachWithClock(desc, other, clock);
  else Piix4Pm.attach(desc, other);
  // describe() started the timer on the real clock; restart it on the fake one.
  if (clock) pm.timer.set(0);
  return { host, pm, other };
}

const sci = (h: FakeHost): boolean => h.lines.get(9)?.level ?? false;

describe('PIIX4 PM registers', () => {
  it('powers off on SLP_EN with SLP_TYP 0 and ignores other sleep types', () => {
    const { host } = setup();
    host.pio.write(PM1_CNT, 2, (5 << 10) | SLP_EN);
    assert.deepEqual(host.halts, []);
    assert.equal(host.pio.read(PM1_CNT, 2), 5 << 10, 'SLP_TYP kept, SLP_EN reads 0');
    host.pio.write(PM1_CNT, 2, SLP_EN | SCI_EN);
    assert.deepEqual(host.halts, [{ reason: 'ACPI S5 power-off', status: undefined }]);
    assert.equal(host.pio.read(PM1_CNT, 2), SCI_EN);
  });

  it('sees SLP_EN in a byte write to the high half of PM1_CNT', () => {
    const { host } = setup();
    host.pio.write(PM1_CNT + 1, 1, SLP_EN >> 8);
    assert.equal(host.halts.length, 1);
    host.pio.write(PM1_CNT, 1, 0xff);
    assert.equal(host.halts.length, 1, 'the low byte has no SLP_EN');
    assert.equal(host.pio.read(PM1_CNT, 2), 0x0003, 'SCI_EN, BM_RLD; GBL_RLS is write-only');
  });

  it('clears PM1_STS bits by writing 1 and raises the SCI for enabled events only with SCI_EN', () => {
    const { host, pm, other } = setup();
    pm.pressPowerButton();
    assert.equal(other.pio.read(PM1_STS, 2) & PWRBTN, PWRBTN);
    assert.equal(sci(host), false, 'not enabled');
    other.pio.write(PM1_EN, 2, PWRBTN);
    assert.equal(sci(other), false, 'no SCI_EN: ACPI mode is off');
    other.pio.write(PM1_CNT, 2, SCI_EN);
    assert.equal(sci(other), true);
    other.pio.write(PM1_STS, 2, 0);
    assert.equal(other.pio.read(PM1_STS, 2) & PWRBTN, PWRBTN, 'writing 0 clears nothing');
    other.pio.write(PM1_STS, 2, 0xfeff);
    assert.equal(other.pio.read(PM1_STS, 2) & PWRBTN, PWRBTN);
    other.pio.write(PM1_STS + 1, 1, 0x01);
    assert.equal(other.pio.read(PM1_STS, 2) & PWRBTN, 0);
    assert.equal(sci(other), false);
    other.pio.write(PM1_EN, 2, 0xffff);
    assert.equal(other.pio.read(PM1_EN, 2), 0x0521, 'TMR_EN, GBL_EN, PWRBTN_EN, RTC_EN');
  });

  it('handles GPE0 status (write-1-to-clear) and enable', () => {
    const { host, pm } = setup();
    host.pio.write(PM1_CNT, 2, SCI_EN);
    pm.raiseGpe(3);
    assert.equal(host.pio.read(GPE0_STS, 2), 0x0008);
    assert.equal(sci(host), false);
    host.pio.write(GPE0_EN, 2, 0x0008);
    assert.equal(sci(host), true);
    assert.equal(host.pio.read(GPE0_STS, 4), 0x0008_0008);
    host.pio.write(GPE0_STS, 1, 0x08);
    assert.equal(sci(host), false);
    assert.throws(() => pm.raiseGpe(16), RangeError);
  });

  it('enables and disables ACPI through the APM control port', () => {
    const { host } = setup();
    host.pio.write(0xb2, 1, 0xf1);
    assert.equal(host.pio.read(PM1_CNT, 2) & SCI_EN, SCI_EN);
    assert.equal(host.pio.read(0xb2, 1), 0xf1);
    host.pio.write(0xb2, 1, 0xf0);
    assert.equal(host.pio.read(PM1_CNT, 2) & SCI_EN, 0);
    host.pio.write(0xb3, 1, 0x5a);
    assert.equal(host.pio.read(0xb3, 1), 0x5a);
    const noApm = setup({ apm: false });
    assert.equal(noApm.host.pio.owner(0xb2), undefined);
  });

  it('reads 0 from the other PM registers and all-ones past the block', () => {
    const { host } = setup();
    for (let off = 0x0c; off < 0x40; off += 2) {
      host.pio.write(0xb000 + off, 2, 0xffff);
      assert.equal(host.pio.read(0xb000 + off, 2), 0, `offset 0x${off.toString(16)}`);
    }
    assert.equal(host.pio.read(0xb03e, 4), 0xffff_0000, 'a dword crossing the end');
    host.pio.write(PM_TMR, 4, 0);
  });

  it('resets to power-on values', () => {
    const { host, pm } = setup();
    host.pio.write(PM1_EN, 2, PWRBTN);
    host.pio.write(PM1_CNT, 2, SCI_EN);
    pm.pressPowerButton();
    assert.equal(sci(host), true);
    pm.reset();
    assert.equal(host.pio.read(PM1_STS, 2), 0);
    assert.equal(host.pio.read(PM1_EN, 2), 0);
    assert.equal(host.pio.read(PM1_CNT, 2), 0);
    assert.equal(sci(host), false);
    assert.ok(host.pio.read(PM_TMR, 4) < 3_579_545, 'timer restarted from 0');
  });
});

describe('ACPI PM timer', () => {
  it('counts at 3.579545 MHz in 24 bits, with TMR_STS on each top-bit flip', () => {
    let now = 1_000_000_000n;
    const clock = (): bigint => now;
    const { host, pm } = setup({}, clock);
    assert.equal(host.pio.read(PM_TMR, 4), 0);
    now += 1_000_000_000n;
    assert.equal(host.pio.read(PM_TMR, 4), 3_579_545);
    assert.equal(host.pio.read(PM1_STS, 2) & 1, 0);
    now += 1_500_000_000n; // 8_948_862 ticks: past 2^23
    assert.equal(host.pio.read(PM_TMR, 4), 8_948_862);
    assert.equal(host.pio.read(PM1_STS, 2) & 1, 1, 'TMR_STS');
    host.pio.write(PM1_EN, 2, 1);
    host.pio.write(PM1_CNT, 2, SCI_EN);
    assert.equal(sci(host), true, 'TMR_EN raises the SCI');
    host.pio.write(PM1_STS, 2, 1);
    assert.equal(host.pio.read(PM1_STS, 2) & 1, 0);
    assert.equal(sci(host), false);
    now += 2_500_000_000n; // past 2^24: wraps
    const v = host.pio.read(PM_TMR, 4);
    assert.equal(v, (8_948_862 + 8_948_863) % 2 ** 24);
    assert.equal(host.pio.read(PM_TMR + 3, 1), 0, 'upper byte reads 0 in 24-bit mode');
    assert.equal(host.pio.read(PM1_STS, 2) & 1, 1);
    pm.timer.set(0x12_3456);
    assert.equal(host.pio.read(PM_TMR, 4), 0x12_3456);
  });

  it('can be 32 bits wide', () => {
    let now = 0n;
    const { host } = setup({ pmTimerBits: 32 }, () => now);
    now = 10n * 1_000_000_000n;
    assert.equal(host.pio.read(PM_TMR, 4), 35_795_450);
    assert.equal(host.pio.read(PM1_STS, 2) & 1, 0, 'top bit of 32 not reached');
  });

  it('runs on the host clock, monotonic across threads and at the right rate', async () => {
    const { host, other } = setup();
    const t0 = process.hrtime.bigint();
    const first = host.pio.read(PM_TMR, 4);
    let last = first;
    for (let i = 0; i < 2000; i++) {
      const v = (i % 2 === 0 ? other : host).pio.read(PM_TMR, 4);
      assert.ok(v >= last, `went backwards: ${v} < ${last}`);
      last = v;
    }
    await sleep(100);
    const end = other.pio.read(PM_TMR, 4);
    const ns = Number(process.hrtime.bigint() - t0);
    const expected = (ns * 3.579545) / 1000;
    assert.ok(end > first, 'it moves');
    assert.ok(Math.abs(end - first - expected) / expected < 0.2, `ticks ${end - first}, expected ≈${expected}`);
  });

  it('keeps its state in a shared buffer: a second instance reads the same count', () => {
    const buf = new SharedArrayBuffer(16);
    let now = 5_000_000_000n;
    const a = new AcpiPmTimer(buf, 24, () => now);
    const b = new AcpiPmTimer(buf, 24, () => now);
    a.set(1000);
    now += 1_000_000n;
    assert.equal(b.read(), 1000 + 3579);
  });
});

describe('PIIX4 PM configuration space', () => {
  it('reports the Propolis values and ignores writes to them', () => {
    const { host } = setup();
    const t = PciTopology.of(host);
    const rd = (off: number, size: number): number => t.cfgRead(0, 1, 3, off, size);
    assert.equal(rd(0x00, 4), 0x7113_8086);
    assert.equal(rd(0x08, 1), 3, 'revision 3');
    assert.equal(rd(0x3d, 1), 1, 'INTA');
    assert.equal(rd(0x40, 4), 0xb001, 'PMBA');
    assert.equal(rd(0x58, 4), 0x0200_0000, 'DEVACTB: APMC_EN');
    assert.equal(rd(0x5c, 4), 0x1000_0000, 'DEVRESA: keyboard controller');
    assert.equal(rd(0x60, 4), 0x6000_0000, 'DEVRESB: KBC and FDC');
    assert.equal(rd(0x64, 4), 0x9800_0000, 'DEVRESC: COM1 and COM2');
    assert.equal(rd(0x80, 1), 1, 'PMREGMISC: I/O enabled');
    assert.equal(rd(0x90, 4), 0xb101, 'SMBBA');
    assert.equal(rd(0xd2, 1), 0);
    // SeaBIOS's piix4_pm_config_setup:
    t.cfgWrite(0, 1, 3, 0x3c, 1, 9);
    t.cfgWrite(0, 1, 3, 0x40, 4, 0x601);
    t.cfgWrite(0, 1, 3, 0x80, 1, 0x01);
    t.cfgWrite(0, 1, 3, 0x90, 4, 0x701);
    t.cfgWrite(0, 1, 3, 0xd2, 1, 0x09);
    assert.equal(rd(0x3c, 1), 9, 'Interrupt Line is writable');
    assert.equal(rd(0x40, 4), 0xb001, 'PMBA is fixed');
    assert.equal(rd(0x90, 4), 0xb101);
    assert.equal(rd(0xd2, 1), 0);
    assert.equal(setup({ apm: false }).pm.pci.config.u32(0x58), 0, 'no APMC_EN without APM');
  });
});
