// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// One running propolis-server: the instance (Vm), the API listener and the
// optional metrics listener, put together. main.ts runs one from the
// command line; tests run them in-process.
//
// Threading: main thread.

import type { Server } from 'node:http';
import type { DirectBootConfig } from '../../../lib/propolis/src/platform/direct-boot.js';
import type { Logger } from './log.js';
import { Metrics, serveMetrics } from './metrics.js';
import { ApiServer } from './server.js';
import type { DriverHooks } from './vm/state-driver.js';
import { Vm } from './vm/vm.js';

export interface SocketAddr {
  host: string;
  port: number;
}

export interface PropolisServerOptions {
  bootrom: Uint8Array;
  bootromVersion?: string;
  listen: SocketAddr;
  /** Where to serve Prometheus metrics on a listener of their own; none when absent. */
  metrics?: SocketAddr;
  kvmPath?: string;
  /**
   * Boot this Linux kernel directly (as QEMU's -kernel/-initrd/-append) in
   * every VM the server creates, ahead of the spec's boot order. An
   * extension: upstream Propolis has no such option.
   */
  directBoot?: DirectBootConfig;
  log: Logger;
  /** Test seams on the state driver (holding a start open). */
  hooks?: DriverHooks;
}

export interface RunningServer {
  readonly vm: Vm;
  readonly port: number;
  readonly metricsPort: number | undefined;
  /** Stop the VM in order, then close the listeners. */
  shutdown(): Promise<void>;
}

export async function startPropolisServer(opts: PropolisServerOptions): Promise<RunningServer> {
  const log = opts.log;
  const vm = new Vm({
    bootrom: opts.bootrom,
    log,
    ...(opts.bootromVersion === undefined ? {} : { bootromVersion: opts.bootromVersion }),
    ...(opts.kvmPath === undefined ? {} : { kvmPath: opts.kvmPath }),
    ...(opts.directBoot === undefined ? {} : { directBoot: opts.directBoot }),
    ...(opts.hooks === undefined ? {} : { hooks: opts.hooks }),
  });
  const metrics = new Metrics();
  const api = new ApiServer({ vm, metrics, log });
  const port = await api.listen(opts.listen.host, opts.listen.port);
  let metricsServer: Server | undefined;
  let metricsPort: number | undefined;
  if (opts.metrics) {
    try {
      const m = await serveMetrics(
        opts.metrics.host,
        opts.metrics.port,
        metrics,
        vm,
        log.child({ component: 'metrics' }),
      );
      metricsServer = m.server;
      metricsPort = m.port;
    } catch (e) {
      await api.close();
      throw e;
    }
  }
  log.info('propolis-server listening', {
    address: opts.listen.host,
    port,
    ...(metricsPort === undefined ? {} : { metrics_port: metricsPort }),
  });
  let closing: Promise<void> | undefined;
  return {
    vm,
    port,
    metricsPort,
    shutdown(): Promise<void> {
      closing ??= (async () => {
        await vm.shutdown();
        await api.close();
        if (metricsServer) {
          metricsServer.closeAllConnections();
          await new Promise<void>((r) => metricsServer.close(() => r()));
        }
      })();
      return closing;
    },
  };
}
