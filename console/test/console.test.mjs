// The console in a real headless Chromium against a real Trove (see harness.mjs): log in,
// spawn chests, watch a claim made from outside arrive in the live feed, reveal, verify the
// zone on the server, then verify draws as a player in the browser, tampered ones too; the
// token stays in sessionStorage, and nothing breaks the Content-Security-Policy.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { CHROMIUM, Trove, consoleDir, consoleOrigin } from "./harness.mjs";

const SHOTS = path.join(consoleDir, "test", "screenshots");
const ZONE = "console-test";
const VIEWPORT = { width: 1280, height: 800 };

let trove, front, browser, origin;
/** Every page under test: CSP violations, uncaught errors and console errors, per page. */
const watched = [];
/** Claim answers made from outside, in order. */
const claims = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  trove = await Trove.start();
  front = await consoleOrigin(trove);
  origin = front.origin;
  console.log(`# console served by ${front.embedded ? "Trove itself" : "a front serving console/dist under Trove's headers (the binary embeds an older build)"}: ${origin}`);
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
});

after(async () => {
  await browser?.close();
  await front?.close();
  await trove?.stop();
});

/** A fresh tab in its own browser context (its own sessionStorage), watched for CSP trouble. */
async function newTab() {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(VIEWPORT);
  const record = { page, violations: [], errors: [], consoleErrors: [], csp: null };
  watched.push(record);
  await page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  page.on("pageerror", (e) => record.errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const text = m.text();
    if (/Content Security Policy|Refused to/i.test(text)) record.violations.push(text);
    // Chromium logs every non-2xx answer as "Failed to load resource"; those are answers
    // the page shows in words (tested below), not faults of the page.
    else if (!/Failed to load resource/.test(text)) record.consoleErrors.push(text);
  });
  page.on("response", (r) => {
    if (r.url().endsWith("/console") || r.url().includes("/console#")) record.csp = r.headers()["content-security-policy"] ?? null;
  });
  return page;
}

async function collectViolations(page) {
  const r = watched.find((w) => w.page === page);
  const fromEvents = await page.evaluate(() => window.__csp ?? []).catch(() => []);
  return [...r.violations, ...fromEvents];
}

