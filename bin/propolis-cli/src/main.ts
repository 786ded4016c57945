// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-cli: drive one propolis-server instance from the shell (the
// original's `propolis-cli`).
//
//   propolis-cli [-p PORT] [-d] [--json] -s HOST <command> …
//
//   new <NAME> [-u UUID] [-s SPEC.json | -t CONFIG.toml [-c N] [-m MiB] [--cpuid-profile P]] [--hyperv]
//       [--cloud-init USER-DATA] [--silo-id|--project-id|--sled-id UUID] [--sled-model M] [--sled-revision N]
//       [--sled-serial S]
//   get | state run|stop|reboot | serial [-b N] | monitor | inject-nmi
//   migrate <DST> … and vcr … are answered "not supported" (no live migration yet, no Crucible);
//   so is new's --crucible-disks.
//
// Exit status, for scripts:
//
//   0  success (monitor: the instance reached Destroyed; serial: the user
//      left or the server closed the console)
//   1  the server answered with an error: its status, error_code, message
//      and request id are printed (monitor: the instance Failed)
//   2  bad usage: unknown command or option, missing or malformed value, or
//      an unreadable or invalid spec/config file; one line naming it
//   3  the server cannot be reached (refused, unresolvable, timed out, or
//      the connection was lost)
//   4  the operation is not supported by propolis-ts
//
// Errors go to stderr, one line each; with --json, one JSON document
// {"error": {"kind", "exit_code", "message", …}}. A serial session on a
// terminal runs in raw mode and gives the terminal back on every exit path
// but SIGKILL (terminal.ts).
//
// Main thread only.

import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
});
// Writes to pipes and files are synchronous on Linux, so nothing is lost by
// exiting now; it also ends a stdin that is still open (serial from a pipe).
process.exit(code);
