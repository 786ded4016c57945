// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Metrics in the Prometheus text exposition format (version 0.0.4), served
// at `GET /metrics` on the API port and on the `--metric-addr` listener.
// The seed reports to Oximeter; a Prometheus scrape endpoint is this
// host's equivalent. What is reported:
//
//   propolis_http_requests_total{operation,status}   API requests answered
//   propolis_instance_state{state}                   1 for the current state, else 0
//   propolis_instance_generation                     the state generation
//   propolis_instances_created_total                 ensures that created a VM
//   propolis_instance_reboots_total                  completed reboots of this VM
//   propolis_vcpu_exits_total{vcpu,kind}             exits handled in userspace (Machine.stats)
//   propolis_block_*{device}                         virtio-block and NVMe counters
//   propolis_net_*{device}                           virtio-net frames, bytes and errors
//   propolis_serial_*                                COM1 bytes, clients
//   propolis_pvpanic_reports_total{kind}             guest panic reports
//
// Counters are read from the devices' shared counters when scraped, so the
// VM pays nothing for being measured.
//
// Threading: main thread.

import { createServer, type Server } from 'node:http';
import { InstanceState as InstanceStateSchema } from '../../../lib/api-types/src/index.js';
import type { InstanceState } from '../../../lib/api-types/src/index.js';
import type { Logger } from './log.js';
import type { Vm } from './vm/vm.js';

/** Every published state, in the schema's order. */
const STATES: readonly InstanceState[] = InstanceStateSchema.anyOf.map((l) => l.const);

type Labels = Record<string, string | number>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * One exposition document, metric family by family: the samples of a family
 * are kept together under its HELP/TYPE lines whatever order they are added
 * in (several devices add to the same families), as the text format requires.
 */
class Exposition {
  private readonly families = new Map<string, string[]>();

  family(name: string, type: 'counter' | 'gauge', help: string): void {
    if (!this.families.has(name)) this.families.set(name, [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]);
  }

  sample(name: string, labels: Labels, value: number): void {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${escapeLabel(String(v))}"`)
      .join(',');
    const lines = this.families.get(name);
    if (!lines) throw new Error(`metric ${name} sampled before its family was declared`);
    lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }

  text(): string {
    return `${[...this.families.values()].flat().join('\n')}\n`;
  }
}

