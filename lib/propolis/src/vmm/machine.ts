// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The Machine: one KVM VM with its guest memory, bootrom, devices and vCPU
// worker threads (Propolis's `Machine`).
//
// Threading: a Machine lives on the main thread, which owns its lifecycle:
// create → addDevice… → start → (pause/resume)… → destroy. vCPU workers run
// `vcpu-worker.ts`; they attach their own instances of the devices added
// here, so devices must be added before `start`. When a device asks for
// doorbells, one more worker, the I/O thread (`io-worker.ts`), attaches the
// devices too and serves them; it pauses, resumes and exits with the vCPUs. Guest events from any
// vCPU arrive as messages and are delivered to `onEvent` listeners on the
// main thread. Guest memory and kvm_run mappings are unmapped in `destroy`,
// only after every worker has exited, so no view outlives its mapping.

import { Worker } from 'node:worker_threads';
import {
  Kvm,
  KVM_CAP_COALESCED_MMIO,
  KVM_CAP_COALESCED_PIO,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQCHIP,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_PIT2,
  KVM_MEM_READONLY,
  KVM_PIT_SPEAKER_DUMMY,
  KvmUnavailableError,
  VmFd,
  type CpuidEntry,
  type VcpuFd,
} from '../../../kvm/src/index.js';
import * as libc from '../../../kvm/src/libc.js';
import { KvmRun } from '../../../kvm/src/structs.js';
import type { DeviceClass, DeviceDescriptor, GuestEvents, MachineDevice } from '../device.js';
import { PayloadOffers, type Payload } from '../migrate.js';
import { specializeCpuid } from './cpuid.js';
import { exportVcpu, importVcpu } from './vcpu-state.js';
import { createHostTables, memoryFromLayout, ThreadHost } from './host.js';
import {
  captureChipset,
  capturePowerOn,
  restoreChipset,
  restorePowerOn,
  type ChipsetPowerOn,
  type VcpuPowerOn,
} from './power-on.js';
import { Prot, type GuestMemory } from './memory.js';
import {
  CTL_ACK,
  CTL_CMD,
  CTL_NMI,
  CTL_STATE,
  CTL_WORDS,
  GEN_MASK,
  STATE_EXITED,
  acked,
  cmdWord,
  REQ_EXIT,
  REQ_PAUSE,
  REQ_RUN,
  STAT,
  STAT_WORDS,
  type IoWorkerData,
  type MemoryLayoutEntry,
  type VcpuCommand,
  type VcpuMessage,
  type VcpuWorkerData,
} from './vcpu-control.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Guest memory map, as Propolis lays it out (see docs/architecture.md). */
export const LAYOUT = {
  lowmemTop: 3 * GiB,
  highmemBase: 4 * GiB,
  romBase: 0xffe0_0000,
  romSize: 2 * MiB,
  /** Three pages the kernel needs for real-mode emulation on Intel (TSS), in the MMIO hole. */
  tssAddr: 0xfeff_d000,
  identityMapAddr: 0xfeff_c000,
  /** Largest part of the bootrom aliased below 1 MiB. */
  lowBiosMax: 128 * 1024,
} as const;

export const MAX_VCPUS = 32;

export class MachineConfigError extends Error {
  readonly code = 'MACHINE_CONFIG';
}

export interface MachineConfig {
  name: string;
  cpus: number;
  memoryMiB: number;
  /** Firmware image, mapped read-only so that it ends at 4 GiB. */
  bootrom: Uint8Array;
  /** /dev/kvm path (tests point it elsewhere to check the error). */
  kvmPath?: string;
  /** CPUID leaves to offer (before per-vCPU specialisation); default: what KVM supports. */
  cpuid?: CpuidEntry[];
  /**
   * Port ranges whose guest writes the kernel may queue instead of exiting
   * (KVM coalesced PIO): only for write-only, side-effect-free ports such
   * as the debug port. Ignored where the host lacks the capability.
   */
  coalescedPio?: { port: number; size: number }[];
}

export type MachineEvent =
  | { type: 'halt'; vcpu: number; reason: string; status?: number }
  | { type: 'reset'; vcpu: number; reason: string }
  | { type: 'failure'; vcpu: number; reason: string };

