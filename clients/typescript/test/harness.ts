/**
 * A live Trove for the tests: the real binary on the zero-setup local stack (no
 * TROVE_SHARDS: two private PostgreSQL clusters in a temporary data dir), on a port picked
 * here so a restarted instance answers on the same URL.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, chmodSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository root: the directory above clients/ (this file runs from build/test/). */
function repoRoot(): string {
  let dir = here;
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, "Cargo.toml"))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(here, "../../../..");
}

export const TROVE_BIN = process.env.TROVE_BIN ?? path.join(repoRoot(), "target", "debug", "trove");

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForBinary(): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (!existsSync(TROVE_BIN)) {
    if (Date.now() > deadline) throw new Error(`${TROVE_BIN} does not exist (build Trove first, or set TROVE_BIN)`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function pgCtl(): string {
  try {
    const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const p = `/usr/lib/postgresql/${v}/bin/pg_ctl`;
      if (existsSync(p)) return p;
    }
  } catch {
    /* not Debian's layout */
  }
  return "pg_ctl";
}

/** Stops the local stack's PostgreSQL servers in `dataDir` (a SIGKILLed Trove leaves them running). */
function stopClusters(dataDir: string): void {
  let entries: string[] = [];
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

const live = new Set<Trove>();
process.on("exit", () => {
  for (const t of live) {
    try {
      t.proc?.kill("SIGKILL");
    } catch {
      /* gone */
    }
    stopClusters(t.dataDir);
    if (!process.env.KEEP_TROVE_DATA) rmSync(t.dataDir, { recursive: true, force: true });
  }
});

export interface StartOptions {
  /** Extra TROVE_* settings. */
  env?: Record<string, string>;
}

export class Trove {
  proc: ChildProcess | null = null;
  url = "";
  adminToken = "";
  playerToken = "";
  shardUrls: string[] = [];
  private stderr: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  /** False for a second instance on another's local stack (`attach`): it leaves the
   *  clusters and the data dir to their owner. */
  private owner = true;

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    private env: Record<string, string>,
  ) {}

  /** Another Trove instance on the same local stack (same shards, secret and receipt key). */
  static async attach(to: Trove, options: StartOptions = {}): Promise<Trove> {
    const t = new Trove(to.dataDir, await freePort(), { ...to.env, ...(options.env ?? {}) });
    t.owner = false;
    await t.launch();
    return t;
  }

  /** Settings for the next `launch` (a restart), on top of the ones it started with. */
  setEnv(extra: Record<string, string>): void {
    this.env = { ...this.env, ...extra };
  }

  static async start(options: StartOptions = {}): Promise<Trove> {
    await waitForBinary();
    const dataDir = mkdtempSync(path.join(tmpdir(), "trove-ts-"));
    // PostgreSQL runs as `postgres` when we are root: it must reach the data dir.
    chmodSync(dataDir, 0o755);
    const t = new Trove(dataDir, await freePort(), options.env ?? {});
    live.add(t);
    await t.launch();
    return t;
  }

  /** Starts the binary (again, on the same data dir and port). */
  async launch(): Promise<void> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUST_LOG: process.env.TROVE_TEST_LOG ?? "warn",
      TROVE_DATA_DIR: this.dataDir,
      TROVE_LISTEN: `127.0.0.1:${this.port}`,
      TROVE_SHUTDOWN_TIMEOUT_MS: "3000",
      ...this.env,
    };
    delete env.TROVE_SHARDS;
    delete env.TROVE_REDIS_URL;
    const proc = spawn(TROVE_BIN, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.stderr = [];
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      this.stderr.push(...chunk.split("\n"));
      if (this.stderr.length > 400) this.stderr.splice(0, this.stderr.length - 400);
      if (process.env.TROVE_TEST_ECHO) process.stderr.write(chunk);
    });
    proc.stdout!.setEncoding("utf8");
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Trove did not start within 120 s:\n${this.logTail()}`)), 120_000);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`Trove exited (${code ?? signal}) before listening:\n${out}\n${this.logTail()}`));
      };
      proc.once("exit", onExit);
      proc.stdout!.on("data", (chunk: string) => {
        out += chunk;
        const shards = [...out.matchAll(/shard (\d+): (\S+)/g)].map((m) => m[2]!);
        if (shards.length) this.shardUrls = shards;
        const player = /player token: (\S+)/.exec(out);
        const admin = /admin token:\s+(\S+)/.exec(out);
        if (player) this.playerToken = player[1]!;
        if (admin) this.adminToken = admin[1]!;
        const listening = /Trove listening on (http:\/\/\S+)/.exec(out);
        if (listening) {
          this.url = listening[1]!;
          clearTimeout(timer);
          proc.off("exit", onExit);
          resolve();
        }
      });
    });
  }

  logTail(lines = 40): string {
    return this.stderr.filter(Boolean).slice(-lines).join("\n");
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGKILL: no graceful shutdown (its PostgreSQL servers keep running). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM: graceful shutdown. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill("SIGTERM");
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 20_000));
    if ((await Promise.race([this.exited, timeout])) === "timeout") await this.kill();
  }

  /** Stops everything this instance started and deletes its data dir. */
  async cleanup(): Promise<void> {
    // No graceful shutdown needed: nothing of the data dir is kept.
    await this.kill();
    if (!this.owner) return;
    stopClusters(this.dataDir);
    live.delete(this);
    if (!process.env.KEEP_TROVE_DATA) rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A token signed with the local stack's secret (HS256, as `trove token` makes them). */
  token(player: string, role: "player" | "admin" = "player", ttlSecs = 3600): string {
    const secret = readFileSync(path.join(this.dataDir, "jwt-secret"), "utf8").trim();
    const b64 = (v: object | Buffer) => Buffer.from(v instanceof Buffer ? v : JSON.stringify(v)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: player, role, exp: now + ttlSecs, iat: now })}`;
    const sig = createHmac("sha256", Buffer.from(secret, "utf8")).update(head).digest();
    return `${head}.${b64(sig)}`;
  }

  /** `trove verify ZONE` against this instance's local stack: its exit code and report. */
  async verify(zone: string): Promise<{ code: number; report: TroveVerifyReport; stderr: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env, TROVE_DATA_DIR: this.dataDir, RUST_LOG: "warn" };
    delete env.TROVE_SHARDS;
    return new Promise((resolve, reject) => {
      execFile(TROVE_BIN, ["verify", zone], { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        try {
          resolve({ code: typeof code === "number" ? code : 1, report: JSON.parse(stdout), stderr });
        } catch (e) {
          reject(new Error(`trove verify ${zone}: ${stdout}\n${stderr}`));
        }
      });
    });
  }

  /** Runs SQL on a shard with psql (as the local stack's `trove` superuser). */
  psql(shard: number, sql: string): string {
    const url = this.shardUrls[shard];
    if (!url) throw new Error(`no shard ${shard}`);
    return execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], { encoding: "utf8" });
  }
}

export interface TroveVerifyReport {
  zone: string;
  claims_checked: number;
  claims_with_revealed_seed: number;
  mismatch_count: number;
  mismatches: { claim_id: string; chest_id: number; player: string; seed_epoch: number; recorded: unknown; expected: unknown }[];
  nonce_problem_count: number;
  nonce_problems: { player: string; seed_epoch: number; claim_id: string; expected: number; found: number | null; kind: string }[];
  bad_commitments: number[];
}

/** Runs `f` over `items` with at most `n` at once, in order of `items`. */
export async function pool<T, R>(items: T[], n: number, f: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await f(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A seeded PRNG (mulberry32), so a failing run can be repeated with TEST_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const TEST_SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
