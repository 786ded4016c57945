// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Linux guests built from Debian packages:
//
//  - `linux`: the kernel of `linux-image-cloud-amd64` with an initramfs the
//    framework assembles (artifacts.ts: busybox-static, an /init script,
//    /dev/console), booted directly. /init prints LINUX_READY and starts a
//    root shell on the console with the prompt LINUX_PROMPT; no login.
//  - `linux-disk`: a disk image with a login on the serial console (a
//    Debian cloud image, given to the runner with --linux-disk-image):
//    log in as root, optionally with a password, then a root shell.
//
// As the original's Linux adapters, both widen the terminal (`stty cols
// 9999`) so long commands are not wrapped by the line editor, and reboot
// with `reboot`. They need hardware virtualization (host.ts).
//
// Threading: none.

import { realOsUnavailableReason } from '../host.js';
import type { GuestOs } from './guest-os.js';

export const LINUX_PROMPT = 'phd-linux:~# ';
export const LINUX_READY = 'phd-initramfs: ready';

const common = {
  enter: '\n',
  statusCommand: 'echo $?',
  bufferKind: 'raw',
  afterBootCommands: ['stty cols 9999'],
  crashPattern: /Kernel panic - not syncing/,
  unavailableOn: realOsUnavailableReason,
} as const;

export const LINUX_INITRAMFS: GuestOs = {
  ...common,
  name: 'linux',
  bootSequence: [
    { kind: 'wait', text: LINUX_READY, timeoutMs: 300_000 },
    { kind: 'wait', text: LINUX_PROMPT },
  ],
  prompt: LINUX_PROMPT,
  // The initramfs has no init system to hand the reboot to.
  rebootCommand: 'reboot -f',
};

export interface LinuxLogin {
  /** The login prompt, e.g. `debian login: `. */
  loginPrompt: string;
  user: string;
  password?: string;
  /** The root shell's prompt, e.g. `root@debian:~# `. */
  prompt: string;
}

/** Debian 11/12 cloud images' defaults, as the original's Debian adapter. */
export const DEBIAN_LOGIN: LinuxLogin = { loginPrompt: 'login: ', user: 'root', prompt: 'root@debian:~# ' };

export function linuxDiskGuest(login: LinuxLogin = DEBIAN_LOGIN): GuestOs {
  return {
    ...common,
    name: 'linux-disk',
    bootSequence: [
      { kind: 'wait', text: login.loginPrompt, timeoutMs: 300_000 },
      { kind: 'write', text: `${login.user}\n` },
      ...(login.password === undefined
        ? []
        : [{ kind: 'wait', text: 'Password: ' } as const, { kind: 'write', text: `${login.password}\n` } as const]),
      { kind: 'wait', text: login.prompt },
    ],
    prompt: login.prompt,
    rebootCommand: 'reboot',
  };
}
