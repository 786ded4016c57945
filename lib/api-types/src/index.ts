// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// propolis-api-types: the one source of truth for propolis-server's REST API.
// The schemas (types + validators), the route table the server routes from,
// the OpenAPI document generated from both, api-version handling, and the
// list of deliberate differences from the original API.
//
// No Node built-ins or native modules: the client imports this in browsers.
// Threading: none; immutable values and pure functions.

export * from './schemas.js';
export { ENDPOINTS, type Endpoint, type HttpMethod } from './endpoints.js';
export { buildOpenApi } from './openapi.js';
export { validate, validateQuery, type Validation } from './validate.js';
export {
  API_VERSION,
  API_VERSION_HEADER,
  API_VERSIONS,
  parseApiVersion,
  type ApiVersionParse,
  type PublishedApiVersion,
} from './version.js';
export { DIFFERENCES, type Difference } from './differences.js';
