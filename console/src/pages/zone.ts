/**
 * One zone: live totals and a live feed of opened chests (the client's watch over /v1/ws),
 * spawning chests, the seed epochs and their reveal, and the server-side verification.
 */
import { TroveError, type Watch, type WatchEvent, type ZoneTotals, type ZoneView, type VerifyReport } from "../../../clients/typescript/src/index.js";
import { h, fill, num, when, clock, hash, ZONE_NAME } from "../dom.js";
import { go, href } from "../router.js";
import { trove } from "../session.js";
import { actionButton, card, errorBox, field, form, isAbort, kv, loading, notice, pageHead, pill, progress, rarity, stat, table, value, type PageContext } from "../ui.js";

const FEED_MAX = 200;

export function zonePage(ctx: PageContext, [zone]: string[]): HTMLElement {
  const root = h("div.zone-page", null, loading(`Loading ${zone}…`));
  if (!zone || !ZONE_NAME.test(zone)) {
    fill(root, notice("bad", h("strong", null, "Not a zone name"), h("p", null, `“${zone ?? ""}” is not a valid zone name.`)));
    return root;
  }
  void (async () => {
    try {
      const view = await trove.zone(zone, ctx.signal);
      fill(root, ...zoneView(ctx, zone, view));
    } catch (e) {
      if (isAbort(e)) return;
      if (e instanceof TroveError && e.error === "zone_not_found") {
        fill(
          root,
          pageHead(zone, [pill("new", "info"), " This zone does not exist yet: spawning chests creates it."]),
          h("div.grid-2", null, spawnCard(ctx, zone, () => go(href("zones", zone)))),
        );
      } else fill(root, pageHead(zone), errorBox(e));
    }
  })();
  return root;
}

