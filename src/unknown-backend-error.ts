// Thrown by the controller (App) when an operator names a backend that is not configured; the
// admin API answers it with 404. On the ground floor because the layer that throws it (control)
// sits above the one that catches it (admin). It joins the error catalogue (src/errors.ts) when
// that exists.
export class UnknownBackendError extends Error {
  readonly code = 'PGW_UNKNOWN_BACKEND';
  constructor(readonly backend: string) {
    super(`no backend named ${backend}`);
  }
}
