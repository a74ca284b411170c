// A routing failure the client sees as a PostgreSQL ErrorResponse: a stable code for logs and
// metrics, the SQLSTATE for drivers, and a message a person can act on.
export type RoutingErrorCode =
  | 'PGW_QUEUE_TIMEOUT'
  | 'PGW_QUEUE_FULL'
  | 'PGW_CLIENT_GONE'
  | 'PGW_SHUTTING_DOWN'
  | 'PGW_TOO_MANY_CLIENTS';

export class RoutingError extends Error {
  constructor(readonly code: RoutingErrorCode, readonly sqlstate: string, message: string) {
    super(message);
    this.name = 'RoutingError';
  }
}
