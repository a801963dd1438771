/**
 * Every failure the client reports is a `TroveError`: Trove's own error bodies
 * (`{error, message, request_id}`) with the HTTP status, and the client's own failures
 * (`network_error`, `timeout`, `aborted`, `invalid_response`) with status 0.
 */
export class TroveError extends Error {
  override readonly name = "TroveError";
  /** The HTTP status; 0 when no answer arrived (network error, timeout, abort). */
  readonly status: number;
  /** Trove's snake_case code (`zone_exhausted`, `rate_limited`, ...) or the client's own. */
  readonly error: string;
  /** Trove's request id (also its `X-Request-Id`), when the server answered. */
  readonly request_id: string | null;
  /** Seconds from `Retry-After`, when the answer carried one. */
  readonly retryAfter: number | null;
  /** How many attempts were made before giving up (1 when nothing was retried). */
  readonly attempts: number;

  constructor(init: {
    status: number;
    error: string;
    message: string;
    request_id?: string | null;
    retryAfter?: number | null;
    attempts?: number;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.error = init.error;
    this.request_id = init.request_id ?? null;
    this.retryAfter = init.retryAfter ?? null;
    this.attempts = init.attempts ?? 1;
  }

  /** The same error, with the number of attempts it took. */
  withAttempts(attempts: number): TroveError {
    return new TroveError({
      status: this.status,
      error: this.error,
      message: this.message,
      request_id: this.request_id,
      retryAfter: this.retryAfter,
      attempts,
      cause: this.cause,
    });
  }

  /** No HTTP answer arrived: the request may or may not have run. */
  get isTransport(): boolean {
    return this.status === 0;
  }

  toJSON(): Record<string, unknown> {
    return {
      status: this.status,
      error: this.error,
      message: this.message,
      request_id: this.request_id,
      retryAfter: this.retryAfter,
      attempts: this.attempts,
    };
  }
}

export function isTroveError(e: unknown): e is TroveError {
  return e instanceof TroveError;
}
