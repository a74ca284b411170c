// RoutingError lives in the error catalogue (src/errors.ts); this re-export keeps old imports working.
export { RoutingError, type RoutingErrorCode } from '../errors';
