/**
 * `Watch`: one WebSocket to `/v1/ws` that follows zones (README "Realtime (WebSocket)").
 *
 * - Subscribes, unsubscribes and pings (`{"op":"ping"}`, also a liveness check: a socket that
 *   stays silent past `pingIntervalMs + pongTimeoutMs` is dropped and reconnected).
 * - Reconnects with backoff and resumes with `since` = the last position it holds, so the
 *   server replays the `chest_opened` events it missed.
 * - On `lagged` it resumes from the position held *before* the `lagged` message (the one
 *   after it would skip what the server dropped), and holds that position until the resume
 *   is answered, so a reconnect in between replays from there too.
 * - Hands snapshots over (`onSnapshot`) on first subscription, on `resync`, and when a resume
 *   was not possible (`resumed: false`).
 * - Keeps a per-zone view `{total, opened, remaining}` = the last snapshot plus the events
 *   after it. While a subscribe is in flight the events that arrive are all at or before the
 *   position its snapshot will be taken at, so they are delivered but not counted twice: the
 *   snapshot replaces the view.
 * - Delivers no event twice: the server skips what a connection has sent or was told the
 *   client has (`since`), and the client also drops a `claim_id` it has delivered already
 *   (a reconnect's replay from a held position can include events seen live).
 */
import { backoffDelay, type ResolvedRetry } from "./retry.js";
import type { Rarity } from "./types.js";

/** The parts of a WebSocket the watch uses (the browser's, or `ws`'s in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export interface ZoneTotals {
  total: number;
  opened: number;
  remaining: number;
}

export interface ChestOpenedEvent {
  type: "chest_opened";
  zone: string;
  chest_id: number;
  player: string;
  rarity: Rarity | null;
  opened_at: string;
  claim_id: string;
  position: string;
}

export interface ChestsSpawnedEvent {
  type: "chests_spawned";
  zone: string;
  count: number;
  total: number;
  remaining: number;
  position: string;
}

export type WatchEvent = ChestOpenedEvent | ChestsSpawnedEvent;

export type SnapshotReason =
  /** The first snapshot of a zone. */
  | "subscribed"
  /** A resume could not replay the gap (`resumed: false`): events in it will not come one by one. */
  | "not_resumed"
  /** The server's ledger tail of the zone's shard started over, or the zone moved shards. */
  | "resync";

export interface SnapshotInfo {
  reason: SnapshotReason;
  position: string;
  message?: string;
}

export type WatchStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface WatchError {
  error: string;
  message: string;
}

export interface WatchHandlers {
  /** Every `chest_opened` and `chests_spawned`, once; `view` is the zone's view after it. */
  onEvent?(event: WatchEvent, view: ZoneTotals | undefined): void;
  /** A fresh snapshot of a zone to take as the truth (see `SnapshotReason`). */
  onSnapshot?(zone: string, view: ZoneTotals, info: SnapshotInfo): void;
  /** After any change of a zone's view. */
  onView?(zone: string, view: ZoneTotals): void;
  onStatus?(status: WatchStatus, detail?: { attempt?: number; delayMs?: number; code?: number; reason?: string }): void;
  /** Errors the server sent (`invalid_zone`, `too_many_zones`, `shard_unavailable`, ...). */
  onError?(error: WatchError): void;
  /** The server skipped events for this connection; the watch is resuming from `resumeFrom`. */
  onLagged?(info: { position: string; resumeFrom: string | null }): void;
}

export interface WatchOptions {
  /** Resume from a position saved earlier (`watch.position`), e.g. across a page reload: the
   *  events after it are replayed. */
  since?: string;
  reconnect?: { baseDelayMs?: number; maxDelayMs?: number };
  /** How often to ping (default 15 s). */
  pingIntervalMs?: number;
  /** How long past a ping interval the socket may stay silent before it is dropped (default 10 s). */
  pongTimeoutMs?: number;
  /** How many recent claim ids are remembered to drop repeats (default 100,000). */
  dedupeWindow?: number;
}

export interface WatchStats {
  connects: number;
  reconnects: number;
  lagged: number;
  resyncs: number;
  notResumed: number;
  resumed: number;
  /** Events the server sent again (after a reconnect from a held position) that were dropped. */
  duplicatesDropped: number;
  events: number;
}

const ZONE_NAME = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
/** `error` codes that answer a subscribe. */
const SUBSCRIBE_ERRORS = new Set(["invalid_zone", "too_many_zones", "invalid_message", "invalid_position", "shard_unavailable", "zone_not_found", "internal_error", "shard_unknown"]);

interface PendingSubscribe {
  zones: string[];
  since: string | null;
  /** Whether the request names every zone watched when it was sent. */
  all: boolean;
}

