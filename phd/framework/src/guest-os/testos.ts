// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The project's test OS (guests/out/testos.rom, booted as the bootrom, and
// guests/out/testos.img, a disk image firmware boots). Its console
// protocol on COM1: a banner `testos: booted via <rom|disk>`, then
// `testos: ready`, then the prompt `testos# ` (no newline). Typed
// characters are echoed; Enter gives `\r\n`, the output lines (each ending
// `\r\n`) and the prompt again. A failing command prints one line
// `error: …`; `status` prints the previous command's status (0 or 1).
// There is no login. It runs on any host KVM runs on.
//
// Threading: none.

import type { GuestOs } from './guest-os.js';

export const TESTOS_PROMPT = 'testos# ';
export const TESTOS_READY = 'testos: ready';

export const TESTOS: GuestOs = {
  name: 'testos',
  bootSequence: [
    { kind: 'wait', text: TESTOS_READY },
    { kind: 'wait', text: TESTOS_PROMPT },
  ],
  prompt: TESTOS_PROMPT,
  // A serial terminal's Enter key sends CR.
  enter: '\r',
  statusCommand: 'status',
  rebootCommand: 'reboot',
  bufferKind: 'raw',
  afterBootCommands: [],
  // The kernel's exception report (guests/testos/main.c), printed before it halts the CPU.
  crashPattern: /testos: exception \d+/,
  unavailableOn: () => undefined,
};

/** How the test OS says it booted: `rom` (as the bootrom) or `disk` (from firmware), from boot output. */
export function testosBootedVia(bootOutput: string): 'rom' | 'disk' | undefined {
  const all = [...bootOutput.matchAll(/testos: booted via (rom|disk)/g)];
  return all.at(-1)?.[1] as 'rom' | 'disk' | undefined;
}
