// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Terminal models for a guest's serial console: what a person looking at a
// terminal would read, so that waits match text rather than byte streams
// full of carriage returns, backspaces and escape sequences.
//
// Two models, as the original PHD has:
//
//  - `RawBuffer`: a line-oriented transcript. Printable characters and line
//    feeds are kept; a carriage return goes back to the start of the current
//    line (so `\r\n` is just a new line, and `abc\rx` reads `xbc`); a
//    backspace moves back one column; "cursor right" (CSI n C) becomes
//    spaces, "cursor left" (CSI n D) moves back, "erase to end of line"
//    (CSI K) truncates the line. Every other escape sequence is dropped.
//    This fits guests that print lines: the test OS, a Linux shell.
//  - `Vt80x24`: a VT100 screen of 80 columns by 24 rows, for guests that
//    position the cursor and redraw (firmware menus, Windows' SAC). Lines
//    that scroll off the top are kept, so a wait cannot miss them.
//
// Both answer the same two questions: what text is there now (`contents`),
// and "forget everything up to here" (`consume`), which is how a wait that
// matched text makes sure the same text never matches twice.
//
// Escape sequences are parsed by one small state machine (`EscapeParser`)
// shared by both models; a sequence split across two chunks of output is
// completed by the next chunk.
//
// Threading: main thread; pure data structures.

/** A parsed control function: a C0 control, an ESC sequence, or a CSI sequence. */
export type TermAction =
  | { kind: 'print'; ch: string }
  | { kind: 'control'; code: number }
  | { kind: 'esc'; final: string; intermediates: string }
  | { kind: 'csi'; final: string; params: number[]; private: string };

const ESC = 0x1b;

/**
 * A byte-at-a-time parser for the subset of ECMA-48 / VT100 that guests
 * send: C0 controls, `ESC x`, `ESC ( B`-style designations, and CSI
 * sequences with numeric parameters and an optional private marker (`?`).
 * OSC strings are skipped up to BEL or ST. Bytes 0x80–0x9F are dropped.
 */
export class EscapeParser {
  private state: 'ground' | 'esc' | 'csi' | 'osc' | 'osc-esc' = 'ground';
  private intermediates = '';
  private params = '';
  private privateMarker = '';

  /** Feed bytes (latin1 characters); calls `emit` for each complete action. */
  feed(text: string, emit: (a: TermAction) => void): void {
    for (let i = 0; i < text.length; i++) this.byte(text.charCodeAt(i), emit);
  }

  private byte(b: number, emit: (a: TermAction) => void): void {
    switch (this.state) {
      case 'ground':
        if (b === ESC) {
          this.state = 'esc';
          this.intermediates = '';
        } else if (b < 0x20 || b === 0x7f) {
          emit({ kind: 'control', code: b });
        } else if (b >= 0x80 && b < 0xa0) {
          // C1 controls: no guest we drive sends them; drop.
        } else {
          emit({ kind: 'print', ch: String.fromCharCode(b) });
        }
        return;
      case 'esc':
        if (b === 0x5b /* [ */) {
          this.state = 'csi';
          this.params = '';
          this.privateMarker = '';
        } else if (b === 0x5d /* ] */) {
          this.state = 'osc';
        } else if (b >= 0x20 && b <= 0x2f) {
          this.intermediates += String.fromCharCode(b);
        } else if (b === ESC) {
          this.intermediates = '';
        } else if (b >= 0x30 && b <= 0x7e) {
          this.state = 'ground';
          emit({ kind: 'esc', final: String.fromCharCode(b), intermediates: this.intermediates });
        } else {
          // A control inside an escape sequence is executed, as terminals do.
          emit({ kind: 'control', code: b });
        }
        return;
      case 'csi':
        if (b >= 0x30 && b <= 0x3f) {
          const c = String.fromCharCode(b);
          if (/[<=>?]/.test(c) && this.params === '') this.privateMarker = c;
          else this.params += c;
        } else if (b >= 0x20 && b <= 0x2f) {
          // Intermediate bytes: none of the sequences we model use them.
        } else if (b >= 0x40 && b <= 0x7e) {
          this.state = 'ground';
          const params = this.params === '' ? [] : this.params.split(';').map((p) => (p === '' ? 0 : Number(p) || 0));
          emit({ kind: 'csi', final: String.fromCharCode(b), params, private: this.privateMarker });
        } else if (b === ESC) {
          this.state = 'esc';
          this.intermediates = '';
        } else {
          emit({ kind: 'control', code: b });
        }
        return;
      case 'osc':
        if (b === 0x07) this.state = 'ground';
        else if (b === ESC) this.state = 'osc-esc';
        return;
      case 'osc-esc':
        this.state = b === 0x5c /* \ */ ? 'ground' : 'osc';
        return;
    }
  }
}

