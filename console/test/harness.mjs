// A live Trove for the console's tests, started the way clients/typescript/test/harness.ts
// does it: the real binary on the zero-setup local stack (no TROVE_SHARDS, a temporary
// TROVE_DATA_DIR with two private PostgreSQL clusters; as root they run as `postgres`).
//
// The console's files are embedded in the binary when it is built, so a binary built before
// the last `npm run build` serves an older console. `consoleOrigin` answers with the origin
// the browser should load: Trove itself when its /console/app.js is the one in dist/, else a
// small same-origin front here that serves dist/ under the headers Trove sends (its
// Content-Security-Policy included) and passes everything else, WebSockets too, to Trove.
// CONSOLE_FROM=trove insists on Trove's own copy (CI, after building the binary).

import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const consoleDir = path.resolve(here, "..");
export const TROVE_BIN = process.env.TROVE_BIN ?? path.resolve(consoleDir, "..", "target", "debug", "trove");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
  });
}

function pgCtl() {
  try {
    for (const v of readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))) {
      const p = `/usr/lib/postgresql/${v}/bin/pg_ctl`;
      if (existsSync(p)) return p;
    }
  } catch {
    /* not Debian's layout */
  }
  return "pg_ctl";
}

/** Stops the local stack's PostgreSQL servers (a killed Trove leaves them running). */
function stopClusters(dataDir) {
  let entries = [];
  try {
    entries = readdirSync(dataDir);
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(dataDir, e);
    if (!/^shard\d+$/.test(e) || !existsSync(path.join(dir, "postmaster.pid"))) continue;
    const args = ["stop", "-D", dir, "-m", "immediate", "-w", "-t", "30"];
    try {
      if (isRoot) execFileSync("runuser", ["-u", "postgres", "--", pgCtl(), ...args], { stdio: "ignore" });
      else execFileSync(pgCtl(), args, { stdio: "ignore" });
    } catch {
      /* already stopped */
    }
  }
}

const live = new Set();
process.on("exit", () => {
  for (const t of live) t.cleanupSync();
});

export class Trove {
  url = "";
  adminToken = "";
  playerToken = "";
  #proc = null;
  #log = [];

  constructor(dataDir, port) {
    this.dataDir = dataDir;
    this.port = port;
  }

  static async start(env = {}) {
    if (!existsSync(TROVE_BIN)) throw new Error(`${TROVE_BIN} does not exist (build Trove first, or set TROVE_BIN)`);
    const dataDir = mkdtempSync(path.join(tmpdir(), "trove-console-"));
    chmodSync(dataDir, 0o755); // PostgreSQL runs as `postgres` when we are root
    const t = new Trove(dataDir, await freePort());
    live.add(t);
    await t.#launch(env);
    return t;
  }