function zoneView(ctx: PageContext, zone: string, initial: ZoneView): HTMLElement[] {
  let view = initial;
  const totals = h("div.stats");
  const status = h("span.live.live-connecting", { id: "live-status" }, "connecting");
  const feedList = h("ol.feed", { id: "feed", "aria-live": "polite" });
  const feedEmpty = h("p.empty.feed-empty", null, "Waiting for chests to be opened… Each claim appears here the moment Trove records it.");
  const epochsBody = h("div");
  const commitment = h("span", null, hash(view.seed_commitment, 12));
  const epochPill = h("span", { id: "zone-epoch", class: "pill pill-info", title: "the epoch new claims draw from" }, `epoch ${view.seed_epoch}`);
  let count = 0;

  const showTotals = (t: ZoneTotals) => {
    fill(
      totals,
      stat("Total chests", num(t.total)),
      stat("Opened", h("span", { id: "opened" }, num(t.opened)), progress(t.opened, t.total, `${num(t.opened)} of ${num(t.total)}`)),
      stat("Remaining", h("span", { id: "remaining" }, num(t.remaining))),
      stat("Seed epoch", String(view.seed_epoch), h("span.small", null, "new claims draw from it")),
    );
  };
  showTotals(view);

  const addFeed = (e: WatchEvent) => {
    feedEmpty.remove();
    let row: HTMLElement;
    if (e.type === "chest_opened") {
      count++;
      row = h(
        "li.feed-item.fresh",
        { "data-claim": e.claim_id },
        h("span.feed-time", null, clock(e.opened_at)),
        h("span.feed-what", null, h("strong", null, e.player), " opened chest ", h("strong", null, `#${e.chest_id}`)),
        rarity(e.rarity),
        h("a.feed-link", { href: href("verify", { zone, claim: e.claim_id }), title: `claim ${e.claim_id}` }, "verify"),
      );
    } else {
      row = h(
        "li.feed-item.feed-spawn.fresh",
        null,
        h("span.feed-time", null, clock(new Date().toISOString())),
        h("span.feed-what", null, h("strong", null, `+${num(e.count)}`), " chests spawned"),
        h("span.small.muted", null, `${num(e.remaining)} left`),
      );
    }
    feedList.prepend(row);
    while (feedList.childElementCount > FEED_MAX) feedList.lastElementChild?.remove();
    fill(feedCount, `${num(count)} opened since you opened this page`);
  };
  const feedCount = h("span.small.muted");

  let watch: Watch | null = null;
  try {
    watch = trove.watch([zone], {
      onEvent: (e) => addFeed(e),
      onView: (_z, v) => showTotals(v),
      onStatus: (s) => {
        status.className = `live live-${s}`;
        status.textContent = s === "open" ? "live" : s;
      },
      onError: (err) => {
        status.className = "live live-error";
        status.textContent = err.error.replace(/_/g, " ");
        status.title = err.message;
      },
    });
    ctx.onLeave(() => watch?.close());
  } catch (e) {
    status.className = "live live-error";
    status.textContent = "no live feed";
    status.title = e instanceof Error ? e.message : String(e);
  }

  const refresh = async () => {
    view = await trove.zone(zone, ctx.signal);
    showTotals(watch?.view(zone) ?? view);
    epochPill.textContent = `epoch ${view.seed_epoch}`;
    fill(commitment, hash(view.seed_commitment, 12));
    renderEpochs();
  };

  const renderEpochs = () => {
    const rows = [...view.epochs].reverse().map((e) => [
      h("span.strong", null, String(e.epoch)),
      e.seed ? pill("revealed", "good") : e.epoch === view.seed_epoch ? pill("current", "info") : pill("sealed", "muted"),
      hash(e.seed_commitment),
      e.seed ? hash(e.seed) : h("span.muted", null, "sealed until revealed"),
      h("span.small", null, when(e.revealed_at ?? null)),
      e.seed ? h("a", { href: href("verify", { zone }) }, "verify a claim") : null,
    ]);
    fill(epochsBody, table(["Epoch", "", "Commitment (SHA-256 of the seed)", "Seed", "Revealed", ""], rows, { cls: "epochs-table" }));
  };
  renderEpochs();

  const revealOut = h("div", { id: "reveal-out" });
  const revealArea = h("div.reveal-area");
  const showRevealButton = () =>
    fill(
      revealArea,
      h(
        "button.btn.btn-warn",
        {
          type: "button",
          id: "reveal",
          onclick: () =>
            fill(
              revealArea,
              h("p.confirm", null, `Reveal the seed of epoch ${view.seed_epoch}? Anyone can then replay its draws; new claims move to epoch ${view.seed_epoch + 1}.`),
              actionButton(
                "Yes, reveal",
                async () => {
                  const r = await trove.reveal(zone, ctx.signal);
                  await refresh();
                  showRevealButton();
                  return notice(
                    "good",
                    h("strong", null, `Epoch ${r.epoch} revealed`),
                    kv([
                      ["Seed", hash(r.seed, 16)],
                      ["Commitment", hash(r.seed_commitment, 16)],
                      [`Epoch ${r.next_epoch} commitment`, hash(r.next_seed_commitment, 16)],
                    ]),
                  );
                },
                { cls: "btn-warn", out: revealOut, busy: "Revealing…" },
              ),
              h("button.btn.btn-ghost", { type: "button", onclick: showRevealButton }, "Cancel"),
            ),
        },
        `Reveal seed of epoch ${view.seed_epoch}`,
      ),
    );
  showRevealButton();

  const verifyOut = h("div", { id: "verify-out" });
  const verifyButton = actionButton(
    "Verify zone",
    async () => {
      fill(verifyOut, loading("Replaying every claim on the server…"));
      const report = await trove.verifyZoneOnServer(zone, ctx.signal);
      return verifyReport(report);
    },
    { cls: "btn-primary", out: verifyOut, busy: "Verifying…" },
  );
  verifyButton.id = "verify-zone";

  return [
    pageHead(zone, [pill(`shard ${view.shard}`, "muted"), " ", epochPill, " ", status], [h("a.btn.btn-ghost", { href: href("zones") }, "All zones")]),
    totals,
    h(
      "div.grid-main",
      null,
      card("Live feed", [feedList, feedEmpty], { actions: [feedCount], cls: "feed-card" }),
      h(
        "div.side",
        null,
        spawnCard(ctx, zone, () => void refresh().catch(() => {})),
        card("Verification", [h("p.small", null, "Trove replays every claim of the zone from the seeds and loot tables, checks each player's nonces and every revealed commitment."), verifyButton, verifyOut]),
        card("Seed", [
          h("p.small", null, "Draws use a secret seed whose SHA-256 was published first. Revealing it lets anyone replay the epoch's draws."),
          kv([["Current commitment", commitment]]),
          revealArea,
          revealOut,
        ])
      ),
    ),
    card("Seed epochs", [epochsBody]),
  ];
}

