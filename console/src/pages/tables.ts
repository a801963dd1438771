/** Loot tables: the list, one table's versions with a chart of drop chances, and new versions. */
import { TroveError, type LootEntry, type TableView } from "../../../clients/typescript/src/index.js";
import { h, fill, num, pct, when, ZONE_NAME } from "../dom.js";
import { barChart } from "../chart.js";
import { go, href } from "../router.js";
import { trove } from "../session.js";
import { card, errorBox, field, form, isAbort, loading, notice, pageHead, rarity, table, type PageContext } from "../ui.js";

const RARITIES = ["common", "uncommon", "rare", "epic", "legendary"] as const;

export function tablesPage(ctx: PageContext): HTMLElement {
  const body = h("div", null, loading("Loading loot tables…"));
  const after = ctx.query.get("after") ?? undefined;
  void (async () => {
    try {
      const page = await trove.lootTables({ after, limit: 100, signal: ctx.signal });
      fill(
        body,
        table(
          ["Name", "Latest version", "Stored"],
          page.loot_tables.map((t) => [h("a.strong", { href: href("tables", t.name) }, t.name), `v${t.latest_version}`, h("span.small", null, when(t.created_at))]),
          { empty: "No loot tables yet." },
        ),
        h(
          "div.pager",
          null,
          after ? h("a.btn.btn-ghost", { href: href("tables") }, "« First") : null,
          page.next ? h("a.btn", { href: href("tables", { after: page.next }) }, "Next page ›") : null,
        ),
      );
    } catch (e) {
      if (!isAbort(e)) fill(body, errorBox(e));
    }
  })();

  const name = h("input", { name: "name", placeholder: "e.g. boss-drops", autocomplete: "off", "aria-label": "New table name" });
  const out = h("div");
  const create = form(
    "inline-form",
    () => {
      const n = name.value.trim();
      if (!ZONE_NAME.test(n)) return fill(out, h("p.field-error", null, "A name is 1–64 of a–z, 0–9 and _ . : - (starting with a letter or digit)."));
      go(href("tables", n, { edit: "1" }));
    },
    field("New loot table", name),
    h("button.btn", { type: "submit" }, "Create"),
  );
  return h("div", null, pageHead("Loot tables", ["Each change makes a new immutable version; chests keep the version they were spawned with."], [create, out]), card("Tables", [body]));
}

export function tablePage(ctx: PageContext, [name]: string[]): HTMLElement {
  const root = h("div", null, loading(`Loading ${name}…`));
  const version = ctx.query.get("v") ? Number(ctx.query.get("v")) : undefined;
  const editing = ctx.query.get("edit") === "1";
  void (async () => {
    try {
      const latest = await trove.lootTable(name!, { signal: ctx.signal });
      const shown = version && version !== latest.version ? await trove.lootTable(name!, { version, signal: ctx.signal }) : latest;
      fill(root, ...tableView(ctx, shown, latest.version, editing));
    } catch (e) {
      if (isAbort(e)) return;
      if (e instanceof TroveError && e.error === "loot_table_not_found" && !version) {
        fill(
          root,
          pageHead(name!, ["No table by this name yet: write its first version."]),
          editor(ctx, name!, { name: name!, version: 0, rolls: 1, entries: [{ item: "gold", weight: 70, min_qty: 1, max_qty: 50, rarity: "common" }, { item: "gem", weight: 30, min_qty: 1, max_qty: 2, rarity: "rare" }] }),
        );
      } else fill(root, pageHead(name!), errorBox(e));
    }
  })();
  return root;
}

function tableView(ctx: PageContext, t: TableView, latest: number, editing: boolean): HTMLElement[] {
  const versions = h(
    "nav.segmented.versions",
    { "aria-label": "versions" },
    Array.from({ length: latest }, (_, i) => latest - i).map((v) =>
      h(`a${v === t.version ? ".active" : ""}` as "a", { href: href("tables", t.name, { v: v === latest ? null : v }) }, `v${v}${v === latest ? " (latest)" : ""}`),
    ),
  );
  const total = t.entries.reduce((s, e) => s + e.weight, 0);
  const chartBox = h("div.chart-box", null, chanceChart(t.entries, t.rolls));
  const rows = t.entries.map((e) => [
    h("span.strong", null, e.item),
    rarity(e.rarity),
    num(e.weight),
    e.min_qty === e.max_qty ? num(e.min_qty) : `${num(e.min_qty)}–${num(e.max_qty)}`,
    pct(e.weight / total, 2),
    pct(1 - Math.pow(1 - e.weight / total, t.rolls), 1),
  ]);
  const edit = h("a.btn.btn-primary", { href: href("tables", t.name, { edit: "1", v: t.version === latest ? null : t.version }) }, "New version");
  return [
    pageHead(t.name, [`Version ${t.version} of ${latest} · ${t.entries.length} entries · ${t.rolls} roll${t.rolls === 1 ? "" : "s"} per chest`], [versions, editing ? null : edit].filter(Boolean) as HTMLElement[]),
    editing
      ? editor(ctx, t.name, t)
      : h(
          "div.grid-2",
          null,
          card("Drop chances per roll", [chartBox, h("p.small.muted", null, `Each roll picks one entry with chance weight ÷ ${num(total)} (the sum of the weights).`)]),
          card("Entries", [table(["Item", "Rarity", "Weight", "Quantity", "Per roll", "Per chest"], rows, { cls: "entries-table" }), h("p.small.muted", null, `“Per chest”: the chance that at least one of the ${t.rolls} roll(s) gives it.`)]),
        ),
  ];
}

