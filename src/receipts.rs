//! Signed receipts: what the server told a player about a claim, in a form the player can
//! show to anyone.
//!
//! One Ed25519 signature per claim statement, not per claim: the receipts of a batch are the
//! leaves of a Merkle tree (RFC 6962 hashing: a leaf is `SHA-256(0x00 ‖ receipt)`, a node
//! `SHA-256(0x01 ‖ left ‖ right)`, an odd tree split at the largest power of two below its
//! size), the server signs the root once, and each answer carries its leaf's inclusion path
//! (log2 of the batch size hashes). The byte layouts are in README "Provably fair draws".

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The fields a receipt vouches for: a claim as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<'a> {
    pub zone: &'a str,
    pub seed_epoch: i32,
    pub player: &'a str,
    /// None: a version-1 draw (its nonce was the claim id).
    pub nonce: Option<i64>,
    pub client_seed: Option<&'a str>,
    pub claim_id: uuid::Uuid,
    pub chest_id: i64,
    pub loot_table: &'a str,
    pub loot_table_version: i32,
    /// The loot as compact JSON, object keys sorted (`serde_json`'s form of the ledger's).
    pub loot: &'a serde_json::Value,
    pub opened_at_micros: i64,
    pub authorised_by: Option<&'a str>,
}

const RECEIPT_DOMAIN: &[u8] = b"trove/receipt/v1";
const BATCH_DOMAIN: &[u8] = b"trove/receipt-batch/v1";

/// A receipt's canonical bytes: every field as a 4-byte big-endian length and its bytes, in
/// this order: the domain, zone, seed epoch, player, nonce, client seed, claim id (16 bytes),
/// chest id, loot table, its version, loot, opened at (µs since 1970), authorised by.
/// Integers are 8 bytes big-endian (two's complement); an absent value is empty.
pub fn receipt_bytes(f: &Fields) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(256);
    put(&mut out, RECEIPT_DOMAIN);
    put(&mut out, f.zone.as_bytes());
    put(&mut out, &i64::from(f.seed_epoch).to_be_bytes());
    put(&mut out, f.player.as_bytes());
    match f.nonce {
        Some(n) => put(&mut out, &n.to_be_bytes()),
        None => put(&mut out, &[]),
    }
    put(&mut out, f.client_seed.unwrap_or_default().as_bytes());
    put(&mut out, f.claim_id.as_bytes());
    put(&mut out, &f.chest_id.to_be_bytes());
    put(&mut out, f.loot_table.as_bytes());
    put(&mut out, &i64::from(f.loot_table_version).to_be_bytes());
    // The loot is written in place, its length filled in after.
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    canonical_json(f.loot, &mut out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    put(&mut out, &f.opened_at_micros.to_be_bytes());
    put(&mut out, f.authorised_by.unwrap_or_default().as_bytes());
    out
}

/// Compact JSON with every object's keys sorted (bytewise), whatever order the map keeps:
/// the receipt's bytes must not depend on a serde_json feature. Written straight into `out`
/// (no string per key or value).
pub fn canonical_json(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, k);
                out.push(b':');
                canonical_json(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        other => write_json(out, other),
    }
}

/// A string or scalar as serde_json writes it (into a Vec it cannot fail).
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

pub type Hash = [u8; 32];

pub fn leaf_hash(receipt: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(receipt);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two below `n` (n >= 2): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root of the tree over `leaves` (at least one).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The inclusion path of leaf `index`: the sibling hashes from the leaf up to the root.
pub fn inclusion_path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    let (mut path, sibling) = if index < k {
        (
            inclusion_path(&leaves[..k], index),
            merkle_root(&leaves[k..]),
        )
    } else {
        (
            inclusion_path(&leaves[k..], index - k),
            merkle_root(&leaves[..k]),
        )
    };
    path.push(sibling);
    path
}

/// The root and every leaf's inclusion path at once: each node is hashed once, where asking
/// `inclusion_path` leaf by leaf hashes the whole tree for every leaf.
pub fn merkle_paths(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    match leaves.len() {
        0 => (merkle_root(leaves), Vec::new()),
        1 => (leaves[0], vec![Vec::new()]),
        n => {
            let k = split(n);
            let (left, mut paths) = merkle_paths(&leaves[..k]);
            let (right, right_paths) = merkle_paths(&leaves[k..]);
            for p in &mut paths {
                p.push(right);
            }
            paths.extend(right_paths.into_iter().map(|mut p| {
                p.push(left);
                p
            }));
            (node_hash(&left, &right), paths)
        }
    }
}

