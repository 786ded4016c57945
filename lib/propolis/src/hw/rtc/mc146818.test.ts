// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Register-level tests of the MC146818 model over an injected clock, so
// every time-dependent flag is deterministic. Constants are the test's own,
// from the datasheet.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers, type Payload } from '../../migrate.js';
import { Mc146818, type RtcClock } from './mc146818.js';

const SEC = 0x00,
  SEC_ALARM = 0x01,
  MIN = 0x02,
  MIN_ALARM = 0x03,
  HOUR = 0x04,
  HOUR_ALARM = 0x05,
  DOW = 0x06,
  DATE = 0x07,
  MONTH = 0x08,
  YEAR = 0x09,
  A = 0x0a,
  B = 0x0b,
  C = 0x0c,
  D = 0x0d,
  CENTURY = 0x32;
const A_UIP = 0x80;
const B_SET = 0x80,
  B_PIE = 0x40,
  B_AIE = 0x20,
  B_UIE = 0x10,
  B_DM_BINARY = 0x04,
  B_24H = 0x02;
const C_IRQF = 0x80,
  C_PF = 0x40,
  C_AF = 0x20,
  C_UF = 0x10;

const MS = 1_000_000n;
const S = 1_000_000_000n;

/** A clock the test moves by hand; wall time and monotonic time advance together. */
class FakeClock implements RtcClock {
  mono = 5_000n * S; // arbitrary boot-relative origin
  utc: bigint;
  constructor(iso = '2024-02-29T13:45:30.000Z') {
    this.utc = BigInt(Date.parse(iso)) * MS;
  }
  monoNs(): bigint {
    return this.mono;
  }
  utcNs(): bigint {
    return this.utc;
  }
  tick(ns: bigint): void {
    this.mono += ns;
    this.utc += ns;
  }
}

function setup(iso?: string): { rtc: Mc146818; clock: FakeClock } {
  const clock = new FakeClock(iso);
  const rtc = new Mc146818(new Uint8Array(160), clock);
  rtc.powerOn();
  return { rtc, clock };
}

function readTime(rtc: Mc146818): number[] {
  return [SEC, MIN, HOUR, DOW, DATE, MONTH, YEAR, CENTURY].map((r) => rtc.regRead(r));
}

