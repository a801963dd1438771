/** Pieces every page uses: cards, pills, tables, errors in words, buttons that run requests. */
import { TroveError } from "../../clients/typescript/src/index.js";
import { h, fill, num } from "./dom.js";
import { forgetToken, identity } from "./session.js";

type Child = Parameters<typeof h>[2];

/** What the page's own calls run under: aborted when the page is left. */
export interface PageContext {
  signal: AbortSignal;
  /** Runs `f` when the page is left (timers, watches). */
  onLeave(f: () => void): void;
  query: URLSearchParams;
}

export function card(title: Child, body: Child[], opts: { actions?: Child[]; cls?: string } = {}): HTMLElement {
  return h(
    `section.card${opts.cls ? "." + opts.cls : ""}` as "section",
    null,
    h("header.card-head", null, h("h2", null, title), opts.actions ? h("div.card-actions", null, opts.actions) : null),
    h("div.card-body", null, body),
  );
}

export function pageHead(title: Child, sub?: Child[], actions?: Child[]): HTMLElement {
  return h(
    "div.page-head",
    null,
    h("div", null, h("h1", null, title), sub?.length ? h("div.page-sub", null, sub) : null),
    actions?.length ? h("div.page-actions", null, actions) : null,
  );
}

export type Tone = "good" | "bad" | "warn" | "info" | "muted";

export function pill(text: string, tone: Tone = "muted", title?: string): HTMLElement {
  return h(`span.pill.pill-${tone}` as "span", { title }, text);
}

export function rarity(r: string | null | undefined): HTMLElement {
  return h(`span.rarity.r-${r ?? "none"}` as "span", null, r ?? "–");
}

export function stat(label: string, value: Child, extra?: Child): HTMLElement {
  return h("div.stat", null, h("div.stat-label", null, label), h("div.stat-value", null, value), extra ? h("div.stat-extra", null, extra) : null);
}