/// Lowercase hex, as receipts carry hashes and signatures (a table lookup per byte: a
/// claim's receipt has half a dozen of them).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The root a leaf and its inclusion path lead to (None: the path does not fit the size).
pub fn root_from_path(leaf: Hash, index: usize, count: usize, path: &[Hash]) -> Option<Hash> {
    if index >= count {
        return None;
    }
    // Walk down to find, level by level, whether the leaf is in the left or right part.
    let mut sides = Vec::new();
    let (mut i, mut n) = (index, count);
    while n > 1 {
        let k = split(n);
        if i < k {
            sides.push(true);
            n = k;
        } else {
            sides.push(false);
            i -= k;
            n -= k;
        }
    }
    if sides.len() != path.len() {
        return None;
    }
    let mut hash = leaf;
    for (left, sibling) in sides.iter().rev().zip(path) {
        hash = match left {
            true => node_hash(&hash, sibling),
            false => node_hash(sibling, &hash),
        };
    }
    Some(hash)
}

/// What the server signs for a batch: the domain, the key id, the root and the leaf count.
pub fn batch_message(key_id: &str, root: &Hash, count: usize) -> Vec<u8> {
    signed_message(BATCH_DOMAIN, key_id, root, count)
}

/// domain ‖ 0x00 ‖ key id ‖ 0x00 ‖ hash ‖ count (u64, big-endian): every signed message.
fn signed_message(domain: &[u8], key_id: &str, hash: &Hash, count: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + key_id.len() + 42);
    m.extend_from_slice(domain);
    m.push(0);
    m.extend_from_slice(key_id.as_bytes());
    m.push(0);
    m.extend_from_slice(hash);
    m.extend_from_slice(&(count as u64).to_be_bytes());
    m
}

const TRANSCRIPT_DOMAIN: &[u8] = b"trove/transcript/v1";

/// An epoch transcript's digest: SHA-256 over the domain, 0x00, the zone, 0x00, the epoch
/// (8 bytes big-endian), then every claim's leaf hash in transcript order.
pub struct TranscriptDigest {
    hash: Sha256,
    count: usize,
}

impl TranscriptDigest {
    pub fn new(zone: &str, epoch: i32) -> Self {
        let mut hash = Sha256::new();
        hash.update(TRANSCRIPT_DOMAIN);
        hash.update([0]);
        hash.update(zone.as_bytes());
        hash.update([0]);
        hash.update(i64::from(epoch).to_be_bytes());
        TranscriptDigest { hash, count: 0 }
    }

    pub fn push(&mut self, leaf: &Hash) {
        self.hash.update(leaf);
        self.count += 1;
    }

    /// (digest, claims).
    pub fn finish(self) -> (Hash, usize) {
        (self.hash.finalize().into(), self.count)
    }
}

/// What the server signs for a transcript: the domain, the key id, the digest and the count.
pub fn transcript_message(key_id: &str, digest: &Hash, count: usize) -> Vec<u8> {
    signed_message(TRANSCRIPT_DOMAIN, key_id, digest, count)
}

/// Checks a transcript's signature (hex) over its digest and count.
pub fn verify_transcript(
    key_id: &str,
    digest: &Hash,
    count: usize,
    signature_hex: &str,
    public: &VerifyingKey,
) -> bool {
    signature_of(signature_hex).is_some_and(|s| {
        key_id == self::key_id(public)
            && public
                .verify(&transcript_message(key_id, digest, count), &s)
                .is_ok()
    })
}

/// An Ed25519 signature from its hex form (None: not 64 bytes of hex).
fn signature_of(hex: &str) -> Option<Signature> {
    let bytes = hex::decode(hex).ok()?;
    Some(Signature::from_bytes(&<[u8; 64]>::try_from(bytes).ok()?))
}

/// A key's id: the first 8 bytes of SHA-256 of its public key, in hex.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// A receipt as an answer carries it: the leaf's place in its batch, the path to the signed
/// root, and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// `receipt_bytes`'s SHA-256 leaf hash, hex (recompute it from the claim's fields).
    pub leaf: String,
    pub leaf_index: usize,
    pub leaf_count: usize,
    /// Sibling hashes from the leaf up, hex.
    pub path: Vec<String>,
    pub root: String,
    pub key_id: String,
    /// Ed25519 over `batch_message(key_id, root, leaf_count)`, hex.
    pub signature: String,
}

/// The server's receipt key and the public keys it still lists (retired ones verify old
/// receipts).
#[derive(Clone)]
pub struct ReceiptKeys {
    signing: SigningKey,
    key_id: String,
    retired: Vec<VerifyingKey>,
}

/// A public key as `GET /.well-known/trove-keys.json` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicKey {
    pub key_id: String,
    pub algorithm: &'static str,
    /// The 32-byte Ed25519 public key, hex.
    pub public_key: String,
    /// True for the key that signs new receipts.
    pub current: bool,
}