export interface ExitStats {
  io: number;
  mmio: number;
  intr: number;
  hlt: number;
  shutdown: number;
  systemEvent: number;
  failure: number;
  other: number;
  deviceErrors: number;
  unclaimedPio: number;
  unclaimedMmio: number;
}

interface VcpuSlot {
  fd: VcpuFd;
  powerOn?: VcpuPowerOn;
  runAddr: bigint;
  ctl: Int32Array;
  stats: Float64Array;
  worker?: Worker;
  /** Resolves when the worker thread has exited (registered at spawn, so no exit is missed). */
  exited?: Promise<void>;
  ready?: Promise<void>;
  hasExited?: boolean;
  tid?: number;
}

/** The I/O thread, when there is one. */
interface IoSlot {
  worker: Worker;
  ctl: Int32Array;
  controlFd: number;
  exited: Promise<void>;
  ready: Promise<void>;
  hasExited: boolean;
}

interface Mapping {
  addr: bigint;
  size: number;
}

function validate(cfg: MachineConfig): void {
  if (!Number.isInteger(cfg.cpus) || cfg.cpus < 1 || cfg.cpus > MAX_VCPUS) {
    throw new MachineConfigError(`cpus must be an integer from 1 to ${MAX_VCPUS}, got ${cfg.cpus}`);
  }
  if (!Number.isInteger(cfg.memoryMiB) || cfg.memoryMiB < 2) {
    throw new MachineConfigError(`memory must be a whole number of MiB, at least 2, got ${cfg.memoryMiB}`);
  }
  if (cfg.memoryMiB > 1024 * 1024) throw new MachineConfigError(`memory ${cfg.memoryMiB} MiB is more than 1 TiB`);
  const n = cfg.bootrom.byteLength;
  if (n === 0 || n % 4096 !== 0 || n > LAYOUT.romSize) {
    throw new MachineConfigError(
      `bootrom must be a non-empty multiple of 4 KiB, at most ${LAYOUT.romSize / MiB} MiB; it is ${n} bytes`,
    );
  }
}

function mapAnon(size: number, what: string): bigint {
  const addr = libc.mmap(
    0n,
    size,
    libc.PROT_READ | libc.PROT_WRITE,
    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE,
    -1,
    0,
  );
  if (addr === libc.MAP_FAILED) {
    const e = libc.errno();
    throw new MachineConfigError(`cannot map ${what} (${size} bytes): ${libc.errnoName(e)} (${libc.strerror(e)})`);
  }
  return addr;
}

const noop = (): void => {};

/**
 * Wait until a worker acknowledged generation `gen` of its control word, or
 * exited. A pending Atomics.waitAsync does not keep Node's event loop alive,
 * so a timer does: without it a caller with nothing else pending (a test
 * awaiting pause() after its last timer fired) saw the process's event loop
 * end under it while a vCPU was still on its way to acknowledge.
 */
async function waitAck(ctl: Int32Array, gen: number, gone: () => boolean): Promise<void> {
  const keepAlive = setInterval(noop, 1000);
  try {
    for (;;) {
      if (gone() || Atomics.load(ctl, CTL_STATE) === STATE_EXITED) return;
      const ack = Atomics.load(ctl, CTL_ACK);
      if (acked(ack, gen)) return;
      const r = Atomics.waitAsync(ctl, CTL_ACK, ack, 100);
      if (r.async) await r.value;
    }
  } finally {
    clearInterval(keepAlive);
  }
}

export class Machine {
  readonly mem: GuestMemory;
  private readonly host: ThreadHost;
  private readonly vcpus: VcpuSlot[] = [];
  private readonly mappings: Mapping[] = [];
  private readonly layout: MemoryLayoutEntry[] = [];
  private readonly devices: MachineDevice[] = [];
  private readonly listeners: ((e: MachineEvent) => void)[] = [];
  private started = false;
  private destroyed = false;

