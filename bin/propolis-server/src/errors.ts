// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The errors the API answers, in one table: each is a status, an optional
// `error_code` and a message, serialised as the seed's error body
// `{request_id, error_code?, message}` (Dropshot's conventions). Handlers
// throw ApiError; anything else that escapes a handler is our bug and
// becomes the generic 500.
//
// Threading: plain values.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorCode?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ApiError';
  }

  body(requestId: string): { request_id: string; error_code?: string; message: string } {
    return {
      request_id: requestId,
      ...(this.errorCode === undefined ? {} : { error_code: this.errorCode }),
      message: this.message,
    };
  }
}

/** Dropshot's "client error with status": the reason phrase as message, the text as `error_code`. */
function clientErrorWithStatus(status: number, reason: string, code: string): ApiError {
  return new ApiError(status, reason, code);
}

export const errors = {
  /** 400 with the problem in the message. */
  badRequest: (message: string, cause?: unknown): ApiError =>
    new ApiError(400, message, undefined, cause === undefined ? undefined : { cause }),

  notFound: (): ApiError => new ApiError(404, 'Not Found'),

  methodNotAllowed: (): ApiError => new ApiError(405, 'Method Not Allowed'),

  /** Endpoints that need VM objects, when there are none. */
  noInstance: (): ApiError => new ApiError(424, 'Server not initialized (no instance)', 'NoInstance'),

  alreadyInitialized: (): ApiError => new ApiError(409, 'instance already initialized', 'AlreadyInitialized'),

  /** A state change the request queue refused. */
  stateChangeDenied: (reason: string): ApiError =>
    clientErrorWithStatus(403, 'Forbidden', `instance state change not allowed: ${reason}`),

  /** A state-monitor wait that can never be satisfied: the VM's publisher is gone. */
  neverReaches: (gen: number): ApiError =>
    new ApiError(410, `No instance present; will never reach generation ${gen}`, 'NoInstance'),

  /** A disk endpoint naming no Crucible backend (this host has none). */
  noSuchDisk: (id: string): ApiError => clientErrorWithStatus(404, 'Not Found', `no disk with id ${id}!`),

  migrationNotImplemented: (): ApiError =>
    new ApiError(501, 'live migration is not implemented yet', 'MigrationNotImplemented'),

  /** The instance exists but its vCPUs have never run (NMIs need running vCPUs). */
  notRunning: (what: string): ApiError =>
    new ApiError(409, `${what} needs a running instance; this one has not started`, 'InstanceNotRunning'),

  /** Creating the VM failed; the instance reports Failed. */
  createFailed: (reason: string, cause?: unknown): ApiError =>
    new ApiError(
      500,
      `failed to create instance: ${reason}`,
      'CreateFailed',
      cause === undefined ? undefined : { cause },
    ),

  internal: (): ApiError => new ApiError(500, 'Internal Server Error', 'Internal'),

  shuttingDown: (): ApiError => new ApiError(503, 'the server is shutting down', 'ServiceUnavailable'),
};
