/** Backoff with jitter, shared by HTTP retries and WebSocket reconnects. */

export interface RetryOptions {
  /** Attempts in all, the first included (default 8). */
  attempts?: number;
  /** The first backoff in ms (default 100). */
  baseDelayMs?: number;
  /** The longest backoff in ms (default 5,000); a longer `Retry-After` is still honoured. */
  maxDelayMs?: number;
  /** Per-attempt timeout in ms (default 15,000: longer than Trove's 10 s request timeout). */
  timeoutMs?: number;
  /** Give up once this long has passed since the first attempt (default 60,000 ms). */
  totalTimeoutMs?: number;
}

export type ResolvedRetry = Required<RetryOptions>;

export const DEFAULT_RETRY: ResolvedRetry = {
  attempts: 8,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  timeoutMs: 15_000,
  totalTimeoutMs: 60_000,
};

export function resolveRetry(o?: RetryOptions): ResolvedRetry {
  return { ...DEFAULT_RETRY, ...(o ?? {}) };
}

/**
 * The pause before retry number `retry` (1 = the first retry): "equal jitter", half of the
 * exponential step fixed and half random, so a crowd of clients spreads out but none waits
 * nearly zero. A `Retry-After` (seconds) is a floor: the pause is at least that, plus up to
 * 10 % jitter so the crowd does not return in the same millisecond.
 */
export function backoffDelay(
  retry: number,
  o: Pick<ResolvedRetry, "baseDelayMs" | "maxDelayMs">,
  retryAfterSecs?: number | null,
  random: () => number = Math.random,
): number {
  const step = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.max(0, retry - 1));
  const delay = step / 2 + random() * (step / 2);
  if (retryAfterSecs != null && retryAfterSecs > 0) {
    const floor = retryAfterSecs * 1000;
    return Math.max(delay, floor + random() * floor * 0.1);
  }
  return delay;
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value == null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, (at - now) / 1000);
}

/** Sleeps `ms`, ending early (rejecting with the signal's reason) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
