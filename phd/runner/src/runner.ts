// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The runner's engine: choose tests by filter, run them a few at a time,
// report each as it ends and sum up at the end (the original's phd-runner,
// which runs tests one by one; on these 2-core hosts two VMs at a time
// keep both cores busy while one test waits on its guest).
//
// What is budgeted is VMs running at once, not tests: a test declares how
// many VMs it runs together (`vms`, default 1; one started after another
// stopped counts once) and starts when that many slots are free. Tests
// start in catalogue order; one that needs more slots than are free waits
// (and the ones behind it too), so a two-VM test is never starved.
//
// Threading: main thread.

import { rmSync } from 'node:fs';
import { runTestCase, type Framework, type PhdTestCase, type TestResult } from '../../framework/src/index.js';

export interface Filters {
  /** A test runs if its `module::name` contains any of these (all tests when empty). */
  include: readonly string[];
  /** …and none of these. */
  exclude: readonly string[];
}

export function selectTests(all: readonly PhdTestCase[], f: Filters): PhdTestCase[] {
  return all.filter(
    (t) =>
      (f.include.length === 0 || f.include.some((s) => t.fullName.includes(s))) &&
      !f.exclude.some((s) => t.fullName.includes(s)),
  );
}

export interface RunOptions {
  /** VMs running at once. */
  parallel: number;
  /** Keep the logs of tests that passed or were skipped (a failed test's are always kept). */
  keepLogs?: boolean;
  onStart?: (t: PhdTestCase) => void;
  onResult?: (r: TestResult) => void;
  /** Checked before each test starts: true stops scheduling (Ctrl-C). */
  aborted?: () => boolean;
}

/** Run `tests` with at most `parallel` VMs at a time; results in catalogue order. */
export async function runTests(fw: Framework, tests: readonly PhdTestCase[], o: RunOptions): Promise<TestResult[]> {
  const capacity = Math.max(1, o.parallel);
  const results: (TestResult | undefined)[] = new Array(tests.length);
  let free = capacity;
  let next = 0;
  const running = new Set<Promise<void>>();
  for (;;) {
    // Start what fits, in order.
    while (next < tests.length && !o.aborted?.()) {
      const t = tests[next]!;
      const need = Math.min(capacity, Math.max(1, t.vms ?? 1));
      if (need > free) break;
      free -= need;
      const i = next++;
      o.onStart?.(t);
      const p: Promise<void> = runTestCase(fw, t).then((r) => {
        if (r.status !== 'failed' && !o.keepLogs) rmSync(r.logDir, { recursive: true, force: true });
        results[i] = r;
        o.onResult?.(r);
        free += need;
        running.delete(p);
      });
      running.add(p);
    }
    if (running.size === 0) break;
    await Promise.race(running);
  }
  return results.filter((r): r is TestResult => r !== undefined);
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  notRun: number;
}

export function summarize(results: readonly TestResult[], selected: number): Summary {
  const n = (s: TestResult['status']): number => results.filter((r) => r.status === s).length;
  return { passed: n('passed'), failed: n('failed'), skipped: n('skipped'), notRun: selected - results.length };
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** One line per finished test (and the failure's message and logs). */
export function formatResult(r: TestResult): string {
  switch (r.status) {
    case 'passed':
      return `PASS  ${r.test.fullName} (${secs(r.durationMs)})`;
    case 'skipped':
      return `SKIP  ${r.test.fullName}: ${r.message ?? ''}`;
    case 'failed':
      return `FAIL  ${r.test.fullName} (${secs(r.durationMs)})\n      ${(r.message ?? '').split('\n').join('\n      ')}\n      logs: ${r.logDir}`;
  }
}

/** The end-of-run report: every test with its outcome and duration, then the counts. */
export function formatSummary(results: readonly TestResult[], selected: number, elapsedMs: number): string {
  const s = summarize(results, selected);
  const lines = ['', 'PHD results:'];
  const width = Math.max(...results.map((r) => r.test.fullName.length), 10);
  for (const r of results) {
    const what = r.status === 'passed' ? 'passed' : r.status === 'failed' ? 'FAILED' : 'skipped';
    lines.push(`  ${r.test.fullName.padEnd(width)}  ${what.padEnd(7)}  ${secs(r.durationMs).padStart(7)}`);
    if (r.status !== 'passed' && r.message) lines.push(`      ${r.message.split('\n')[0]}`);
  }
  lines.push(
    '',
    `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped` +
      (s.notRun > 0 ? `, ${s.notRun} not run` : '') +
      ` (${selected} selected) in ${secs(elapsedMs)}`,
  );
  return lines.join('\n');
}
