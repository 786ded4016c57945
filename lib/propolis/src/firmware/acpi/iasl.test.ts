// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The generated tables checked by ACPICA's own tools (Debian's
// acpica-tools, fetched into .cache on first use; no tools means failure,
// not a skip):
//
//   - `iasl -d` disassembles every table, pointers resolved as firmware
//     would resolve them, without errors, warnings or checksum complaints;
//   - the disassembled DSDT recompiles with 0 errors, 0 warnings and
//     0 remarks, and disassembling that again gives the same ASL;
//   - the disassembled data tables recompile to our bytes (all but the
//     compiler ID fields and the checksum, which iasl sets for itself);
//   - the RSDP (which `iasl -d` does not read from a file) compiled from its
//     field values by iasl equals ours, checksums included;
//   - `acpiexec` runs the PCI link methods against a simulated PIRQ
//     register block.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debianFile } from '../../testing/debian.js';
import type { AcpiMachine } from './machine.js';
import { buildAcpi, resolveAcpi } from './tables.js';

const GiB = 1024 * 1024 * 1024;
const TABLES_AT = 0x7ffe_0000n;
const RSDP_AT = 0xf_5a40n;

interface Run {
  status: number;
  output: string;
}

function run(bin: string, args: string[], cwd: string): Run {
  try {
    const out = execFileSync(bin, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    return { status: 0, output: out };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string; message: string };
    return { status: err.status ?? -1, output: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}` };
  }
}

/** Problems iasl reports in its output or marks in a disassembly. */
function problems(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /incorrect checksum|error|warning|invalid|unknown|\*\*\*\*/i.test(l))
    .filter((l) => !/Compilation successful\.\s+0 Errors, 0 Warnings/.test(l));
}

/** iasl's merged stdout+stderr (it prints some diagnostics only to stderr). */
function iasl(bin: string, args: string[], cwd: string): Run {
  try {
    const out = execFileSync('sh', ['-c', '"$0" "$@" 2>&1', bin, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
    return { status: 0, output: out };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; message: string };
    return { status: err.status ?? -1, output: `${err.stdout ?? ''}${err.message}` };
  }
}

/** Header fields iasl fills with its own identity when it compiles a table. */
const COMPILER_FIELDS = new Set([9, 28, 29, 30, 31, 32, 33, 34, 35]);

function bodyOf(dsl: string): string {
  return dsl.slice(dsl.indexOf('DefinitionBlock'));
}

const cases: { title: string; m: AcpiMachine }[] = [
  { title: '1 vCPU', m: { cpus: 1, lowmemTop: 1 * GiB, highmem: 0, serialPorts: ['com1'], enablePcie: false } },
  {
    title: '2 vCPUs, PCIe',
    m: { cpus: 2, lowmemTop: 3 * GiB, highmem: 1 * GiB, serialPorts: ['com1', 'com2'], enablePcie: true },
  },
  {
    title: '32 vCPUs, all serial ports, PCIe',
    m: {
      cpus: 32,
      lowmemTop: 3 * GiB,
      highmem: 61 * GiB,
      serialPorts: ['com1', 'com2', 'com3', 'com4'],
      enablePcie: true,
    },
  },
];

describe('ACPI tables under ACPICA tools', () => {
  let iaslBin = '';
  let acpiexecBin = '';
  let dir = '';

  before(() => {
    iaslBin = debianFile('acpica-tools', 'usr/bin/iasl');
    acpiexecBin = debianFile('acpica-tools', 'usr/bin/acpiexec');
    dir = mkdtempSync(join(tmpdir(), 'propolis-acpi-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the problem filter catches a corrupted table (control)', () => {
    const b = buildAcpi(cases[0]!.m);
    const fadt = resolveAcpi(b, TABLES_AT, RSDP_AT).standalone.get('FACP')!;
    fadt[100] = fadt[100]! ^ 0x55;
    const sub = mkdtempSync(join(dir, 'bad-'));
    writeFileSync(join(sub, 'facp.dat'), fadt);
    const r = iasl(iaslBin, ['-d', 'facp.dat'], sub);
    const found = problems(r.output + readFileSync(join(sub, 'facp.dsl'), 'utf8'));
    assert(
      found.some((l) => /incorrect checksum/i.test(l)),
      `iasl output did not flag the checksum:\n${r.output}`,
    );
  });

  for (const { title, m } of cases) {
    it(`${title}: every table disassembles cleanly and recompiles to the same content`, () => {
      const sub = mkdtempSync(join(dir, 'case-'));
      const resolved = resolveAcpi(buildAcpi(m), TABLES_AT, RSDP_AT);
      const sigs = [...resolved.standalone.keys()].filter((s) => s !== 'RSDP');
      assert.deepEqual(sigs.sort(), ['APIC', 'DSDT', 'FACP', 'FACS', ...(m.enablePcie ? ['MCFG'] : []), 'XSDT'].sort());

      for (const sig of sigs) {
        const file = `${sig.toLowerCase()}.dat`;
        const ours = resolved.standalone.get(sig)!;
        writeFileSync(join(sub, file), ours);
        const d = iasl(iaslBin, ['-d', file], sub);
        assert.equal(d.status, 0, `iasl -d ${file} failed:\n${d.output}`);
        const dsl = readFileSync(join(sub, `${sig.toLowerCase()}.dsl`), 'utf8');
        assert.deepEqual(problems(d.output), [], `iasl -d ${file}:\n${d.output}`);
        assert.deepEqual(problems(dsl), [], `${file} disassembly`);

        if (sig === 'DSDT') {
          // Recompile without optimizations, so the round trip is exact at the ASL level.
          const c = iasl(iaslBin, ['-oa', '-p', 'dsdt-re', 'dsdt.dsl'], sub);
          assert.match(c.output, /Compilation successful\.\s+0 Errors, 0 Warnings, 0 Remarks/, c.output);
          const again = iasl(iaslBin, ['-d', 'dsdt-re.aml'], sub);
          assert.equal(again.status, 0, again.output);
          assert.equal(bodyOf(readFileSync(join(sub, 'dsdt-re.dsl'), 'utf8')), bodyOf(dsl), 'ASL round trip');
        } else {
          const c = iasl(iaslBin, ['-p', `${sig.toLowerCase()}-re`, `${sig.toLowerCase()}.dsl`], sub);
          assert.match(c.output, /Compilation successful\.\s+0 Errors, 0 Warnings, 0 Remarks/, c.output);
          const theirs = readFileSync(join(sub, `${sig.toLowerCase()}-re.aml`));
          assert.equal(theirs.length, ours.length, `${sig} length`);
          const diffs = [...ours.keys()].filter(
            (i) => ours[i] !== theirs[i] && !(sig !== 'FACS' && COMPILER_FIELDS.has(i)),
          );
          assert.deepEqual(diffs, [], `${sig}: bytes iasl encodes differently`);
        }
      }
    });
  }

  it('iasl compiles the RSDP from its fields to exactly our bytes', () => {
    const rsdp = resolveAcpi(buildAcpi(cases[1]!.m), TABLES_AT, RSDP_AT).standalone.get('RSDP')!;
    const v = new DataView(rsdp.buffer, rsdp.byteOffset);
    const hex = (n: number | bigint, w: number): string => n.toString(16).toUpperCase().padStart(w, '0');
    const src = [
      `[0008]                          Signature : "RSD PTR "`,
      `[0001]                           Checksum : 00`,
      `[0006]                             Oem ID : "${String.fromCharCode(...rsdp.subarray(9, 15))}"`,
      `[0001]                           Revision : ${hex(rsdp[15]!, 2)}`,
      `[0004]                       RSDT Address : ${hex(v.getUint32(16, true), 8)}`,
      `[0004]                             Length : ${hex(v.getUint32(20, true), 8)}`,
      `[0008]                       XSDT Address : ${hex(v.getBigUint64(24, true), 16)}`,
      `[0001]                  Extended Checksum : 00`,
      `[0003]                           Reserved : 000000`,
      '',
    ].join('\n');
    const sub = mkdtempSync(join(dir, 'rsdp-'));
    writeFileSync(join(sub, 'rsdp.asl'), src);
    const c = iasl(iaslBin, ['-p', 'rsdp', 'rsdp.asl'], sub);
    assert.match(c.output, /Compilation successful\.\s+0 Errors, 0 Warnings, 0 Remarks/, c.output);
    assert.equal(v.getBigUint64(24, true), TABLES_AT + BigInt(buildAcpi(cases[1]!.m).layout.at(-1)!.offset));
    assert.deepEqual(new Uint8Array(readFileSync(join(sub, 'rsdp.aml'))), rsdp);
  });

  it('acpiexec runs the link methods over a simulated PIRQ block', () => {
    const sub = mkdtempSync(join(dir, 'exec-'));
    const resolved = resolveAcpi(buildAcpi(cases[1]!.m), TABLES_AT, RSDP_AT);
    for (const sig of ['DSDT', 'FACP', 'APIC'])
      writeFileSync(join(sub, `${sig.toLowerCase()}.dat`), resolved.standalone.get(sig)!);
    const steps: [string, RegExp][] = [
      ['evaluate \\_SB.PCI0._HID', /\[Integer\] = 00000000030AD041/],
      ['evaluate \\_SB.PCI0.LPC._ADR', /\[Integer\] = 0000000000010000/],
      // Simulated config space starts at 0: routed to IRQ 0, enabled.
      ['evaluate \\_SB.LNKA._STA', /\[Integer\] = 000000000000000B/],
      ['evaluate \\_SB.LNKB._SRS (89 06 00 09 01 0A 00 00 00 79 00)', /No object was returned/],
      ['evaluate \\_SB.PCI0.LPC.PRQB', /\[Integer\] = 000000000000000A/],
      ['evaluate \\_SB.LNKB._CRS', /89 06 00 09 01 0A 00 00 00 79 00/],
      ['evaluate \\_SB.LNKC._SRS (89 06 00 09 01 0B 00 00 00 79 00)', /No object was returned/],
      ['execute \\_SB.LNKC._DIS', /No object was returned/],
      ['evaluate \\_SB.PCI0.LPC.PRQC', /\[Integer\] = 000000000000008B/],
      ['evaluate \\_SB.LNKC._STA', /\[Integer\] = 0000000000000009/],
      ['evaluate \\_SB.LNKC._CRS', /89 06 00 09 01 00 00 00 00 79 00/],
      ['evaluate \\_SB.LNKD._PRS', /89 0E 00 09 03 05 00 00 00 0A 00 00 00 0B 00 00/],
      ['evaluate \\_SB.C001._UID', /\[Integer\] = 0000000000000001/],
      ['evaluate \\_S5', /Contains 4 Elements:\s+\[Integer\] = 0+\s+\[Integer\] = 0+\s/],
      ['evaluate \\_S0', /Contains 4 Elements:\s+\[Integer\] = 0+5\s/],
    ];
    const r = run(acpiexecBin, ['-b', steps.map(([c]) => c).join('; '), 'dsdt.dat', 'facp.dat', 'apic.dat'], sub);
    assert.equal(r.status, 0, r.output);
    const evals = r.output
      .slice(r.output.indexOf('Evaluating '))
      .split(/^Evaluating /m)
      .slice(1);
    assert.equal(evals.length, steps.length, r.output);
    steps.forEach(([cmd, re], i) => {
      const out = evals[i]!;
      assert.match(out, re, `${cmd}:\n${out}`);
      assert.doesNotMatch(out, /ACPI (Error|Exception|Warning)|failed with status/, `${cmd}:\n${out}`);
    });
  });
});
