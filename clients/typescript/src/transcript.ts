/** Epoch transcripts as Trove streams them: NDJSON, a header, one line per claim, a trailer. */
import type { Claim } from "./types.js";

export interface TranscriptHeader {
  transcript: string;
  zone: string;
  epoch: number;
  /** 1: draws bound to the claim id; 2: client seed and counter nonce. */
  draw_version: number;
  /** The epoch's revealed seed, hex. */
  seed: string;
  seed_commitment: string;
  revealed_at: string | null;
}

/** A claim as the transcript lists it: its answer's fields and its receipt leaf. */
export type TranscriptLine = Claim & { leaf: string };

export interface TranscriptTrailer {
  claims: number;
  digest: string;
  key_id: string;
  signature: string;
}

export interface Transcript {
  header: TranscriptHeader | null;
  claims: TranscriptLine[];
  /** Null when the transcript was cut off (no trailer). */
  trailer: TranscriptTrailer | null;
  complete: boolean;
  /** Lines that were not JSON objects (their 1-based line numbers). */
  unreadable: number[];
}

export function parseTranscript(text: string): Transcript {
  const rows: { n: number; value: unknown }[] = [];
  const unreadable: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const value = JSON.parse(line);
      if (value && typeof value === "object" && !Array.isArray(value)) rows.push({ n: i + 1, value });
      else unreadable.push(i + 1);
    } catch {
      unreadable.push(i + 1);
    }
  });
  const first = rows[0]?.value as Record<string, unknown> | undefined;
  const header = first && typeof first.transcript === "string" ? (first as unknown as TranscriptHeader) : null;
  const lastRow = rows.length > (header ? 1 : 0) ? rows[rows.length - 1] : undefined;
  const last = lastRow?.value as Record<string, unknown> | undefined;
  const trailer = last && "digest" in last && "claims" in last && !("claim_id" in last) ? (last as unknown as TranscriptTrailer) : null;
  const claims = rows.slice(header ? 1 : 0, trailer ? rows.length - 1 : rows.length).map((r) => r.value as TranscriptLine);
  return { header, claims, trailer, complete: header !== null && trailer !== null && unreadable.length === 0, unreadable };
}
