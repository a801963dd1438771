/** Every zone of every shard, a page at a time, real or synthetic. */
import { h, fill, num, when, ZONE_NAME } from "../dom.js";
import { go, href } from "../router.js";
import { trove } from "../session.js";
import { card, errorBox, field, form, isAbort, loading, pageHead, pill, progress, segmented, table, type PageContext } from "../ui.js";

const PAGE = 50;
/** The `after` of each page before the current one, per filter, for "Previous". */
const trail = new Map<string, string[]>();

export function zonesPage(ctx: PageContext): HTMLElement {
  const kind = ctx.query.get("kind") ?? "all";
  const after = ctx.query.get("after") ?? "";
  const synthetic = kind === "real" ? false : kind === "synthetic" ? true : undefined;
  const body = h("div", null, loading("Loading zones…"));

  const name = h("input", { name: "zone", placeholder: "zone name, e.g. meadow", autocomplete: "off", "aria-label": "Zone name" });
  const nameOut = h("div");
  const open = form(
    "inline-form",
    () => {
      const z = name.value.trim();
      if (!ZONE_NAME.test(z)) {
        fill(nameOut, h("p.field-error", null, "A zone name is 1–64 of a–z, 0–9 and _ . : - (starting with a letter or digit)."));
        return;
      }
      go(href("zones", z));
    },
    field("Open or create a zone", name),
    h("button.btn", { type: "submit" }, "Open"),
  );

  const filters = segmented([
    { label: "All", href: href("zones"), active: kind === "all" },
    { label: "Real", href: href("zones", { kind: "real" }), active: kind === "real" },
    { label: "Synthetic", href: href("zones", { kind: "synthetic" }), active: kind === "synthetic" },
  ]);

  void (async () => {
    try {
      const page = await trove.listZones({ after: after || undefined, limit: PAGE, synthetic, signal: ctx.signal });
      const rows = page.zones.map((z) => [
        h("a.strong", { href: href("zones", z.zone) }, z.zone),
        z.synthetic ? pill("synthetic", "info", "made by the fairness probe") : pill("real", "muted"),
        `#${z.shard}`,
        h("div.progress-cell", null, progress(z.opened, z.total, `${num(z.opened)} of ${num(z.total)} opened`), h("span.small", null, `${num(z.opened)} / ${num(z.total)}`)),
        num(z.remaining),
        String(z.seed_epoch),
        h("span.small", null, when(z.created_at)),
      ]);
      const key = kind;
      const prev = trail.get(key) ?? [];
      const atStart = !after;
      if (atStart) trail.set(key, []);
      const nav = h(
        "div.pager",
        null,
        atStart ? null : h("a.btn.btn-ghost", { href: href("zones", { kind: kind === "all" ? null : kind }) }, "« First"),
        !atStart && prev.length
          ? h(
              "a.btn.btn-ghost",
              {
                href: href("zones", { kind: kind === "all" ? null : kind, after: prev[prev.length - 1] || null }),
                onclick: () => trail.set(key, prev.slice(0, -1)),
              },
              "‹ Previous",
            )
          : null,
        page.next
          ? h(
              "a.btn",
              { href: href("zones", { kind: kind === "all" ? null : kind, after: page.next }), onclick: () => trail.set(key, [...prev, after]) },
              "Next page ›",
            )
          : null,
        page.next || after ? h("span.small.muted", null, page.zones.length ? `${page.zones[0]!.zone} … ${page.zones[page.zones.length - 1]!.zone}` : "") : null,
      );
      fill(
        body,
        table(["Zone", "Kind", "Shard", "Opened", "Remaining", "Epoch", "Created"], rows, {
          cls: "zones-table",
          empty: kind === "synthetic" ? "No synthetic zones." : "No zones yet: open one above and spawn chests in it.",
        }),
        nav,
      );
    } catch (e) {
      if (!isAbort(e)) fill(body, errorBox(e));
    }
  })();

  return h(
    "div",
    null,
    pageHead("Zones", ["Every shard's zones in name order, with their chest counts."], [open, nameOut]),
    card("All zones", [body], { actions: [filters] }),
  );
}
