// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The framework a test runs in (the original's `Framework`): defaults,
// artifacts, where logs go, and a `TestContext` per test that builds VM
// configs, spawns VMs (each under its own propolis-server) and tears them
// all down when the test ends, whatever happened.
//
// Spawning a VM checks first that its guest can run on this host and that
// this server can boot it; if not, the test is skipped with the reason
// before anything is built or fetched.
//
// Threading: main thread.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ArtifactStore } from './artifacts.js';
import { DiskSet } from './disks.js';
import { PhdSkip } from './errors.js';
import { hostInfo, type HostInfo } from './host.js';
import { ServerProcess } from './server-process.js';
import { TestVm } from './test-vm.js';
import { VmConfig, type DiskInterface } from './vm-config.js';

export interface FrameworkHooks {
  /**
   * Runs before a VM's API reset is requested. The framework's own tests
   * use it to break a device on purpose (corrupt a disk file while the
   * guest is between writing and verifying) and check the test notices.
   */
  beforeReset?: (vm: TestVm) => void | Promise<void>;
}

export interface FrameworkOptions {
  /** Each test gets a directory below this for its logs and disk files. */
  tmpDir: string;
  artifacts?: ArtifactStore;
  /** The propolis-server command (program and leading arguments). */
  serverCommand?: readonly string[];
  serverLogLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  defaultGuestCpus?: number;
  defaultGuestMemoryMib?: number;
  defaultGuestArtifact?: string;
  defaultBootromArtifact?: string;
  defaultBootDiskInterface?: DiskInterface;
  /** What the host can run (default: read from /proc). */
  host?: HostInfo;
  hooks?: FrameworkHooks;
}

export class Framework {
  readonly artifacts: ArtifactStore;
  readonly host: HostInfo;

  constructor(readonly opts: FrameworkOptions) {
    this.artifacts = opts.artifacts ?? new ArtifactStore();
    this.host = opts.host ?? hostInfo();
  }

  /** A context for the test `module::name`, logging under tmpDir/module/name. */
  context(module: string, name: string): TestContext {
    return new TestContext(this, join(this.opts.tmpDir, module, name));
  }
}

export interface SpawnOptions {
  /** Do not take the guest's host requirement into account (for tests that do not boot it). */
  ignoreGuestRequirement?: boolean;
}

export class TestContext {
  private readonly vms: TestVm[] = [];
  private closed = false;

  constructor(
    readonly framework: Framework,
    readonly logDir: string,
  ) {}

  get host(): HostInfo {
    return this.framework.host;
  }

  get artifacts(): ArtifactStore {
    return this.framework.artifacts;
  }

  /** A config with the run's defaults (the original's `vm_config_builder`). */
  vmConfig(name: string): VmConfig {
    const o = this.framework.opts;
    return new VmConfig(
      name,
      {
        cpus: o.defaultGuestCpus ?? 2,
        memoryMib: o.defaultGuestMemoryMib ?? 512,
        guest: o.defaultGuestArtifact ?? 'testos',
        bootrom: o.defaultBootromArtifact ?? 'seabios',
        bootDiskInterface: o.defaultBootDiskInterface ?? 'nvme',
      },
      this.framework.artifacts,
    );
  }

  /** Skip the test (never returns). */
  skip(reason: string): never {
    throw new PhdSkip(reason);
  }

  /** Why a VM with this config cannot be booted here, or undefined. */
  unbootableReason(config: VmConfig): string | undefined {
    const guest = config.guestArtifact;
    const why = guest.os.unavailableOn(this.host);
    if (why) return `guest ${guest.name}: ${why}`;
    return undefined;
  }

  /**
   * A VM from `config`, not yet ensured: its disks created and its own
   * server started. Skips the test if its guest cannot boot here.
   */
  async spawnVm(config: VmConfig, opts: SpawnOptions = {}): Promise<TestVm> {
    if (!opts.ignoreGuestRequirement) {
      const why = this.unbootableReason(config);
      if (why) this.skip(why);
    }
    mkdirSync(this.logDir, { recursive: true });
    const bootrom = this.framework.artifacts.path(config.bootromArtifact);
    const disks = DiskSet.create(config.diskRequests, this.framework.artifacts, this.logDir, config.name);
    try {
      const spec = config.toSpec(disks.material);
      return await this.startVm(config.name, spec, config.guestArtifact.os, disks, bootrom);
    } catch (e) {
      disks.release();
      throw e;
    }
  }

  /** `spawnVm` with the run's default config. */
  spawnDefaultVm(name: string): Promise<TestVm> {
    return this.spawnVm(this.vmConfig(name));
  }

  /**
   * A VM with the same spec and the same disks as `vm` (the original's
   * `spawn_successor_vm`): started once `vm` has stopped, it sees what
   * `vm`'s guest wrote.
   */
  async spawnSuccessorVm(name: string, vm: TestVm): Promise<TestVm> {
    const bootrom = this.bootromOf(vm);
    vm.disks.retain();
    try {
      return await this.startVm(name, vm.spec, vm.guestOs, vm.disks, bootrom);
    } catch (e) {
      vm.disks.release();
      throw e;
    }
  }

  private readonly bootroms = new WeakMap<TestVm, string>();

  private bootromOf(vm: TestVm): string {
    const b = this.bootroms.get(vm);
    if (!b) throw new Error(`${vm.name} was not spawned by this context`);
    return b;
  }

  private async startVm(
    name: string,
    spec: TestVm['spec'],
    os: TestVm['guestOs'],
    disks: DiskSet,
    bootrom: string,
  ): Promise<TestVm> {
    if (this.closed) throw new Error(`the test is over (timed out?); not starting ${name}`);
    if (this.vms.some((v) => v.name === name)) throw new Error(`a VM named ${name} already exists in this test`);
    // A kernel-booting guest (the `linux` artifact) goes through the server's direct-boot flags.
    const kernel =
      os === this.framework.artifacts.guest('linux').os ? this.framework.artifacts.linuxKernel() : undefined;
    const server = await ServerProcess.start({
      ...(this.framework.opts.serverCommand ? { command: this.framework.opts.serverCommand } : {}),
      ...(kernel
        ? {
            directBoot: {
              kernel: kernel.kernel,
              initrd: kernel.initramfs,
              cmdline: kernel.cmdline,
              linuxbootRom: kernel.linuxbootRom,
            },
          }
        : {}),
      bootrom,
      logPath: join(this.logDir, `${name}.server.log`),
      logLevel: this.framework.opts.serverLogLevel ?? 'info',
    });
    const hooks = this.framework.opts.hooks;
    const vm = new TestVm({
      name,
      logDir: this.logDir,
      server,
      spec,
      guestOs: os,
      disks,
      ...(hooks?.beforeReset ? { beforeReset: hooks.beforeReset } : {}),
    });
    this.vms.push(vm);
    this.bootroms.set(vm, bootrom);
    return vm;
  }

  /** Every VM this test spawned, in order. */
  get spawned(): readonly TestVm[] {
    return this.vms;
  }

  /** Tear down every VM, all at once. Never throws. */
  async teardown(): Promise<void> {
    this.closed = true;
    await Promise.all(this.vms.map((vm) => vm.teardown()));
  }
}