function chanceChart(entries: LootEntry[], rolls: number): SVGElement {
  const total = entries.reduce((s, e) => s + (e.weight > 0 ? e.weight : 0), 0) || 1;
  return barChart(
    entries.map((e) => ({ label: e.item || "?", rarity: e.rarity, p: Math.max(0, e.weight) / total })),
    `Drop chances per roll (${rolls} roll${rolls === 1 ? "" : "s"} per chest)`,
  );
}

/** Rows of inputs, a live chart, and a PUT that makes the next version. */
function editor(ctx: PageContext, name: string, base: TableView): HTMLElement {
  const rows: LootEntry[] = base.entries.map((e) => ({ ...e }));
  const rollsInput = h("input", { type: "number", min: 1, max: 16, value: base.rolls, name: "rolls", id: "rolls" });
  const list = h("tbody");
  const preview = h("div.chart-box");
  const out = h("div", { id: "table-out" });

  const redraw = () => fill(preview, chanceChart(rows, Number(rollsInput.value) || 1));
  const input = (e: LootEntry, k: "item" | "weight" | "min_qty" | "max_qty", type: string, attrs: Record<string, number> = {}) => {
    const el = h("input", { type, value: String(e[k]), "aria-label": k, ...attrs });
    el.addEventListener("input", () => {
      (e as unknown as Record<string, unknown>)[k] = type === "number" ? Number(el.value) : el.value.trim();
      redraw();
    });
    return el;
  };
  const renderRows = () => {
    fill(
      list,
      rows.map((e, i) => {
        const sel = h("select", { "aria-label": "rarity" }, RARITIES.map((r) => h("option", { value: r, selected: r === e.rarity }, r)));
        sel.addEventListener("change", () => {
          e.rarity = sel.value as LootEntry["rarity"];
          redraw();
        });
        return h(
          "tr",
          null,
          h("td", null, input(e, "item", "text")),
          h("td", null, sel),
          h("td", null, input(e, "weight", "number", { min: 1, max: 1_000_000 })),
          h("td", null, input(e, "min_qty", "number", { min: 1 })),
          h("td", null, input(e, "max_qty", "number", { min: 1 })),
          h(
            "td",
            null,
            h(
              "button.btn.btn-ghost.btn-small.btn-remove",
              {
                type: "button",
                title: "Remove this entry",
                "aria-label": "Remove this entry",
                onclick: () => {
                  rows.splice(i, 1);
                  renderRows();
                  redraw();
                },
              },
              "✕",
            ),
          ),
        );
      }),
    );
  };
  renderRows();
  redraw();
  rollsInput.addEventListener("input", redraw);

  const save = h("button.btn.btn-primary", { type: "submit", id: "save-table" }, base.version ? "Save as a new version" : "Save version 1");
  const submit = async () => {
    const problem = check(rows, Number(rollsInput.value));
    if (problem) return fill(out, notice("bad", h("strong", null, "Not saved"), h("p", null, problem)));
    save.disabled = true;
    try {
      const r = await trove.putLootTable(name, { entries: rows, rolls: Number(rollsInput.value) }, ctx.signal);
      if (base.version && r.version <= base.version) {
        fill(out, notice("info", `Same content as version ${r.version}: no new version was made.`));
      } else {
        go(href("tables", name));
      }
    } catch (e) {
      if (!isAbort(e)) fill(out, errorBox(e));
    } finally {
      save.disabled = false;
    }
  };
  return h(
    "div.grid-edit",
    null,
    card(base.version ? `New version (from v${base.version})` : "Version 1", [
      form(
        "table-form",
        () => void submit(),
        h(
          "div.table-wrap",
          null,
          h("table.editor", null, h("thead", null, h("tr", null, ["Item", "Rarity", "Weight", "Min qty", "Max qty", ""].map((c) => h("th", null, c)))), list),
        ),
        h(
          "div.form-row",
          null,
          h(
            "button.btn",
            {
              type: "button",
              onclick: () => {
                rows.push({ item: "", weight: 1, min_qty: 1, max_qty: 1, rarity: "common" });
                renderRows();
                redraw();
              },
            },
            "Add entry",
          ),
          h("label.rolls", null, "Rolls per chest ", rollsInput),
        ),
        h("div.form-row", null, save, base.version ? h("a.btn.btn-ghost", { href: href("tables", name) }, "Cancel") : null),
      ),
      out,
    ]),
    card("Preview: drop chances per roll", [preview]),
  );
}

function check(rows: LootEntry[], rolls: number): string | null {
  if (!rows.length) return "A table needs at least one entry.";
  if (rows.length > 256) return "A table has at most 256 entries.";
  if (!Number.isInteger(rolls) || rolls < 1 || rolls > 16) return "Rolls per chest is 1 to 16.";
  for (const [i, e] of rows.entries()) {
    const at = `Entry ${i + 1}${e.item ? ` (${e.item})` : ""}`;
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(e.item)) return `${at}: an item name is 1–64 of letters, digits and _ . : -`;
    if (!Number.isInteger(e.weight) || e.weight < 1 || e.weight > 1_000_000) return `${at}: the weight is a whole number from 1 to 1,000,000.`;
    if (!Number.isInteger(e.min_qty) || !Number.isInteger(e.max_qty) || e.min_qty < 1 || e.max_qty > 1_000_000 || e.min_qty > e.max_qty)
      return `${at}: quantities are whole numbers with 1 ≤ min ≤ max ≤ 1,000,000.`;
  }
  return null;
}