export function progress(done: number, total: number, label?: string): HTMLElement {
  const bar = h("div.progress", { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": done, title: label });
  const inner = h("div.progress-done");
  // The width is set through the CSSOM, which the CSP allows (no style attribute is written).
  inner.style.width = `${total > 0 ? Math.min(100, (100 * done) / total) : 0}%`;
  bar.append(inner);
  return bar;
}

/** A table from rows; `cols` name the header cells. */
export function table(cols: Child[], rows: Child[][], opts: { cls?: string; empty?: string } = {}): HTMLElement {
  if (!rows.length) return h("p.empty", null, opts.empty ?? "Nothing here yet.");
  return h(
    `div.table-wrap${opts.cls ? "." + opts.cls : ""}` as "div",
    null,
    h(
      "table",
      null,
      h("thead", null, h("tr", null, cols.map((c) => h("th", null, c)))),
      h("tbody", null, rows.map((r) => h("tr", null, r.map((c) => h("td", null, c))))),
    ),
  );
}

/** A key/value list (for records whose fields are not all known in advance). */
export function kv(pairs: [string, Child][]): HTMLElement {
  return h("dl.kv", null, pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

/** Any JSON value, readable: numbers formatted, null as a dash, objects as compact JSON. */
export function value(v: unknown): Child {
  if (v === null || v === undefined) return h("span.muted", null, "–");
  if (typeof v === "number") return num(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.length === 0) return h("span.muted", null, "none");
  return h("code.json", null, JSON.stringify(v));
}

// ---- errors in words ------------------------------------------------------------------------

const TITLES: Record<string, string> = {
  network_error: "Trove did not answer",
  timeout: "Trove took too long to answer",
  invalid_response: "The answer was cut off",
  missing_token: "You are not logged in",
  invalid_token: "Your token was refused",
  token_expired: "Your token has expired",
  forbidden: "This needs an admin token",
  rate_limited: "Too many requests",
  overloaded: "Trove is overloaded",
  shard_unavailable: "A shard is down",
  zone_moving: "The zone is moving between shards",
  verify_busy: "A verification is already running",
  leaderboard_unavailable: "Leaderboards are off",
  request_timeout: "The request took too long",
};

function humanize(code: string): string {
  const s = code.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** An error as a title, a sentence and what to do, never a raw dump. */
export function describe(e: unknown): { title: string; message: string; hint?: string; requestId?: string | null } {
  if (e instanceof TroveError) {
    const title = TITLES[e.error] ?? humanize(e.error);
    let hint: string | undefined;
    if (e.status === 401) hint = "Log in again with a valid token.";
    else if (e.error === "forbidden") hint = `You are logged in as ${identity()?.sub ?? "?"} (${identity()?.role ?? "?"}); log in with an admin token for this page.`;
    else if (e.status === 0 && e.error === "network_error") hint = "Check that Trove is running and reachable, then try again.";
    else if (e.retryAfter) hint = `Try again in ${e.retryAfter} s.`;
    else if (e.error === "verify_busy") hint = "Wait for it to finish and try again.";
    else if (e.status === 503) hint = "Try again in a moment.";
    const message = e.message.charAt(0).toUpperCase() + e.message.slice(1);
    return { title, message: /[.!?)]$/.test(message) ? message : `${message}.`, hint, requestId: e.request_id };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { title: "Something went wrong", message };
}

export function errorBox(e: unknown, opts: { atLogin?: boolean } = {}): HTMLElement {
  const d = describe(e);
  if (opts.atLogin && e instanceof TroveError && e.status === 401) {
    d.hint = "Check that you pasted the whole token and that it was made for this Trove (with its TROVE_JWT_SECRET).";
  }
  return h(
    "div.alert.alert-bad",
    { role: "alert" },
    h("strong", null, d.title),
    h("p", null, d.message),
    d.hint ? h("p.hint", null, d.hint) : null,
    e instanceof TroveError && e.status === 401 && !opts.atLogin
      ? h(
          "button.btn.btn-small",
          {
            type: "button",
            onclick: () => {
              forgetToken();
              location.hash = "#/login";
            },
          },
          "Log in again",
        )
      : null,
    d.requestId ? h("p.request-id", null, "Request id ", h("code", null, d.requestId), " (for Trove's logs)") : null,
  );
}

export function notice(tone: Tone, ...children: Child[]): HTMLElement {
  return h(`div.alert.alert-${tone}` as "div", { role: tone === "bad" ? "alert" : "status" }, children);
}

export function isAbort(e: unknown): boolean {
  return e instanceof TroveError && e.error === "aborted";
}

export function loading(what = "Loading…"): HTMLElement {
  return h("p.loading", null, what);
}

/**
 * A button that runs an async action: disabled and marked busy meanwhile; the action's
 * result or error goes to `out` (when given).
 */
export function actionButton(
  label: string,
  run: () => Promise<Child | void>,
  opts: { cls?: string; out?: HTMLElement; busy?: string; type?: "button" | "submit" } = {},
): HTMLButtonElement {
  const b = h(`button.btn${opts.cls ? "." + opts.cls : ""}` as "button", { type: opts.type ?? "button" }, label);
  b.addEventListener("click", async (ev) => {
    ev.preventDefault();
    if (b.disabled) return;
    b.disabled = true;
    b.classList.add("busy");
    b.textContent = opts.busy ?? label;
    try {
      const r = await run();
      if (opts.out && r !== undefined) fill(opts.out, r);
    } catch (e) {
      if (!isAbort(e)) opts.out ? fill(opts.out, errorBox(e)) : console.warn(e);
    } finally {
      b.disabled = false;
      b.classList.remove("busy");
      b.textContent = label;
    }
  });
  return b;
}

/** A form whose submit runs `f` (never a real submission: the CSP allows none). */
export function form(cls: string, onSubmit: (form: HTMLFormElement) => void, ...children: Child[]): HTMLFormElement {
  const f = h(`form.${cls}` as "form", { novalidate: true }, children);
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    onSubmit(f);
  });
  return f;
}

export function field(label: string, input: HTMLElement, help?: string): HTMLElement {
  return h("label.field", null, h("span.field-label", null, label), input, help ? h("span.field-help", null, help) : null);
}

/** Segmented links (filters, boards). */
export function segmented(items: { label: string; href: string; active: boolean }[]): HTMLElement {
  return h(
    "nav.segmented",
    null,
    items.map((i) => h(`a${i.active ? ".active" : ""}` as "a", { href: i.href, "aria-current": i.active ? "true" : undefined }, i.label)),
  );
}
