export { TroveClient, randomKey } from "./client.js";
export type { TroveClientOptions, ClaimOptions, ClaimResult, RetryInfo, FetchLike, WebSocketConstructor } from "./client.js";
export { TroveError, isTroveError } from "./errors.js";
export { backoffDelay, parseRetryAfter, DEFAULT_RETRY } from "./retry.js";
export type { RetryOptions } from "./retry.js";
export { Watch } from "./watch.js";
export type {
  WatchHandlers,
  WatchOptions,
  WatchEvent,
  WatchStats,
  WatchStatus,
  WatchError,
  ChestOpenedEvent,
  ChestsSpawnedEvent,
  ZoneTotals,
  SnapshotInfo,
  SnapshotReason,
  WebSocketLike,
} from "./watch.js";
export { verifyClaim, verifyTranscript, drawSeed, drawFrom, roll, Verifier } from "./verify.js";
export type { ClaimVerification, VerifyStep, StepName, VerifyMaterial, VerifiableClaim, LootTable, DrawNonce, Draw, TranscriptVerification, TranscriptOptions } from "./verify.js";
export { parseTranscript } from "./transcript.js";
export type { Transcript, TranscriptHeader, TranscriptLine, TranscriptTrailer } from "./transcript.js";
export { ChaCha20Rng, chachaBlock, below } from "./chacha.js";
export { receiptBytes, leafHash, rootFromPath, merkleRoot, batchMessage, transcriptMessage, canonicalJson, timestampMicros, keyIdOf } from "./receipts.js";
export type { ReceiptFields } from "./receipts.js";
export { toHex, fromHex, sha256, hmacSha256, sha256Sync, hmacSha256Sync, webCryptoSha256, webCryptoHmacSha256, webCryptoEd25519 } from "./bytes.js";
export type { Ed25519Verify } from "./bytes.js";
export * as api from "./types.js";
export type { Claim, ClaimAnswer, ZoneView, EpochView, TableView, LootEntry, LootItem, LootTableSpec, Receipt, ReceiptKeyList, PublicKey, HistoryPage, ChestPage, ChestView, ClientSeed, RevealResult, SpawnResult, TableVersion, BoardPage, PlayerStanding, ErrorBody, Rarity, Routes, Route, ResponseOf, ZoneList, ZoneSummary, TableList, TableSummary, ShardsView, ShardStatus, HostRole, MoveInProgress, VerifyReport, Mismatch, NonceProblem, SpawnBody } from "./types.js";
