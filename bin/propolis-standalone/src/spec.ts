// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// From the standalone's TOML to a machine through the same code path as
// propolis-server: the configuration becomes an instance spec (the API's
// `InstanceSpec`), `pcConfigFromSpec` validates it with the server's rules
// and turns it into a PcConfig, and only what a spec cannot say is added
// afterwards:
//   - the QEMU debug-exit devices of the test guests;
//   - `mem-async` block devices (an empty in-memory disk of a given size:
//     the spec's in-memory backend is a base64 blob of the contents), which
//     are added as disks after the spec's; a boot order naming one is then
//     applied as the standalone's own rather than as spec boot settings;
//   - backend options the spec lacks (`skip_flush`): each file disk keeps
//     the backend the standalone described, with the same path, read-only
//     flag, block size and workers the spec carried;
//   - NIC queue sizes, and the standalone's SMBIOS defaults.
// The `[cloudinit]` volume is a spec disk over a blob backend (cloudinit.ts).
//
// Threading: main thread.

import { randomUUID } from 'node:crypto';
import type { Component, InstanceSpec } from '../../../lib/api-types/src/index.js';
import type { BackendDescriptor } from '../../../lib/propolis/src/block/types.js';
import { PciPath } from '../../../lib/propolis/src/hw/pci/path.js';
import { COM_PORTS } from '../../../lib/propolis/src/hw/uart/lpc-uart.js';
import { cpuidToSpec, pcConfigFromSpec } from '../../../lib/propolis/src/platform/from-spec.js';
import type { PcConfig, PcDisk } from '../../../lib/propolis/src/platform/pc.js';
import { addCloudInitDisk, cloudInitBackend, cloudInitImage } from './cloudinit.js';
import type { StandaloneConfig } from './config.js';

function pciPath(p: string): { bus: number; device: number; function: number } {
  const x = PciPath.parse(p);
  return { bus: x.bus, device: x.device, function: x.func };
}

/** The part of the configuration an instance spec can express. */
export function standaloneSpec(cfg: StandaloneConfig): { spec: InstanceSpec; specBootOrder: boolean } {
  const components: Record<string, Component> = {};
  for (const num of Object.keys(COM_PORTS) as (keyof typeof COM_PORTS)[]) {
    components[num] = { type: 'serial_port', component: { num } };
  }
  // Built once here (reading any `-path` files), whichever way it is attached.
  const ciImage = cfg.cloudInit ? cloudInitImage(cfg.cloudInit) : undefined;
  const specBackend = (name: string): Component | undefined => {
    const b = cfg.blockDevs.find((x) => x.name === name);
    if (b?.type === 'file') {
      return {
        type: 'file_storage_backend',
        component: { path: b.path, readonly: b.readOnly, block_size: b.blockSize, workers: b.workers },
      };
    }
    // config.ts refuses a cloudinit block_dev without [cloudinit].
    return b?.type === 'cloudinit' && ciImage ? cloudInitBackend(ciImage) : undefined;
  };
  const specDisks = new Set<string>();
  for (const d of cfg.devices) {
    switch (d.driver) {
      case 'pci-virtio-block':
      case 'pci-nvme': {
        const backend = specBackend(d.blockDev);
        if (!backend) break; // a mem-async disk: added after the spec (see the file comment)
        components[d.blockDev] = backend;
        components[d.name] =
          d.driver === 'pci-nvme'
            ? {
                type: 'nvme_disk',
                component: {
                  backend_id: d.blockDev,
                  pci_path: pciPath(d.pciPath),
                  // The seed's TOML: the device name, space-padded to 20 bytes.
                  serial_number: Array.from(Buffer.from(d.name.padEnd(20, ' '), 'latin1')),
                },
              }
            : { type: 'virtio_disk', component: { backend_id: d.blockDev, pci_path: pciPath(d.pciPath) } };
        specDisks.add(d.name);
        break;
      }
      case 'pci-virtio-viona':
        components[`${d.name}-backend`] = { type: 'virtio_network_backend', component: { vnic_name: d.vnic } };
        components[d.name] = {
          type: 'virtio_nic',
          component: {
            backend_id: `${d.name}-backend`,
            interface_id: '00000000-0000-0000-0000-000000000000',
            pci_path: pciPath(d.pciPath),
          },
        };
        break;
      case 'qemu-pvpanic':
        components[d.name] = { type: 'qemu_pvpanic', component: { enable_isa: d.enableIsa } };
        break;
      case 'qemu-isa-debug-exit':
        break; // not a spec component
    }
  }
  if (ciImage && !cfg.blockDevs.some((b) => b.type === 'cloudinit')) addCloudInitDisk(cfg, components, ciImage);
  const order = cfg.main.bootOrder;
  const specBootOrder = order !== undefined && order.every((n) => specDisks.has(n));
  if (order && specBootOrder) {
    components['boot-settings'] = { type: 'boot_settings', component: { order: order.map((id) => ({ id })) } };
  }
  const spec: InstanceSpec = {
    board: {
      cpus: cfg.main.cpus,
      memory_mb: cfg.main.memory,
      chipset: { type: 'i440_fx', value: { enable_pcie: false } },
      ...(cfg.cpuid ? { cpuid: cpuidToSpec(cfg.cpuid) } : {}),
    },
    components,
  };
  return { spec, specBootOrder };
}