interface BlockStats {
  requests: number;
  ioerr: number;
  unsupp: number;
  noStatus: number;
  backendErrors: number;
  merged: number;
  calls: number;
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class Metrics {
  private readonly http = new Map<string, { operation: string; status: number; count: number }>();

  countRequest(operation: string, status: number): void {
    const k = `${operation} ${status}`;
    const e = this.http.get(k);
    if (e) e.count++;
    else this.http.set(k, { operation, status, count: 1 });
  }

  render(vm: Vm): string {
    const x = new Exposition();
    x.family('propolis_http_requests_total', 'counter', 'API requests answered, by operation and status.');
    for (const e of this.http.values()) {
      x.sample('propolis_http_requests_total', { operation: e.operation, status: e.status }, e.count);
    }
    x.family('propolis_instances_created_total', 'counter', 'Instance ensures that began creating a VM.');
    x.sample('propolis_instances_created_total', {}, vm.created);

    const pub = vm.publisher;
    if (pub) {
      x.family('propolis_instance_state', 'gauge', 'The instance state: 1 for the current one, 0 for the others.');
      for (const s of STATES) x.sample('propolis_instance_state', { state: s }, pub.value.state === s ? 1 : 0);
      x.family('propolis_instance_generation', 'gauge', 'The generation of the published instance state.');
      x.sample('propolis_instance_generation', {}, pub.value.gen);
    }
    const active = vm.active;
    if (active) {
      const { pc, driver, serial } = active;
      x.family('propolis_instance_reboots_total', 'counter', 'Completed reboots (API or guest) of this VM.');
      x.sample('propolis_instance_reboots_total', {}, driver.reboots);

      x.family('propolis_vcpu_exits_total', 'counter', 'vCPU exits handled in userspace, by vCPU and kind.');
      pc.machine.stats().forEach((st, vcpu) => {
        for (const [kind, n] of Object.entries(st))
          x.sample('propolis_vcpu_exits_total', { vcpu, kind: snake(kind) }, n);
      });

      for (const [name, dev] of pc.disks) {
        const io = (dev as { ioStats?: { readBytes: number; writeBytes: number } }).ioStats;
        if (io) {
          x.family('propolis_block_bytes_total', 'counter', 'Bytes read and written by the guest, by device.');
          x.sample('propolis_block_bytes_total', { device: name, op: 'read' }, io.readBytes);
          x.sample('propolis_block_bytes_total', { device: name, op: 'write' }, io.writeBytes);
        }
        const stats = (dev as { stats?: BlockStats }).stats;
        if (stats) {
          x.family('propolis_block_requests_total', 'counter', 'Block requests the guest submitted, by device.');
          x.sample('propolis_block_requests_total', { device: name }, stats.requests);
          x.family('propolis_block_backend_calls_total', 'counter', 'Backend calls made for reads and writes.');
          x.sample('propolis_block_backend_calls_total', { device: name }, stats.calls);
          x.family(
            'propolis_block_merged_requests_total',
            'counter',
            'Requests merged into a neighbouring request backend call.',
          );
          x.sample('propolis_block_merged_requests_total', { device: name }, stats.merged);
          x.family('propolis_block_errors_total', 'counter', 'Block requests that failed, by device and kind.');
          x.sample('propolis_block_errors_total', { device: name, kind: 'ioerr' }, stats.ioerr);
          x.sample('propolis_block_errors_total', { device: name, kind: 'unsupported' }, stats.unsupp);
          x.sample('propolis_block_errors_total', { device: name, kind: 'no_status' }, stats.noStatus);
          x.sample('propolis_block_errors_total', { device: name, kind: 'backend' }, stats.backendErrors);
        }
        const nvme = (dev as { controller?: { badDoorbells: number; badRegisterWrites: number } }).controller;
        if (nvme) {
          x.family('propolis_nvme_ignored_writes_total', 'counter', 'NVMe doorbell and register writes ignored.');
          x.sample('propolis_nvme_ignored_writes_total', { device: name, kind: 'doorbell' }, nvme.badDoorbells);
          x.sample('propolis_nvme_ignored_writes_total', { device: name, kind: 'register' }, nvme.badRegisterWrites);
        }
      }

      for (const [name, dev] of pc.nics) {
        const stats = (dev as { stats?: Record<string, number> }).stats;
        if (!stats) continue;
        x.family('propolis_net_frames_total', 'counter', 'Frames moved, by device and direction.');
        x.family('propolis_net_bytes_total', 'counter', 'Bytes moved, by device and direction.');
        x.family('propolis_net_events_total', 'counter', 'Other virtio-net counters (drops, errors, control).');
        for (const [k, v] of Object.entries(stats)) {
          if (k === 'txFrames' || k === 'rxFrames') {
            x.sample('propolis_net_frames_total', { device: name, direction: k.slice(0, 2) }, v);
          } else if (k === 'txBytes' || k === 'rxBytes') {
            x.sample('propolis_net_bytes_total', { device: name, direction: k.slice(0, 2) }, v);
          } else {
            x.sample('propolis_net_events_total', { device: name, kind: snake(k) }, v);
          }
        }
      }

      x.family('propolis_serial_output_bytes_total', 'counter', 'Bytes the guest wrote to COM1.');
      x.sample('propolis_serial_output_bytes_total', {}, serial.history.total);
      x.family('propolis_serial_clients', 'gauge', 'Serial console websocket clients attached.');
      x.sample('propolis_serial_clients', {}, serial.clientCount);
      x.family('propolis_serial_clients_dropped_total', 'counter', 'Serial clients closed for falling behind.');
      x.sample('propolis_serial_clients_dropped_total', {}, serial.droppedClients);

      if (pc.pvpanic) {
        const c = pc.pvpanic.counts();
        x.family('propolis_pvpanic_reports_total', 'counter', 'Guest panic reports through pvpanic, by kind.');
        x.sample('propolis_pvpanic_reports_total', { kind: 'panicked' }, c.panicked);
        x.sample('propolis_pvpanic_reports_total', { kind: 'crash_loaded' }, c.crashLoaded);
      }
    }
    return x.text();
  }
}

/** The `--metric-addr` listener: `/metrics` only. */
export async function serveMetrics(
  host: string,
  port: number,
  metrics: Metrics,
  vm: Vm,
  log: Logger,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    try {
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(metrics.render(vm));
    } catch (e) {
      log.error('rendering metrics failed', { err: e });
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}
