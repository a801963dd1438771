/** The leaderboards: chests opened and loot value, global or of one zone. */
import { h, fill, num, ZONE_NAME } from "../dom.js";
import { go, href } from "../router.js";
import { troveOnce } from "../session.js";
import { card, errorBox, field, form, isAbort, loading, pageHead, progress, segmented, table, type PageContext } from "../ui.js";

const BOARDS = [
  { key: "chests", label: "Chests opened" },
  { key: "loot_value", label: "Loot value" },
];

export function leaderboardsPage(ctx: PageContext): HTMLElement {
  const board = ctx.query.get("board") === "loot_value" ? "loot_value" : "chests";
  const zone = ctx.query.get("zone") ?? "";
  const body = h("div", null, loading("Loading the board…"));

  const zoneInput = h("input", { name: "zone", value: zone, placeholder: "all zones", autocomplete: "off", "aria-label": "Zone" });
  const filter = form(
    "inline-form",
    () => {
      const z = zoneInput.value.trim();
      if (z && !ZONE_NAME.test(z)) return fill(body, errorBox(new Error(`“${z}” is not a zone name.`)));
      go(href("leaderboards", { board, zone: z || null }));
    },
    field("Zone", zoneInput),
    h("button.btn", { type: "submit" }, "Show"),
  );

  void (async () => {
    try {
      const page = await troveOnce.leaderboard(board, { zone: zone || undefined, limit: 50, signal: ctx.signal });
      const top = page.entries[0]?.score ?? 0;
      fill(
        body,
        table(
          ["Rank", "Player", "Score", ""],
          page.entries.map((e) => [h("span.rank", null, `#${e.rank}`), h("span.strong", null, e.player), num(e.score), progress(e.score, top)]),
          { cls: "board-table", empty: "Nobody is ranked yet." },
        ),
      );
    } catch (e) {
      if (!isAbort(e)) fill(body, errorBox(e));
    }
  })();

  return h(
    "div",
    null,
    pageHead("Leaderboards", [zone ? `Zone ${zone}` : "Every zone (synthetic zones are left out)."], [filter]),
    card(BOARDS.find((b) => b.key === board)!.label, [body], {
      actions: [segmented(BOARDS.map((b) => ({ label: b.label, href: href("leaderboards", { board: b.key, zone: zone || null }), active: b.key === board })))],
    }),
  );
}
