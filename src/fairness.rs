//! Deterministic, provably fair draws.
//!
//! Each zone has a secret 32-byte server seed per epoch and publishes
//! `seed_commitment = SHA-256(seed)` before any claim uses it. A claim's randomness is
//!
//! ```text
//! v2 (epochs committed since migration 0007):
//! draw_seed = HMAC-SHA256(key = server_seed,
//!                         msg = "trove/claim/v2" 0x00 zone 0x00 player 0x00 client_seed 0x00
//!                               nonce as 8 bytes big-endian)
//! v1 (older epochs):
//! draw_seed = HMAC-SHA256(key = server_seed,
//!                         msg = "trove/claim/v1" 0x00 zone 0x00 player 0x00 claim_id[16])
//! rng       = ChaCha20Rng::from_seed(draw_seed)
//! start     = rng.next_u64() >> 1          -- which chest: the first unopened id >= 1 + start % chest_count
//! loot      = roll(table, rng)             -- see `roll`
//! ```
//!
//! In v2 the nonce is the player's own claim counter in the epoch (0, 1, 2, ...: gapless, and
//! a refused claim consumes none) and the client seed is whatever the player last set (empty
//! by default), so nothing the server chooses after the commitment feeds the draw: it cannot
//! mint nonces until the loot it wants comes up, and a client seed set after the commitment
//! was published cannot have been ground against. v1 used the server-made claim id as the
//! nonce. Zone and player names and client seeds cannot contain NUL, so the message is
//! unambiguous.

use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng, TryRngCore};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::loot::{LootItem, LootTable};

pub const SEED_LEN: usize = 32;
const DOMAIN_V1: &[u8] = b"trove/claim/v1";
const DOMAIN_V2: &[u8] = b"trove/claim/v2";

/// What, besides the seed, zone and player, a draw is bound to: its epoch's draw version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonce<'a> {
    /// v1: the claim id the server made.
    ClaimId(Uuid),
    /// v2: the player's client seed and claim counter in the epoch.
    Counter { client_seed: &'a str, nonce: i64 },
}

/// A fresh secret server seed from the operating system's CSPRNG.
pub fn new_server_seed() -> Result<[u8; SEED_LEN]> {
    let mut seed = [0u8; SEED_LEN];
    OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
    Ok(seed)
}

/// The public commitment to a server seed.
pub fn commitment(seed: &[u8]) -> [u8; 32] {
    Sha256::digest(seed).into()
}

/// A server seed made into its HMAC key once (the key's two blocks hashed), so each draw
/// in the epoch hashes only its own message: half the SHA-256 work of a draw.
#[derive(Clone)]
pub struct SeedKey(Hmac<Sha256>);

impl SeedKey {
    pub fn new(server_seed: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        SeedKey(
            <Hmac<Sha256> as Mac>::new_from_slice(server_seed)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
        )
    }
}

/// The ChaCha20 seed of one claim's draw.
pub fn draw_seed(server_seed: &[u8], zone: &str, player: &str, nonce: Nonce) -> [u8; 32] {
    keyed_draw_seed(&SeedKey::new(server_seed), zone, player, nonce)
}

/// `draw_seed` with the seed's key made already.
pub fn keyed_draw_seed(key: &SeedKey, zone: &str, player: &str, nonce: Nonce) -> [u8; 32] {
    let mut mac = key.0.clone();
    mac.update(match nonce {
        Nonce::ClaimId(_) => DOMAIN_V1,
        Nonce::Counter { .. } => DOMAIN_V2,
    });
    mac.update(&[0]);
    mac.update(zone.as_bytes());
    mac.update(&[0]);
    mac.update(player.as_bytes());
    mac.update(&[0]);
    match nonce {
        Nonce::ClaimId(id) => mac.update(id.as_bytes()),
        Nonce::Counter { client_seed, nonce } => {
            mac.update(client_seed.as_bytes());
            mac.update(&[0]);
            mac.update(&(nonce as u64).to_be_bytes());
        }
    }
    mac.finalize().into_bytes().into()
}

/// One claim's draw: where the chest search starts, and the loot any table would give.
#[derive(Clone)]
pub struct Draw {
    /// 63-bit start value; the claim opens the first unopened chest with
    /// `chest_id >= 1 + start % chest_count`, wrapping around.
    pub start: i64,
    /// The stream right after `start`; every table rolls from a copy of it, so the loot for a
    /// table does not depend on which other tables the zone has.
    after_start: ChaCha20Rng,
}

impl Draw {
    pub fn new(server_seed: &[u8], zone: &str, player: &str, nonce: Nonce) -> Self {
        Draw::keyed(&SeedKey::new(server_seed), zone, player, nonce)
    }

    /// `new` with the seed's key made already (a zone's cached view holds it).
    pub fn keyed(key: &SeedKey, zone: &str, player: &str, nonce: Nonce) -> Self {
        let mut rng = ChaCha20Rng::from_seed(keyed_draw_seed(key, zone, player, nonce));
        let start = (rng.next_u64() >> 1) as i64;
        Draw {
            start,
            after_start: rng,
        }
    }

    /// The loot this draw gives from `table`.
    pub fn loot(&self, table: &LootTable) -> Vec<LootItem> {
        roll(table, &mut self.after_start.clone())
    }
}