describe('Mc146818', () => {
  it('has the power-on control registers', () => {
    const { rtc } = setup('2024-02-29T13:45:30.500Z');
    assert.equal(rtc.regRead(A) & 0x7f, 0x26, '32.768 kHz divider, 1024 Hz rate');
    assert.equal(rtc.regRead(B), B_24H, '24-hour BCD, no interrupts');
    assert.equal(rtc.regRead(C), 0);
    assert.equal(rtc.regRead(D), 0x80, 'VRT');
  });

  it('reads the host time in BCD', () => {
    const { rtc } = setup();
    // Thursday 29 February 2024, 13:45:30; day of week 1 = Sunday.
    assert.deepEqual(readTime(rtc), [0x30, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
  });

  it('reads the time in binary when B.DM is set', () => {
    const { rtc } = setup();
    rtc.regWrite(B, B_24H | B_DM_BINARY);
    assert.deepEqual(readTime(rtc), [30, 45, 13, 5, 29, 2, 24, 20]);
  });

  it('reads 12-hour time with PM in bit 7', () => {
    const { rtc, clock } = setup();
    rtc.regWrite(B, 0); // 12-hour BCD
    assert.equal(rtc.regRead(HOUR), 0x81, '13:45 is 1 PM');
    rtc.regWrite(B, B_DM_BINARY); // 12-hour binary
    assert.equal(rtc.regRead(HOUR), 0x81);
    clock.tick(BigInt(10 * 3600 + 14 * 60 + 30) * S); // 00:00:00 next day
    rtc.regWrite(B, 0);
    assert.equal(rtc.regRead(HOUR), 0x12, 'midnight is 12 AM');
    clock.tick(12n * 3600n * S);
    assert.equal(rtc.regRead(HOUR), 0x92, 'noon is 12 PM');
    assert.deepEqual([rtc.regRead(DATE), rtc.regRead(MONTH)], [0x01, 0x03], 'leap day rolled into March');
  });

  it('keeps counting', () => {
    const { rtc, clock } = setup('2024-12-31T23:59:59.250Z');
    clock.tick(1000n * MS);
    assert.deepEqual(readTime(rtc), [0x00, 0x00, 0x00, 0x04, 0x01, 0x01, 0x25, 0x20], 'Wednesday 1 January 2025');
  });

  it('holds the time registers while SET, and runs from the written time after', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.250Z');
    rtc.regWrite(B, B_SET | B_24H);
    const writes: [number, number][] = [
      [SEC, 0x58],
      [MIN, 0x59],
      [HOUR, 0x23],
      [DOW, 0x06],
      [DATE, 0x31],
      [MONTH, 0x12],
      [YEAR, 0x99],
      [CENTURY, 0x19],
    ];
    for (const [r, v] of writes) rtc.regWrite(r, v);
    clock.tick(5n * S);
    assert.deepEqual(readTime(rtc), [0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19], 'no updates while SET');
    assert.equal(rtc.regRead(A) & A_UIP, 0, 'SET clears UIP');
    rtc.regWrite(B, B_24H);
    assert.equal(rtc.guestSeconds(), Date.UTC(1999, 11, 31, 23, 59, 58) / 1000);
    clock.tick(2n * S);
    assert.deepEqual(readTime(rtc), [0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20], 'Saturday 1 January 2000');
  });

  it('takes writes to a running clock without stopping it', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.400Z');
    rtc.regWrite(MIN, 0x10);
    assert.deepEqual([rtc.regRead(MIN), rtc.regRead(SEC)], [0x10, 0x30]);
    clock.tick(600n * MS); // the divider kept its phase: the next second comes 600 ms later
    assert.equal(rtc.regRead(SEC), 0x31);
    assert.equal(rtc.regRead(HOUR), 0x13, 'other fields untouched');
  });

  it('keeps a written day of week, as a separate counter does', () => {
    const { rtc, clock } = setup();
    rtc.regWrite(DOW, 0x02);
    assert.equal(rtc.regRead(DOW), 0x02);
    clock.tick(86400n * S);
    assert.equal(rtc.regRead(DOW), 0x03);
  });

  it('raises UIP from 244 µs before an update through the update cycle', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.000Z');
    clock.tick(500n * MS);
    assert.equal(rtc.regRead(A) & A_UIP, 0);
    clock.tick(500n * MS - 200_000n); // 200 µs before the update
    assert.equal(rtc.regRead(A) & A_UIP, A_UIP);
    clock.tick(1_000_000n); // 800 µs into the update cycle
    assert.equal(rtc.regRead(A) & A_UIP, A_UIP);
    clock.tick(2n * MS);
    assert.equal(rtc.regRead(A) & A_UIP, 0);
  });

  it('sets UF lazily once a second passes; reading C clears it and IRQF', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.100Z');
    rtc.regWrite(B, B_24H | B_UIE);
    assert.equal(rtc.irqf, false);
    clock.tick(800n * MS);
    rtc.advance();
    assert.equal(rtc.irqf, false, 'no second boundary yet');
    clock.tick(200n * MS);
    rtc.advance();
    assert.equal(rtc.irqf, true);
    assert.equal(rtc.regRead(C), C_IRQF | C_UF | C_PF, 'PF runs at 1024 Hz meanwhile');
    assert.equal(rtc.regRead(C), 0, 'read clears');
    assert.equal(rtc.irqf, false);
  });

  it('sets flags without their enables, and IRQF only with them', () => {
    const { rtc, clock } = setup();
    clock.tick(2n * S);
    assert.equal(rtc.regRead(C), C_PF | C_UF, '1024 Hz periodic and updates, no IRQF');
    clock.tick(2n * S);
    rtc.regWrite(B, B_24H | B_PIE);
    assert.equal(rtc.irqf, true, 'enabling with PF pending raises IRQF at once');
    assert.equal(rtc.regRead(C), C_IRQF | C_PF | C_UF);
  });

  it('sets PF at the rate register A selects', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.000Z');
    rtc.regWrite(A, 0x2f); // 2 Hz
    rtc.regWrite(B, B_24H | B_PIE);
    rtc.regRead(C);
    clock.tick(499n * MS);
    assert.equal(rtc.regRead(C), 0);
    clock.tick(1n * MS);
    assert.equal(rtc.regRead(C), C_IRQF | C_PF);
    rtc.regWrite(A, 0x20); // rate 0: no periodic interrupt
    clock.tick(2n * S);
    assert.equal(rtc.regRead(C) & C_PF, 0);
    rtc.regWrite(A, 0x21); // RS=1 is 256 Hz with a 32.768 kHz base
    rtc.regRead(C);
    clock.tick(3_906_250n);
    assert.equal(rtc.regRead(C) & C_PF, C_PF);
  });

  it('reports when the next enabled interrupt is due', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.250Z');
    assert.equal(rtc.nextInterruptNs(), undefined, 'nothing enabled');
    rtc.regWrite(B, B_24H | B_UIE);
    assert.equal(rtc.nextInterruptNs(), 750n * MS);
    rtc.regWrite(B, B_24H | B_PIE); // 1024 Hz
    rtc.regRead(C);
    const next = rtc.nextInterruptNs() as bigint;
    assert.ok(next > 0n && next <= 976_563n, `${next}`);
    clock.tick(next);
    rtc.advance();
    assert.equal(rtc.irqf, true);
    assert.equal(rtc.nextInterruptNs(), undefined, 'IRQ already asserted until C is read');
  });

  it('sets AF when an update matches the alarm, with don\u2019t-care values', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.500Z');
    rtc.regWrite(SEC_ALARM, 0x35);
    rtc.regWrite(MIN_ALARM, 0x45);
    rtc.regWrite(HOUR_ALARM, 0x13);
    rtc.regWrite(B, B_24H | B_AIE);
    clock.tick(4n * S); // 13:45:34.5
    assert.equal(rtc.regRead(C) & C_AF, 0);
    clock.tick(1n * S); // 13:45:35.5
    assert.equal(rtc.regRead(C), C_IRQF | C_AF | C_UF | C_PF);
    rtc.regWrite(MIN_ALARM, 0xc0);
    rtc.regWrite(HOUR_ALARM, 0xff);
    clock.tick(30n * S); // 13:46:05.5: seconds 35 not seen again
    assert.equal(rtc.regRead(C) & C_AF, 0);
    clock.tick(30n * S); // 13:46:35.5
    assert.equal(rtc.regRead(C) & C_AF, C_AF, 'once a minute');
    rtc.regWrite(SEC_ALARM, 0xc0);
    clock.tick(1n * S);
    assert.equal(rtc.regRead(C) & C_AF, C_AF, 'every second');
  });

  it('matches a 12-hour alarm and finds a match across a long gap', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.500Z');
    rtc.regWrite(B, 0); // 12-hour BCD
    rtc.regWrite(SEC_ALARM, 0x00);
    rtc.regWrite(MIN_ALARM, 0x00);
    rtc.regWrite(HOUR_ALARM, 0x83); // 3 PM
    clock.tick(3n * 86400n * S);
    assert.equal(rtc.regRead(C) & C_AF, C_AF);
    clock.tick(3600n * S); // 14:45:30: no 3 PM in between
    assert.equal(rtc.regRead(C) & C_AF, 0);
  });

  it('stops in divider reset and updates 500 ms after leaving it', () => {
    const { rtc, clock } = setup('2024-02-29T13:45:30.900Z');
    rtc.regWrite(A, 0x70); // DV = 111: reset the divider chain
    clock.tick(10n * S);
    assert.equal(rtc.regRead(SEC), 0x30, 'stopped');
    assert.equal(rtc.regRead(C), 0, 'no flags while stopped');
    rtc.regWrite(SEC, 0x00);
    rtc.regWrite(A, 0x26);
    clock.tick(499n * MS);
    assert.equal(rtc.regRead(SEC), 0x00);
    clock.tick(1n * MS);
    assert.equal(rtc.regRead(SEC), 0x01);
  });

  it('keeps the index port\u2019s NMI mask bit apart from the index', () => {
    const { rtc } = setup();
    rtc.writeIndex(0x80 | 0x40);
    assert.equal(rtc.nmiMasked, true);
    assert.equal(rtc.index, 0x40);
    rtc.writeData(0x5a);
    rtc.writeIndex(0x40);
    assert.equal(rtc.nmiMasked, false);
    assert.equal(rtc.readData(), 0x5a);
  });

  it('treats C and D as read-only and RAM as RAM', () => {
    const { rtc, clock } = setup();
    clock.tick(1n * S);
    rtc.regWrite(C, 0xff);
    rtc.regWrite(D, 0x00);
    assert.equal(rtc.regRead(D), 0x80);
    assert.equal(rtc.regRead(C), C_PF | C_UF);
    for (let i = 0x0e; i < 0x80; i++) {
      if (i === CENTURY) continue;
      rtc.regWrite(i, i ^ 0xa5);
      assert.equal(rtc.regRead(i), i ^ 0xa5);
    }
    rtc.regWrite(A, 0xff);
    assert.equal(rtc.regRead(A) & A_UIP, 0, 'UIP is read-only (and the divider is now stopped)');
  });

  it('clears enables and flags on RESET, keeping time and RAM', () => {
    const { rtc, clock } = setup();
    rtc.regWrite(0x40, 0x12);
    rtc.regWrite(B, B_24H | B_PIE | B_AIE | B_UIE | 0x08);
    clock.tick(2n * S);
    rtc.advance();
    assert.equal(rtc.irqf, true);
    rtc.resetPin();
    assert.equal(rtc.irqf, false);
    assert.equal(rtc.regRead(B), B_24H);
    assert.equal(rtc.regRead(0x40), 0x12);
    assert.equal(rtc.regRead(SEC), 0x32);
  });

  it('survives any sequence of accesses', () => {
    const { rtc, clock } = setup();
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let i = 0; i < 20000; i++) {
      clock.tick(BigInt(rnd(5_000_000)));
      const r = rnd(4) === 0 ? rnd(0x0e) : rnd(0x100);
      if (rnd(2)) rtc.regWrite(r, rnd(256));
      else {
        const v = rtc.regRead(r);
        assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff, `register ${r} read ${v}`);
      }
      rtc.advance();
      rtc.nextInterruptNs();
    }
    // Still a clock.
    rtc.regWrite(A, 0x26);
    rtc.regWrite(B, B_24H);
    rtc.regWrite(C, 0);
    const s = rtc.guestSeconds();
    clock.tick(3n * S);
    assert.equal(rtc.guestSeconds(), s + 3);
  });
});