/** The interface both models offer the serial reader. */
export interface TerminalBuffer {
  readonly kind: BufferKind;
  /** Feed guest output, decoded one byte per character (latin1). */
  write(text: string): void;
  /** The text on the terminal that has not been consumed. */
  contents(): string;
  /** Forget the first `n` characters of `contents()` (everything up to a match's end). */
  consume(n: number): void;
  /** Forget everything. */
  clear(): void;
}

export type BufferKind = 'raw' | 'vt80x24';

export function makeTerminalBuffer(kind: BufferKind): TerminalBuffer {
  return kind === 'raw' ? new RawBuffer() : new Vt80x24();
}

/** The first CSI parameter, with the VT100 default of 1 for 0 or absent. */
const count = (params: number[]): number => Math.max(1, params[0] ?? 1);

/** The line-oriented model; see the file comment. */
export class RawBuffer implements TerminalBuffer {
  readonly kind = 'raw';
  /** Complete lines, each ending in '\n'. */
  private done = '';
  /** The current line (no '\n'), and the column the next printable character goes to. */
  private line = '';
  private col = 0;
  private readonly parser = new EscapeParser();

  write(text: string): void {
    this.parser.feed(text, (a) => this.apply(a));
  }

  contents(): string {
    return this.done + this.line;
  }

  consume(n: number): void {
    let k = Math.max(0, n);
    const fromDone = Math.min(k, this.done.length);
    this.done = this.done.slice(fromDone);
    k -= fromDone;
    if (k > 0) {
      const fromLine = Math.min(k, this.line.length);
      this.line = this.line.slice(fromLine);
      this.col = Math.max(0, this.col - fromLine);
    }
  }

  clear(): void {
    this.done = '';
    this.line = '';
    this.col = 0;
  }

  private put(s: string): void {
    if (this.col === this.line.length) this.line += s;
    else this.line = this.line.slice(0, this.col) + s + this.line.slice(this.col + s.length);
    this.col += s.length;
  }

  private apply(a: TermAction): void {
    switch (a.kind) {
      case 'print':
        this.put(a.ch);
        return;
      case 'control':
        switch (a.code) {
          case 0x0a: // LF: a new line after whatever the current line holds
            this.done += this.line + '\n';
            this.line = '';
            this.col = 0;
            return;
          case 0x0d: // CR
            this.col = 0;
            return;
          case 0x08: // BS
            if (this.col > 0) this.col--;
            return;
          case 0x09: // HT: to the next multiple of 8 columns, as spaces
            this.put(' '.repeat(8 - (this.col % 8)));
            return;
          default:
            return; // BEL, NUL, DEL and the rest leave no text
        }
      case 'csi':
        if (a.private !== '') return;
        switch (a.final) {
          case 'C': {
            // Cursor right: over existing text, then blank columns become spaces.
            const n = count(a.params);
            const over = Math.min(n, this.line.length - this.col);
            this.col += over;
            if (n > over) this.put(' '.repeat(n - over));
            return;
          }
          case 'D':
            this.col = Math.max(0, this.col - count(a.params));
            return;
          case 'K': {
            // Erase in line: 0 (or absent) to the end, 1 to the cursor, 2 all of it.
            const mode = a.params[0] ?? 0;
            if (mode === 0) this.line = this.line.slice(0, this.col);
            else if (mode === 1) this.line = ' '.repeat(this.col) + this.line.slice(this.col);
            else this.line = ' '.repeat(this.col);
            return;
          }
          default:
            return;
        }
      case 'esc':
        return;
    }
  }
}

export const VT_COLS = 80;
export const VT_ROWS = 24;
/** Lines scrolled off the top that are kept for matching. */
const SCROLLBACK_LIMIT = 2000;