const text = (page, sel) => page.$eval(sel, (el) => el.textContent.trim());
async function waitText(page, sel, re, timeout = 10_000) {
  await page.waitForFunction((s, src) => [...document.querySelectorAll(s)].some((el) => new RegExp(src).test(el.textContent)), { timeout }, sel, re.source);
}
async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}
async function clickText(page, sel, re) {
  await page.waitForFunction((s, src) => [...document.querySelectorAll(s)].some((el) => new RegExp(src).test(el.textContent)), { timeout: 10_000 }, sel, re.source);
  await page.evaluate((s, src) => [...document.querySelectorAll(s)].find((el) => new RegExp(src).test(el.textContent)).click(), sel, re.source);
}
async function paste(page, sel, value) {
  await page.$eval(sel, (el, v) => {
    el.value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}
async function login(page, token, route = "") {
  await page.goto(`${origin}/console${route}`);
  await page.waitForSelector("#token");
  await paste(page, "#token", token);
  await page.click("#login");
  await page.waitForSelector(".topbar");
}

async function claim(player, key) {
  const token = trove.token(player);
  const r = await trove.api("POST", `/v1/zones/${ZONE}/claims`, { token, headers: { "idempotency-key": key } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  claims.push(r.body);
  return r.body;
}

let admin;

test("login: a refused token is explained; the admin token lands in sessionStorage, never in the URL or localStorage", async () => {
  admin = await newTab();
  await admin.goto(`${origin}/console#/zones`);
  await admin.waitForSelector("#token");
  await shot(admin, "login");
  // Signed with another secret: Trove refuses it, and the page says so in words.
  const forged = trove.adminToken.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  await paste(admin, "#token", forged);
  await admin.click("#login");
  await waitText(admin, ".alert-bad", /token was refused/i);
  await paste(admin, "#token", "not a token");
  await admin.click("#login");
  await waitText(admin, ".alert-bad", /not a Trove token/);

  await paste(admin, "#token", trove.adminToken);
  await admin.click("#login");
  await admin.waitForSelector(".topbar");
  await waitText(admin, ".zones-table", /meadow/);
  const where = await admin.evaluate(() => ({
    url: location.href,
    session: Object.values(sessionStorage),
    local: Object.keys(localStorage).length,
    cookie: document.cookie,
  }));
  assert.ok(where.session.includes(trove.adminToken), "the token is in sessionStorage");
  assert.equal(where.local, 0, "nothing in localStorage");
  assert.ok(!where.url.includes(trove.adminToken.slice(0, 20)), `the URL carries no token: ${where.url}`);
  assert.equal(where.cookie, "");
  assert.match(where.url, /\/console#\/zones$/, "back where it was asked for");
  const rec = watched.find((w) => w.page === admin);
  assert.match(rec.csp ?? "", /default-src 'none'; script-src 'self'/, "the page came with Trove's CSP");
  await shot(admin, "zones");
});

test("zone: spawn chests in a new zone; claims from outside reach the live feed within a second", async () => {
  await admin.goto(`${origin}/console#/zones/${ZONE}`);
  await waitText(admin, ".page-head", /does not exist yet/);
  await admin.waitForSelector('#spawn-table option[value="starter"]');
  await admin.$eval("#spawn-count", (el) => (el.value = ""));
  await admin.type("#spawn-count", "40");
  await admin.click("#spawn");
  await admin.waitForSelector("#live-status.live-open", { timeout: 15_000 });
  await waitText(admin, "#remaining", /^40$/);

  const players = ["alice", "bob", "carol", "alice", "dave", "bob", "erin", "frank", "carol", "bob"];
  for (const [i, p] of players.entries()) {
    const c = await claim(p, `console-${i}`);
    const t0 = Date.now();
    await admin.waitForSelector(`#feed li[data-claim="${c.claim_id}"]`, { timeout: 1_000 });
    const ms = Date.now() - t0;
    assert.ok(ms < 1_000, `claim ${i} showed after ${ms} ms`);
  }
  await waitText(admin, "#remaining", /^30$/);
  await waitText(admin, "#opened", /^10$/);
  const feed = await admin.$$eval("#feed li", (lis) => lis.map((li) => li.textContent));
  assert.equal(feed.filter((t) => /opened chest/.test(t)).length, 10);
  assert.match(feed[0], /bob opened chest #\d+/, "newest first");
});

test("zone: reveal the seed, then verify the zone on the server: clean", async () => {
  await admin.click("#reveal");
  await clickText(admin, "button", /^Yes, reveal$/);
  await waitText(admin, "#reveal-out .alert-good", /Epoch 1 revealed/);
  await waitText(admin, ".epochs-table", /revealed/);
  await waitText(admin, "#zone-epoch", /^epoch 2$/);
  await admin.click("#verify-zone");
  await waitText(admin, "#verify-verdict", /^Clean$/, 20_000);
  assert.match(await text(admin, "#verify-out"), /All 10 claims/);
  // One more claim, in epoch 2 (unrevealed): a pending draw for the player page.
  const c = await claim("alice", "console-late");
  await admin.waitForSelector(`#feed li[data-claim="${c.claim_id}"]`, { timeout: 1_000 });
  await admin.evaluate(() => window.scrollTo(0, 0));
  await new Promise((r) => setTimeout(r, 1_800)); // the new rows' highlight fades
  await shot(admin, "zone");
  const docs = process.env.SAVE_DOCS_SCREENSHOT;
  if (docs) {
    const file = docs === "1" ? path.resolve(consoleDir, "..", "docs", "console.png") : docs;
    mkdirSync(path.dirname(file), { recursive: true });
    await admin.screenshot({ path: file });
    console.log(`# wrote ${file} (${Math.round(statSync(file).size / 1024)} KiB)`);
  }
});

test("loot tables: a new version through the editor, drawn as a chart of drop chances", async () => {
  await admin.goto(`${origin}/console#/tables`);
  await waitText(admin, "table", /starter/);
  await admin.goto(`${origin}/console#/tables/starter?edit=1`);
  await admin.waitForSelector("#save-table");
  await paste(admin, '.editor input[aria-label="weight"]', "50");
  await admin.click("#save-table");
  await waitText(admin, ".page-head", /Version 2 of 2/);
  assert.equal((await admin.$$(".chart .chart-row")).length, 4);
  const labels = await admin.$$eval(".chart .chart-value", (els) => els.map((e) => e.textContent));
  assert.equal(labels[0], "62.50%", "gold: 50 of 80");
  await shot(admin, "loot-table");
  // The old version is still there.
  await admin.goto(`${origin}/console#/tables/starter?v=1`);
  await waitText(admin, ".page-head", /Version 1 of 2/);
});

test("shards, the zone filter and leaderboards render; a missing Redis is said in words", async () => {
  await admin.goto(`${origin}/console#/shards`);
  await waitText(admin, ".shard-grid", /Shard 0/);
  await waitText(admin, ".shard-grid", /Shard 1/);
  assert.equal((await admin.$$(".shard-grid .pill-good")).length, 2, "both shards up");
  await shot(admin, "shards");

  const probe = await trove.api("POST", "/v1/zones/probe-1/chests", { body: { count: 3, loot_table: "starter", synthetic: true } });
  assert.equal(probe.status, 201, JSON.stringify(probe.body));
  await admin.goto(`${origin}/console#/zones?kind=synthetic`);
  await waitText(admin, ".zones-table", /probe-1/);
  assert.ok(!(await text(admin, ".zones-table")).includes("meadow"));
  await admin.goto(`${origin}/console#/zones?kind=real`);
  await waitText(admin, ".zones-table", new RegExp(ZONE));
  assert.ok(!(await text(admin, ".zones-table")).includes("probe-1"));

  await admin.goto(`${origin}/console#/leaderboards`);
  await waitText(admin, ".alert-bad", /Leaderboards are off/);
  assert.match(await text(admin, ".alert-bad"), /TROVE_REDIS_URL/);
});

test("player: verify a claim of the revealed epoch in the browser, step by step", async () => {
  const player = await newTab();
  await login(player, trove.token("alice"));
  assert.match(player.url(), /#\/verify$/, "a player lands on the verify page");
  const mine = claims.filter((c) => c.player === "alice" && c.seed_epoch === 1);
  await player.waitForSelector(`.history-card button[data-claim="${mine[0].claim_id}"]`);
  await player.click(`.history-card button[data-claim="${mine[0].claim_id}"]`);
  await waitText(player, "#verify-verdict", /^Verified$/);
  const steps = await player.$$eval(".steps li", (lis) => lis.map((li) => `${li.dataset.step}:${li.className.match(/step-(ok|bad|skip)/)[1]}`));
  for (const s of ["commitment:ok", "loot_table:ok", "draw_seed:ok", "loot:ok"]) assert.ok(steps.includes(s), `${s} in ${steps}`);
  assert.ok((await text(player, ".rolls-table")).includes("✓ same"));
  await shot(player, "verify-history");

  // By id in the URL, found in the zone's transcript (another player's claim).
  const bob = claims.find((c) => c.player === "bob");
  await player.goto(`${origin}/console#/verify?zone=${ZONE}&claim=${bob.claim_id}`);
  await waitText(player, "#verify-verdict", /^Verified$/);
  assert.match(await text(player, ".claim-facts"), /epoch's transcript/);
  assert.ok((await player.$$('.steps li[data-step="transcript"].step-ok')).length === 1);

  // The whole answer as the game kept it: the receipt's signature is checked too (Ed25519 in WebCrypto).
  await player.goto(`${origin}/console#/verify`);
  await player.click("#tab-paste");
  await paste(player, "#v-json", JSON.stringify(mine[1] ?? mine[0], null, 2));
  await player.click("#v-paste");
  await waitText(player, "#verify-verdict", /^Verified$/);
  assert.equal((await player.$$('.steps li[data-step="receipt_signature"].step-ok')).length, 1);
  await shot(player, "verify-pasted");

  const where = await player.evaluate(() => ({ url: location.href, local: Object.keys(localStorage).length, session: Object.values(sessionStorage) }));
  assert.equal(where.local, 0);
  assert.ok(where.session.length === 1 && !where.url.includes(where.session[0].slice(0, 20)));
});

test("player: a tampered claim fails, and a claim of an unrevealed epoch is pending", async () => {
  const player = await newTab();
  await login(player, trove.token("alice"), "#/verify");
  const original = claims.find((c) => c.player === "alice" && c.seed_epoch === 1);
  const tampered = structuredClone(original);
  tampered.loot[0].qty += 1;
  await player.click("#tab-paste");
  await paste(player, "#v-json", JSON.stringify(tampered));
  await player.click("#v-paste");
  await waitText(player, "#verify-verdict", /^Failed$/);
  const bad = await player.$$eval(".steps li.step-bad", (lis) => lis.map((li) => li.dataset.step));
  assert.ok(bad.includes("loot"), `the loot replay fails: ${bad}`);
  assert.ok(bad.includes("receipt_leaf"), `the receipt no longer matches: ${bad}`);
  assert.ok((await text(player, ".rolls-table")).includes("✗ differs"));
  await shot(player, "verify-tampered");

  // Another player's name on alice's draw: the draw seed changes, so does the loot.
  const renamed = { ...structuredClone(original), player: "mallory" };
  await paste(player, "#v-json", JSON.stringify(renamed));
  await player.click("#v-paste");
  await waitText(player, "#verify-verdict", /^Failed$/);

  await paste(player, "#v-json", "{not json");
  await player.click("#v-paste");
  await waitText(player, "#verify-result .alert-bad", /not valid JSON/);

  const late = claims.find((c) => c.seed_epoch === 2);
  await paste(player, "#v-json", JSON.stringify(late));
  await player.click("#v-paste");
  await waitText(player, "#verify-verdict", /^Pending$/);
});

test("no page broke the Content-Security-Policy or threw (and the check does catch a violation)", async () => {
  for (const w of watched) {
    assert.deepEqual(await collectViolations(w.page), [], `CSP violations on ${w.page.url()}`);
    assert.deepEqual(w.errors, [], `uncaught errors on ${w.page.url()}`);
    assert.deepEqual(w.consoleErrors, [], `console errors on ${w.page.url()}`);
  }
  // A control: an inline style is refused and reported, so the silence above means something.
  const control = await newTab();
  watched.pop();
  await control.goto(`${origin}/console`);
  await control.waitForSelector("#token");
  await control.evaluate(() => {
    const s = document.createElement("style");
    s.textContent = "body { color: red }";
    document.head.append(s);
  });
  await new Promise((r) => setTimeout(r, 200));
  const v = await control.evaluate(() => window.__csp);
  assert.ok(v.some((x) => x.startsWith("style-src")), `the control violation was seen: ${v}`);
});
