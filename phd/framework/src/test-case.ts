// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A PHD test case and how one runs: the test body gets a `TestContext`,
// passes by returning, is skipped by throwing `PhdSkip`, and fails by
// throwing anything else or by running past its time limit. Whatever
// happens, every VM it spawned is torn down before its result is reported
// (the original's `phd_testcase` macro and runner loop).
//
// Threading: main thread.

import { PhdSkip } from './errors.js';
import type { Framework, TestContext } from './framework.js';

export interface PhdTestCase {
  readonly module: string;
  readonly name: string;
  /** `module::name`, what filters match. */
  readonly fullName: string;
  readonly run: (ctx: TestContext) => Promise<void>;
  /** Time limit (default DEFAULT_TEST_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** How many VMs the test runs at the same time (default 1); the runner budgets VMs, not tests. */
  readonly vms?: number;
}

export const DEFAULT_TEST_TIMEOUT_MS = 180_000;

export function phdTest(
  module: string,
  name: string,
  run: (ctx: TestContext) => Promise<void>,
  opts: { timeoutMs?: number; vms?: number } = {},
): PhdTestCase {
  return { module, name, fullName: `${module}::${name}`, run, ...opts };
}

export type TestStatus = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  readonly test: PhdTestCase;
  readonly status: TestStatus;
  /** Why it failed (the error's message) or was skipped (the reason). */
  readonly message?: string;
  /** The error's stack, for a failure. */
  readonly detail?: string;
  readonly durationMs: number;
  /** Where the test's logs are. */
  readonly logDir: string;
}

/** Run one test to completion; never throws. */
export async function runTestCase(fw: Framework, test: PhdTestCase): Promise<TestResult> {
  const ctx = fw.context(test.module, test.name);
  const start = performance.now();
  const limit = test.timeoutMs ?? DEFAULT_TEST_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  let status: TestStatus;
  let message: string | undefined;
  let detail: string | undefined;
  try {
    await Promise.race([
      test.run(ctx),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${limit / 1000} s`)), limit);
      }),
    ]);
    status = 'passed';
  } catch (e) {
    if (e instanceof PhdSkip) {
      status = 'skipped';
      message = e.reason;
    } else {
      status = 'failed';
      message = e instanceof Error ? e.message : String(e);
      detail = e instanceof Error ? e.stack : undefined;
    }
  } finally {
    clearTimeout(timer);
  }
  // The body may still be running after a timeout; tearing its VMs down ends its waits.
  await ctx.teardown();
  return {
    test,
    status,
    ...(message === undefined ? {} : { message }),
    ...(detail === undefined ? {} : { detail }),
    durationMs: performance.now() - start,
    logDir: ctx.logDir,
  };
}
