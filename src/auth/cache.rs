//! Verified tokens, remembered until they expire: an RS256 or ES256 check costs tens of µs,
//! and a game client sends the same token with every request it makes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Caller;

/// A bounded map from a whole token to its caller. Two generations keep the bound without
/// bookkeeping per hit: when the young map holds half the capacity it becomes the old one
/// (the previous old one is dropped), and a token found in the old map moves back to the
/// young one, so tokens in use stay and forgotten ones age out.
pub struct TokenCache {
    half: usize,
    maps: Mutex<Generations>,
    hits: AtomicU64,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Box<str>, Entry>,
    old: HashMap<Box<str>, Entry>,
}

#[derive(Clone)]
struct Entry {
    caller: Caller,
    /// Unix seconds after which the token is no longer accepted (its `exp` plus the leeway).
    until: i64,
    /// The key generation it was verified under: a changed key set forgets it.
    keys: u64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: none kept).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            half: capacity / 2,
            maps: Mutex::new(Generations::default()),
            hits: AtomicU64::new(0),
        }
    }

    /// The caller of `token` if it was verified under key generation `keys` and is still
    /// within its lifetime at `now`.
    pub fn get(&self, token: &str, now: i64, keys: u64) -> Option<Caller> {
        if self.half == 0 {
            return None;
        }
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        let valid = |e: &Entry| now <= e.until && e.keys == keys;
        let found = match maps.young.get(token) {
            Some(e) => valid(e).then(|| e.caller.clone()),
            None => {
                let entry = maps.old.remove(token).filter(valid)?;
                let caller = entry.caller.clone();
                maps.insert(self.half, token, entry);
                Some(caller)
            }
        };
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Remembers a verified token until `until` (Unix seconds).
    pub fn put(&self, token: &str, caller: Caller, until: i64, keys: u64) {
        if self.half == 0 {
            return;
        }
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        maps.insert(
            self.half,
            token,
            Entry {
                caller,
                until,
                keys,
            },
        );
    }

    /// Requests answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Generations {
    fn insert(&mut self, half: usize, token: &str, entry: Entry) {
        if self.young.len() >= half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(token.into(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn caller(p: &str) -> Caller {
        Caller {
            player: p.into(),
            role: Role::Player,
            expires_at: 100,
        }
    }

    #[test]
    fn entries_expire_follow_the_key_generation_and_stay_bounded() {
        let cache = TokenCache::new(4);
        cache.put("a", caller("a"), 100, 1);
        assert_eq!(cache.get("a", 100, 1).map(|c| c.player), Some("a".into()));
        assert!(cache.get("a", 101, 1).is_none(), "expired");
        assert!(cache.get("a", 50, 2).is_none(), "keys changed");
        for t in ["b", "c", "d", "e", "f"] {
            cache.put(t, caller(t), 100, 1);
        }
        let maps = cache.maps.lock().expect("lock");
        assert!(maps.young.len() + maps.old.len() <= 4);
        drop(maps);
        // The newest survive; the oldest were dropped with their generation.
        assert!(cache.get("f", 0, 1).is_some());
        assert!(cache.get("b", 0, 1).is_none());
        assert!(TokenCache::new(0).get("a", 0, 1).is_none());
    }
}
