// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The runner without VMs: filters, the limit on tests at once, outcomes
// (pass, skip with its reason, failure with its message, time limit),
// which logs are kept, and the summary.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Framework, phdSkip, phdTest, type PhdTestCase } from '../../framework/src/index.js';
import { CATALOGUE } from '../../tests/src/index.js';
import { formatSummary, runTests, selectTests, summarize } from './runner.js';

const tmp = mkdtempSync(join(tmpdir(), 'phd-runner-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('selectTests', () => {
  const all = [
    phdTest('a', 'one', async () => {}),
    phdTest('a', 'two', async () => {}),
    phdTest('b', 'one', async () => {}),
  ];
  it('includes by substring of module::name and then excludes', () => {
    const names = (f: Parameters<typeof selectTests>[1]): string[] => selectTests(all, f).map((t) => t.fullName);
    assert.deepEqual(names({ include: [], exclude: [] }), ['a::one', 'a::two', 'b::one']);
    assert.deepEqual(names({ include: ['a::'], exclude: [] }), ['a::one', 'a::two']);
    assert.deepEqual(names({ include: ['one'], exclude: ['b::'] }), ['a::one']);
    assert.deepEqual(names({ include: ['x', 'two'], exclude: [] }), ['a::two']);
  });

  it('the catalogue has unique names, and linux tests can be excluded as a module', () => {
    const names = CATALOGUE.map((t) => t.fullName);
    assert.equal(new Set(names).size, names.length);
    assert.ok(selectTests(CATALOGUE, { include: [], exclude: ['linux::'] }).every((t) => t.module !== 'linux'));
  });
});

describe('runTests', () => {
  it('runs at most `parallel` VMs at once and reports every outcome', async () => {
    let running = 0;
    let peak = 0;
    const body = (f: () => Promise<void>) => async (): Promise<void> => {
      running++;
      peak = Math.max(peak, running);
      try {
        await f();
      } finally {
        running--;
      }
    };
    const tests: PhdTestCase[] = [
      phdTest(
        'm',
        'pass',
        body(() => sleep(20)),
      ),
      phdTest(
        'm',
        'skip',
        body(async () => phdSkip('no hardware here')),
      ),
      phdTest(
        'm',
        'fail',
        body(async () => {
          await sleep(10);
          throw new Error('the guest said no');
        }),
      ),
      phdTest(
        'm',
        'slow',
        body(() => sleep(10_000)),
        { timeoutMs: 50 },
      ),
      phdTest(
        'm',
        'pass2',
        body(() => sleep(20)),
      ),
    ];
    const fw = new Framework({ tmpDir: tmp });
    // A passing test's log directory is removed, a failing one's kept.
    for (const t of tests) mkdirSync(join(tmp, t.module, t.name), { recursive: true });
    const results = await runTests(fw, tests, { parallel: 2 });
    assert.equal(peak, 2);
    assert.deepEqual(
      results.map((r) => [r.test.name, r.status, r.message]),
      [
        ['pass', 'passed', undefined],
        ['skip', 'skipped', 'no hardware here'],
        ['fail', 'failed', 'the guest said no'],
        ['slow', 'failed', 'timed out after 0.05 s'],
        ['pass2', 'passed', undefined],
      ],
    );
    assert.equal(existsSync(join(tmp, 'm', 'pass')), false);
    assert.equal(existsSync(join(tmp, 'm', 'fail')), true);
    assert.deepEqual(summarize(results, 6), { passed: 2, failed: 2, skipped: 1, notRun: 1 });
    const text = formatSummary(results, 5, 1234);
    assert.match(text, /m::skip +skipped .*\n +no hardware here/);
    assert.match(text, /m::fail +FAILED .*\n +the guest said no/);
    assert.match(text, /2 passed, 2 failed, 1 skipped \(5 selected\) in 1\.2 s$/);
  });

  it('budgets VMs: a two-VM test waits for both slots and runs alone', async () => {
    const log: string[] = [];
    const body = (name: string, ms: number) => async (): Promise<void> => {
      log.push(`start ${name}`);
      await sleep(ms);
      log.push(`end ${name}`);
    };
    const tests = [
      phdTest('m', 'a', body('a', 30)),
      phdTest('m', 'b', body('b', 10)),
      phdTest('m', 'pair', body('pair', 10), { vms: 2 }),
      phdTest('m', 'c', body('c', 10)),
      phdTest('m', 'big', body('big', 5), { vms: 5 }),
    ];
    const results = await runTests(new Framework({ tmpDir: tmp }), tests, { parallel: 2 });
    assert.equal(results.length, 5);
    assert.deepEqual(log.slice(0, 4), ['start a', 'start b', 'end b', 'end a']);
    assert.deepEqual(log.slice(4), ['start pair', 'end pair', 'start c', 'end c', 'start big', 'end big']);
  });

  it('stops scheduling when aborted', async () => {
    let n = 0;
    const tests = Array.from({ length: 5 }, (_, i) => phdTest('m', `t${i}`, async () => void n++));
    const results = await runTests(new Framework({ tmpDir: tmp }), tests, { parallel: 1, aborted: () => n >= 2 });
    assert.equal(results.length, 2);
  });
});
