// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The 16550A UART register model: registers only, no bus, locks or I/O.
//
// Its state lives in a caller-supplied byte array so the same model can run
// over a SharedArrayBuffer seen by several threads (the attachment,
// `LpcUart`, serialises access with a lock) or over a plain buffer in unit
// tests. The model is a pure function of that state and the register
// accesses; the attachment moves bytes between the FIFOs and the host.
//
// Datasheet behaviour kept: DLAB-banked divisor latch, 16-byte receive and
// transmit FIFOs when FCR.FIFOE is set (1 byte otherwise), IIR priorities
// (line status > received data > THR empty > modem status), THRE interrupt
// cleared by an IIR read that reports it or by a THR write, LSR error bits
// cleared by reading LSR, loopback (MCR.LOOP) feeding THR into RBR and MCR
// outputs into MSR inputs.

import { schema, t, type PayloadOffers, type Payload, MigrateError } from '../../migrate.js';

/** Register offsets from the base port. */
export const REG = {
  RBR: 0,
  THR: 0,
  DLL: 0,
  IER: 1,
  DLM: 1,
  IIR: 2,
  FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const;

export const IER = { ERBFI: 0x01, ETBEI: 0x02, ELSI: 0x04, EDSSI: 0x08 } as const;
export const IIR = { NO_INT: 0x01, MSR: 0x00, THRE: 0x02, RDA: 0x04, RLS: 0x06, FIFO_EN: 0xc0 } as const;
export const FCR = { FIFOE: 0x01, RFR: 0x02, TFR: 0x04 } as const;
export const LCR = { DLAB: 0x80 } as const;
export const MCR = { DTR: 0x01, RTS: 0x02, OUT1: 0x04, OUT2: 0x08, LOOP: 0x10 } as const;
export const LSR = { DR: 0x01, OE: 0x02, PE: 0x04, FE: 0x08, BI: 0x10, THRE: 0x20, TEMT: 0x40, RXFE: 0x80 } as const;
export const MSR = {
  DCTS: 0x01,
  DDSR: 0x02,
  TERI: 0x04,
  DDCD: 0x08,
  CTS: 0x10,
  DSR: 0x20,
  RI: 0x40,
  DCD: 0x80,
} as const;

export const FIFO_SIZE = 16;

// Layout of the state bytes.
const S_IER = 0;
const S_LCR = 1;
const S_MCR = 2;
const S_LSR = 3; // only the sticky error bits (OE, PE, FE, BI); DR/THRE/TEMT are derived
const S_MSR = 4;
const S_SCR = 5;
const S_DLL = 6;
const S_DLM = 7;
const S_FCR = 8; // FIFOE only
const S_THRI = 9; // THR-empty interrupt pending
const S_RX_HEAD = 10;
const S_RX_LEN = 11;
const S_TX_HEAD = 12;
const S_TX_LEN = 13;
const S_RX = 16;
const S_TX = S_RX + FIFO_SIZE;
export const UART_STATE_BYTES = S_TX + FIFO_SIZE;

export const Uart16550V1 = schema('uart-16550', 1, {
  ier: t.u8,
  lcr: t.u8,
  mcr: t.u8,
  lsr: t.u8,
  msr: t.u8,
  scr: t.u8,
  dll: t.u8,
  dlm: t.u8,
  fifoEnabled: t.bool,
  thrInterrupt: t.bool,
  rx: t.bytes(FIFO_SIZE),
  tx: t.bytes(FIFO_SIZE),
});

// MSR inputs when not in loopback: a host that is always connected and ready.
const MSR_CONNECTED = MSR.CTS | MSR.DSR | MSR.DCD;

export class Uart16550 {
  readonly state: Uint8Array;

  constructor(state?: Uint8Array) {
    if (state && state.byteLength < UART_STATE_BYTES) {
      throw new RangeError(`uart state needs ${UART_STATE_BYTES} bytes, got ${state.byteLength}`);
    }
    this.state = state ?? new Uint8Array(UART_STATE_BYTES);
    if (!state) this.reset();
  }

  /** Power-on values. */
  reset(): void {
    this.state.fill(0);
    this.state[S_MSR] = MSR_CONNECTED;
    this.state[S_DLL] = 0x0c; // 9600 baud at 1.8432 MHz, a common firmware default
  }

  private get fifoDepth(): number {
    return (this.s(S_FCR) & FCR.FIFOE) !== 0 ? FIFO_SIZE : 1;
  }

  private s(i: number): number {
    return this.state[i] as number;
  }

  get rxLen(): number {
    return this.s(S_RX_LEN);
  }

  get txLen(): number {
    return this.s(S_TX_LEN);
  }

  get rxSpace(): number {
    return this.fifoDepth - this.rxLen;
  }

  get loopback(): boolean {
    return (this.s(S_MCR) & MCR.LOOP) !== 0;
  }

  /** Line status as the guest reads it (without the read's side effects). */
  get lsr(): number {
    let v = this.s(S_LSR);
    if (this.rxLen > 0) v |= LSR.DR;
    if (this.txLen === 0) v |= LSR.THRE | LSR.TEMT;
    return v;
  }

  private get iirId(): number {
    const ier = this.s(S_IER);
    if (ier & IER.ELSI && this.s(S_LSR) & (LSR.OE | LSR.PE | LSR.FE | LSR.BI)) return IIR.RLS;
    if (ier & IER.ERBFI && this.rxLen > 0) return IIR.RDA;
    if (ier & IER.ETBEI && this.s(S_THRI)) return IIR.THRE;
    if (ier & IER.EDSSI && this.s(S_MSR) & 0x0f) return IIR.MSR;
    return IIR.NO_INT;
  }

  /** The interrupt output (before any board-level gating). */
  get intrPending(): boolean {
    return this.iirId !== IIR.NO_INT;
  }

  regRead(off: number): number {
    const dlab = (this.s(S_LCR) & LCR.DLAB) !== 0;
    switch (off & 7) {
      case REG.RBR:
        return dlab ? this.s(S_DLL) : this.popRx();
      case REG.IER:
        return dlab ? this.s(S_DLM) : this.s(S_IER);
      case REG.IIR: {
        const id = this.iirId;
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if (id === IIR.THRE) this.state[S_THRI] = 0;
        return id | (this.s(S_FCR) & FCR.FIFOE ? IIR.FIFO_EN : 0);
      }
      case REG.LCR:
        return this.s(S_LCR);
      case REG.MCR:
        return this.s(S_MCR);
      case REG.LSR: {
        const v = this.lsr;
        this.state[S_LSR] = 0; // error bits clear on read
        return v;
      }
      case REG.MSR: {
        const v = this.msrValue();
        this.state[S_MSR] = v & 0xf0; // delta bits clear on read
        return v;
      }
      default:
        return this.s(S_SCR);
    }
  }

  regWrite(off: number, value: number): void {
    const v = value & 0xff;
    const dlab = (this.s(S_LCR) & LCR.DLAB) !== 0;
    switch (off & 7) {
      case REG.THR:
        if (dlab) this.state[S_DLL] = v;
        else this.writeThr(v);
        return;
      case REG.IER:
        if (dlab) {
          this.state[S_DLM] = v;
          return;
        }
        // Enabling ETBEI with the transmitter empty raises THRE at once.
        if (!(this.s(S_IER) & IER.ETBEI) && v & IER.ETBEI && this.txLen === 0) this.state[S_THRI] = 1;
        this.state[S_IER] = v & 0x0f;
        return;
      case REG.FCR: {
        const was = this.s(S_FCR) & FCR.FIFOE;
        const now = v & FCR.FIFOE;
        // Changing FIFOE resets both FIFOs, as do the reset bits.
        if (was !== now || v & FCR.RFR) this.clearRx();
        if (was !== now || v & FCR.TFR) this.clearTx();
        this.state[S_FCR] = now;
        return;
      }
      case REG.LCR:
        this.state[S_LCR] = v;
        return;
      case REG.MCR: {
        const old = this.msrValue();
        this.state[S_MCR] = v & 0x1f;
        this.updateMsrDeltas(old);
        return;
      }
      case REG.LSR:
      case REG.MSR:
        return; // read-only (factory-test writes are ignored)
      default:
        this.state[S_SCR] = v;
    }
  }

  /** Host → guest: queue one received byte; on a full FIFO the byte is lost and OE set. */
  receive(b: number): boolean {
    if (this.rxLen >= this.fifoDepth) {
      this.state[S_LSR] = this.s(S_LSR) | LSR.OE;
      return false;
    }
    const i = (this.s(S_RX_HEAD) + this.rxLen) % FIFO_SIZE;
    this.state[S_RX + i] = b & 0xff;
    this.state[S_RX_LEN] = this.rxLen + 1;
    return true;
  }

  /** Guest → host: take the oldest transmitted byte, if any. */
  takeTx(): number | undefined {
    if (this.txLen === 0) return undefined;
    const head = this.s(S_TX_HEAD);
    const b = this.s(S_TX + head);
    this.state[S_TX_HEAD] = (head + 1) % FIFO_SIZE;
    this.state[S_TX_LEN] = this.txLen - 1;
    if (this.txLen === 0) this.state[S_THRI] = 1;
    return b;
  }

  private writeThr(v: number): void {
    this.state[S_THRI] = 0;
    if (this.loopback) {
      this.receive(v);
      this.state[S_THRI] = 1; // the byte left the transmitter at once
      return;
    }
    if (this.txLen >= this.fifoDepth) return; // overrun of the transmitter: the byte is lost, as on hardware
    const i = (this.s(S_TX_HEAD) + this.txLen) % FIFO_SIZE;
    this.state[S_TX + i] = v;
    this.state[S_TX_LEN] = this.txLen + 1;
  }

  private popRx(): number {
    if (this.rxLen === 0) return 0;
    const head = this.s(S_RX_HEAD);
    const b = this.s(S_RX + head);
    this.state[S_RX_HEAD] = (head + 1) % FIFO_SIZE;
    this.state[S_RX_LEN] = this.rxLen - 1;
    return b;
  }

  private clearRx(): void {
    this.state[S_RX_HEAD] = 0;
    this.state[S_RX_LEN] = 0;
  }

  private clearTx(): void {
    this.state[S_TX_HEAD] = 0;
    this.state[S_TX_LEN] = 0;
  }

  private msrValue(): number {
    const deltas = this.s(S_MSR) & 0x0f;
    if (!this.loopback) return MSR_CONNECTED | deltas;
    const m = this.s(S_MCR);
    let v = deltas;
    if (m & MCR.RTS) v |= MSR.CTS;
    if (m & MCR.DTR) v |= MSR.DSR;
    if (m & MCR.OUT1) v |= MSR.RI;
    if (m & MCR.OUT2) v |= MSR.DCD;
    return v;
  }

  private updateMsrDeltas(old: number): void {
    const now = this.msrValue();
    let d = this.s(S_MSR) & 0x0f;
    const changed = (old ^ now) & 0xf0;
    if (changed & MSR.CTS) d |= MSR.DCTS;
    if (changed & MSR.DSR) d |= MSR.DDSR;
    if (changed & MSR.DCD) d |= MSR.DDCD;
    if (old & MSR.RI && !(now & MSR.RI)) d |= MSR.TERI; // trailing edge of RI
    this.state[S_MSR] = (now & 0xf0) | d;
  }

  private fifo(base: number, head: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.s(base + ((head + i) % FIFO_SIZE));
    return out;
  }

  export(): Payload[] {
    return [
      Uart16550V1.encode({
        ier: this.s(S_IER),
        lcr: this.s(S_LCR),
        mcr: this.s(S_MCR),
        lsr: this.s(S_LSR),
        msr: this.s(S_MSR),
        scr: this.s(S_SCR),
        dll: this.s(S_DLL),
        dlm: this.s(S_DLM),
        fifoEnabled: (this.s(S_FCR) & FCR.FIFOE) !== 0,
        thrInterrupt: this.s(S_THRI) !== 0,
        rx: this.fifo(S_RX, this.s(S_RX_HEAD), this.rxLen),
        tx: this.fifo(S_TX, this.s(S_TX_HEAD), this.txLen),
      }),
    ];
  }

  /** Replace the state with an exported one; validated before anything changes. */
  import(offers: PayloadOffers): void {
    const v = offers.take(Uart16550V1);
    offers.finish();
    const depth = v.fifoEnabled ? FIFO_SIZE : 1;
    if (v.rx.length > depth || v.tx.length > depth) {
      throw new MigrateError('ImportFailed', `uart-16550: FIFO contents exceed depth ${depth}`);
    }
    if (v.ier & 0xf0 || v.mcr & 0xe0 || v.lsr & ~(LSR.OE | LSR.PE | LSR.FE | LSR.BI)) {
      throw new MigrateError('ImportFailed', 'uart-16550: reserved register bits set');
    }
    const st = this.state;
    st.fill(0);
    st[S_IER] = v.ier;
    st[S_LCR] = v.lcr;
    st[S_MCR] = v.mcr;
    st[S_LSR] = v.lsr;
    st[S_MSR] = v.msr;
    st[S_SCR] = v.scr;
    st[S_DLL] = v.dll;
    st[S_DLM] = v.dlm;
    st[S_FCR] = v.fifoEnabled ? FCR.FIFOE : 0;
    st[S_THRI] = v.thrInterrupt ? 1 : 0;
    st.set(v.rx, S_RX);
    st[S_RX_LEN] = v.rx.length;
    st.set(v.tx, S_TX);
    st[S_TX_LEN] = v.tx.length;
  }
}