function spawnCard(ctx: PageContext, zone: string, after: () => void): HTMLElement {
  const count = h("input", { type: "number", name: "count", min: 1, max: 1000000, value: 100, id: "spawn-count" });
  const select = h("select", { name: "loot_table", id: "spawn-table" }, h("option", { value: "" }, "loading…"));
  const out = h("div", { id: "spawn-out" });
  void trove
    .lootTables({ limit: 1000, signal: ctx.signal })
    .then((l) => {
      fill(select, l.loot_tables.map((t) => h("option", { value: t.name }, `${t.name} (v${t.latest_version})`)));
      if (!l.loot_tables.length) fill(out, notice("warn", "No loot tables yet: ", h("a", { href: href("tables") }, "make one first"), "."));
    })
    .catch((e) => !isAbort(e) && fill(out, errorBox(e)));
  const button = actionButton(
    "Spawn chests",
    async () => {
      const n = Number(count.value);
      if (!Number.isInteger(n) || n < 1 || n > 1_000_000) return notice("bad", "Spawn 1 to 1,000,000 chests at a time.");
      if (!select.value) return notice("bad", "Pick a loot table.");
      const r = await trove.spawn(zone, { count: n, loot_table: select.value }, ctx.signal);
      after();
      return notice("good", `Spawned ${num(r.spawned)} chests of ${select.value}: ${num(r.remaining)} unopened in ${r.zone}.`);
    },
    { cls: "btn-primary", out, busy: "Spawning…", type: "submit" },
  );
  button.id = "spawn";
  return card("Spawn chests", [
    form("spawn-form", () => button.click(), h("div.form-row", null, field("How many", count), field("Loot table", select)), button),
    out,
  ]);
}

export function verifyReport(r: VerifyReport): HTMLElement {
  const head = r.clean
    ? notice("good", h("strong", { id: "verify-verdict" }, "Clean"), h("p", null, `All ${num(r.claims_checked)} claims of ${r.zone} replay as recorded; ${num(r.claims_with_revealed_seed)} of them from a revealed seed, so anyone can check them too.`))
    : notice("bad", h("strong", { id: "verify-verdict" }, "Problems found"), h("p", null, `${num(r.mismatch_count)} mismatching claims, ${num(r.nonce_problem_count)} nonce problems, ${r.bad_commitments.length} bad commitments, out of ${num(r.claims_checked)} claims.`));
  const parts: HTMLElement[] = [
    head,
    h(
      "ul.facts",
      null,
      h("li", null, h("b", null, num(r.claims_checked)), " claims checked"),
      h("li", null, h("b", null, num(r.claims_with_revealed_seed)), " with a revealed seed"),
      h("li", { class: r.mismatch_count ? "text-bad" : undefined }, h("b", null, num(r.mismatch_count)), " mismatches"),
      h("li", { class: r.nonce_problem_count ? "text-bad" : undefined }, h("b", null, num(r.nonce_problem_count)), " nonce problems"),
      h("li", { class: r.bad_commitments.length ? "text-bad" : undefined }, h("b", null, String(r.bad_commitments.length)), " bad commitments", r.bad_commitments.length ? ` (epochs ${r.bad_commitments.join(", ")})` : ""),
    ),
  ];
  if (r.mismatches.length)
    parts.push(
      h("h3", null, `Mismatches${r.mismatch_count > r.mismatches.length ? ` (first ${num(r.mismatches.length)})` : ""}`),
      table(
        ["Claim", "Chest", "Player", "Epoch", "Recorded", "Replayed"],
        r.mismatches.map((m) => [hash(m.claim_id, 6), `#${m.chest_id}`, m.player, String(m.seed_epoch), value(m.recorded), value(m.expected)]),
      ),
    );
  if (r.nonce_problems.length)
    parts.push(
      h("h3", null, "Nonce problems"),
      table(
        ["Player", "Epoch", "Claim", "Problem", "Expected", "Found"],
        r.nonce_problems.map((p) => [p.player, String(p.seed_epoch), hash(p.claim_id, 6), p.kind.replace(/_/g, " "), String(p.expected), value(p.found)]),
      ),
    );
  return h("div.report", null, parts);
}
