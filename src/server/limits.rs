//! What one client may do: connections per address, new connections per second per address,
//! and messages per second per connection.
//!
//! The defaults are generous enough that a person never meets them; they exist so that one
//! misbehaving client cannot take the server from everyone else. Rate limiting is governor's
//! GCRA; the per-address tables are pruned so they stay bounded however many addresses come.

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub connections_per_address: usize,
    pub new_connections_per_second: u32,
    pub messages_per_second: u32,
}

pub struct Limits {
    settings: LimitSettings,
    /// Open connections by client address; an address leaves the map at zero.
    open: Mutex<HashMap<IpAddr, usize>>,
    arrivals: DefaultKeyedRateLimiter<IpAddr>,
    admitted: AtomicU64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections from this address")]
    TooManyConnections,
    #[error("too many new connections from this address; slow down")]
    TooManyArrivals,
}

/// An admitted connection's place in its address's count, given back on drop.
pub struct Admission {
    limits: Arc<Limits>,
    address: IpAddr,
}

fn per_second(rate: u32) -> Quota {
    let rate = NonZeroU32::new(rate.max(1)).expect("at least one");
    // A burst of twice the rate absorbs a page's reconnect or a paste without penalty.
    Quota::per_second(rate).allow_burst(rate.saturating_mul(NonZeroU32::new(2).expect("two")))
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(Limits {
            settings,
            open: Mutex::new(HashMap::new()),
            arrivals: RateLimiter::keyed(per_second(settings.new_connections_per_second)),
            admitted: AtomicU64::new(0),
        })
    }

    /// Admits a new connection from `address`, or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission, Refusal> {
        if self.admitted.fetch_add(1, Ordering::Relaxed) % 1024 == 0 {
            self.arrivals.retain_recent();
        }
        if self.arrivals.check_key(&address).is_err() {
            return Err(Refusal::TooManyArrivals);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.settings.connections_per_address {
            return Err(Refusal::TooManyConnections);
        }
        *count += 1;
        Ok(Admission {
            limits: self.clone(),
            address,
        })
    }

    /// A fresh limiter for one connection's incoming messages.
    pub fn message_limiter(&self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(per_second(self.settings.messages_per_second))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_address_are_counted_and_given_back() {
        let limits = Limits::new(LimitSettings {
            connections_per_address: 2,
            new_connections_per_second: 1000,
            messages_per_second: 10,
        });
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "127.0.0.2".parse().unwrap();
        let a = limits.admit(here).unwrap();
        let _b = limits.admit(here).unwrap();
        assert_eq!(limits.admit(here).err(), Some(Refusal::TooManyConnections));
        assert!(
            limits.admit(there).is_ok(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(limits.admit(here).is_ok());
    }

    #[test]
    fn arrivals_and_messages_are_rate_limited() {
        let limits = Limits::new(LimitSettings {
            connections_per_address: 1000,
            new_connections_per_second: 5,
            messages_per_second: 5,
        });
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let admitted = (0..50).filter_map(|_| limits.admit(here).ok()).count();
        assert!((10..50).contains(&admitted), "{admitted}");
        let messages = limits.message_limiter();
        let passed = (0..50).filter(|_| messages.check().is_ok()).count();
        assert!((10..50).contains(&passed), "{passed}");
    }
}