/**
 * A VT100-compatible 80x24 screen. Handles what firmware and redrawing
 * guests send: printable text with autowrap (DECAWM, `CSI ? 7 l/h`), CR,
 * LF (scrolling at the bottom), BS, HT, RIS (`ESC c`), cursor movement
 * (CUU/CUD/CUF/CUB `A`–`D`, CUP/HVP `H`/`f`, CHA `G`, VPA `d`), erase in
 * display (`J` 0/1/2/3) and in line (`K` 0/1/2), save/restore cursor
 * (`ESC 7`/`ESC 8`, `CSI s`/`CSI u`), index and reverse index (`ESC D`,
 * `ESC M`), next line (`ESC E`). SGR (`m`) and other modes are accepted and
 * have no effect on the text.
 */
export class Vt80x24 implements TerminalBuffer {
  readonly kind = 'vt80x24';
  private rows: string[][] = [];
  private row = 0;
  private col = 0;
  /** Set after printing into the last column: the next printable wraps first (VT100's pending wrap). */
  private wrapPending = false;
  private autowrap = true;
  private saved = { row: 0, col: 0 };
  private scrollback: string[] = [];
  private readonly parser = new EscapeParser();

  constructor() {
    this.reset();
  }

  /** The screen as 24 lines of text, trailing spaces removed (for tests and diagnostics). */
  screen(): string[] {
    return this.rows.map((r) => r.join('').trimEnd());
  }

  cursorPosition(): { row: number; col: number } {
    return { row: this.row, col: this.col };
  }

  write(text: string): void {
    this.parser.feed(text, (a) => this.apply(a));
  }

  /**
   * Lines scrolled off the top, then the screen's rows up to the last one
   * holding text, each without trailing spaces, joined by `\n`.
   */
  contents(): string {
    return this.layout().text;
  }

