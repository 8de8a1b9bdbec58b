//! What one client may do: connections per address, new connections per second per address,
//! and messages per second per connection; and how many connections the server holds in all.
//!
//! The defaults are generous enough that a person never meets them; they exist so that one
//! misbehaving client cannot take the server from everyone else. Rate limiting is governor's
//! GCRA; the per-address tables are pruned so they stay bounded however many addresses come.
//!
//! An address is counted as a client is likely to hold addresses: an IPv4 address alone, an
//! IPv6 address with the rest of its /64 (one host or home network routinely owns a whole /64,
//! so counting single IPv6 addresses would let one client take as many places as it likes).

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
    /// Open connections allowed in all, whatever their addresses.
    max_connections: usize,
    /// Open connections now, in all.
    connections: Mutex<usize>,
    /// Open connections by client address; an address leaves the map at zero.
    open: Mutex<HashMap<IpAddr, usize>>,
    arrivals: DefaultKeyedRateLimiter<IpAddr>,
    admitted: AtomicU64,
    /// The clock every connection's message limiter reads. Made once: making one calibrates
    /// it against the CPU's counter, dozens of `cpuid` instructions, which a virtual machine
    /// traps, and cost a tenth of the server's work opening a connection.
    clock: governor::clock::DefaultClock,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections from this address")]
    TooManyConnections,
    #[error("too many new connections from this address; slow down")]
    TooManyArrivals,
    #[error("the server holds as many connections as it may; try again later")]
    ServerFull,
}

/// An admitted connection's place in its address's count and in the total, given back on drop.
pub struct Admission {
    limits: Arc<Limits>,
    address: IpAddr,
}

/// The address under which a client is counted: IPv4 (also when written as IPv4-mapped IPv6)
/// as it is, IPv6 reduced to its /64 network.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(network.into())
        }
    }
}

fn per_second(rate: u32) -> Quota {
    let rate = NonZeroU32::new(rate.max(1)).expect("at least one");
    // A burst of twice the rate absorbs a page's reconnect or a paste without penalty.
    Quota::per_second(rate).allow_burst(rate.saturating_mul(NonZeroU32::new(2).expect("two")))
}

impl Limits {
    /// Limits per client, with no cap on the total.
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Self::with_max_connections(settings, usize::MAX)
    }

    /// Limits per client, and at most `max_connections` open connections in all.
    pub fn with_max_connections(settings: LimitSettings, max_connections: usize) -> Arc<Self> {
        Arc::new(Limits {
            settings,
            max_connections,
            connections: Mutex::new(0),
            open: Mutex::new(HashMap::new()),
            arrivals: RateLimiter::keyed(per_second(settings.new_connections_per_second)),
            admitted: AtomicU64::new(0),
            clock: governor::clock::DefaultClock::default(),
        })
    }

    /// Counts one arrival from `address` without opening anything (a link check): refused
    /// beyond the same per-address rate as new connections.
    pub fn arrive(&self, address: IpAddr) -> Result<(), Refusal> {
        self.arrivals
            .check_key(&address_key(address))
            .map_err(|_| Refusal::TooManyArrivals)
    }

    /// Admits a new connection from `address` (counted under [`address_key`]), or says why
    /// not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission, Refusal> {
        let address = address_key(address);
        if self
            .admitted
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
        {
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
        // Taken while `open` is held, and always in this order, so the two counts move together.
        let mut total = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if *total >= self.max_connections {
            if *count == 0 {
                open.remove(&address);
            }
            return Err(Refusal::ServerFull);
        }
        *total += 1;
        *count += 1;
        Ok(Admission {
            limits: self.clone(),
            address,
        })
    }

    /// A fresh limiter for one connection's incoming messages.
    pub fn message_limiter(&self) -> DefaultDirectRateLimiter {
        RateLimiter::direct_with_clock(
            per_second(self.settings.messages_per_second),
            self.clock.clone(),
        )
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
        let mut total = self
            .limits
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(1);
    }
}

/// How many times a minute each client address may do something that writes (make a
/// document, reset links, delete one), all at once if it likes.
pub struct PerAddressPerMinute {
    made: DefaultKeyedRateLimiter<IpAddr>,
    /// Calls so far: every 1024th prunes the addresses whose allowance is whole again, so the
    /// table holds only addresses seen within the last minute.
    calls: AtomicU64,
}

impl PerAddressPerMinute {
    pub fn new(times: u32) -> PerAddressPerMinute {
        let times = NonZeroU32::new(times.max(1)).expect("at least one");
        PerAddressPerMinute {
            made: RateLimiter::keyed(Quota::per_minute(times)),
            calls: AtomicU64::new(0),
        }
    }

    /// Whether `address` may do it now (and counts it if so).
    pub fn allows(&self, address: IpAddr) -> bool {
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
        {
            self.made.retain_recent();
        }
        self.made.check_key(&address_key(address)).is_ok()
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
    fn ipv6_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
        let limits = Limits::new(LimitSettings {
            connections_per_address: 2,
            new_connections_per_second: 1000,
            messages_per_second: 10,
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = limits.admit(a).unwrap();
        let _b = limits.admit(b).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::TooManyConnections));
        assert!(
            limits.admit(elsewhere).is_ok(),
            "another /64 is another client"
        );

        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _v4 = limits.admit(v4).unwrap();
        let _mapped = limits.admit(mapped).unwrap();
        assert_eq!(limits.admit(v4).err(), Some(Refusal::TooManyConnections));
        assert!(limits.admit("192.0.2.8".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_total_is_capped_and_given_back() {
        let limits = Limits::with_max_connections(
            LimitSettings {
                connections_per_address: 10,
                new_connections_per_second: 1000,
                messages_per_second: 10,
            },
            2,
        );
        let a = limits.admit("192.0.2.1".parse().unwrap()).unwrap();
        let _b = limits.admit("192.0.2.2".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("192.0.2.3".parse().unwrap()).err(),
            Some(Refusal::ServerFull)
        );
        assert!(
            limits.open.lock().unwrap().len() == 2,
            "a refused address leaves no trace"
        );
        drop(a);
        assert!(limits.admit("192.0.2.3".parse().unwrap()).is_ok());
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

#[cfg(test)]
mod per_minute_tests {
    use super::*;

    #[test]
    fn each_address_makes_its_allowance_and_no_more() {
        let limit = PerAddressPerMinute::new(3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!((0..3).all(|_| limit.allows(a)));
        assert!(!limit.allows(a));
        assert!(limit.allows(b), "another address has its own allowance");
        // Another address in the same IPv6 /64 is the same client.
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert!((0..3).all(|_| limit.allows(c)));
        assert!(!limit.allows(d));
    }
}
