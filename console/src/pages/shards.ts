/** The shards and their health (`GET /v1/shards`, what `trove shards` prints, and `/readyz`). */
import { h, fill, num, when } from "../dom.js";
import { trove } from "../session.js";
import { card, errorBox, isAbort, kv, loading, pageHead, pill, table, value, type PageContext } from "../ui.js";

const REFRESH_MS = 10_000;

/** Fields shown with their own labels; any other field is listed as it comes. */
const LABELS: Record<string, string> = {
  url: "URL",
  migration_version: "Migration version",
  zones: "Zones",
  unopened_chests: "Unopened chests",
  ledger_rows: "Ledger rows",
  shard_id: "Shard id",
  error: "Error",
};
const SKIP = new Set(["shard", "ordinal", "reachable", "status", "hosts"]);

export function shardsPage(ctx: PageContext): HTMLElement {
  const body = h("div", null, loading("Asking every shard…"));
  const updated = h("span.small.muted");

  const load = async () => {
    try {
      const [view, ready] = await Promise.all([trove.shards(ctx.signal), trove.readiness(ctx.signal).catch(() => null)]);
      const shards = (view.shards ?? []) as unknown as Record<string, unknown>[];
      const up = shards.filter(isUp).length;
      const summary = h(
        "div.stats",
        null,
        h("div.stat", null, h("div.stat-label", null, "Shards up"), h("div.stat-value", null, `${up} / ${shards.length}`)),
        h("div.stat", null, h("div.stat-label", null, "Zones"), h("div.stat-value", null, num(sum(shards, "zones")))),
        h("div.stat", null, h("div.stat-label", null, "Unopened chests"), h("div.stat-value", null, num(sum(shards, "unopened_chests")))),
        h(
          "div.stat",
          null,
          h("div.stat-label", null, "Readiness"),
          h("div.stat-value", null, ready ? pill(ready.ready ? "ready" : "not ready", ready.ready ? "good" : "bad") : pill("unknown", "muted")),
          ready ? h("div.stat-extra", null, `Redis: ${ready.redis.status}`) : null,
        ),
      );
      const cards = shards.map((s) => shardCard(s));
      const moves = (view.moves ?? []) as unknown as Record<string, unknown>[];
      fill(
        body,
        summary,
        h("div.shard-grid", null, cards),
        card("Zone moves in progress", [
          table(
            ["Zone", "From", "To", "Phase", "Updated"],
            moves.map((m) => [String(m.zone ?? "–"), `#${m.from}`, `#${m.to}`, String(m.phase ?? "–"), when(m.updated_at as string)]),
            { empty: "No zone is moving." },
          ),
        ]),
      );
      fill(updated, `updated ${when(new Date().toISOString()).slice(11)}, every ${REFRESH_MS / 1000} s`);
    } catch (e) {
      if (!isAbort(e)) fill(body, errorBox(e));
    }
  };
  void load();
  const timer = setInterval(() => void load(), REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));

  return h("div", null, pageHead("Shards", ["The PostgreSQL shards this Trove writes to, as ", h("code", null, "trove shards"), " reports them."], [updated]), body);
}

function isUp(s: Record<string, unknown>): boolean {
  if (typeof s.reachable === "boolean") return s.reachable;
  return s.status === "up";
}

function sum(rows: Record<string, unknown>[], k: string): number {
  return rows.reduce((a, r) => a + (typeof r[k] === "number" ? (r[k] as number) : 0), 0);
}

function shardCard(s: Record<string, unknown>): HTMLElement {
  const n = s.shard ?? s.ordinal ?? "?";
  const up = isUp(s);
  const pairs: [string, ReturnType<typeof value>][] = [];
  for (const [k, label] of Object.entries(LABELS)) if (k in s && !(k === "error" && s[k] == null)) pairs.push([label, k === "error" ? h("span.text-bad", null, String(s[k])) : k === "url" || k === "shard_id" ? h("code", null, String(s[k] ?? "–")) : value(s[k])]);
  for (const [k, v] of Object.entries(s)) if (!(k in LABELS) && !SKIP.has(k)) pairs.push([k.replace(/_/g, " "), value(v)]);
  const hosts = Array.isArray(s.hosts) ? (s.hosts as Record<string, unknown>[]) : [];
  return card(
    h("span", null, `Shard ${n} `, pill(up ? "up" : typeof s.status === "string" ? s.status : "down", up ? "good" : "bad")),
    [
      kv(pairs),
      hosts.length
        ? h(
            "div",
            null,
            h("h3", null, "Hosts"),
            table(
              ["Host", "Role", "Lag", "Synchronous", "Error"],
              hosts.map((x) => [
                h("code", null, String(x.host)),
                pill(String(x.role), x.role === "primary" ? "good" : x.role === "down" ? "bad" : "info"),
                x.lag_bytes == null ? "–" : `${num(x.lag_bytes as number)} bytes`,
                value(x.synchronous),
                value(x.error),
              ]),
            ),
          )
        : null,
    ],
    { cls: up ? "shard-up" : "shard-down" },
  );
}