interface ZoneState {
  view?: ZoneTotals;
  /** Subscribes in flight that name the zone. */
  pending: number;
  /** Added to a running watch: events before its first snapshot are counted in it. */
  fresh: boolean;
  /** Its first snapshot went to `onSnapshot`. */
  handed: boolean;
}

type SnapshotMessage = { zone: string; total: number; opened: number; remaining: number };

export class Watch {
  readonly stats: WatchStats = { connects: 0, reconnects: 0, lagged: 0, resyncs: 0, notResumed: 0, resumed: 0, duplicatesDropped: 0, events: 0 };
  private readonly zonesState = new Map<string, ZoneState>();
  private readonly handlers: WatchHandlers;
  private readonly connect: () => Promise<WebSocketLike>;
  private readonly backoff: Pick<ResolvedRetry, "baseDelayMs" | "maxDelayMs">;
  private readonly pingIntervalMs: number;
  private readonly pongTimeoutMs: number;
  private readonly dedupeWindow: number;
  private ws: WebSocketLike | null = null;
  private requests: PendingSubscribe[] = [];
  private heldPosition: string | null;
  /** A `lagged` was seen and the resume from before it is not answered yet. */
  private lagHold = false;
  private closedByUser = false;
  private attempt = 0;
  private lastHeard = 0;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly seen = new Map<string, true>();
  private inbox: Promise<void> | null = null;
  private readyResolve!: () => void;
  /** Resolves once every zone the watch started with has its first snapshot. */
  readonly ready: Promise<void>;
  private status: WatchStatus = "connecting";

  constructor(init: { zones: string[]; handlers: WatchHandlers; options: WatchOptions; connect: () => Promise<WebSocketLike> }) {
    const o = init.options;
    this.handlers = init.handlers;
    this.connect = init.connect;
    this.backoff = { baseDelayMs: o.reconnect?.baseDelayMs ?? 250, maxDelayMs: o.reconnect?.maxDelayMs ?? 10_000 };
    this.pingIntervalMs = o.pingIntervalMs ?? 15_000;
    this.pongTimeoutMs = o.pongTimeoutMs ?? 10_000;
    this.dedupeWindow = o.dedupeWindow ?? 100_000;
    this.heldPosition = o.since ?? null;
    this.ready = new Promise((resolve) => (this.readyResolve = resolve));
    for (const z of init.zones) {
      checkZone(z);
      this.zonesState.set(z, { pending: 0, fresh: false, handed: false });
    }
    if (this.zonesState.size === 0) this.readyResolve();
    void this.open();
  }

  /** The position to resume from (persist it to resume after a reload: `watch(zones, h, { since })`). */
  get position(): string | null {
    return this.heldPosition;
  }

  get connectionStatus(): WatchStatus {
    return this.status;
  }

  /** The zones watched. */
  get zones(): string[] {
    return [...this.zonesState.keys()];
  }

  /** A zone's view (undefined before its first snapshot). */
  view(zone: string): ZoneTotals | undefined {
    const v = this.zonesState.get(zone)?.view;
    return v ? { ...v } : undefined;
  }

  views(): Record<string, ZoneTotals> {
    const out: Record<string, ZoneTotals> = {};
    for (const [z, s] of this.zonesState) if (s.view) out[z] = { ...s.view };
    return out;
  }

  /** Watches more zones (each gets a snapshot; events before it are counted in it). */
  subscribe(zones: string[]): void {
    const added: string[] = [];
    for (const z of zones) {
      checkZone(z);
      if (!this.zonesState.has(z)) {
        this.zonesState.set(z, { pending: 0, fresh: true, handed: false });
        added.push(z);
      }
    }
    if (added.length && this.isOpen()) {
      if (this.heldPosition !== null) this.sendSubscribe(this.zones, this.heldPosition, true);
      else this.sendSubscribe(added, null, added.length === this.zonesState.size);
    }
  }

  unsubscribe(zones: string[]): void {
    const gone = zones.filter((z) => this.zonesState.delete(z));
    if (gone.length && this.isOpen()) this.send({ op: "unsubscribe", zones: gone });
  }

