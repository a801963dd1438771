/**
 * "Verify a draw", for players: find a claim (by id in the player's history or the zone's
 * revealed transcripts, or pasted as JSON), replay its draw here in the browser with the
 * client's verifyClaim, and show every step.
 */
import { Verifier, verifyClaim, type ClaimVerification, type VerifiableClaim, type VerifyMaterial, type LootItem } from "../../../clients/typescript/src/index.js";
import { h, fill, num, when, hash, ZONE_NAME } from "../dom.js";
import { go, href } from "../router.js";
import { identity, isAdmin, trove } from "../session.js";
import { card, errorBox, field, form, isAbort, loading, notice, pageHead, rarity, table, type PageContext } from "../ui.js";

const HISTORY_PAGES = 20;

const STEP_TITLES: Record<string, string> = {
  commitment: "The seed matches its commitment",
  loot_table: "The loot table is the version the chest was spawned with",
  draw_seed: "The draw seed",
  loot: "The rolled loot",
  receipt_leaf: "The receipt's leaf",
  receipt_path: "The Merkle path to the signed root",
  receipt_key: "The signing key",
  receipt_signature: "The signature",
  transcript: "The epoch's signed transcript lists it",
};

/** What a failed step means, in a sentence. */
const FAILED: Record<string, string> = {
  commitment: "The revealed seed is not the one Trove committed to before the draw.",
  loot_table: "The loot table is not the version the chest was spawned with.",
  draw_seed: "The draw seed cannot be computed from this claim.",
  loot: "Replaying the seed gives other loot than the claim records.",
  receipt_leaf: "The claim's fields do not match its receipt: something in it was changed.",
  receipt_path: "The receipt's Merkle path does not lead to the signed root.",
  receipt_key: "The receipt names no key Trove publishes.",
  receipt_signature: "The receipt's signature does not verify.",
  transcript: "The claim differs from the epoch's signed transcript.",
};