  consume(n: number): void {
    const { text, starts, lines } = this.layout();
    const end = Math.min(Math.max(0, n), text.length);
    if (end === 0) return;
    // Scrollback lines wholly before `end` go; the consumed prefix of a
    // partly consumed line (in the scrollback or on the screen) is blanked.
    const sb = this.scrollback.length;
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i]!;
      if (start >= end) break;
      const line = lines[i]!;
      const upto = Math.min(line.length, end - start);
      if (i < sb) {
        this.scrollback[i] = upto >= line.length ? '' : ' '.repeat(upto) + line.slice(upto);
      } else {
        const r = this.rows[i - sb]!;
        for (let c = 0; c < Math.min(VT_COLS, upto); c++) r[c] = ' ';
      }
    }
    while (this.scrollback.length > 0 && this.scrollback[0]!.trim() === '') this.scrollback.shift();
  }

  clear(): void {
    this.scrollback = [];
    for (const r of this.rows) r.fill(' ');
  }

  /**
   * The lines (scrollback, then screen rows without trailing blanks — but
   * the cursor's row keeps its blanks up to the cursor, so a prompt ending
   * in a space matches), the text, and where each line starts in it.
   */
  private layout(): { text: string; starts: number[]; lines: string[] } {
    const screen = this.rows.map((r, i) => {
      const t = r.join('').trimEnd();
      return i === this.row && this.col > t.length ? r.slice(0, this.col).join('') : t;
    });
    const lines = [...this.scrollback, ...screen];
    // Blank rows at the bottom of the screen are not content.
    let last = lines.length;
    while (last > this.scrollback.length && lines[last - 1] === '') last--;
    lines.length = last;
    const starts: number[] = [];
    let off = 0;
    for (const l of lines) {
      starts.push(off);
      off += l.length + 1;
    }
    return { text: lines.join('\n'), starts, lines };
  }

  private reset(): void {
    this.rows = Array.from({ length: VT_ROWS }, () => new Array<string>(VT_COLS).fill(' '));
    this.row = this.col = 0;
    this.wrapPending = false;
    this.autowrap = true;
    this.saved = { row: 0, col: 0 };
  }

  private lineFeed(): void {
    if (this.row < VT_ROWS - 1) {
      this.row++;
      return;
    }
    const top = this.rows.shift()!;
    const line = top.join('').trimEnd();
    // Keep what scrolls off (even blank lines, which separate paragraphs) for matching.
    this.scrollback.push(line);
    if (this.scrollback.length > SCROLLBACK_LIMIT) this.scrollback.shift();
    this.rows.push(new Array<string>(VT_COLS).fill(' '));
  }

  private moveTo(row: number, col: number): void {
    this.row = Math.min(VT_ROWS - 1, Math.max(0, row));
    this.col = Math.min(VT_COLS - 1, Math.max(0, col));
    this.wrapPending = false;
  }

  private eraseLine(r: number, from: number, to: number): void {
    const line = this.rows[r]!;
    for (let c = Math.max(0, from); c < Math.min(VT_COLS, to); c++) line[c] = ' ';
  }

  private apply(a: TermAction): void {
    switch (a.kind) {
      case 'print':
        if (this.wrapPending) {
          this.wrapPending = false;
          if (this.autowrap) {
            this.col = 0;
            this.lineFeed();
          }
        }
        this.rows[this.row]![this.col] = a.ch;
        if (this.col === VT_COLS - 1) this.wrapPending = true;
        else this.col++;
        return;
      case 'control':
        switch (a.code) {
          case 0x0a:
          case 0x0b:
          case 0x0c:
            this.wrapPending = false;
            this.lineFeed();
            return;
          case 0x0d:
            this.col = 0;
            this.wrapPending = false;
            return;
          case 0x08:
            if (this.col > 0) this.col--;
            this.wrapPending = false;
            return;
          case 0x09:
            this.col = Math.min(VT_COLS - 1, (Math.floor(this.col / 8) + 1) * 8);
            return;
          default:
            return;
        }
      case 'esc':
        if (a.intermediates !== '') return; // character set designations and the like
        switch (a.final) {
          case 'c':
            this.reset();
            this.clear();
            return;
          case 'D':
            this.lineFeed();
            return;
          case 'E':
            this.col = 0;
            this.lineFeed();
            return;
          case 'M':
            if (this.row > 0) this.row--;
            else {
              this.rows.pop();
              this.rows.unshift(new Array<string>(VT_COLS).fill(' '));
            }
            return;
          case '7':
            this.saved = { row: this.row, col: this.col };
            return;
          case '8':
            this.moveTo(this.saved.row, this.saved.col);
            return;
          default:
            return;
        }
      case 'csi':
        this.csi(a.final, a.params, a.private);
        return;
    }
  }

  private csi(final: string, params: number[], priv: string): void {
    if (priv === '?') {
      // DEC private modes: only autowrap changes what text ends up where.
      if (params.includes(7) && (final === 'h' || final === 'l')) this.autowrap = final === 'h';
      return;
    }
    if (priv !== '') return;
    const n = count(params);
    switch (final) {
      case 'A':
        this.moveTo(this.row - n, this.col);
        return;
      case 'B':
        this.moveTo(this.row + n, this.col);
        return;
      case 'C':
        this.moveTo(this.row, this.col + n);
        return;
      case 'D':
        this.moveTo(this.row, this.col - n);
        return;
      case 'G':
        this.moveTo(this.row, n - 1);
        return;
      case 'd':
        this.moveTo(n - 1, this.col);
        return;
      case 'H':
      case 'f':
        this.moveTo(Math.max(1, params[0] ?? 1) - 1, Math.max(1, params[1] ?? 1) - 1);
        return;
      case 'J': {
        const mode = params[0] ?? 0;
        if (mode === 0) {
          this.eraseLine(this.row, this.col, VT_COLS);
          for (let r = this.row + 1; r < VT_ROWS; r++) this.eraseLine(r, 0, VT_COLS);
        } else if (mode === 1) {
          for (let r = 0; r < this.row; r++) this.eraseLine(r, 0, VT_COLS);
          this.eraseLine(this.row, 0, this.col + 1);
        } else {
          // 2 (and xterm's 3): the whole screen. What was on it stays readable in the scrollback.
          for (let r = 0; r < VT_ROWS; r++) {
            const line = this.rows[r]!.join('').trimEnd();
            if (line !== '') this.scrollback.push(line);
            this.eraseLine(r, 0, VT_COLS);
          }
          while (this.scrollback.length > SCROLLBACK_LIMIT) this.scrollback.shift();
        }
        return;
      }
      case 'K': {
        const mode = params[0] ?? 0;
        if (mode === 0) this.eraseLine(this.row, this.col, VT_COLS);
        else if (mode === 1) this.eraseLine(this.row, 0, this.col + 1);
        else this.eraseLine(this.row, 0, VT_COLS);
        return;
      }
      case 's':
        this.saved = { row: this.row, col: this.col };
        return;
      case 'u':
        this.moveTo(this.saved.row, this.saved.col);
        return;
      default:
        return; // SGR (m), modes (h/l), scrolling regions and the rest
    }
  }
}