/** The standalone's machine: the spec's PcConfig plus what a spec cannot say. */
export function standalonePcConfig(
  cfg: StandaloneConfig,
  backends: ReadonlyMap<string, BackendDescriptor>,
  opts: { bootrom: Uint8Array; kvmPath: string },
): PcConfig {
  const { spec, specBootOrder } = standaloneSpec(cfg);
  const pc = pcConfigFromSpec(spec, {
    name: cfg.main.name,
    uuid: randomUUID(),
    bootrom: opts.bootrom,
    kvmPath: opts.kvmPath,
    ...(cfg.main.bootromVersion === undefined ? {} : { bootromVersion: cfg.main.bootromVersion }),
  });
  const blockDevOf = new Map(cfg.devices.flatMap((d) => ('blockDev' in d ? [[d.name, d.blockDev] as const] : [])));
  // File disks keep the standalone's own backend description (skip_flush); mem-async disks come after.
  const disks: PcDisk[] = (pc.disks ?? []).map((d) => ({
    ...d,
    backend: backends.get(blockDevOf.get(d.name) ?? '') ?? d.backend,
  }));
  for (const d of cfg.devices) {
    if ((d.driver === 'pci-virtio-block' || d.driver === 'pci-nvme') && !disks.some((x) => x.name === d.name)) {
      disks.push({
        name: d.name,
        driver: d.driver === 'pci-nvme' ? 'nvme' : 'virtio',
        pciPath: d.pciPath,
        backend: backends.get(d.blockDev) as BackendDescriptor,
      });
    }
  }
  const nics = (pc.nics ?? []).map((n) => {
    const d = cfg.devices.find((x) => x.name === n.name);
    return d?.driver === 'pci-virtio-viona'
      ? {
          ...n,
          ...(d.rxQueueSize === undefined ? {} : { rxQueueSize: d.rxQueueSize }),
          ...(d.txQueueSize === undefined ? {} : { txQueueSize: d.txQueueSize }),
        }
      : n;
  });
  return {
    ...pc,
    // The standalone's exact CPUID profile (the spec carries only the leaves in its ranges).
    ...(cfg.cpuid ? { cpuid: cfg.cpuid } : {}),
    standalone: true,
    disks,
    nics,
    ...(!specBootOrder && cfg.main.bootOrder ? { bootOrder: cfg.main.bootOrder } : {}),
    debugExits: cfg.devices.flatMap((d) =>
      d.driver === 'qemu-isa-debug-exit' ? [{ name: d.name, port: d.iobase, size: d.iosize }] : [],
    ),
  };
}
