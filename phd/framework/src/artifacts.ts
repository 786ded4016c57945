// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The artifacts tests boot: firmware and guest images, by name (the
// original's artifact store, without its TOML and remote sources: every
// artifact here is built by the project or fetched from Debian's archive
// and cached under .cache/, never checked in).
//
// | name         | kind    | what |
// | ------------ | ------- | ---- |
// | `seabios`    | bootrom | Debian's SeaBIOS (`seabios`, bios-256k.bin) |
// | `testos`     | guest   | the project's test OS on a disk image (guests/out/testos.img), booted by firmware |
// | `testos-rom` | guest   | the test OS as the bootrom itself (guests/out/testos.rom), no firmware |
// | `linux`      | guest   | Debian's cloud kernel + an initramfs assembled here (busybox-static), direct boot |
// | `linux-disk` | guest   | a Linux disk image with a serial login: --linux-disk-image, else built here (linux-image.ts) |
//
// Artifacts are resolved lazily, the first time a test needs one, so a run
// that only lists tests or only runs test-OS tests fetches nothing big.
//
// Threading: main thread. Resolving may block on `apt-get` the first time.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debianFile, debianPackage } from '../../../lib/propolis/src/testing/debian.js';
import { REPO_ROOT } from '../../../lib/propolis/src/testing/guests.js';
import { cpioNewc, type CpioEntry } from './cpio.js';
import { linuxImage } from './linux-image.js';
import { PhdConfigError } from './errors.js';
import type { GuestOs } from './guest-os/guest-os.js';
import { LINUX_INITRAMFS, LINUX_PROMPT, LINUX_READY, linuxDiskGuest, type LinuxLogin } from './guest-os/linux.js';
import { TESTOS } from './guest-os/testos.js';

export { REPO_ROOT };

/** How a guest artifact gets control: as the bootrom, from a disk through firmware, or as a kernel. */
export type GuestBoot = 'rom' | 'disk' | 'kernel';

export interface BootromArtifact {
  readonly kind: 'bootrom';
  readonly name: string;
  readonly description: string;
}

export interface GuestArtifact {
  readonly kind: 'guest';
  readonly name: string;
  readonly description: string;
  readonly os: GuestOs;
  readonly boot: GuestBoot;
}

export type Artifact = BootromArtifact | GuestArtifact;

export interface KernelArtifact {
  kernel: string;
  initramfs: string;
  cmdline: string;
  /** The option ROM SeaBIOS runs to load the kernel from fw_cfg (Debian qemu-system-data). */
  linuxbootRom: string;
}

export class ArtifactUnavailableError extends Error {
  readonly code = 'ARTIFACT_UNAVAILABLE';
}

export interface ArtifactStoreOptions {
  /** Where built guests are (default <repo>/guests/out). */
  guestsDir?: string;
  /** Where artifacts built here are cached (default <repo>/.cache/phd). */
  cacheDir?: string;
  /** A Linux disk image with a serial login (the `linux-disk` artifact); default: built from Debian packages. */
  linuxDiskImage?: string;
  linuxLogin?: LinuxLogin;
}

export class ArtifactStore {
  private readonly guestsDir: string;
  private readonly cacheDir: string;
  private readonly artifacts = new Map<string, Artifact>();
  private readonly resolved = new Map<string, string>();
  private kernel: KernelArtifact | undefined;

  constructor(private readonly opts: ArtifactStoreOptions = {}) {
    this.guestsDir = opts.guestsDir ?? join(REPO_ROOT, 'guests', 'out');
    this.cacheDir = opts.cacheDir ?? join(REPO_ROOT, '.cache', 'phd');
    const add = (a: Artifact): void => void this.artifacts.set(a.name, a);
    add({ kind: 'bootrom', name: 'seabios', description: "Debian's SeaBIOS (package seabios, bios-256k.bin)" });
    add({
      kind: 'guest',
      name: 'testos',
      description: 'the project test OS on a disk image (guests/out/testos.img)',
      os: TESTOS,
      boot: 'disk',
    });
    add({
      kind: 'guest',
      name: 'testos-rom',
      description: 'the project test OS as the bootrom (guests/out/testos.rom)',
      os: TESTOS,
      boot: 'rom',
    });
    add({
      kind: 'guest',
      name: 'linux',
      description: "Debian's linux-image-cloud-amd64 kernel and a busybox-static initramfs, booted directly",
      os: LINUX_INITRAMFS,
      boot: 'kernel',
    });
    add({
      kind: 'guest',
      name: 'linux-disk',
      description:
        'a Linux disk image with a root login on the serial console (--linux-disk-image, else built from Debian packages)',
      os: linuxDiskGuest(opts.linuxLogin),
      boot: 'disk',
    });
  }

  list(): Artifact[] {
    return [...this.artifacts.values()];
  }

