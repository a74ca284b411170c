// RoutingError lives in the error catalogue (src/errors.ts). This re-export serves only
// src/proxy/session.ts until it imports from there; then delete this file.
export { RoutingError, type RoutingErrorCode } from '../errors';
