// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// A mutex in shared memory, usable from every thread that holds a view of
// the same SharedArrayBuffer (vCPU workers and the main thread).
//
// States: 0 unlocked, 1 locked, 2 locked with waiters. The uncontended path
// is one compareExchange to take and one to release; contention spins
// briefly (a cross-thread wake costs ~68 µs on these hosts, far more than a
// device register access under the lock) and then sleeps in Atomics.wait.
// Node allows Atomics.wait on the main thread; hold times are a few
// microseconds, so the event loop never stalls noticeably.

const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;
const SPINS = 200;

export class SharedMutex {
  private readonly word: Int32Array;

  /** `word` is one Int32 in shared memory, zero-initialised. */
  constructor(word: Int32Array) {
    this.word = word;
  }

  static create(): SharedMutex {
    return new SharedMutex(new Int32Array(new SharedArrayBuffer(4)));
  }

  get buffer(): Int32Array {
    return this.word;
  }

  lock(): void {
    const w = this.word;
    if (Atomics.compareExchange(w, 0, UNLOCKED, LOCKED) === UNLOCKED) return;
    for (let i = 0; i < SPINS; i++) {
      if (Atomics.load(w, 0) === UNLOCKED && Atomics.compareExchange(w, 0, UNLOCKED, LOCKED) === UNLOCKED) return;
    }
    // Mark contended; whoever unlocks will wake us.
    while (Atomics.exchange(w, 0, CONTENDED) !== UNLOCKED) {
      Atomics.wait(w, 0, CONTENDED);
    }
  }

  unlock(): void {
    if (Atomics.exchange(this.word, 0, UNLOCKED) === CONTENDED) Atomics.notify(this.word, 0, 1);
  }

  /** Run `fn` with the lock held. */
  with<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }
}