  private constructor(
    readonly config: MachineConfig,
    private readonly kvm: Kvm,
    readonly vm: VmFd,
  ) {
    const events: GuestEvents = {
      halt: (reason, status) =>
        this.emit({ type: 'halt', vcpu: -1, reason, ...(status === undefined ? {} : { status }) }),
      reset: (reason) => this.emit({ type: 'reset', vcpu: -1, reason }),
    };
    try {
      this.setupMemory();
      this.setupPlatform();
    } catch (e) {
      this.releaseResources();
      throw e;
    }
    this.mem = memoryFromLayout(this.layout);
    this.host = new ThreadHost('main', undefined, vm.fd, this.mem, events, createHostTables());
    this.spawnWorkers();
  }

  /** Create the VM: memory, bootrom, in-kernel irqchip and PIT, vCPUs (not yet running). */
  static create(config: MachineConfig): Machine {
    validate(config);
    const kvm = Kvm.open(config.kvmPath);
    for (const [cap, name] of [
      [KVM_CAP_IRQCHIP, 'KVM_CAP_IRQCHIP'],
      [KVM_CAP_PIT2, 'KVM_CAP_PIT2'],
      [KVM_CAP_IMMEDIATE_EXIT, 'KVM_CAP_IMMEDIATE_EXIT'],
    ] as const) {
      if (kvm.checkExtension(cap) <= 0) {
        kvm.close();
        throw new KvmUnavailableError(`this host's KVM lacks ${name}, which the VMM needs`);
      }
    }
    const maxVcpus = kvm.checkExtension(KVM_CAP_MAX_VCPUS) || kvm.checkExtension(KVM_CAP_NR_VCPUS);
    if (config.cpus > maxVcpus) {
      kvm.close();
      throw new MachineConfigError(`cpus = ${config.cpus} is more than this host's KVM allows (${maxVcpus})`);
    }
    let vm: VmFd;
    try {
      vm = kvm.createVm();
    } catch (e) {
      kvm.close();
      throw e;
    }
    return new Machine(config, kvm, vm);
  }

  private map(gpa: number, size: number, prot: Prot, slot: number, what: string): bigint {
    const addr = mapAnon(size, what);
    this.mappings.push({ addr, size });
    libc.madvise(addr, size, libc.MADV_DONTDUMP);
    if (prot !== Prot.Read) libc.madvise(addr, size, libc.MADV_HUGEPAGE);
    this.vm.setUserMemoryRegion(slot, BigInt(gpa), BigInt(size), addr, prot === Prot.Read ? KVM_MEM_READONLY : 0);
    this.layout.push({ gpa, size, hostAddr: addr, prot });
    return addr;
  }

  private setupMemory(): void {
    const total = this.config.memoryMiB * MiB;
    const low = Math.min(total, LAYOUT.lowmemTop);
    this.map(0, low, Prot.ReadWrite, 0, 'low guest RAM');
    if (total > low) this.map(LAYOUT.highmemBase, total - low, Prot.ReadWrite, 1, 'high guest RAM');
    // The bootrom sits right-aligned in the 2 MiB ROM window below 4 GiB, so
    // its last byte is at 0xFFFF_FFFF and the reset vector 16 bytes before.
    const romAddr = this.map(LAYOUT.romBase, LAYOUT.romSize, Prot.Read, 2, 'bootrom');
    const rom = new Uint8Array(libc.view(romAddr, LAYOUT.romSize));
    rom.set(this.config.bootrom, LAYOUT.romSize - this.config.bootrom.byteLength);
    this.loadLowBios();
  }

  /**
   * PCs also show the top of the firmware below 1 MiB (the "isa-bios"
   * alias, at most 128 KiB ending at 0x10_0000). Here that range is RAM
   * holding a copy of the image's tail, written at creation and again at
   * every reset, so firmware that shadows itself there (SeaBIOS writes the
   * PAM registers and copies) finds the same bytes as on a PC.
   */
  private loadLowBios(): void {
    const rom = this.config.bootrom;
    const len = Math.min(rom.byteLength, LAYOUT.lowBiosMax);
    const low = this.layout.find((e) => e.gpa === 0);
    if (!low || low.size < MiB) return;
    const ram = new Uint8Array(libc.view(low.hostAddr, MiB));
    ram.set(rom.subarray(rom.byteLength - len), MiB - len);
  }

