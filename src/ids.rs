//! Fresh UUIDv7s (claim ids, request ids) without a system call each.
//!
//! `Uuid::now_v7` draws its random bits with `getrandom`, one or two system calls per id:
//! 2.2 per claim, 30 % of Trove's system-call time in a claim storm (`strace -c`). Here each
//! thread draws them from its own ChaCha12 generator, seeded once from the operating system,
//! so the ids stay unpredictable and unique; they are time-ordered to the millisecond (the
//! ledger orders by `(opened_at, claim_id)` and needs nothing finer).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use uuid::Uuid;

thread_local! {
    /// None when the operating system's source failed at the thread's first id: then every
    /// id of the thread comes from `Uuid::now_v7` (its own `getrandom` calls).
    static RNG: RefCell<Option<ChaCha12Rng>> = RefCell::new(ChaCha12Rng::try_from_os_rng().ok());
}

/// A new version-7 UUID: the Unix time in milliseconds, then 74 random bits.
pub fn uuid_v7() -> Uuid {
    let mut random = [0u8; 10];
    let drawn = RNG.with(|rng| match rng.borrow_mut().as_mut() {
        Some(rng) => {
            rng.fill_bytes(&mut random);
            true
        }
        None => false,
    });
    if !drawn {
        return Uuid::now_v7();
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_version_7_unique_and_carry_the_time() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .expect("clock");
        let ids: HashSet<Uuid> = (0..10_000).map(|_| uuid_v7()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("v7 has a time").to_unix();
            let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(millis >= before && millis < before + 60_000, "{id}");
        }
        // Another thread draws from its own generator: no id repeats across threads.
        let other: HashSet<Uuid> = std::thread::spawn(|| (0..10_000).map(|_| uuid_v7()).collect())
            .join()
            .expect("thread");
        assert!(ids.is_disjoint(&other));
    }
}
