// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// Versioned device state, declared once.
//
// `schema(kind, version, fields)` yields the TypeScript type, a validator
// and a JSON codec for one payload kind. A device exports a list of
// payloads `{kind, version, data}`; import takes a `PayloadOffers` and must
// consume exactly the kinds and versions it knows — a missing payload or a
// leftover one is an error (Propolis's `PayloadOffers`). Restored state is
// untrusted input: validators check types and ranges here, and devices check
// meaning (e.g. an index inside a FIFO) in their `import`.
//
// Threading: pure functions.

export class MigrateError extends Error {
  constructor(
    readonly code: 'DataMissing' | 'UnexpectedPayload' | 'DeserializationFailed' | 'ImportFailed' | 'NonMigratable',
    message: string,
  ) {
    super(message);
    this.name = 'MigrateError';
  }
}

interface Codec<T> {
  /** Check and convert a JSON value; throws a message naming `path`. */
  decode(v: unknown, path: string): T;
  encode(v: T): unknown;
}

function fail(path: string, what: string): never {
  throw new MigrateError('DeserializationFailed', `${path}: ${what}`);
}

function uint(bits: 8 | 16 | 32): Codec<number> {
  const max = 2 ** bits - 1;
  return {
    decode(v, path) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
        fail(path, `expected u${bits}, got ${JSON.stringify(v)}`);
      return v;
    },
    encode: (v) => v,
  };
}

export const t = {
  u8: uint(8),
  u16: uint(16),
  u32: uint(32),
  /** 64-bit values travel as decimal strings so JSON keeps every bit. */
  u64: {
    decode(v, path) {
      if (typeof v !== 'string' || !/^[0-9]{1,20}$/.test(v))
        fail(path, `expected u64 as decimal string, got ${JSON.stringify(v)}`);
      const b = BigInt(v);
      if (b >= 1n << 64n) fail(path, 'u64 out of range');
      return b;
    },
    encode: (v) => v.toString(),
  } as Codec<bigint>,
  bool: {
    decode(v, path) {
      if (typeof v !== 'boolean') fail(path, `expected bool, got ${JSON.stringify(v)}`);
      return v;
    },
    encode: (v) => v,
  } as Codec<boolean>,
  /** Bytes, at most `max` long, as an array of numbers. */
  bytes(max: number): Codec<Uint8Array> {
    return {
      decode(v, path) {
        if (!Array.isArray(v) || v.length > max) fail(path, `expected at most ${max} bytes`);
        const out = new Uint8Array(v.length);
        v.forEach((b, i) => (out[i] = uint(8).decode(b, `${path}[${i}]`)));
        return out;
      },
      encode: (v) => Array.from(v),
    };
  },
  array<T>(of: Codec<T>, max: number): Codec<T[]> {
    return {
      decode(v, path) {
        if (!Array.isArray(v) || v.length > max) fail(path, `expected an array of at most ${max}`);
        return v.map((x, i) => of.decode(x, `${path}[${i}]`));
      },
      encode: (v) => v.map((x) => of.encode(x)),
    };
  },
};

type Fields = Record<string, Codec<unknown>>;
export type Infer<F extends Fields> = { [K in keyof F]: F[K] extends Codec<infer T> ? T : never };

export interface Payload {
  kind: string;
  version: number;
  data: unknown;
}

export interface Schema<F extends Fields> {
  readonly kind: string;
  readonly version: number;
  encode(v: Infer<F>): Payload;
  /** Validate a payload's data; throws MigrateError naming the bad field. */
  decode(data: unknown): Infer<F>;
}

export function schema<F extends Fields>(kind: string, version: number, fields: F): Schema<F> {
  return {
    kind,
    version,
    encode(v) {
      const data: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(fields)) data[k] = c.encode((v as Record<string, unknown>)[k]);
      return { kind, version, data };
    },
    decode(data) {
      if (typeof data !== 'object' || data === null || Array.isArray(data))
        fail(`${kind}.v${version}`, 'expected an object');
      const src = data as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [k, c] of Object.entries(fields)) {
        if (!(k in src)) fail(`${kind}.v${version}.${k}`, 'missing');
        out[k] = c.decode(src[k], `${kind}.v${version}.${k}`);
      }
      for (const k of Object.keys(src)) {
        if (!(k in fields)) fail(`${kind}.v${version}.${k}`, 'unknown field');
      }
      return out as Infer<F>;
    },
  };
}

/** The payloads offered to one device's import; each must be taken exactly once. */
export class PayloadOffers {
  private readonly left: Payload[];

  constructor(payloads: Payload[]) {
    this.left = [...payloads];
  }

  take<F extends Fields>(s: Schema<F>): Infer<F> {
    const i = this.left.findIndex((p) => p.kind === s.kind && p.version === s.version);
    if (i < 0) throw new MigrateError('DataMissing', `no payload of kind ${s.kind} v${s.version}`);
    const [p] = this.left.splice(i, 1);
    return s.decode((p as Payload).data);
  }

  /** Call after the device took what it knows: leftovers are an error. */
  finish(): void {
    if (this.left.length > 0) {
      const names = this.left.map((p) => `${p.kind} v${p.version}`).join(', ');
      throw new MigrateError('UnexpectedPayload', `unexpected payloads: ${names}`);
    }
  }
}

/** A device whose state can be exported and imported. */
export interface Migrate {
  export(): Payload[];
  import(offers: PayloadOffers): void;
}

/**
 * A register model's export/import run under its device lock; `after`
 * (e.g. re-driving IRQ lines from the restored state) runs, still locked,
 * once an import succeeded.
 */
export function lockedMigrate(lock: { with<T>(fn: () => T): T }, model: Migrate, after?: () => void): Migrate {
  return {
    export: (): Payload[] => lock.with(() => model.export()),
    import: (offers: PayloadOffers): void =>
      lock.with(() => {
        model.import(offers);
        after?.();
      }),
  };
}