/// A uniform integer in `0..n` (n >= 1) by rejection sampling, so there is no modulo bias and
/// the algorithm stays fixed across dependency upgrades (replays must match forever).
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    debug_assert!(n > 0);
    let n = n.max(1);
    // The largest multiple of n that fits; values at or above it are redrawn.
    let zone = u64::MAX - (u64::MAX - n + 1) % n;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return x % n;
        }
    }
}

/// Rolls a table: for each of `rolls`, pick an entry with probability proportional to its
/// weight (`below(total_weight)` walked through the entries in order), then a quantity
/// uniform in `min_qty..=max_qty` (`min_qty + below(max_qty - min_qty + 1)`).
pub fn roll(table: &LootTable, rng: &mut impl RngCore) -> Vec<LootItem> {
    let spec = &table.spec;
    let total: u64 = spec.entries.iter().map(|e| u64::from(e.weight)).sum();
    (0..spec.rolls)
        .filter_map(|_| {
            let mut ticket = below(rng, total);
            let entry = spec.entries.iter().find(|e| {
                let w = u64::from(e.weight);
                if ticket < w {
                    true
                } else {
                    ticket -= w;
                    false
                }
            })?;
            let span = u64::from(entry.max_qty - entry.min_qty) + 1;
            Some(LootItem {
                item: entry.item.clone(),
                qty: entry.min_qty + below(rng, span) as u32,
                rarity: entry.rarity,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loot::tests::entry;
    use crate::loot::{LootEntry, LootTableSpec, Rarity};

    fn table(entries: Vec<LootEntry>, rolls: u8) -> LootTable {
        LootTable {
            id: 1,
            name: "t".into(),
            version: 1,
            spec: LootTableSpec { entries, rolls },
        }
    }

    #[test]
    fn weights_and_quantity_ranges_are_respected() {
        let t = table(
            vec![
                entry("gold", 90, 1, 50, Rarity::Common),
                entry("gem", 10, 2, 2, Rarity::Epic),
            ],
            2,
        );
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3u8; 32]);
        let (mut gold, mut gem) = (0, 0);
        for _ in 0..5000 {
            let loot = roll(&t, &mut rng);
            assert_eq!(loot.len(), 2);
            for item in loot {
                match item.item.as_str() {
                    "gold" => {
                        assert!((1..=50).contains(&item.qty));
                        gold += 1
                    }
                    "gem" => {
                        assert_eq!((item.qty, item.rarity), (2, Rarity::Epic));
                        gem += 1
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }
        let share = f64::from(gem) / f64::from(gem + gold);
        assert!((0.08..0.12).contains(&share), "gem share {share}");
    }

    #[test]
    fn same_material_same_draw_and_any_change_differs() {
        let seed = [7u8; 32];
        let id = Nonce::ClaimId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
        let a = Draw::new(&seed, "meadow", "alice", id);
        let b = Draw::new(&seed, "meadow", "alice", id);
        assert_eq!(a.start, b.start);
        assert!(a.start >= 0);
        assert_ne!(a.start, Draw::new(&seed, "meadow", "bob", id).start);
        assert_ne!(a.start, Draw::new(&seed, "caves", "alice", id).start);
        assert_ne!(a.start, Draw::new(&[8u8; 32], "meadow", "alice", id).start);
        let other = Nonce::ClaimId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002));
        assert_ne!(a.start, Draw::new(&seed, "meadow", "alice", other).start);
        let counter = |client_seed, nonce| Nonce::Counter { client_seed, nonce };
        let c = Draw::new(&seed, "meadow", "alice", counter("", 0)).start;
        assert_eq!(c, Draw::new(&seed, "meadow", "alice", counter("", 0)).start);
        assert_ne!(c, Draw::new(&seed, "meadow", "alice", counter("", 1)).start);
        assert_ne!(
            c,
            Draw::new(&seed, "meadow", "alice", counter("x", 0)).start
        );
        assert_ne!(c, Draw::new(&seed, "meadow", "bob", counter("", 0)).start);
    }

    #[test]
    fn draw_seeds_are_pinned() {
        // Pinned: a change here would make every recorded claim fail verification.
        let v1 = Nonce::ClaimId(Uuid::from_u128(1));
        assert_eq!(hex::encode(draw_seed(&[0u8; 32], "z", "p", v1)), PINNED_V1);
        let v2 = Nonce::Counter {
            client_seed: "lucky",
            nonce: 3,
        };
        assert_eq!(hex::encode(draw_seed(&[0u8; 32], "z", "p", v2)), PINNED_V2);
    }
    // Cross-checked with Python: hmac.new(bytes(32), b"trove/claim/v1\0z\0p\0" + UUID(int=1).bytes, sha256).
    const PINNED_V1: &str = "a2964136bc8db23099c00c176dc774f0f9372b629fda42c83aee42133cfeeb06";
    // hmac.new(bytes(32), b"trove/claim/v2\0z\0p\0lucky\0" + struct.pack(">Q", 3), sha256).
    const PINNED_V2: &str = "3e6ede6177225bc70710fa04ddbe4052784188225a1f78c599f4c11b5ad2dd6c";

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = ChaCha20Rng::from_seed([1u8; 32]);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = below(&mut rng, 7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(below(&mut rng, 1), 0);
        assert!(below(&mut rng, u64::MAX) < u64::MAX);
    }

    #[test]
    fn commitment_is_sha256() {
        assert_eq!(
            hex::encode(commitment(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