describe('Mc146818 state', () => {
  it('round-trips through export/import and keeps following wall time', () => {
    const { rtc, clock } = setup();
    rtc.regWrite(0x40, 0x77);
    rtc.regWrite(B, B_24H | B_DM_BINARY | B_UIE);
    rtc.regWrite(HOUR, 3); // guest time now differs from host UTC
    rtc.writeIndex(0x8c);
    clock.tick(1n * S);
    rtc.advance();
    const exported = JSON.parse(JSON.stringify(rtc.export())) as Payload[];
    // The destination's monotonic clock has another origin; 2 s pass in transit.
    const clock2 = new FakeClock();
    clock2.utc = clock.utc + 2n * S;
    clock2.mono = 123n * S;
    const b = new Mc146818(new Uint8Array(160), clock2);
    b.import(new PayloadOffers(exported));
    assert.equal(b.guestSeconds(), rtc.guestSeconds() + 2);
    assert.equal(b.regRead(0x40), 0x77);
    assert.equal(b.regRead(B), B_24H | B_DM_BINARY | B_UIE);
    assert.equal(b.nmiMasked, true);
    assert.equal(b.irqf, true, 'the pending UF came along');
    assert.equal(b.regRead(HOUR), 3);
  });

  it('refuses bad payloads', () => {
    const { rtc } = setup();
    const [good] = rtc.export() as [Payload];
    const data = good.data as { cmos: number[] };
    const withCmos = (i: number, v: number): unknown => {
      const cmos = [...data.cmos];
      cmos[i] = v;
      return { ...data, cmos };
    };
    const bad = (d: unknown) => () => setup().rtc.import(new PayloadOffers([{ ...good, data: d }]));
    assert.throws(bad({ ...data, cmos: data.cmos.slice(0, 64) }), MigrateError, 'short CMOS');
    assert.throws(bad(withCmos(A, 0xa6)), MigrateError, 'UIP in A');
    assert.throws(bad(withCmos(C, 0x80)), MigrateError, 'IRQF in C');
    assert.throws(bad(withCmos(D, 0x00)), MigrateError, 'D without VRT');
    assert.throws(bad({ ...data, dayOfWeekAdjust: 7 }), MigrateError);
    assert.throws(bad({ ...data, guestMinusUtcNs: '-99999999999999999999999' }), MigrateError, 'before year 0');
    assert.throws(bad({ ...data, guestMinusUtcNs: 12 }), MigrateError, 'not a string');
    assert.throws(bad({ ...data, extra: 1 }), MigrateError);
    assert.throws(() => setup().rtc.import(new PayloadOffers([{ ...good, version: 2 }])), MigrateError);
    assert.throws(
      () => setup().rtc.import(new PayloadOffers([good, { kind: 'x', version: 1, data: {} }])),
      MigrateError,
    );
  });
});