/** One Verifier per page view: it caches seeds, tables and keys. */
export function verifyPage(ctx: PageContext): HTMLElement {
  const verifier = new Verifier(trove);
  const me = identity();
  const result = h(
    "div",
    { id: "verify-result" },
    card("How it works", [
      h(
        "div.verify-placeholder",
        null,
        h("p", null, "Pick a claim on the left or in the list below. Once its epoch's seed is revealed, your browser checks:"),
        h(
          "ol",
          null,
          h("li", null, "that SHA-256 of the revealed seed is the commitment Trove published before the draw;"),
          h("li", null, "the draw seed, HMAC-SHA256 of the seed over zone, player, client seed and nonce;"),
          h("li", null, "that replaying ChaCha20 from it over the loot table gives exactly the recorded loot;"),
          h("li", null, "and, for a claim answer with its receipt, the Merkle path and Trove's Ed25519 signature."),
        ),
      ),
    ]),
  );

  const zoneIn = h("input", { name: "zone", id: "v-zone", value: ctx.query.get("zone") ?? "", placeholder: "meadow", autocomplete: "off" });
  const claimIn = h("input", { name: "claim", id: "v-claim", value: ctx.query.get("claim") ?? "", placeholder: "01a233ed-79f2-71a7-…", autocomplete: "off", spellcheck: "false" });
  const playerIn = h("input", {
    name: "player",
    id: "v-player",
    value: ctx.query.get("player") ?? (isAdmin() ? "" : (me?.sub ?? "")),
    placeholder: isAdmin() ? "optional" : "",
    autocomplete: "off",
  });
  const pasteIn = h("textarea.json-input", { id: "v-json", rows: 10, spellcheck: "false", placeholder: '{"claim_id": "…", "zone": "meadow", "loot": [...], "receipt": {...}}' });

  const run = async (find: () => Promise<Found>) => {
    fill(result, loading("Replaying the draw…"));
    try {
      const found = await find();
      const material = await verifier.material(found.claim);
      const v = await verifyClaim(found.claim, material);
      if (found.leaf !== undefined) {
        const ok = v.leaf !== null && v.leaf === found.leaf.toLowerCase();
        v.steps.push({
          step: "transcript" as never,
          ok,
          detail: ok ? `line of epoch ${found.claim.seed_epoch}'s transcript, leaf ${found.leaf}` : `the transcript's leaf is ${found.leaf}, the claim's fields hash to ${v.leaf}`,
        });
        if (!ok) {
          v.ok = false;
          v.problems.push("transcript: leaf differs");
        }
      }
      fill(result, report(found, v, material));
    } catch (e) {
      if (!isAbort(e)) fill(result, errorBox(e));
    }
  };

  const byId = form(
    "verify-form",
    () => {
      const zone = zoneIn.value.trim();
      const id = claimIn.value.trim().toLowerCase();
      const player = playerIn.value.trim();
      if (!id) return fill(result, notice("bad", "Give the claim id (from the claim answer or the list below)."));
      if (zone && !ZONE_NAME.test(zone)) return fill(result, notice("bad", `“${zone}” is not a zone name.`));
      if (!zone && !player) return fill(result, notice("bad", "Give the zone (its revealed transcripts are searched) or the player (their history is)."));
      history.replaceState(null, "", href("verify", { zone, claim: id, player: ctx.query.get("player") }));
      void run(() => findClaim(ctx, zone, id, player));
    },
    h("div.form-row", null, field("Zone", zoneIn), field("Player", playerIn, isAdmin() ? "whose history to search" : undefined)),
    field("Claim id", claimIn),
    h("button.btn.btn-primary", { type: "submit", id: "v-find" }, "Verify this claim"),
  );

  const byPaste = form(
    "verify-form",
    () => {
      let claim: VerifiableClaim;
      try {
        claim = parseClaim(pasteIn.value);
      } catch (e) {
        return fill(result, notice("bad", h("strong", null, "That is not a claim"), h("p", null, e instanceof Error ? e.message : String(e))));
      }
      void run(async () => ({ claim, source: "pasted" }));
    },
    field("The claim answer as your game kept it (JSON)", pasteIn, "With its receipt, the signature is checked too."),
    h("button.btn.btn-primary", { type: "submit", id: "v-paste" }, "Verify the pasted claim"),
  );

  const tabs = h("div.tabs");
  const panel = h("div.tab-panel");
  const setTab = (which: "id" | "paste") => {
    fill(
      tabs,
      h(`button.tab${which === "id" ? ".active" : ""}` as "button", { type: "button", id: "tab-id", onclick: () => setTab("id") }, "By claim id"),
      h(`button.tab${which === "paste" ? ".active" : ""}` as "button", { type: "button", id: "tab-paste", onclick: () => setTab("paste") }, "Paste the claim"),
    );
    fill(panel, which === "id" ? byId : byPaste);
  };
  setTab("id");

  if (claimIn.value && (zoneIn.value || playerIn.value)) queueMicrotask(() => byId.requestSubmit());

  const historyPlayer = ctx.query.get("player") ?? (isAdmin() ? "" : (me?.sub ?? ""));
  return h(
    "div",
    null,
    pageHead("Verify a draw", [
      "Your browser replays the claim's draw from the seed Trove revealed and checks the signed receipt, step by step. Nothing rests on Trove's word: the code doing it runs here.",
    ]),
    h("div.grid-verify", null, card("Which claim", [tabs, panel]), h("div.verify-out", null, result)),
    historyCard(ctx, historyPlayer, (c) => {
      zoneIn.value = c.zone;
      claimIn.value = c.claim_id;
      playerIn.value = c.player;
      setTab("id");
      byId.requestSubmit();
      window.scrollTo({ top: 0, behavior: "smooth" });
    }),
  );
}

interface Found {
  claim: VerifiableClaim;
  source: "history" | "transcript" | "pasted";
  /** The transcript's leaf for it (a transcript line). */
  leaf?: string;
}

