//! An identity provider's public keys, from a JWKS file or URL, kept fresh without storms:
//! the set is read again once it is older than its maximum age (in the background, answering
//! from the old set meanwhile), and at once when a token names a `kid` the set lacks — but at
//! most once per `min_refresh` however many such tokens arrive, so made-up `kid`s cannot turn
//! into a flood of fetches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};

/// Largest key set read (a real one is a few KiB).
const MAX_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The algorithms a key set's keys may verify: RSA, then ECDSA and EdDSA (never HMAC).
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
/// The RSA ones, which an RSA key without `alg` may verify.
const RSA: &[Algorithm] = ASYMMETRIC.split_at(6).0;

/// Where the key set is read from: a file, an `https://` URL, or an `http://` URL on a
/// loopback host (a sidecar or a test; keys from anywhere else need TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Url(String),
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Source::File(PathBuf::from(s)));
        };
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let loopback = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|l| host == *l || host.starts_with(&format!("{l}:")));
        match scheme.to_ascii_lowercase().as_str() {
            "https" => Ok(Source::Url(s.to_owned())),
            "http" if loopback => Ok(Source::Url(s.to_owned())),
            "http" => Err(format!(
                "{s}: a JWKS URL must be https (http only on loopback)"
            )),
            other => Err(format!("{s}: unsupported JWKS scheme {other:?}")),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

/// A verifying key and the algorithms it may verify.
pub struct Key {
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    /// When the set is due to be read again.
    next_refresh: Instant,
    /// Why the last read failed, if it did.
    error: Option<String>,
    digest: [u8; 32],
}

/// The key set of one source.
pub struct Jwks {
    source: Source,
    client: reqwest::Client,
    max_age: Duration,
    min_refresh: Duration,
    set: RwLock<Arc<KeySet>>,
    /// Held while reading the source; holds when it was last read.
    reading: tokio::sync::Mutex<Option<Instant>>,
    background: AtomicBool,
    /// Bumped whenever the keys change, so cached verifications made with a key that is gone
    /// are forgotten.
    generation: AtomicU64,
    reads: AtomicU64,
}

/// Why no key verifies a token: `unknown_key` (no such `kid`) or `invalid_token`.
pub struct NoKey {
    pub code: &'static str,
    pub message: String,
}

impl Jwks {
    pub fn new(
        source: Source,
        max_age: Duration,
        min_refresh: Duration,
    ) -> Result<Arc<Self>, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client for the JWKS: {e}"))?;
        Ok(Arc::new(Jwks {
            source,
            client,
            max_age,
            min_refresh,
            set: RwLock::new(Arc::new(KeySet {
                keys: HashMap::new(),
                next_refresh: Instant::now(),
                error: Some("not read yet".into()),
                digest: [0; 32],
            })),
            reading: tokio::sync::Mutex::new(None),
            background: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }))
    }

    /// The key generation: changes whenever a read brings different keys.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reads of the source so far (successful or not).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Reads the set now; the error says why it could not be read.
    pub async fn load(&self) -> Result<usize, String> {
        *self.reading.lock().await = Some(Instant::now());
        self.read().await;
        let set = self.current();
        set.error.clone().map_or(Ok(set.keys.len()), Err)
    }

    /// The key `kid` names, if it may verify `alg`.
    pub async fn key(self: &Arc<Self>, kid: &str, alg: Algorithm) -> Result<Arc<Key>, NoKey> {
        let mut set = self.current();
        if Instant::now() >= set.next_refresh {
            self.refresh_in_background();
        }
        if !set.keys.contains_key(kid) {
            set = self.refresh_for(kid).await;
        }
        let Some(key) = set.keys.get(kid) else {
            let why = set.error.as_deref().map_or(String::new(), |e| {
                format!(" (the last read of {} failed: {e})", self.source)
            });
            return Err(NoKey {
                code: "unknown_key",
                message: format!("no key {kid:?} in the identity provider's key set{why}"),
            });
        };
        if !key.algorithms.contains(&alg) {
            return Err(NoKey {
                code: "invalid_token",
                message: format!("key {kid:?} does not verify {alg:?} tokens"),
            });
        }
        Ok(key.clone())
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// An unknown `kid`: read the set again unless that was done within `min_refresh` (the
    /// callers queue on one read instead of each making their own).
    async fn refresh_for(&self, kid: &str) -> Arc<KeySet> {
        let mut last = self.reading.lock().await;
        let set = self.current();
        if set.keys.contains_key(kid) || last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return set;
        }
        *last = Some(Instant::now());
        self.read().await;
        self.current()
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = me.reading.lock().await;
            if Instant::now() >= me.current().next_refresh {
                *last = Some(Instant::now());
                me.read().await;
            }
            drop(last);
            me.background.store(false, Ordering::Release);
        });
    }

    /// Reads the source and installs what it holds; a failed read keeps the old keys and is
    /// tried again after `min_refresh`.
    async fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let fetched = self.fetch().await.and_then(|(body, max_age)| {
            let keys = parse(&body)?;
            Ok((keys, Sha256::digest(&body).into(), max_age))
        });
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok((keys, digest, max_age)) => {
                if digest != set.digest {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                let age = max_age.map_or(self.max_age, |m| m.min(self.max_age));
                *set = Arc::new(KeySet {
                    keys,
                    next_refresh: now + age.max(self.min_refresh),
                    error: None,
                    digest,
                });
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "could not read the JWKS");
                *set = Arc::new(KeySet {
                    keys: set.keys.clone(),
                    next_refresh: now + self.min_refresh,
                    error: Some(e),
                    digest: set.digest,
                });
            }
        }
    }

    /// The source's bytes and, from a URL, the `max-age` of its `Cache-Control`.
    async fn fetch(&self) -> Result<(Vec<u8>, Option<Duration>), String> {
        match &self.source {
            Source::File(path) => {
                let path = path.clone();
                let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
                let body = read
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                if body.len() > MAX_BYTES {
                    return Err(format!("larger than {MAX_BYTES} bytes"));
                }
                Ok((body, None))
            }
            Source::Url(url) => {
                let mut resp = self.client.get(url).send().await.map_err(|e| chain(&e))?;
                if !resp.status().is_success() {
                    return Err(format!("answered {}", resp.status()));
                }
                let max_age = resp
                    .headers()
                    .get(reqwest::header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .and_then(cache_max_age);
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e))? {
                    if body.len() + chunk.len() > MAX_BYTES {
                        return Err(format!("larger than {MAX_BYTES} bytes"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok((body, max_age))
            }
        }
    }
}

/// An error with its causes (reqwest's own message leaves out why: TLS, DNS, refused).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `max-age=N` of a `Cache-Control` value.
fn cache_max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (name, secs) = d.trim().split_once('=')?;
        let secs = secs.trim_matches('"').parse().ok()?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| Duration::from_secs(secs))
    })
}