  get(name: string): Artifact {
    const a = this.artifacts.get(name);
    if (!a) throw new PhdConfigError(`unknown artifact "${name}" (known: ${[...this.artifacts.keys()].join(', ')})`);
    return a;
  }

  guest(name: string): GuestArtifact {
    const a = this.get(name);
    if (a.kind !== 'guest') throw new PhdConfigError(`artifact "${name}" is a ${a.kind}, not a guest`);
    return a;
  }

  /**
   * The file of a bootrom, or of a guest that boots as a ROM or from a disk
   * image: fetched or checked the first time.
   */
  path(name: string): string {
    const hit = this.resolved.get(name);
    if (hit) return hit;
    const a = this.get(name);
    let p: string;
    switch (a.name) {
      case 'seabios':
        p = debianFile('seabios', 'usr/share/seabios/bios-256k.bin');
        break;
      case 'testos':
      case 'testos-rom':
        p = join(this.guestsDir, a.name === 'testos' ? 'testos.img' : 'testos.rom');
        if (!existsSync(p)) {
          throw new ArtifactUnavailableError(
            `artifact ${a.name}: ${p} does not exist (the test OS is built by \`npm run build\`, guests/build.ts)`,
          );
        }
        break;
      case 'linux-disk':
        if (!this.opts.linuxDiskImage) {
          // Built (and cached) only here, when a test that runs needs it.
          p = linuxImage(join(this.cacheDir, 'linux-disk'), resolveDebianMetapackage('linux-image-cloud-amd64'));
          break;
        }
        p = this.opts.linuxDiskImage;
        if (!existsSync(p)) throw new ArtifactUnavailableError(`artifact linux-disk: ${p} does not exist`);
        break;
      default:
        throw new PhdConfigError(
          `artifact ${a.name} is not a single file (it boots as a ${(a as GuestArtifact).boot})`,
        );
    }
    this.resolved.set(name, p);
    return p;
  }

  /** The `linux` artifact's kernel and initramfs, fetched and assembled the first time (cached). */
  linuxKernel(): KernelArtifact {
    if (this.kernel) return this.kernel;
    const dir = join(this.cacheDir, 'linux');
    mkdirSync(dir, { recursive: true });
    const pkg = resolveDebianMetapackage('linux-image-cloud-amd64');
    const root = debianPackage(pkg);
    const vmlinuz = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new ArtifactUnavailableError(`${pkg} has no boot/vmlinuz-*`);
    const initramfs = join(dir, 'initramfs.cpio');
    if (!existsSync(initramfs)) {
      const busybox = readFileSync(debianFile('busybox-static', 'bin/busybox'));
      const tmp = `${initramfs}.${process.pid}`;
      writeFileSync(tmp, buildLinuxInitramfs(new Uint8Array(busybox)));
      renameSync(tmp, initramfs);
    }
    this.kernel = {
      kernel: join(root, 'boot', vmlinuz),
      initramfs,
      cmdline: 'console=ttyS0,115200 panic=-1 rdinit=/init',
      // SeaBIOS runs this option ROM (fw_cfg genroms/) to load the kernel, as QEMU's -kernel does.
      linuxbootRom: debianFile('qemu-system-data', 'usr/share/qemu/linuxboot_dma.bin'),
    };
    return this.kernel;
  }
}

/** The package a Debian metapackage (e.g. linux-image-cloud-amd64) depends on for its one real payload. */
function resolveDebianMetapackage(meta: string): string {
  let out: string;
  try {
    out = execFileSync('apt-cache', ['depends', meta], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new ArtifactUnavailableError(`apt-cache depends ${meta} failed: ${(e as Error).message}`);
  }
  const dep = /^\s*Depends:\s*(linux-image-[^\s<>]+)/m.exec(out)?.[1];
  if (!dep) throw new ArtifactUnavailableError(`cannot find the kernel package ${meta} depends on:\n${out}`);
  return dep;
}

/**
 * The `/init` of the Linux initramfs: mount the pseudo file systems, say
 * it is ready, and hand the console to a root shell whose prompt is
 * LINUX_PROMPT (`cttyhack` makes the console the shell's controlling
 * terminal, so Ctrl-C and job control work).
 */
export const LINUX_INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo '${LINUX_READY}'
export PS1='${LINUX_PROMPT}' HOME=/root PATH=/bin
cd /root
exec setsid cttyhack sh
`;

/** A newc initramfs: busybox, /init, and the directories and device node the kernel and /init need. */
export function buildLinuxInitramfs(busybox: Uint8Array): Uint8Array {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'tmp', 'root', 'etc'].map((path) => ({ type: 'dir', path }) as const),
    { type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'init', data: LINUX_INIT_SCRIPT, mode: 0o755 },
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  ];
  return cpioNewc(entries);
}
