// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Register-level tests of the 16550 model, with the test's own constants
// taken from the datasheet (so a wrong constant in the model can't hide).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrateError, PayloadOffers } from '../../migrate.js';
import { Uart16550 } from './uart16550.js';

const RBR = 0,
  THR = 0,
  IER = 1,
  IIR = 2,
  FCR = 2,
  LCR = 3,
  MCR = 4,
  LSR = 5,
  MSR = 6,
  SCR = 7;
const LSR_DR = 0x01,
  LSR_OE = 0x02,
  LSR_THRE = 0x20,
  LSR_TEMT = 0x40;
const IIR_NONE = 0x01,
  IIR_THRE = 0x02,
  IIR_RDA = 0x04,
  IIR_RLS = 0x06,
  IIR_MSR = 0x00;

describe('Uart16550', () => {
  it('has datasheet reset values', () => {
    const u = new Uart16550();
    assert.equal(u.regRead(IER), 0);
    assert.equal(u.regRead(IIR), IIR_NONE);
    assert.equal(u.regRead(LCR), 0);
    assert.equal(u.regRead(MCR), 0);
    assert.equal(u.regRead(LSR), LSR_THRE | LSR_TEMT);
    assert.equal(u.intrPending, false);
  });

  it('banks the divisor latch behind LCR.DLAB', () => {
    const u = new Uart16550();
    u.regWrite(LCR, 0x80);
    u.regWrite(0, 0x01);
    u.regWrite(1, 0x02);
    assert.equal(u.regRead(0), 0x01);
    assert.equal(u.regRead(1), 0x02);
    u.regWrite(LCR, 0x03);
    assert.equal(u.regRead(IER), 0, 'IER is not the divisor high byte');
    u.regWrite(THR, 0x41);
    assert.equal(u.takeTx(), 0x41, 'with DLAB clear, offset 0 is THR');
    u.regWrite(LCR, 0x80);
    assert.equal(u.regRead(0), 0x01, 'the THR write did not touch DLL');
  });

  it('transmits bytes in order and reports THRE/TEMT', () => {
    const u = new Uart16550();
    u.regWrite(THR, 0x61);
    assert.equal(u.regRead(LSR) & (LSR_THRE | LSR_TEMT), 0, 'holding register full');
    assert.equal(u.takeTx(), 0x61);
    assert.equal(u.takeTx(), undefined);
    assert.equal(u.regRead(LSR) & LSR_THRE, LSR_THRE);
  });

  it('keeps a 16-byte transmit FIFO when FIFOs are enabled, one byte otherwise', () => {
    const u = new Uart16550();
    for (let i = 0; i < 3; i++) u.regWrite(THR, i);
    assert.equal(u.txLen, 1, 'non-FIFO mode keeps one byte');
    u.regWrite(FCR, 0x07);
    for (let i = 0; i < 20; i++) u.regWrite(THR, i);
    assert.equal(u.txLen, 16);
    const got = [];
    for (let b = u.takeTx(); b !== undefined; b = u.takeTx()) got.push(b);
    assert.deepEqual(
      got,
      Array.from({ length: 16 }, (_, i) => i),
    );
  });

  it('receives into the FIFO, sets DR, and flags overrun when full', () => {
    const u = new Uart16550();
    u.regWrite(FCR, 0x01);
    for (let i = 0; i < 16; i++) assert.equal(u.receive(0x30 + i), true);
    assert.equal(u.receive(0x99), false);
    const lsr = u.regRead(LSR);
    assert.equal(lsr & LSR_DR, LSR_DR);
    assert.equal(lsr & LSR_OE, LSR_OE);
    assert.equal(u.regRead(LSR) & LSR_OE, 0, 'OE clears on read');
    for (let i = 0; i < 16; i++) assert.equal(u.regRead(RBR), 0x30 + i);
    assert.equal(u.regRead(LSR) & LSR_DR, 0);
    assert.equal(u.regRead(RBR), 0, 'empty RBR reads 0');
  });

  it('prioritises interrupts: line status > data > THRE > modem status', () => {
    const u = new Uart16550();
    u.regWrite(IER, 0x0f); // all sources; THRE fires at once (transmitter empty)
    assert.equal(u.regRead(IIR) & 0x0f, IIR_THRE);
    assert.equal(u.regRead(IIR) & 0x0f, IIR_NONE, 'reading IIR acknowledged THRE');
    u.receive(1);
    assert.equal(u.regRead(IIR) & 0x0f, IIR_RDA);
    u.receive(2); // non-FIFO: overrun
    assert.equal(u.regRead(IIR) & 0x0f, IIR_RLS);
    u.regRead(LSR);
    assert.equal(u.regRead(IIR) & 0x0f, IIR_RDA);
    u.regRead(RBR);
    assert.equal(u.intrPending, false);
    u.regWrite(MCR, 0x10 | 0x02); // loopback with RTS → CTS changes → DCTS
    assert.equal(u.regRead(IIR) & 0x0f, IIR_MSR);
    u.regRead(MSR);
    assert.equal(u.intrPending, false);
  });

  it('raises THRE again once the transmitter drains, and a THR write clears it', () => {
    const u = new Uart16550();
    u.regWrite(IER, 0x02);
    assert.equal(u.intrPending, true);
    u.regWrite(THR, 0x41);
    assert.equal(u.intrPending, false);
    u.takeTx();
    assert.equal(u.intrPending, true);
  });

  it('loops THR back into RBR and MCR outputs into MSR in loopback', () => {
    const u = new Uart16550();
    u.regWrite(MCR, 0x10 | 0x0f);
    u.regWrite(THR, 0x5a);
    assert.equal(u.takeTx(), undefined, 'nothing leaves in loopback');
    assert.equal(u.regRead(RBR), 0x5a);
    assert.equal(u.regRead(MSR) & 0xf0, 0xf0, 'CTS DSR RI DCD follow RTS DTR OUT1 OUT2');
  });

  it('keeps the scratch register and ignores writes to LSR/MSR', () => {
    const u = new Uart16550();
    u.regWrite(SCR, 0xa5);
    assert.equal(u.regRead(SCR), 0xa5);
    u.regWrite(LSR, 0);
    u.regWrite(MSR, 0);
    assert.equal(u.regRead(LSR), LSR_THRE | LSR_TEMT);
  });

  it('masks offsets and values: any access stays inside the register file', () => {
    const u = new Uart16550();
    for (let off = -3; off < 40; off++) {
      u.regWrite(off, 0x1ff);
      assert.ok(u.regRead(off) <= 0xff);
    }
  });

  it('round-trips its state through export/import', () => {
    const a = new Uart16550();
    a.regWrite(FCR, 0x01);
    a.regWrite(LCR, 0x83);
    a.regWrite(0, 0x0c);
    a.regWrite(LCR, 0x03);
    a.regWrite(IER, 0x05);
    a.regWrite(SCR, 0x77);
    a.receive(0x11);
    a.receive(0x22);
    a.regWrite(THR, 0x33);
    const exported = a.export();
    const b = new Uart16550();
    b.import(new PayloadOffers(JSON.parse(JSON.stringify(exported))));
    assert.deepEqual(b.export(), exported);
    assert.equal(b.regRead(RBR), 0x11);
    assert.equal(b.takeTx(), 0x33);
  });

  it('refuses state that breaks its invariants', () => {
    const good = new Uart16550().export()[0]!;
    const bad =
      (patch: Record<string, unknown>): (() => void) =>
      () =>
        new Uart16550().import(new PayloadOffers([{ ...good, data: { ...(good.data as object), ...patch } }]));
    assert.throws(bad({ rx: [1, 2] }), MigrateError, 'two bytes in a 1-byte FIFO');
    assert.throws(bad({ ier: 0x80 }), MigrateError);
    assert.throws(bad({ lcr: 300 }), MigrateError);
    assert.throws(bad({ extra: 1 }), MigrateError);
    assert.throws(() => new Uart16550().import(new PayloadOffers([{ ...good, version: 2 }])), MigrateError);
    assert.throws(
      () => new Uart16550().import(new PayloadOffers([good, { kind: 'x', version: 1, data: {} }])),
      MigrateError,
    );
  });
});
