// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// How a test ends other than by passing: it throws. `PhdSkip` (the
// original's `phd_skip!`) means the test cannot run here and says why;
// anything else thrown is a failure.
//
// Threading: none.

/** Thrown to skip the current test; `reason` is reported in the summary. */
export class PhdSkip extends Error {
  readonly code = 'PHD_SKIP';
  constructor(readonly reason: string) {
    super(`skipped: ${reason}`);
    this.name = 'PhdSkip';
  }
}

/** Skip the current test (never returns). */
export function phdSkip(reason: string): never {
  throw new PhdSkip(reason);
}

/** A problem with the framework's inputs: an unknown artifact, a bad config. */
export class PhdConfigError extends Error {
  readonly code = 'PHD_CONFIG';
}

/** Something the test expected of the guest or the server did not happen. */
export class PhdAssertion extends Error {
  readonly code = 'PHD_ASSERTION';
}

/** Throw a `PhdAssertion` with `message` unless `cond`. */
export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new PhdAssertion(message);
}
