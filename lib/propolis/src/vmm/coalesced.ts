// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The coalesced-I/O ring: guest writes to registered ports (e.g. the QEMU
// debug port 0x402, which firmware writes a byte at a time) are queued by
// the kernel in a page shared by every vCPU mapping instead of exiting, and
// replayed here to the device, in order, before the next exit is handled
// and before a vCPU reports itself paused. A write that exits costs ~10 µs
// on these hosts; a coalesced one about 1.6 µs.
//
// Threading: every vCPU thread drains; one shared mutex serialises them, so
// each entry is replayed exactly once and in ring order.

import { KvmCoalescedMmio, KvmCoalescedMmioRing } from '../../../kvm/src/structs.js';
import type { MmioBus, PioBus } from '../pio.js';
import type { SharedMutex } from '../sync/mutex.js';

const PAGE = 4096;
/** Entries that fit in the page after its header (the kernel's KVM_COALESCED_MMIO_MAX). */
export const COALESCED_MAX = Math.floor((PAGE - KvmCoalescedMmioRing.size) / KvmCoalescedMmio.size);

const FIRST = KvmCoalescedMmioRing.fields.first.offset;
const LAST = KvmCoalescedMmioRing.fields.last.offset;
const E = KvmCoalescedMmio.fields;

export class CoalescedRing {
  /** `page` views the ring page of a vCPU mapping; it must not outlive that mapping. */
  constructor(
    private readonly page: DataView,
    private readonly lock: SharedMutex,
    private readonly pio: PioBus,
    private readonly mmio: MmioBus,
  ) {}

  /** Cheap check for queued writes (two loads), for the exit path. */
  get pending(): boolean {
    return this.page.getUint32(FIRST, true) !== this.page.getUint32(LAST, true);
  }

  /** Replay every queued write; returns how many. A corrupt index stops the replay. */
  drain(): number {
    this.lock.lock();
    try {
      const p = this.page;
      let first = p.getUint32(FIRST, true);
      const last = p.getUint32(LAST, true);
      if (first >= COALESCED_MAX || last >= COALESCED_MAX) return 0;
      let n = 0;
      while (first !== last) {
        const at = KvmCoalescedMmioRing.size + first * KvmCoalescedMmio.size;
        const addr =
          p.getUint32(at + E.physAddr.offset, true) + p.getUint32(at + E.physAddr.offset + 4, true) * 2 ** 32;
        const len = p.getUint32(at + E.len.offset, true);
        const isPio = p.getUint32(at + E.pio.offset, true) !== 0;
        const d = at + E.data.offset;
        if (len === 1 || len === 2 || len === 4) {
          const v = len === 1 ? p.getUint8(d) : len === 2 ? p.getUint16(d, true) : p.getUint32(d, true);
          if (isPio) this.pio.write(addr, len, v);
          else this.mmio.write(addr, len, v);
        } else if (len === 8 && !isPio) {
          this.mmio.write(addr, 8, p.getBigUint64(d, true));
        }
        first = (first + 1) % COALESCED_MAX;
        // Publish progress entry by entry: the kernel may queue more meanwhile.
        p.setUint32(FIRST, first, true);
        n++;
      }
      return n;
    } finally {
      this.lock.unlock();
    }
  }
}