impl ReceiptKeys {
    /// From a 32-byte secret key (hex) and the retired public keys (hex).
    pub fn new(secret_hex: &str, retired_hex: &[String]) -> Result<Self> {
        let bad = |what: &str| {
            Error::invalid(
                "invalid_config",
                format!("{what} must be 64 hex digits (32 bytes)"),
            )
        };
        let secret: [u8; 32] = hex::decode(secret_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("TROVE_RECEIPT_KEY"))?;
        let retired = retired_hex
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                hex::decode(k.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                    .ok_or_else(|| bad("each of TROVE_RECEIPT_RETIRED_KEYS"))
            })
            .collect::<Result<Vec<_>>>()?;
        let signing = SigningKey::from_bytes(&secret);
        Ok(ReceiptKeys {
            key_id: key_id(&signing.verifying_key()),
            signing,
            retired,
        })
    }

    /// A fresh key (the local stack's, or one made at start-up when none is configured).
    pub fn generate() -> Result<Self> {
        use rand_chacha::rand_core::{OsRng, TryRngCore};
        let mut secret = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
        ReceiptKeys::new(&hex::encode(secret), &[])
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Every key a receipt may name: the current one first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        let current = std::iter::once((self.public_key(), true));
        current
            .chain(self.retired.iter().map(|k| (*k, false)))
            .map(|(k, current)| PublicKey {
                key_id: key_id(&k),
                algorithm: "Ed25519",
                public_key: hex::encode(k.as_bytes()),
                current,
            })
            .collect()
    }

    /// The receipt of a claim answered on its own (a batch of one).
    pub fn sign_one(&self, leaf: Hash) -> Receipt {
        let message = batch_message(&self.key_id, &leaf, 1);
        Receipt {
            leaf: hex::encode(leaf),
            leaf_index: 0,
            leaf_count: 1,
            path: Vec::new(),
            root: hex::encode(leaf),
            key_id: self.key_id.clone(),
            signature: hex::encode(self.signing.sign(&message).to_bytes()),
        }
    }

    /// The signature (hex) of a transcript's digest and claim count.
    pub fn sign_transcript(&self, digest: &Hash, count: usize) -> String {
        let message = transcript_message(&self.key_id, digest, count);
        hex::encode(self.signing.sign(&message).to_bytes())
    }

    /// Receipts for a batch's leaves, in order: one signature over their root.
    pub fn sign(&self, leaves: &[Hash]) -> Vec<Receipt> {
        let (root, paths) = merkle_paths(leaves);
        let message = batch_message(&self.key_id, &root, leaves.len());
        let signature = to_hex(&self.signing.sign(&message).to_bytes());
        let root = to_hex(&root);
        leaves
            .iter()
            .zip(paths)
            .enumerate()
            .map(|(i, (leaf, path))| Receipt {
                leaf: to_hex(leaf),
                leaf_index: i,
                leaf_count: leaves.len(),
                path: path.iter().map(|h| to_hex(h)).collect(),
                root: root.clone(),
                key_id: self.key_id.clone(),
                signature: signature.clone(),
            })
            .collect()
    }
}

impl Receipt {
    /// The receipt's JSON, byte for byte what `serde_json` writes for it, without the
    /// escape scan of its hex strings (~600 bytes an answer) or a call per field: every
    /// string but the key id is hex by construction (`ReceiptKeys::sign`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn hex(out: &mut Vec<u8>, s: &str) {
            debug_assert!(s.bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"{\"leaf\":");
        hex(out, &self.leaf);
        out.extend_from_slice(b",\"leaf_index\":");
        out.extend_from_slice(self.leaf_index.to_string().as_bytes());
        out.extend_from_slice(b",\"leaf_count\":");
        out.extend_from_slice(self.leaf_count.to_string().as_bytes());
        out.extend_from_slice(b",\"path\":[");
        for (i, h) in self.path.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            hex(out, h);
        }
        out.extend_from_slice(b"],\"root\":");
        hex(out, &self.root);
        out.extend_from_slice(b",\"key_id\":");
        write_json(out, &self.key_id);
        out.extend_from_slice(b",\"signature\":");
        hex(out, &self.signature);
        out.push(b'}');
    }
}