/// The signing keys of a JWKS document. Keys Trove cannot use (encryption keys, symmetric
/// `oct` keys — a key set never supplies an HMAC secret, which closes algorithm confusion —
/// other curves, no `kid`) are skipped, not fatal: providers publish more than one kind.
pub fn parse(body: &[u8]) -> Result<HashMap<String, Arc<Key>>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let entries = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JWKS: no \"keys\" array")?;
    let mut keys = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if let Some((kid, key)) = usable(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<(String, Key)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        Some(named) => {
            let alg = Algorithm::from_str(&named.to_string()).ok()?;
            family.contains(&alg).then(|| vec![alg])?
        }
        None => family.to_vec(),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { algorithms, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_cache_control() {
        assert_eq!(
            "/etc/jwks.json".parse::<Source>(),
            Ok(Source::File("/etc/jwks.json".into()))
        );
        assert!(matches!(
            "https://id.example/.well-known/jwks.json".parse(),
            Ok(Source::Url(_))
        ));
        assert!(matches!("http://127.0.0.1:9/k".parse(), Ok(Source::Url(_))));
        assert!(matches!("http://localhost/k".parse(), Ok(Source::Url(_))));
        assert!("http://id.example/k".parse::<Source>().is_err());
        assert!("http://127.0.0.1.evil.example/k".parse::<Source>().is_err());
        assert!("ftp://x/k".parse::<Source>().is_err());
        assert_eq!(
            cache_max_age("public, max-age=300, must-revalidate"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(cache_max_age("no-store"), None);
    }

    #[test]
    fn only_signing_keys_with_a_kid_are_kept() {
        let doc = br#"{"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "XYZ", "kid": "odd"}
        ]}"#;
        let keys = parse(doc).expect("parse");
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        assert_eq!(keys["ed"].algorithms, vec![Algorithm::EdDSA]);
        assert!(parse(b"{}").is_err() && parse(b"nope").is_err());
    }
}