  async #launch(extra) {
    const env = {
      ...process.env,
      RUST_LOG: process.env.TROVE_TEST_LOG ?? "warn",
      TROVE_DATA_DIR: this.dataDir,
      TROVE_LISTEN: `127.0.0.1:${this.port}`,
      TROVE_SHUTDOWN_TIMEOUT_MS: "3000",
      ...extra,
    };
    delete env.TROVE_SHARDS;
    delete env.TROVE_REDIS_URL;
    const proc = spawn(TROVE_BIN, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.#proc = proc;
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => {
      this.#log.push(chunk);
      if (this.#log.length > 200) this.#log.shift();
      if (process.env.TROVE_TEST_ECHO) process.stderr.write(chunk);
    });
    proc.stdout.setEncoding("utf8");
    let out = "";
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Trove did not start within 120 s:\n${this.logTail()}`)), 120_000);
      const onExit = (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Trove exited (${code ?? signal}) before listening:\n${out}\n${this.logTail()}`));
      };
      proc.once("exit", onExit);
      proc.stdout.on("data", (chunk) => {
        out += chunk;
        const player = /player token: (\S+)/.exec(out);
        const admin = /admin token:\s+(\S+)/.exec(out);
        if (player) this.playerToken = player[1];
        if (admin) this.adminToken = admin[1];
        const listening = /Trove listening on (http:\/\/\S+)/.exec(out);
        if (listening) {
          this.url = listening[1];
          clearTimeout(timer);
          proc.off("exit", onExit);
          resolve();
        }
      });
    });
  }

  logTail() {
    return this.#log.join("").split("\n").slice(-40).join("\n");
  }

  /** A token signed with the local stack's secret (HS256, as `trove token` makes them). */
  token(player, role = "player", ttlSecs = 3600) {
    const secret = readFileSync(path.join(this.dataDir, "jwt-secret"), "utf8").trim();
    const b64 = (v) => Buffer.from(v instanceof Buffer ? v : JSON.stringify(v)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: player, role, exp: now + ttlSecs, iat: now })}`;
    const sig = createHmac("sha256", Buffer.from(secret, "utf8")).update(head).digest();
    return `${head}.${b64(sig)}`;
  }

  /** A plain HTTP call to Trove: `{status, body}` (body parsed when it is JSON). */
  async api(method, route, { token = this.adminToken, body, headers = {} } = {}) {
    const res = await fetch(this.url + route, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  cleanupSync() {
    try {
      this.#proc?.kill("SIGKILL");
    } catch {
      /* gone */
    }
    stopClusters(this.dataDir);
    if (!process.env.KEEP_TROVE_DATA) rmSync(this.dataDir, { recursive: true, force: true });
    live.delete(this);
  }

  async stop() {
    const proc = this.#proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    }
    this.cleanupSync();
  }
}

const DIST = ["index.html", "app.js", "app.css"];

/**
 * Where the browser loads the console: `{origin, embedded, close}`. `embedded` says whether it
 * is Trove's own copy (the binary's files equal dist/) or the front described above.
 */
export async function consoleOrigin(trove) {
  const distFiles = Object.fromEntries(DIST.map((f) => [f, readFileSync(path.join(consoleDir, "dist", f))]));
  const served = await fetch(`${trove.url}/console/app.js`);
  const servedBody = Buffer.from(await served.arrayBuffer());
  const embedded = served.status === 200 && servedBody.equals(distFiles["app.js"]);
  const mode = process.env.CONSOLE_FROM ?? "auto";
  if (mode === "trove" && !embedded) {
    throw new Error("CONSOLE_FROM=trove, but the binary's /console/app.js is not console/dist/app.js: rebuild Trove");
  }
  if (embedded || mode === "trove") return { origin: trove.url, embedded: true, close: async () => {} };

  // Trove's own headers for its console files, so the page runs under the same policy.
  const index = await fetch(`${trove.url}/console`);
  const keep = ["content-security-policy", "x-content-type-options", "referrer-policy", "cache-control"];
  const headers = Object.fromEntries(keep.filter((h) => index.headers.get(h)).map((h) => [h, index.headers.get(h)]));
  if (!headers["content-security-policy"]) throw new Error("Trove's /console sends no Content-Security-Policy");
  const types = { "index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8" };
  const target = new URL(trove.url);
  const server = http.createServer((req, res) => {
    const p = req.url.split("?")[0];
    const file = p === "/console" || p === "/console/" ? "index.html" : p === "/console/app.js" ? "app.js" : p === "/console/app.css" ? "app.css" : null;
    if (file) {
      res.writeHead(200, { ...headers, "content-type": types[file] });
      res.end(distFiles[file]);
      return;
    }
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  // WebSockets: the upgrade request and everything after it, byte for byte.
  server.on("upgrade", (req, socket, head) => {
    const up = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const end = () => {
      up.destroy();
      socket.destroy();
    };
    up.on("error", end);
    socket.on("error", end);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${port}`,
    embedded: false,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

export async function eventually(what, check, timeoutMs = 15_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
