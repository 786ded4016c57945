// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Serial matching: the last occurrence wins and is consumed, text split
// across chunks matches, timeouts and a closing console fail the wait with
// what was seen, and the raw log keeps every byte.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeSerialSource } from '../testing.js';
import { findLast, GuestCrashError, SerialClosedError, SerialReader, SerialTimeoutError } from './console.js';

const reader = (kind: 'raw' | 'vt80x24' = 'raw'): { src: FakeSerialSource; r: SerialReader } => {
  const src = new FakeSerialSource();
  return { src, r: new SerialReader(src, { name: 'vm0', kind }) };
};

describe('findLast', () => {
  it('finds the last occurrence of a string or a pattern', () => {
    assert.deepEqual(findLast('a# b# c', '# '), { index: 4, length: 2 });
    assert.equal(findLast('abc', 'x'), undefined);
    assert.deepEqual(findLast('n=1 n=22 n=3', /n=\d+/g), { index: 9, length: 3 });
    assert.deepEqual(findLast('aaa', /x*/), { index: 3, length: 0 }, 'empty matches do not loop');
  });
});

describe('SerialReader', () => {
  it('resolves with the text before the LAST occurrence and consumes through it', async () => {
    const { src, r } = reader();
    src.emit('boot\r\n$ one\r\n$ two\r\n$ ');
    assert.equal(await r.waitFor('$ ', 1000), 'boot\n$ one\n$ two\n');
    assert.equal(r.contents(), '');
    // The consumed prompts can never satisfy another wait.
    const next = r.waitFor('$ ', 200);
    await assert.rejects(next, SerialTimeoutError);
  });

  it('waits for text that arrives later, split across chunks', async () => {
    const { src, r } = reader();
    const w = r.waitFor('testos: ready', 1000);
    src.emit('testos: booted via rom\r\ntestos: re');
    src.emit('ady\r\ntestos# ');
    assert.equal(await w, 'testos: booted via rom\n');
    assert.equal(r.contents(), '\ntestos# ');
  });

  it('matches after the terminal model has applied edits (backspaces, CR overwrite)', async () => {
    const { src, r } = reader();
    src.emit('ecjo\b\b\bcho hi\r\n');
    assert.equal(await r.waitFor('echo hi', 1000), '');
  });

  it('matches regular expressions and returns the text before the match', async () => {
    const { src, r } = reader();
    src.emit('nmis=1\r\nnmis=2\r\n');
    assert.equal(await r.waitFor(/nmis=\d+/, 1000), 'nmis=1\n');
  });

  it('a timeout names the pattern and shows the unconsumed output', async () => {
    const { src, r } = reader();
    src.emit('something else');
    const e = await r.waitFor('never', 50).catch((x: unknown) => x);
    assert.ok(e instanceof SerialTimeoutError);
    assert.match(
      e.message,
      /vm0: timed out after 0\.1 s waiting for "never"; unconsumed output ends: "something else"/,
    );
  });

  it('fails a pending wait when the console closes, and refuses new ones', async () => {
    const { src, r } = reader();
    const w = r.waitFor('x', 5000);
    src.serverClose();
    const e = await w.catch((x: unknown) => x);
    assert.ok(e instanceof SerialClosedError);
    assert.match(e.message, /closed \(1001 VM stopped\)/);
    await assert.rejects(r.waitFor('x', 5000), SerialClosedError);
    await assert.rejects(r.write('y'), SerialClosedError);
  });

  it('allows one wait at a time', async () => {
    const { src, r } = reader();
    const w = r.waitFor('a', 1000);
    assert.throws(() => void r.waitFor('b', 1000), /already waiting for "a"/);
    src.emit('a');
    await w;
  });

  it('works over the VT100 model too: a prompt at the cursor, text redrawn in place', async () => {
    const { src, r } = reader('vt80x24');
    src.emit('\x1b[2J\x1b[1;1HLoading 10%\x1b[1;1HLoading 99%\r\nC:\\> ');
    assert.equal(await r.waitFor('C:\\> ', 1000), 'Loading 99%\n');
  });

  it('types with a debounce between repeated characters when asked', async () => {
    const { src, r } = reader();
    const chunks: string[] = [];
    src.onInput = (t): void => void chunks.push(t);
    r.setRepeatedCharacterDebounce(5);
    await r.write('hello  x');
    assert.deepEqual(chunks, ['hel', 'lo ', ' x']);
  });

  it('logs every byte, unmodified, to the log file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phd-serial-'));
    try {
      const src = new FakeSerialSource();
      const r = new SerialReader(src, { name: 'vm0', logPath: join(dir, 'vm0.serial.log') });
      src.emit('\x1b[0mhi\r\n');
      src.emit('\xff');
      await r.close();
      assert.deepEqual([...readFileSync(join(dir, 'vm0.serial.log'))], [...Buffer.from('\x1b[0mhi\r\n\xff', 'latin1')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SerialReader crash detection', () => {
  it("fails a wait at once when the guest prints its adapter's crash pattern", async () => {
    const src = new FakeSerialSource();
    const r = new SerialReader(src, { name: 'vm0', crashPattern: /testos: exception \d+/ });
    const w = r.waitFor('testos# ', 10_000);
    src.emit('nproc\r\ntestos: exception 13 at 0x10015c (error 0x0)\r\n');
    const e = await w.catch((x: unknown) => x);
    assert.ok(e instanceof GuestCrashError);
    assert.equal(
      e.message,
      'vm0: the guest crashed while waiting for "testos# ": testos: exception 13 at 0x10015c (error 0x0)',
    );
  });
});
