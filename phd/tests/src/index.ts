// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The PHD test catalogue, in the order the runner lists and runs it, and
// the original's tests that are not here yet (NOT_WRITTEN, which the
// runner prints after its summary).
//
// Threading: none; constant data.

import type { PhdTestCase } from '../../framework/src/index.js';
import { BOOT_ORDER_TESTS } from './boot-order.js';
import { CPUID_TESTS } from './cpuid.js';
import { DISK_TESTS } from './disk.js';
import { FIRMWARE_TESTS } from './firmware.js';
import { FRAMEWORK_TESTS } from './framework.js';
import { HW_TESTS } from './hw.js';
import { LINUX_TESTS } from './linux.js';
import { NMI_TESTS } from './nmi.js';
import { SERVER_STATE_MACHINE_TESTS } from './server-state-machine.js';
import { SMOKE_TESTS } from './smoke.js';

export const CATALOGUE: readonly PhdTestCase[] = [
  ...SMOKE_TESTS,
  ...SERVER_STATE_MACHINE_TESTS,
  ...FRAMEWORK_TESTS,
  ...HW_TESTS,
  ...DISK_TESTS,
  ...BOOT_ORDER_TESTS,
  ...FIRMWARE_TESTS,
  ...CPUID_TESTS,
  ...NMI_TESTS,
  ...LINUX_TESTS,
];

/** Tests of the original PHD not in this catalogue, and why. */
export const NOT_WRITTEN: readonly { tests: string; why: string }[] = [
  {
    tests:
      'migrate::* (smoke_test, serial_history, from_base::*, running_process::*, multiple_migrations, …), ' +
      'cpuid::cpuid_migrate_smoke_test, disk::in_memory_backend_migration_test, hyperv_lifecycle_test',
    why: 'live migration is not built in this server yet (it answers 501)',
  },
  {
    tests: 'crucible::*, server_state_machine::stop_while_blocked_on_start_test (skipped)',
    why: 'no Crucible on this host',
  },
  {
    tests: 'hyperv::*, stats::instance_vcpu_stats, cpuid::guest_cpu_topo_test',
    why: 'need a Linux guest and host features not modelled yet',
  },
  { tests: 'vsock::*', why: 'virtio-socket is not built yet' },
  {
    tests: 'boot_order::{guest_can_adjust_boot_order, boot_order_source_priority, nvme_boot_option_description}',
    why: 'UEFI (OVMF) boot variables; OVMF cannot run on these hosts',
  },
];

export function findTest(fullName: string): PhdTestCase {
  const t = CATALOGUE.find((x) => x.fullName === fullName);
  if (!t) throw new Error(`no test ${fullName}`);
  return t;
}
