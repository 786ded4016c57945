// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PC platform: one Machine dressed as the seed's i440FX/PIIX PC, with
// the devices every instance has (Propolis's initializer) and the firmware
// interface (fw_cfg carrying e820, boot order, ACPI and SMBIOS tables).
//
// Both propolis-standalone and (later) propolis-server build their VMs
// here, so the guest sees the same machine from either.
//
// Threading: main thread; devices are added before `start`.

import type { CpuidEntry } from '../../../kvm/src/index.js';
import { QemuDebugExit } from '../hw/qemu/debug-exit.js';
import { QemuDebugPort } from '../hw/qemu/debug-port.js';
import { E820Type, FwCfgBuilder, QemuFwCfg } from '../hw/qemu/fwcfg.js';
import { QemuPvpanic } from '../hw/qemu/pvpanic.js';
import { COM_PORTS, LpcUart, type ComPort } from '../hw/uart/lpc-uart.js';
import { GiB, LAYOUT, Machine, MiB } from '../vmm/machine.js';

export interface PcConfig {
  name: string;
  cpus: number;
  memoryMiB: number;
  bootrom: Uint8Array;
  /** SMBIOS type 0 version string. */
  bootromVersion?: string;
  cpuid?: CpuidEntry[];
  kvmPath?: string;
  /** fw_cfg `bootorder` entries (OpenFirmware device paths). */
  bootOrder?: string[];
  pvpanic?: { enableIsa: boolean };
  /** QEMU isa-debug-exit devices (test guests). */
  debugExits?: { name: string; port: number; size: number }[];
  /** Serial console port SeaBIOS mirrors its screen to (`etc/sercon-port`); default COM1, `null` for none. */
  serialConsole?: number | null;
}

export class PcPlatform {
  readonly com: Record<ComPort, LpcUart>;
  readonly debugPort: QemuDebugPort;
  readonly fwcfg: QemuFwCfg;
  readonly pvpanic: QemuPvpanic | undefined;

  private constructor(
    readonly machine: Machine,
    readonly config: PcConfig,
  ) {
    const m = machine;
    // The order devices are added is the order every vCPU thread attaches
    // them; keep it fixed.
    const com = {} as Record<ComPort, LpcUart>;
    for (const c of Object.keys(COM_PORTS) as ComPort[]) com[c] = m.addDevice(LpcUart, LpcUart.describe(c));
    this.com = com;
    this.debugPort = m.addDevice(QemuDebugPort, QemuDebugPort.describe({}));
    this.pvpanic = config.pvpanic?.enableIsa
      ? m.addDevice(QemuPvpanic, QemuPvpanic.describe({ enableIsa: true }))
      : undefined;
    for (const d of config.debugExits ?? []) m.addDevice(QemuDebugExit, QemuDebugExit.describe(d.name, d.port, d.size));
    this.fwcfg = m.addDevice(QemuFwCfg, QemuFwCfg.describe(this.firmwareConfig()));
  }

  /** Create the VM and its devices (not yet running). */
  static create(config: PcConfig): PcPlatform {
    const machine = Machine.create({
      name: config.name,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      bootrom: config.bootrom,
      ...(config.kvmPath === undefined ? {} : { kvmPath: config.kvmPath }),
      ...(config.cpuid === undefined ? {} : { cpuid: config.cpuid }),
    });
    try {
      return new PcPlatform(machine, config);
    } catch (e) {
      void machine.destroy();
      throw e;
    }
  }

  /** Guest RAM below the 3 GiB hole and above 4 GiB, in bytes. */
  get memory(): { lowmem: number; highmem: number } {
    const total = this.config.memoryMiB * MiB;
    const lowmem = Math.min(total, LAYOUT.lowmemTop);
    return { lowmem, highmem: total - lowmem };
  }

  /** The e820 map firmware hands to the OS: RAM, and the firmware/KVM ranges reserved. */
  e820(): { base: number; length: number; type: number }[] {
    const { lowmem, highmem } = this.memory;
    const map = [
      { base: 0, length: lowmem, type: E820Type.RAM },
      { base: LAYOUT.identityMapAddr, length: 4 * 4096, type: E820Type.RESERVED },
      { base: LAYOUT.romBase, length: LAYOUT.romSize, type: E820Type.RESERVED },
    ];
    if (highmem > 0) map.push({ base: 4 * GiB, length: highmem, type: E820Type.RAM });
    return map;
  }

  private firmwareConfig(): FwCfgBuilder {
    const b = new FwCfgBuilder()
      .cpus(this.config.cpus, this.config.cpus)
      .ramSize(this.config.memoryMiB * MiB)
      .e820(this.e820())
      .bootOrder(this.config.bootOrder ?? [], { halt: true });
    const sercon = this.config.serialConsole === undefined ? COM_PORTS.com1.port : this.config.serialConsole;
    if (sercon !== null) b.serialConsole(sercon);
    return b;
  }
}
