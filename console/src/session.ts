/**
 * The token (kept in sessionStorage only: gone when the tab closes, never in the URL or in
 * localStorage), what it says about its holder, and the one TroveClient every page uses.
 */
import { TroveClient } from "../../clients/typescript/src/index.js";

const KEY = "trove.console.token";

export interface Identity {
  sub: string;
  role: "admin" | "player" | string;
  /** Seconds since the epoch, when the token says. */
  exp: number | null;
}

export function token(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function saveToken(t: string): void {
  sessionStorage.setItem(KEY, t);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}

/**
 * What a JWT's payload says (no signature check: Trove does that on every call; this only
 * picks the pages to show). Null when it is not a JWT.
 */
export function decode(t: string): Identity | null {
  const parts = t.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), (c) => c.charCodeAt(0)));
    const p = JSON.parse(json) as Record<string, unknown>;
    if (typeof p.sub !== "string") return null;
    return { sub: p.sub, role: typeof p.role === "string" ? p.role : "player", exp: typeof p.exp === "number" ? p.exp : null };
  } catch {
    return null;
  }
}

export function identity(): Identity | null {
  const t = token();
  return t ? decode(t) : null;
}

export const isAdmin = (): boolean => identity()?.role === "admin";

/** The console talks to the Trove that serves it (same origin: the CSP allows nothing else). */
export const trove = new TroveClient({
  baseUrl: location.origin,
  token: () => token() ?? "",
  // A person is waiting: fail sooner than a game client would.
  retry: { attempts: 3, totalTimeoutMs: 20_000 },
});

/** The same, without retries: for answers a retry would not change (leaderboards off without Redis). */
export const troveOnce = new TroveClient({ baseUrl: location.origin, token: () => token() ?? "", retry: { attempts: 1 } });
