// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The `fetch` propolis-cli hands to PropolisClient: a small one over
// node:http instead of the global fetch, for two reasons.
//
//   - The state monitor is a long poll that may wait for hours; Node's
//     global fetch gives up on a response whose headers take more than
//     five minutes, and offers no public way to change that.
//   - When the server cannot be reached, the global fetch says only
//     "fetch failed"; this one keeps the system's reason (ECONNREFUSED,
//     ENOTFOUND, …), which the CLI prints.
//
// One more difference: the original's state monitor takes its generation as
// a JSON body on a GET (`{"gen": N}`). PropolisClient sends it as the `gen`
// query parameter instead, since browsers cannot put a body on a GET; Node
// can, so this transport sends the body as well, and a server that reads
// either form (the original reads only the body) answers.
//
// It does what the client needs and no more: one request, the body as text,
// no redirects, no connection reuse (a CLI makes a few requests and exits;
// an idle kept-alive socket would only delay the exit).
//
// Main thread; each call is independent.

import { Agent, request } from 'node:http';

const agent = new Agent({ keepAlive: false });

/** Statuses whose responses have no body (a Response refuses one). */
const NULL_BODY = new Set([101, 204, 205, 304]);

export type DebugLog = (line: string) => void;

export function nodeFetch(debug?: DebugLog): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.protocol !== 'http:') {
        reject(new Error(`unsupported URL scheme ${url.protocol}`));
        return;
      }
      const method = init?.method ?? 'GET';
      const headers = new Headers(init?.headers);
      let body = typeof init?.body === 'string' ? init.body : undefined;
      const gen = url.searchParams.get('gen');
      if (method === 'GET' && url.pathname.endsWith('/instance/state-monitor') && gen !== null && body === undefined) {
        body = JSON.stringify({ gen: Number(gen) });
        headers.set('content-type', 'application/json');
      }
      // Explicit, since Node sends a GET's body neither chunked nor with a length.
      if (body !== undefined) headers.set('content-length', String(Buffer.byteLength(body)));
      const started = Date.now();
      const req = request(url, {
        method,
        agent,
        headers: Object.fromEntries(headers.entries()),
        ...(init?.signal ? { signal: init.signal } : {}),
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        debug?.(`${method} ${url.href}: ${e.code ?? e.message}`);
        reject(new Error(e.code !== undefined && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          debug?.(`${method} ${url.href} -> ${status} (${Date.now() - started} ms)`);
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
          }
          resolve(
            new Response(NULL_BODY.has(status) ? null : Buffer.concat(chunks), {
              status,
              statusText: res.statusMessage ?? '',
              headers: h,
            }),
          );
        });
      });
      req.end(body);
    });
}
