// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Keyboard input of the interactive serial console, as the original reads
// it: Ctrl-C (0x03) ends the session, Ctrl-A (0x01) sends the next byte as
// is, whatever it is (so Ctrl-A Ctrl-C sends Ctrl-C and Ctrl-A Ctrl-A sends
// one Ctrl-A). A Ctrl-A at the end of one read applies to the first byte of
// the next. Bytes before a Ctrl-C in the same read are still sent.
//
// Pure; one instance per session.

export const CTRL_A = 0x01;
export const CTRL_C = 0x03;

export class ConsoleInput {
  private escaped = false;

  /** The bytes to send to the guest, and whether the user asked to leave. */
  feed(chunk: Uint8Array): { send: Uint8Array; exit: boolean } {
    const out = new Uint8Array(chunk.length);
    let n = 0;
    for (const b of chunk) {
      if (this.escaped) {
        out[n++] = b;
        this.escaped = false;
      } else if (b === CTRL_A) {
        this.escaped = true;
      } else if (b === CTRL_C) {
        return { send: out.subarray(0, n), exit: true };
      } else {
        out[n++] = b;
      }
    }
    return { send: out.subarray(0, n), exit: false };
  }
}
