// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// firmware: the ACPI tables the VMM builds reach the guest through fw_cfg
// and SeaBIOS's table loader intact. The test OS walks RSDP → XSDT and
// prints each table's signature, length and OEM ID (checksums verified);
// the FADT, MADT, DSDT and FACS must all be there, with the OEM ID the
// VMM writes and exactly the lengths lib/propolis's table builder
// produces for this VM (the MADT's depends on the vCPU count).

import { buildAcpi, OEM_ID } from '../../../lib/propolis/src/firmware/acpi/tables.js';
import { check, PhdAssertion, phdTest } from '../../framework/src/index.js';
import { expectEqual, launchAndBoot, testosDiskConfig } from './helpers.js';

interface GuestTable {
  sig: string;
  length: number;
  oem: string;
}

function parseAcpi(out: string): GuestTable[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(\S{4}) length=(\d+) oem=(.*)$/.exec(l.trim());
      if (!m) throw new PhdAssertion(`unexpected line from \`acpi\`: ${JSON.stringify(l)}`);
      return { sig: m[1]!, length: Number(m[2]), oem: m[3]! };
    });
}

export const FIRMWARE_TESTS = [
  phdTest('firmware', 'acpi_tables_present_test', async (ctx) => {
    const cpus = 4;
    const memoryMib = 512;
    const vm = await ctx.spawnVm(
      testosDiskConfig(ctx, 'acpi_tables_present_test', 'virtio').cpus(cpus).memoryMib(memoryMib),
    );
    await launchAndBoot(vm);
    const tables = parseAcpi(await vm.runShellCommand('acpi'));
    const built = buildAcpi({
      cpus,
      lowmemTop: memoryMib * 1024 * 1024,
      highmem: 0,
      serialPorts: ['com1', 'com2', 'com3', 'com4'],
      enablePcie: false,
    });
    for (const sig of ['FACP', 'APIC', 'DSDT', 'FACS']) {
      const t = tables.find((x) => x.sig === sig);
      check(t, `${vm.name}: no ${sig} table in the guest; it sees ${tables.map((x) => x.sig).join(', ')}`);
      const want = built.layout.find((l) => l.signature === sig);
      check(want, `the VMM's table builder makes no ${sig}`);
      expectEqual(t.length, want.length, `length of ${sig} in the guest`);
      if (sig !== 'FACS') expectEqual(t.oem, OEM_ID.trimEnd(), `OEM ID of ${sig}`);
    }
    // The root table the firmware installed: the VMM's XSDT (SeaBIOS may add an RSDT of its own).
    check(
      tables.some((t) => t.sig === 'XSDT' || t.sig === 'RSDT'),
      `${vm.name}: no root table in ${tables.map((x) => x.sig).join(', ')}`,
    );
  }),
];
