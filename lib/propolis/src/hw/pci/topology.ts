// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PCI topology of one thread: functions by logical bus, device and
// function; PCI-to-PCI bridges; the routing of configuration cycles and
// INTx; and the BAR router.
//
// Logical and routed buses (as in Propolis). The VMM places every function
// on a *logical* bus: 0 is the root bus, and a bridge is created with the
// logical bus it leads to ("downstream bus"). The guest names buses by the
// numbers it programs into the bridges. A configuration cycle for bus N is
// resolved the way bridges forward Type 1 cycles: from the root bus, follow
// the bridge whose [secondary, subordinate] range holds N until one whose
// secondary bus is N; the function is then looked up on that bridge's
// downstream logical bus. So a write to a bridge's secondary-bus register
// re-routes its logical bus, and before firmware numbers the buses nothing
// behind a bridge answers. Bridge windows are not enforced for BAR decoding
// (the BAR router is flat).
//
// INTx. What this implements, from the Propolis reference (§7):
//  - On bus 0 the chipset picks the pin a function reports, by function
//    number: index (function + 1) mod 4 with index 0 = INTA … 3 = INTD, so
//    function 0 reports INTB, 1 INTC, 2 INTD, 3 INTA (a Propolis quirk;
//    `intxPinFor`). The pin a device declares only says that it uses INTx.
//  - Behind a bridge a function keeps its declared pin, and the pin is
//    swizzled at each bridge by the standard rule: bridge pin index =
//    (pin index + device number) mod 4 (indices 0–3 for INTA–INTD), then
//    routed on as the bridge's own pin, up to bus 0. (Propolis gives no
//    INTx behind bridges; firmware computes the same swizzle.)
//  - A bus-0 (device, pin) goes to the INTx router — the PIIX3, whose PIRQ
//    registers map its four links to ISA IRQs (piix3-lpc.ts has the link rule).
//
// Multi-function devices: function 0 reports the multi-function bit in its
// Header Type when another function exists in its slot (firmware scans
// functions 1–7 only then).
//
// Threading: a per-thread singleton (`host.singleton('pci-topology')`).
// Every thread attaches the same devices in the same order, so every
// thread's topology has the same shape; the state it routes by (bridge bus
// numbers, BARs, command registers) is read from the functions' shared
// configuration spaces.

import type { DeviceHost } from '../../device.js';
import { CFG, CFG1, HEADER_TYPE, PCI_MAX_DEVICES, PCI_MAX_FUNCTIONS } from './bits.js';
import { cfgAllOnes } from './config-space.js';
import type { PciFunction } from './function.js';
import { PciPath } from './path.js';
import { PciBarRouter } from './router.js';

export class PciTopologyError extends Error {
  readonly code = 'PCI_TOPOLOGY';
}

/** Receives bus-0 INTx levels (the PIIX3 PCI-to-ISA bridge). */
export interface IntxRouter {
  /**
   * Bus-0 `device`'s `pin` (1–4) changed level. Called with the source
   * function's lock held; must not call back into that function.
   */
  setIntx(device: number, pin: number, level: boolean): void;
}

/** Address ranges [base, end) the BAR router answers on. */
export interface PciWindows {
  io: [number, number][];
  mmio: [number, number][];
}

/** The INTx pin a function placed at `path` reports (see the file comment). */
export function intxPinFor(path: PciPath, declared: number): number {
  if (declared === 0) return 0;
  return path.bus === 0 ? ((path.func + 1) % 4) + 1 : declared;
}

/** Standard swizzle across a bridge: pin (1–4) of a device behind it → the bridge's pin. */
export function swizzle(pin: number, device: number): number {
  return ((pin - 1 + device) % 4) + 1;
}

interface Bridge {
  fn: PciFunction;
  downstream: number;
}

const MAX_DEPTH = 256;

export class PciTopology {
  /** logical bus → devfn → function */
  private readonly buses = new Map<number, (PciFunction | undefined)[]>();
  private readonly bridges: Bridge[] = [];
  private intx: IntxRouter | undefined;
  readonly router = new PciBarRouter();
  private windows = false;

  /** This thread's topology. */
  static of(host: DeviceHost): PciTopology {
    return host.singleton('pci-topology', () => new PciTopology());
  }

  /** Place a function (PciFunction.attach does this). */
  add(fn: PciFunction): void {
    const { bus, devfn } = fn.path;
    let slots = this.buses.get(bus);
    if (!slots) {
      slots = new Array<PciFunction | undefined>(PCI_MAX_DEVICES * PCI_MAX_FUNCTIONS);
      this.buses.set(bus, slots);
    }
    const other = slots[devfn];
    if (other) throw new PciTopologyError(`PCI ${fn.path}: ${fn.name} collides with ${other.name}`);
    slots[devfn] = fn;
    if (fn.spec.bars.length > 0) this.router.add(fn);
  }