/// Checks a receipt against the claim's fields and a public key: the leaf is the fields',
/// the path leads to the root, and the key signed the root.
pub fn verify(receipt: &Receipt, fields: &Fields, public: &VerifyingKey) -> bool {
    let unhex = |s: &str| hex::decode(s).ok().and_then(|b| Hash::try_from(b).ok());
    let leaf = leaf_hash(&receipt_bytes(fields));
    let path: Option<Vec<Hash>> = receipt.path.iter().map(|h| unhex(h)).collect();
    let (Some(path), Some(root)) = (path, unhex(&receipt.root)) else {
        return false;
    };
    let Some(signature) = signature_of(&receipt.signature) else {
        return false;
    };
    receipt.leaf == hex::encode(leaf)
        && receipt.key_id == key_id(public)
        && root_from_path(leaf, receipt.leaf_index, receipt.leaf_count, &path) == Some(root)
        && public
            .verify(
                &batch_message(&receipt.key_id, &root, receipt.leaf_count),
                &signature,
            )
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i as u8])).collect()
    }

    #[test]
    fn every_leaf_of_every_batch_size_proves_its_way_to_the_root() {
        for n in 1..=33 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let path = inclusion_path(&l, i);
                assert!(path.len() <= (n as f64).log2().ceil() as usize);
                assert_eq!(root_from_path(l[i], i, n, &path), Some(root), "{i} of {n}");
                // Another leaf, index or size does not.
                assert_ne!(root_from_path(leaf_hash(b"x"), i, n, &path), Some(root));
                if n > 1 {
                    assert_ne!(root_from_path(l[i], (i + 1) % n, n, &path), Some(root));
                }
            }
        }
    }

    #[test]
    fn all_paths_at_once_are_the_paths_leaf_by_leaf() {
        for n in 1..=33 {
            let l = leaves(n);
            let (root, paths) = merkle_paths(&l);
            assert_eq!(root, merkle_root(&l));
            let one_by_one: Vec<_> = (0..n).map(|i| inclusion_path(&l, i)).collect();
            assert_eq!(paths, one_by_one, "{n} leaves");
        }
        assert_eq!(to_hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
        assert_eq!(to_hex(&[7; 32]), hex::encode([7; 32]));
    }

    #[test]
    fn loot_json_is_canonical() {
        let v = serde_json::json!([{"rarity": "rare", "qty": 2, "item": "gem"}]);
        let mut out = Vec::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, br#"[{"item":"gem","qty":2,"rarity":"rare"}]"#);
        // Strings are escaped as serde_json escapes them; nested objects are sorted too.
        let v = serde_json::json!({"z\"q": "a\nb", "a": {"y": null, "b": [true, -1.5]}});
        let mut out = Vec::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, br#"{"a":{"b":[true,-1.5],"y":null},"z\"q":"a\nb"}"#);
    }

    #[test]
    fn a_receipt_writes_the_json_serde_writes() {
        let keys = ReceiptKeys::new(&"11".repeat(32), &[]).expect("keys");
        for n in [1, 2, 5, 32] {
            for r in keys.sign(&leaves(n)) {
                let mut out = Vec::new();
                r.write_json(&mut out);
                assert_eq!(out, serde_json::to_vec(&r).expect("json"), "{n}");
            }
        }
    }

    #[test]
    fn the_tree_hashes_as_rfc_6962_does() {
        let l = leaves(3);
        let expected = node_hash(&node_hash(&l[0], &l[1]), &l[2]);
        assert_eq!(merkle_root(&l), expected);
        assert_eq!(inclusion_path(&l, 2), vec![node_hash(&l[0], &l[1])]);
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_changed_field_does_not() {
        let keys = ReceiptKeys::new(&"11".repeat(32), &[]).expect("key");
        let loot = serde_json::json!([{"item": "gold", "qty": 3, "rarity": "common"}]);
        let fields = Fields {
            zone: "meadow",
            seed_epoch: 1,
            player: "alice",
            nonce: Some(0),
            client_seed: Some(""),
            claim_id: uuid::Uuid::from_u128(7),
            chest_id: 42,
            loot_table: "starter",
            loot_table_version: 1,
            loot: &loot,
            opened_at_micros: 1_700_000_000_000_000,
            authorised_by: Some("player"),
        };
        let other = Fields {
            chest_id: 43,
            ..fields.clone()
        };
        let leaves = [
            leaf_hash(&receipt_bytes(&fields)),
            leaf_hash(&receipt_bytes(&other)),
        ];
        let receipts = keys.sign(&leaves);
        let public = keys.public_key();
        assert!(verify(&receipts[0], &fields, &public));
        assert!(verify(&receipts[1], &other, &public));
        assert!(!verify(&receipts[0], &other, &public));
        let loot2 = serde_json::json!([{"item": "gold", "qty": 4, "rarity": "common"}]);
        for changed in [
            Fields {
                nonce: Some(1),
                ..fields.clone()
            },
            Fields {
                player: "bob",
                ..fields.clone()
            },
            Fields {
                loot: &loot2,
                ..fields.clone()
            },
            Fields {
                authorised_by: Some("admin:ops"),
                ..fields.clone()
            },
        ] {
            assert!(!verify(&receipts[0], &changed, &public));
        }
        let mut forged = receipts[0].clone();
        let first = if forged.signature.starts_with('0') {
            "1"
        } else {
            "0"
        };
        forged.signature.replace_range(..1, first);
        assert!(!verify(&forged, &fields, &public));
        let stranger = ReceiptKeys::new(&"22".repeat(32), &[]).expect("key");
        assert!(!verify(&receipts[0], &fields, &stranger.public_key()));
    }
}
