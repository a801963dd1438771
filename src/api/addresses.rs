//! Counting what each client address holds open, for the per-address caps on connections
//! (`TROVE_MAX_CONNECTIONS_PER_IP`) and on WebSockets (`TROVE_WS_MAX_PER_IP`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections (or WebSockets) by client address; an entry goes with its last one.
#[derive(Default)]
pub struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
pub struct Counted {
    open: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts one more for `ip`, or None when it already holds `cap` (0: no cap).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Counted> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(Counted {
            open: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