async function findClaim(ctx: PageContext, zone: string, id: string, player: string): Promise<Found> {
  if (player) {
    let before: string | undefined;
    for (let i = 0; i < HISTORY_PAGES; i++) {
      const page = await trove.history(player, { limit: 500, before, signal: ctx.signal });
      const c = page.claims.find((x) => x.claim_id === id);
      if (c) return { claim: c, source: "history" };
      if (!page.next) break;
      before = page.next;
    }
  }
  if (zone) {
    const view = await trove.zone(zone, ctx.signal);
    for (const e of [...view.epochs].reverse()) {
      if (!e.seed) continue;
      const t = await trove.transcript(zone, e.epoch, ctx.signal);
      const line = t.claims.find((x) => x.claim_id === id);
      if (line) {
        const { leaf, ...claim } = line;
        return { claim, source: "transcript", leaf };
      }
    }
  }
  const where = [player && `${player}'s history`, zone && `the revealed epochs of ${zone}`].filter(Boolean).join(" or ");
  throw new Error(`No claim ${id} in ${where}. A claim of an epoch not yet revealed is only in its player's history.`);
}

function parseClaim(text: string): VerifiableClaim {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`It is not valid JSON (${e instanceof Error ? e.message : e}).`);
  }
  // The client's claim() result wraps the answer.
  if (v && typeof v === "object" && "claim" in v && typeof (v as { claim: unknown }).claim === "object") v = (v as { claim: unknown }).claim;
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("It is JSON, but not an object.");
  const c = v as Record<string, unknown>;
  for (const k of ["claim_id", "zone", "player", "seed_epoch", "loot_table", "loot_table_version", "loot"])
    if (!(k in c)) throw new Error(`It has no “${k}”: paste the whole claim answer.`);
  return c as unknown as VerifiableClaim;
}

function report(found: Found, v: ClaimVerification, m: VerifyMaterial): HTMLElement {
  const c = found.claim;
  const receiptChecked = v.steps.some((s) => s.step === "receipt_signature" && s.ok === true);
  const state = v.ok ? "verified" : v.pending ? "pending" : "failed";
  const banner = v.ok
    ? notice(
        "good",
        h("strong.verdict", { id: "verify-verdict" }, "Verified"),
        h("p", null, "The revealed seed matches the commitment published before the draw, and replaying it gives exactly the recorded loot."),
        receiptChecked ? h("p", null, "The receipt is signed by Trove's key, so this claim is one Trove committed to.") : h("p.small", null, "No receipt was checked (a history or transcript entry has none): paste the claim answer your game kept to check its signature too."),
      )
    : v.pending
      ? notice("warn", h("strong.verdict", { id: "verify-verdict" }, "Pending"), h("p", null, `Epoch ${c.seed_epoch} of ${c.zone} is not revealed yet, so the draw cannot be replayed. Come back after the reveal.`))
      : notice(
          "bad",
          h("strong.verdict", { id: "verify-verdict" }, "Failed"),
          h("p", null, "This claim does not check out:"),
          h("ul", null, v.steps.filter((st) => st.ok === false).map((st) => h("li", null, FAILED[st.step] ?? `${st.step}: ${st.detail}`))),
          h("p.small", null, "The steps below show what was computed and what the claim says."),
        );

  const steps = h(
    "ol.steps",
    null,
    v.steps.map((s) =>
      h(
        `li.step.step-${s.ok === true ? "ok" : s.ok === false ? "bad" : "skip"}` as "li",
        { "data-step": s.step },
        h("span.step-icon", { "aria-hidden": "true" }, s.ok === true ? "✓" : s.ok === false ? "✗" : "–"),
        h("div", null, h("div.step-title", null, STEP_TITLES[s.step] ?? s.step, s.ok === null ? h("span.small.muted", null, " (not checked)") : null), h("div.step-detail", null, s.detail)),
      ),
    ),
  );

  const recorded = Array.isArray(c.loot) ? (c.loot as LootItem[]) : [];
  const expected = v.expected_loot;
  const n = Math.max(recorded.length, expected?.length ?? 0);
  const rollRows = Array.from({ length: n }, (_, i) => {
    const r = recorded[i];
    const e = expected?.[i];
    const same = !!r && !!e && r.item === e.item && r.qty === e.qty && r.rarity === e.rarity;
    return [
      String(i + 1),
      e ? h("span", null, `${num(e.qty)} × ${e.item} `, rarity(e.rarity)) : h("span.muted", null, expected ? "nothing" : "not replayed"),
      r ? h("span", null, `${num(r.qty)} × ${r.item} `, rarity(r.rarity)) : h("span.muted", null, "nothing"),
      expected ? h(same ? "span.text-good" : "span.text-bad", null, same ? "✓ same" : "✗ differs") : h("span.muted", null, "–"),
    ];
  });
  const seed = typeof m.seed === "string" ? m.seed : null;

  return card(
    h("span", null, "Claim ", h("code", null, c.claim_id)),
    [
      banner,
      h(
        "dl.kv.claim-facts",
        null,
        [
          ["Zone", h("a", { href: href("zones", c.zone) }, c.zone)],
          ["Player", c.player],
          ["Chest", `#${c.chest_id}`],
          ["Opened", when(c.opened_at)],
          ["Seed epoch", String(c.seed_epoch)],
          ["Loot table", `${c.loot_table} v${c.loot_table_version}`],
          ["Nonce", c.nonce == null ? "– (version-1 draw)" : String(c.nonce)],
          ["Client seed", c.client_seed ? h("code", null, c.client_seed) : h("span.muted", null, "none")],
          ["Found in", found.source === "history" ? "the player's history" : found.source === "transcript" ? "the epoch's transcript" : "the pasted answer"],
        ].map(([k, val]) => [h("dt", null, k as string), h("dd", null, val as HTMLElement | string)]),
      ),
      h("h3", null, "Steps"),
      steps,
      h("h3", null, "Rolls"),
      table(["Roll", "Replayed from the seed", "Recorded by Trove", ""], rollRows, { cls: "rolls-table", empty: "No rolls." }),
      h(
        "dl.kv.draw-facts",
        null,
        h("dt", null, "Revealed seed"),
        h("dd", null, seed ? hash(seed, 16) : h("span.muted", null, "not revealed")),
        h("dt", null, "Draw seed"),
        h("dd", null, v.draw_seed ? hash(v.draw_seed, 16) : "–"),
        h("dt", null, "Start"),
        h("dd", null, v.start ?? "–", v.start ? h("span.small.muted", null, " (which unopened chest the draw landed on depends on the chests left then; it is not checked)") : null),
      ),
    ],
    { cls: `verify-card state-${state}` },
  );
}