  private setupPlatform(): void {
    this.vm.setTssAddr(LAYOUT.tssAddr);
    this.vm.setIdentityMapAddr(BigInt(LAYOUT.identityMapAddr));
    this.vm.createIrqchip();
    this.vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
    const supported = this.config.cpuid ?? this.kvm.supportedCpuid();
    this.baseCpuid = supported;
    const runSize = this.kvm.vcpuMmapSize();
    const msrIndices = this.kvm.msrIndexList();
    this.msrIndices = msrIndices;
    for (let id = 0; id < this.config.cpus; id++) {
      const fd = this.vm.createVcpu(id);
      fd.setCpuid(specializeCpuid(supported, id, this.config.cpus));
      const runAddr = fd.mapRun(runSize);
      this.mappings.push({ addr: runAddr, size: runSize });
      const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS));
      ctl[CTL_CMD] = cmdWord(0, REQ_PAUSE);
      this.vcpus.push({ fd, runAddr, ctl, stats: new Float64Array(new SharedArrayBuffer(8 * STAT_WORDS)) });
    }
    this.setupCoalesced(runSize);
    // Record reset state only once every vCPU exists: creating an AP changes
    // nothing of the BSP's, but the LAPICs are only complete then.
    for (const v of this.vcpus) v.powerOn = capturePowerOn(v.fd, msrIndices);
    this.chipsetPowerOn = captureChipset(this.vm);
  }

  private chipsetPowerOn: ChipsetPowerOn | undefined;
  private coalesced: { pageOffset: number; lock: SharedArrayBuffer } | undefined;
  private msrIndices: number[] = [];

  private setupCoalesced(runSize: number): void {
    const zones = this.config.coalescedPio ?? [];
    if (zones.length === 0) return;
    const page = this.kvm.checkExtension(KVM_CAP_COALESCED_MMIO);
    if (page <= 0 || this.kvm.checkExtension(KVM_CAP_COALESCED_PIO) <= 0 || (page + 1) * 4096 > runSize) return;
    for (const z of zones) this.vm.registerCoalesced(BigInt(z.port), z.size, true);
    this.coalesced = { pageOffset: page * 4096, lock: new SharedArrayBuffer(4) };
  }

  /** The CPUID leaves every vCPU starts from (before per-vCPU specialisation). */
  baseCpuid: CpuidEntry[] = [];

  /**
   * Reset the machine as a PC reset does, without exiting: every vCPU and
   * device returns to its power-on state, RAM is kept, the firmware starts
   * again at the reset vector. Call from the main thread (e.g. on a `reset`
   * event); resolves when the machine runs again.
   */
  async reset(): Promise<void> {
    if (!this.started || this.destroyed) throw new Error('reset needs a started machine');
    await this.pause();
    for (const d of this.devices) d.reset?.();
    this.host.irqs.resetAll();
    this.host.msiRoutes.clear();
    if (this.chipsetPowerOn) restoreChipset(this.vm, this.chipsetPowerOn);
    for (const v of this.vcpus) if (v.powerOn) restorePowerOn(v.fd, v.powerOn);
    this.loadLowBios();
    this.resets++;
    await this.resume();
  }

  /** How many times the machine was reset. */
  resets = 0;

  get cpus(): number {
    return this.vcpus.length;
  }

  /** Guest memory regions and their host mappings (for tools: RSS accounting, dumps). */
  get memoryLayout(): readonly MemoryLayoutEntry[] {
    return this.layout;
  }

  /** Add a device from its descriptor; returns the main thread's instance. Only before `start`. */
  addDevice<T extends MachineDevice>(cls: DeviceClass<T>, desc: DeviceDescriptor): T {
    if (this.started) throw new Error(`cannot add device ${desc.name} after the machine started`);
    if (this.devices.some((d) => d.name === desc.name)) {
      throw new MachineConfigError(`device name ${desc.name} is used twice`);
    }
    const dev = cls.attach(desc, this.host);
    this.devices.push(dev);
    if (!this.io && this.host.doorbells.allocations.length > 0) this.spawnIo();
    const preload: VcpuCommand = { type: 'preload', module: desc.module };
    for (const slot of this.vcpus) slot.worker?.postMessage(preload);
    this.io?.worker.postMessage(preload);
    return dev;
  }

  device(name: string): MachineDevice | undefined {
    return this.devices.find((d) => d.name === name);
  }

  onEvent(fn: (e: MachineEvent) => void): void {
    this.listeners.push(fn);
  }

  private emit(e: MachineEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  /** Start device lifecycles and the vCPU threads; resolves once every vCPU is running. */
  async start(): Promise<void> {
    if (this.started) throw new Error('machine already started');
    this.started = true;
    for (const d of this.devices) await d.start?.();
    // SIGUSR2 kicks vCPU threads out of KVM_RUN. A JS listener makes Node
    // install a process-wide handler, so the signal interrupts the ioctl
    // (EINTR) instead of killing the process.
    process.on('SIGUSR2', noop);
    const cmd: VcpuCommand = {
      type: 'attach',
      devices: this.devices.map((d) => d.descriptor),
      tables: this.host.tables(),
    };
    for (const slot of this.vcpus) slot.worker?.postMessage(cmd);
    this.io?.worker.postMessage(cmd);
    await Promise.all([...this.vcpus.map((slot) => slot.ready ?? Promise.resolve()), this.io?.ready]);
    await this.request(REQ_RUN);
  }

  /** Whether doorbells are served by an I/O thread (some device asked for them). */
  get hasIoThread(): boolean {
    return this.io !== undefined;
  }

  private io: IoSlot | undefined;

  /** Spawn the I/O thread, when the first device with doorbells is added. */
  private spawnIo(): void {
    const controlFd = libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC);
    if (controlFd < 0) throw new MachineConfigError(`eventfd for the I/O thread: ${libc.errnoName(libc.errno())}`);
    const ctl = new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS));
    ctl[CTL_CMD] = cmdWord(0, REQ_PAUSE);
    const wd: IoWorkerData = { vmFd: this.vm.fd, memory: this.layout, ctl: ctl.buffer as SharedArrayBuffer, controlFd };
    const worker = new Worker(new URL('./io-worker.js', import.meta.url), { workerData: wd, name: 'io' });
    const slot = { worker, ctl, controlFd, hasExited: false } as IoSlot;
    slot.exited = new Promise<void>((r) =>
      worker.once('exit', () => {
        slot.hasExited = true;
        r();
      }),
    );
    slot.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: VcpuMessage) => {
        if (m.type === 'ready') resolve();
        else this.onVcpuMessage(m);
      });
      worker.on('error', (err) => {
        reject(err);
        if (this.started) this.emit({ type: 'failure', vcpu: -1, reason: `I/O thread error: ${err.message}` });
      });
      worker.on('exit', () => reject(new Error('the I/O thread exited during start-up')));
    });
    slot.ready.catch(() => {});
    this.io = slot;
  }

  /**
   * Spawn the vCPU threads at creation: loading a worker's modules takes
   * tens of milliseconds, which then overlap the main thread's own set-up.
   * They wait for `start` to attach the devices.
   */
  private spawnWorkers(): void {
    const runSize = this.kvm.vcpuMmapSize();
    const url = new URL('./vcpu-worker.js', import.meta.url);
    this.vcpus.forEach((slot, id) => {
      const wd: VcpuWorkerData = {
        id,
        vmFd: this.vm.fd,
        vcpuFd: slot.fd.fd,
        runAddr: slot.runAddr,
        runSize,
        memory: this.layout,
        ctl: slot.ctl.buffer as SharedArrayBuffer,
        stats: slot.stats.buffer as SharedArrayBuffer,
        coalesced: this.coalesced,
      };
      const w = new Worker(url, { workerData: wd, name: `vcpu-${id}` });
      slot.worker = w;
      slot.exited = new Promise<void>((r) =>
        w.once('exit', () => {
          slot.hasExited = true;
          r();
        }),
      );
      slot.ready = new Promise<void>((resolve, reject) => {
        w.on('message', (m: VcpuMessage) => {
          if (m.type === 'ready') {
            slot.tid = m.tid;
            resolve();
          } else this.onVcpuMessage(m);
        });
        w.on('error', (err) => {
          reject(err);
          if (this.started) this.emit({ type: 'failure', vcpu: id, reason: `vCPU ${id} thread error: ${err.message}` });
        });
        w.on('exit', () => reject(new Error(`vCPU ${id} thread exited during start-up`)));
      });
      // Observed by start(); a machine destroyed unstarted never awaits it.
      slot.ready.catch(() => {});
    });
  }

  private onVcpuMessage(m: VcpuMessage): void {
    switch (m.type) {
      case 'halt':
        this.emit({
          type: 'halt',
          vcpu: m.id,
          reason: m.reason,
          ...(m.status === undefined ? {} : { status: m.status }),
        });
        return;
      case 'reset':
        this.emit({ type: 'reset', vcpu: m.id, reason: m.reason });
        return;
      case 'failure':
        this.emit({ type: 'failure', vcpu: m.id, reason: m.reason });
        return;
      case 'log':
        console.error(`[vcpu ${m.id}] ${m.level}: ${m.msg}`);
        return;
      case 'ready':
        return;
    }
  }

  /** Make a vCPU leave KVM_RUN now (see vcpu-control.ts). */
  private kick(slot: VcpuSlot): void {
    // The run page is mapped by us and outlives the worker.
    const run = new Uint8Array(libc.view(slot.runAddr, 8));
    run[KvmRun.fields.immediateExit.offset] = 1;
    if (slot.tid !== undefined) libc.tgkill(slot.tid, 12 /* SIGUSR2 */);
  }

  /**
   * Send one command to every vCPU and wait until each has acted on it (or
   * exited). Every command kicks: a vCPU sitting in a halted guest (HLT is
   * handled in the kernel) would otherwise not look at it until its next exit.
   */
  private async request(req: number): Promise<void> {
    const gens = this.vcpus.map((slot) => {
      const gen = ((Atomics.load(slot.ctl, CTL_CMD) >>> 2) + 1) & GEN_MASK;
      Atomics.store(slot.ctl, CTL_CMD, cmdWord(gen, req));
      Atomics.notify(slot.ctl, CTL_CMD);
      this.kick(slot);
      return gen;
    });
    const waits = this.vcpus.map((slot, i) =>
      waitAck(slot.ctl, gens[i] as number, () => !slot.worker || !!slot.hasExited),
    );
    const io = this.io;
    if (io) {
      const gen = ((Atomics.load(io.ctl, CTL_CMD) >>> 2) + 1) & GEN_MASK;
      Atomics.store(io.ctl, CTL_CMD, cmdWord(gen, req));
      Atomics.notify(io.ctl, CTL_CMD);
      libc.eventfdSignal(io.controlFd);
      waits.push(waitAck(io.ctl, gen, () => io.hasExited));
    }
    await Promise.all(waits);
  }

  /**
   * Send an NMI to a vCPU (the API's "inject NMI" goes to vCPU 0). It is
   * queued for the vCPU's thread, which injects it before it next enters
   * the guest: at once if the vCPU is running (it is kicked), at resume if
   * the machine is paused. NMIs requested while one is queued merge, as
   * they do on hardware.
   */
  injectNmi(vcpu = 0): Promise<void> {
    const slot = this.vcpus[vcpu];
    if (!slot) return Promise.reject(new MachineConfigError(`no vCPU ${vcpu} (the machine has ${this.vcpus.length})`));
    if (!this.started || this.destroyed) return Promise.reject(new Error('an NMI needs a started machine'));
    Atomics.store(slot.ctl, CTL_NMI, 1);
    this.kick(slot);
    return Promise.resolve();
  }

  /** Stop every vCPU at an instruction boundary. Devices are paused after. */
  async pause(): Promise<void> {
    await this.request(REQ_PAUSE);
    for (const d of this.devices) d.pause?.();
  }

  async resume(): Promise<void> {
    for (const d of this.devices) d.resume?.();
    await this.request(REQ_RUN);
  }

  /** Export every device's state (vCPUs must be paused for a consistent image). */
  exportDevices(): { name: string; payloads: Payload[] }[] {
    const out: { name: string; payloads: Payload[] }[] = [];
    for (const d of this.devices) {
      const m = d.migrate();
      if (m === 'non-migratable') throw new Error(`device ${d.name} cannot be migrated`);
      if (m === 'empty') continue;
      out.push({ name: d.name, payloads: m.export() });
    }
    return out;
  }

  importDevices(states: { name: string; payloads: Payload[] }[]): void {
    for (const s of states) {
      const d = this.device(s.name);
      if (!d) throw new Error(`no device named ${s.name}`);
      const m = d.migrate();
      if (m === 'non-migratable' || m === 'empty') throw new Error(`device ${s.name} takes no state`);
      m.import(new PayloadOffers(s.payloads));
    }
  }

  /** Export every vCPU's state (`vcpu-<n>`); vCPUs must be paused. */
  exportVcpus(): { name: string; payloads: Payload[] }[] {
    return this.vcpus.map((v, i) => ({ name: `vcpu-${i}`, payloads: exportVcpu(v.fd, this.msrIndices) }));
  }

  /** Import vCPU states exported by a machine of the same shape; vCPUs must be paused (or not started). */
  importVcpus(states: { name: string; payloads: Payload[] }[]): void {
    if (states.length !== this.vcpus.length) {
      throw new Error(`state has ${states.length} vCPUs, this machine ${this.vcpus.length}`);
    }
    states.forEach((s, i) => {
      if (s.name !== `vcpu-${i}`) throw new Error(`expected vcpu-${i}, got ${s.name}`);
      importVcpu((this.vcpus[i] as VcpuSlot).fd, new PayloadOffers(s.payloads));
    });
  }

  stats(): ExitStats[] {
    return this.vcpus.map((v) => {
      const s = v.stats;
      const out = {} as ExitStats;
      for (const [k, i] of Object.entries(STAT)) out[k as keyof ExitStats] = s[i] as number;
      return out;
    });
  }

  /** Stop all vCPU threads and devices and release the VM. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (!this.started) {
      // Workers still waiting for their devices: nothing runs; ask them to end. Not terminate(): a
      // worker terminated while it is still loading its modules can take the process down with it
      // (koffi's native addon throws during a terminating isolate's load: a fatal napi error, seen
      // when a server's VM creation failed right after Machine.create). A worker reads the request
      // only once its modules are loaded.
      const workers: { worker?: Worker; exited?: Promise<void> }[] = [...this.vcpus];
      if (this.io) workers.push(this.io);
      await Promise.all(
        workers.map((v) => {
          if (!v.worker || !v.exited) return Promise.resolve();
          v.worker.postMessage({ type: 'exit' } satisfies VcpuCommand);
          const t = setTimeout(() => void v.worker?.terminate(), 10_000);
          return v.exited.finally(() => clearTimeout(t));
        }),
      );
    } else {
      await this.request(REQ_EXIT);
      const workers: { worker?: Worker; exited?: Promise<void> }[] = [...this.vcpus];
      if (this.io) workers.push(this.io);
      await Promise.all(
        workers.map((v) => {
          if (!v.worker || !v.exited) return Promise.resolve();
          // A worker stuck in device code would block teardown forever; it has
          // had its chance to exit cleanly above.
          const t = setTimeout(() => void v.worker?.terminate(), 2000);
          return v.exited.finally(() => clearTimeout(t));
        }),
      );
      process.off('SIGUSR2', noop);
    }
    for (const d of this.devices) d.halt?.();
    this.releaseResources();
  }

  private releaseResources(): void {
    // The host exists unless construction failed before it.
    const host = this.host as ThreadHost | undefined;
    if (host) {
      host.doorbells.close();
      host.msiRoutes.clear();
    }
    if (this.io) libc.close(this.io.controlFd);
    for (const v of this.vcpus) v.fd.close();
    this.vm.close();
    this.kvm.close();
    // Every view over these mappings belonged to exited workers or to this
    // object, which must not be used after destroy.
    for (const m of this.mappings) libc.munmap(m.addr, m.size);
    this.mappings.length = 0;
  }
}