  /** Declare `fn` (already added) a PCI-to-PCI bridge leading to logical bus `downstream`. */
  addBridge(fn: PciFunction, downstream: number): void {
    if (!Number.isInteger(downstream) || downstream < 1 || downstream > 255) {
      throw new PciTopologyError(`bridge ${fn.name}: downstream bus ${downstream} must be 1..255`);
    }
    const dup = this.bridges.find((b) => b.downstream === downstream);
    if (dup) throw new PciTopologyError(`bridges ${dup.fn.name} and ${fn.name} both lead to bus ${downstream}`);
    if (downstream === fn.path.bus) throw new PciTopologyError(`bridge ${fn.name} cannot lead to its own bus`);
    this.bridges.push({ fn, downstream });
  }

  /** The INTx router of this thread (the PIIX3 registers itself). */
  setIntxRouter(r: IntxRouter): void {
    this.intx = r;
  }

  /** Register the BAR router on this thread's buses, once. */
  registerWindows(host: DeviceHost, w: PciWindows): void {
    if (this.windows) throw new PciTopologyError('PCI windows are already registered on this thread');
    this.windows = true;
    for (const [base, end] of w.io) host.pio.register(base, end - base, this.router, 'pci-io-window');
    for (const [base, end] of w.mmio) host.mmio.register(base, end - base, this.router, 'pci-mmio-window');
  }

  /** Every function placed, in attach order per bus. */
  functions(): PciFunction[] {
    const out: PciFunction[] = [];
    for (const slots of this.buses.values()) for (const f of slots) if (f) out.push(f);
    return out;
  }

  /** The logical bus the guest's bus number `routed` reaches, if any. */
  resolveBus(routed: number): number | undefined {
    if (routed === 0) return 0;
    let logical = 0;
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      let next: Bridge | undefined;
      for (const b of this.bridges) {
        if (b.fn.path.bus !== logical) continue;
        const sec = b.fn.config.u8(CFG1.SECONDARY_BUS);
        const sub = b.fn.config.u8(CFG1.SUBORDINATE_BUS);
        if (sec !== 0 && sec <= routed && routed <= Math.max(sec, sub)) {
          next = b;
          break;
        }
      }
      if (!next) return undefined;
      if (next.fn.config.u8(CFG1.SECONDARY_BUS) === routed) return next.downstream;
      logical = next.downstream;
    }
    return undefined;
  }

  /** The function a configuration cycle to (routed bus, device, function) reaches. */
  functionAt(bus: number, device: number, func: number): PciFunction | undefined {
    const logical = this.resolveBus(bus);
    if (logical === undefined) return undefined;
    return this.buses.get(logical)?.[(device << 3) | func];
  }

  private multiFunction(fn: PciFunction): boolean {
    const slots = this.buses.get(fn.path.bus);
    if (!slots) return false;
    for (let f = 1; f < PCI_MAX_FUNCTIONS; f++) if (slots[(fn.path.device << 3) | f]) return true;
    return false;
  }

  /** A configuration read; all-ones where no function answers. */
  cfgRead(bus: number, device: number, func: number, off: number, size: number): number {
    const fn = this.functionAt(bus, device, func);
    if (!fn) return cfgAllOnes(size);
    let v = fn.cfgRead(off, size);
    const ht = CFG.HEADER_TYPE - off;
    if (func === 0 && ht >= 0 && ht < size && this.multiFunction(fn)) {
      v = (v | (HEADER_TYPE.MULTI_FUNCTION * 2 ** (8 * ht))) >>> 0;
    }
    return v;
  }

  cfgWrite(bus: number, device: number, func: number, off: number, size: number, value: number): void {
    this.functionAt(bus, device, func)?.cfgWrite(off, size, value);
  }

  /** Drive `fn`'s INTx pin: swizzle up to bus 0, then hand to the INTx router. */
  routeIntx(fn: PciFunction, level: boolean): void {
    let path: PciPath = fn.path;
    let pin = fn.intxPin;
    for (let depth = 0; path.bus !== 0; depth++) {
      const br = this.bridges.find((b) => b.downstream === path.bus);
      if (!br || depth >= MAX_DEPTH) return; // not reachable from bus 0: no wire to drive
      pin = swizzle(pin, path.device);
      path = br.fn.path;
    }
    this.intx?.setIntx(path.device, pin, level);
  }
}