function historyCard(ctx: PageContext, player: string, pick: (c: VerifiableClaim) => void): HTMLElement {
  const who = h("input", { name: "history-player", value: player, placeholder: "player id", autocomplete: "off", "aria-label": "Player" });
  const picker = isAdmin()
    ? form("inline-form", () => go(href("verify", { player: who.value.trim() || null })), who, h("button.btn", { type: "submit" }, "Show claims"))
    : null;
  const title = player === identity()?.sub ? "Your claims" : player ? `${player}'s claims` : "A player's claims";
  if (!player) return card(title, [h("p.empty", null, "Name a player to list their claims (newest first).")], { actions: [picker], cls: "history-card" });
  const body = h("div", null, loading(`Loading ${player}'s claims…`));
  const more = h("div.pager");
  let before: string | undefined;
  const rows: (HTMLElement | string)[][] = [];
  const load = async () => {
    try {
      const page = await trove.history(player, { limit: 25, before, signal: ctx.signal });
      for (const c of page.claims)
        rows.push([
          h("span.small", null, when(c.opened_at)),
          h("a", { href: href("zones", c.zone) }, c.zone),
          `#${c.chest_id}`,
          h("span", null, c.loot.map((l) => h("span.loot", null, `${num(l.qty)} × ${l.item} `, rarity(l.rarity)))),
          String(c.seed_epoch),
          h("button.btn.btn-small", { type: "button", "data-claim": c.claim_id, onclick: () => pick(c) }, "Verify"),
        ]);
      fill(body, table(["Opened", "Zone", "Chest", "Loot", "Epoch", ""], rows, { cls: "history-table", empty: `${player} has opened no chest yet.` }));
      before = page.next ?? undefined;
      fill(more, page.next ? h("button.btn.btn-ghost", { type: "button", onclick: () => void load() }, "Older claims") : null);
    } catch (e) {
      if (!isAbort(e)) fill(body, errorBox(e));
    }
  };
  void load();
  return card(title, [body, more], { actions: [picker], cls: "history-card" });
}
