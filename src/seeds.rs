//! Server seeds at rest: sealed until revealed.
//!
//! With counter nonces and client seeds, whoever learns an epoch's server seed before its
//! reveal can predict the next draws and pick a client seed that wins. So a seed is stored
//! sealed (ChaCha20-Poly1305 under a key held outside PostgreSQL, `TROVE_SEED_KEY`) until
//! its reveal writes it in the clear: a database dump or a read replica alone shows only
//! commitments. The seal's associated data is the seed's commitment, so a sealed seed cannot
//! be passed off as another epoch's; opening it also checks it against the commitment.
//!
//! Sealed form: `0x01 ‖ key id (8 bytes) ‖ nonce (12 bytes) ‖ ciphertext and tag (48 bytes)`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{OsRng, TryRngCore};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const SEALED_LEN: usize = 1 + 8 + 12 + 32 + 16;

/// A seed key and its id (the first 8 bytes of SHA-256 of `trove/seed-key` and the key).
struct SeedKey {
    id: [u8; 8],
    cipher: ChaCha20Poly1305,
}

impl SeedKey {
    fn new(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"trove/seed-key");
        h.update(key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h.finalize()[..8]);
        SeedKey {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }
}

/// The key new seeds are sealed with, and older ones still opened (a rotation).
pub struct SeedKeys {
    /// None: no key configured (a command that needs none ran without one).
    current: Option<SeedKey>,
    old: Vec<SeedKey>,
}

impl SeedKeys {
    /// From `TROVE_SEED_KEY` and `TROVE_SEED_OLD_KEYS` (64 hex digits each).
    pub fn new(current_hex: &str, old_hex: &[String]) -> Result<Self> {
        let parse = |h: &str, what: &str| -> Result<[u8; 32]> {
            hex::decode(h.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    Error::invalid(
                        "invalid_config",
                        format!("{what} must be 64 hex digits (32 bytes)"),
                    )
                })
        };
        let current = Some(SeedKey::new(parse(current_hex, "TROVE_SEED_KEY")?));
        let old = old_hex
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| parse(h, "each of TROVE_SEED_OLD_KEYS").map(SeedKey::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SeedKeys { current, old })
    }

    /// The key derived from a secret every instance already shares (the token secret): the
    /// default when `TROVE_SEED_KEY` is not set.
    pub fn derived_from(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"trove/seed-key/v1");
        SeedKeys {
            current: Some(SeedKey::new(mac.finalize().into_bytes().into())),
            old: Vec::new(),
        }
    }

    /// No key: sealing and opening seeds fail with a configuration error.
    pub fn missing() -> Self {
        SeedKeys {
            current: None,
            old: Vec::new(),
        }
    }

    fn current(&self) -> Result<&SeedKey> {
        self.current.as_ref().ok_or_else(|| {
            Error::invalid(
                "invalid_config",
                "seeds need TROVE_SEED_KEY (or TROVE_JWT_SECRET, which it is derived from by default)",
            )
        })
    }

    /// Seals a seed under the current key, bound to its commitment.
    pub fn seal(&self, seed: &[u8], commitment: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
        let current = self.current()?;
        let sealed = current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: commitment,
                },
            )
            .map_err(|_| Error::Internal("sealing a seed failed".into()))?;
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.push(VERSION);
        out.extend_from_slice(&current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed seed and checks it against its commitment. Fails (never with the seed
    /// in the message) when no configured key sealed it, or it was not this commitment's.
    pub fn open(&self, sealed: &[u8], commitment: &[u8]) -> Result<Vec<u8>> {
        let bad = |why: &str| Error::Internal(format!("a sealed seed {why}"));
        if sealed.len() != SEALED_LEN || sealed[0] != VERSION {
            return Err(bad("has an unknown form"));
        }
        let (id, rest) = sealed[1..].split_at(8);
        let (nonce, body) = rest.split_at(12);
        let key = std::iter::once(self.current()?)
            .chain(&self.old)
            .find(|k| k.id == id)
            .ok_or_else(|| bad("was sealed with a key not configured (TROVE_SEED_OLD_KEYS)"))?;
        let seed = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: commitment,
                },
            )
            .map_err(|_| bad("does not open: altered, or not this epoch's"))?;
        if Sha256::digest(&seed)[..] != *commitment {
            return Err(bad("does not match its commitment"));
        }
        Ok(seed)
    }

    /// True when `sealed` is under the current key (else a rotation reseals it).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| sealed.get(1..9) == Some(&c.id[..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_seed_opens_only_with_its_key_and_commitment() {
        let keys = SeedKeys::new(&"01".repeat(32), &[]).expect("keys");
        let seed = [9u8; 32];
        let commitment = Sha256::digest(seed);
        let sealed = keys.seal(&seed, &commitment).expect("seal");
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(
            !sealed.windows(32).any(|w| w == seed),
            "no plaintext inside"
        );
        assert_eq!(keys.open(&sealed, &commitment).expect("open"), seed);
        let other = Sha256::digest([8u8; 32]);
        assert!(
            keys.open(&sealed, &other).is_err(),
            "another epoch's commitment"
        );
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        assert!(keys.open(&altered, &commitment).is_err());
        let stranger = SeedKeys::new(&"02".repeat(32), &[]).expect("keys");
        assert!(stranger.open(&sealed, &commitment).is_err());
        // After a rotation the old key still opens what it sealed.
        let rotated = SeedKeys::new(&"02".repeat(32), &["01".repeat(32)]).expect("keys");
        assert_eq!(rotated.open(&sealed, &commitment).expect("open"), seed);
        assert!(!rotated.is_current(&sealed) && keys.is_current(&sealed));
    }
}