  /** Closes the socket for good. */
  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    this.setStatus("closed");
  }

  // ---- connection ---------------------------------------------------------------------------

  private isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === 1;
  }

  private setStatus(s: WatchStatus, detail?: Parameters<NonNullable<WatchHandlers["onStatus"]>>[1]): void {
    this.status = s;
    this.handlers.onStatus?.(s, detail);
  }

  private async open(): Promise<void> {
    if (this.closedByUser) return;
    this.setStatus(this.stats.connects === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let ws: WebSocketLike;
    try {
      ws = await this.connect();
    } catch (e) {
      this.handlers.onError?.({ error: "connect_failed", message: e instanceof Error ? e.message : String(e) });
      this.scheduleReconnect();
      return;
    }
    if (this.closedByUser) {
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.stats.connects++;
      if (this.stats.connects > 1) this.stats.reconnects++;
      this.lastHeard = Date.now();
      this.setStatus("open");
      this.startPing();
      if (this.zonesState.size) this.sendSubscribe(this.zones, this.heldPosition, true);
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      const handle = (text: string) => {
        if (this.ws !== ws) return;
        let msg: Record<string, any>;
        try {
          msg = JSON.parse(text);
        } catch {
          return;
        }
        this.onMessage(msg);
      };
      // Text frames are handled at once; a Blob (binary frame) must not overtake later frames.
      const text = syncText(ev.data);
      if (text !== null && !this.inbox) handle(text);
      else {
        const prior = this.inbox ?? Promise.resolve();
        const next = prior.then(async () => handle(text ?? (await asyncText(ev.data))));
        this.inbox = next;
        void next.finally(() => {
          if (this.inbox === next) this.inbox = null;
        });
      }
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (this.ws !== ws) return;
      this.dropConnection(ev?.code, ev?.reason);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  /** The socket is gone (closed, or silent too long): forget what was in flight, reconnect. */
  private dropConnection(code?: number, reason?: string): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(4000, "reconnecting");
      } catch {
        /* ignore */
      }
    }
    this.stopPing();
    this.requests = [];
    for (const s of this.zonesState.values()) s.pending = 0;
    if (this.closedByUser) return;
    this.setStatus("reconnecting", { code, reason });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closedByUser || this.reconnectTimer) return;
    this.attempt++;
    const delay = backoffDelay(this.attempt, this.backoff);
    this.setStatus("reconnecting", { attempt: this.attempt, delayMs: delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.open();
    }, delay);
  }

  private startPing(): void {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > this.pingIntervalMs + this.pongTimeoutMs) {
        this.dropConnection(4000, "no answer to pings");
        return;
      }
      this.send({ op: "ping" });
    }, this.pingIntervalMs);
    (this.pingTimer as { unref?: () => void }).unref?.();
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private send(msg: unknown): void {
    if (!this.isOpen()) return;
    try {
      this.ws!.send(JSON.stringify(msg));
    } catch {
      /* the close event follows */
    }
  }

  private sendSubscribe(zones: string[], since: string | null, all: boolean): void {
    if (!zones.length) return;
    this.requests.push({ zones, since, all });
    for (const z of zones) {
      const s = this.zonesState.get(z);
      if (s) s.pending++;
    }
    this.send(since === null ? { op: "subscribe", zones } : { op: "subscribe", zones, since });
  }

  // ---- messages -----------------------------------------------------------------------------

  private onMessage(msg: Record<string, any>): void {
    switch (msg.type) {
      case "chest_opened":
        return this.onOpened(msg as ChestOpenedEvent);
      case "chests_spawned":
        return this.onSpawned(msg as ChestsSpawnedEvent);
      case "subscribed":
        return this.onSubscribed(msg.zones ?? [], String(msg.position), msg.resumed as boolean | undefined);
      case "lagged":
        return this.onLagged(msg.zones ?? [], String(msg.position));
      case "resync":
        return this.onResync(msg.zones ?? [], String(msg.position), String(msg.message ?? ""));
      case "error":
        return this.onServerError({ error: String(msg.error), message: String(msg.message ?? "") });
      default:
        return; // pong, unsubscribed
    }
  }

  /** Whether an event's position may become the held position: only when nothing is in
   *  flight (events are in hub order, so every earlier event of every zone was delivered). */
  private mayAdvance(): boolean {
    return this.requests.length === 0 && !this.lagHold;
  }

  private remember(claimId: string): boolean {
    if (this.seen.has(claimId)) return false;
    this.seen.set(claimId, true);
    if (this.seen.size > this.dedupeWindow) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    return true;
  }

  private onOpened(ev: ChestOpenedEvent): void {
    const s = this.zonesState.get(ev.zone);
    if (!s) return;
    if (!this.remember(ev.claim_id)) {
      this.stats.duplicatesDropped++;
      return;
    }
    if (this.mayAdvance()) this.heldPosition = ev.position;
    if (!s.handed && s.fresh) return; // counted in the zone's first snapshot, still to come
    if (s.view && s.pending === 0) {
      s.view.opened++;
      s.view.remaining--;
      this.handlers.onView?.(ev.zone, { ...s.view });
    }
    this.stats.events++;
    this.handlers.onEvent?.(ev, s.view ? { ...s.view } : undefined);
  }

  private onSpawned(ev: ChestsSpawnedEvent): void {
    const s = this.zonesState.get(ev.zone);
    if (!s) return;
    if (this.mayAdvance()) this.heldPosition = ev.position;
    if (!s.handed && s.fresh) return;
    if (s.view && s.pending === 0) {
      s.view.total = ev.total;
      s.view.remaining = ev.remaining;
      s.view.opened = ev.total - ev.remaining;
      this.handlers.onView?.(ev.zone, { ...s.view });
    }
    this.stats.events++;
    this.handlers.onEvent?.(ev, s.view ? { ...s.view } : undefined);
  }

  private setView(zone: string, snap: SnapshotMessage): ZoneState | null {
    const s = this.zonesState.get(zone);
    if (!s) return null;
    s.view = { total: snap.total, opened: snap.opened, remaining: snap.remaining };
    return s;
  }

  private onSubscribed(zones: SnapshotMessage[], position: string, resumed: boolean | undefined): void {
    const req = this.requests.shift();
    for (const z of req?.zones ?? []) {
      const s = this.zonesState.get(z);
      if (s && s.pending > 0) s.pending--;
    }
    if (resumed === true) this.stats.resumed++;
    if (resumed === false) this.stats.notResumed++;
    for (const snap of zones) {
      const s = this.setView(snap.zone, snap);
      if (!s) continue;
      const view = { ...s.view! };
      if (!s.handed) this.handlers.onSnapshot?.(snap.zone, view, { reason: "subscribed", position });
      else if (resumed === false) this.handlers.onSnapshot?.(snap.zone, view, { reason: "not_resumed", position });
      s.handed = true;
      this.handlers.onView?.(snap.zone, view);
    }
    if (this.requests.length === 0) {
      // Every zone's events up to `position` are delivered (replayed, or counted in the
      // snapshot when the resume was not possible), so it is safe to resume from.
      if (req?.all || this.heldPosition === null) this.heldPosition = position;
      this.lagHold = false;
    }
    this.attempt = 0;
    if ([...this.zonesState.values()].every((s) => s.handed)) this.readyResolve();
  }

  private onLagged(zones: SnapshotMessage[], position: string): void {
    this.stats.lagged++;
    for (const snap of zones) {
      const s = this.setView(snap.zone, snap);
      if (s) this.handlers.onView?.(snap.zone, { ...s.view! });
    }
    // Resume from the position held before the lag; keep holding it until that is answered.
    this.lagHold = true;
    const from = this.heldPosition;
    this.handlers.onLagged?.({ position, resumeFrom: from });
    if (this.zonesState.size) this.sendSubscribe(this.zones, from, true);
  }

  private onResync(zones: SnapshotMessage[], position: string, message: string): void {
    this.stats.resyncs++;
    for (const snap of zones) {
      const s = this.setView(snap.zone, snap);
      if (!s) continue;
      const view = { ...s.view! };
      this.handlers.onSnapshot?.(snap.zone, view, { reason: s.handed ? "resync" : "subscribed", position, message });
      s.handed = true;
      this.handlers.onView?.(snap.zone, view);
    }
    if (this.mayAdvance()) this.heldPosition = position;
  }

  private onServerError(err: WatchError): void {
    this.handlers.onError?.(err);
    if (!this.requests.length || !SUBSCRIBE_ERRORS.has(err.error)) {
      if (/subscribe again/.test(err.message) && this.zonesState.size) this.sendSubscribe(this.zones, this.heldPosition, true);
      return;
    }
    const req = this.requests.shift()!;
    for (const z of req.zones) {
      const s = this.zonesState.get(z);
      if (s && s.pending > 0) s.pending--;
    }
    if (err.error === "invalid_position") {
      // A position this server cannot use: start over with fresh snapshots.
      this.heldPosition = null;
      this.lagHold = false;
      this.sendSubscribe(this.zones, null, true);
    } else if (err.error === "shard_unavailable" || err.error === "internal_error" || err.error === "shard_unknown") {
      // Try again in a moment, from the same position.
      const retry = setTimeout(() => {
        if (this.isOpen()) this.sendSubscribe(this.zones, this.heldPosition, true);
      }, backoffDelay(Math.min(++this.attempt, 6), this.backoff));
      (retry as { unref?: () => void }).unref?.();
    }
  }
}

function checkZone(z: string): void {
  if (typeof z !== "string" || !ZONE_NAME.test(z)) throw new TypeError(`${JSON.stringify(z)} is not a zone name (^[a-z0-9][a-z0-9_.:-]{0,63}$)`);
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

function syncText(data: unknown): string | null {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data as Uint8Array);
  if (typeof Blob !== "undefined" && data instanceof Blob) return null;
  return String(data);
}

async function asyncText(data: unknown): Promise<string> {
  return data instanceof Blob ? data.text() : String(data);
}
