//! Which open connection writes as which Yjs client.
//!
//! Every change in a Yjs document carries its author's client id and a clock that counts that
//! author's characters. A connection that writes under someone else's id, at clocks that person
//! has not reached yet, takes those clocks: when the real author's next keystrokes arrive with
//! the same clocks, every peer takes them for ones it already has and drops them. So the first
//! open connection that adds to a client's clocks owns them while it stays; another connection
//! adding to them is refused, and the owner's own work goes on.
//!
//! A person who reconnects (after sleep, or a network change) keeps their client id, and the
//! server may not yet have noticed that their old connection is gone (it closes a silent one
//! after a minute). So the refusal is "try again later" (1013): their page keeps the edits and
//! retries, and gets through once the old connection is closed.
//!
//! With several instances, each tells the others which ids its connections own in a document
//! (see [`super::remote`]), renewed every few seconds: an id another instance claims is refused
//! here like one another connection owns, until that instance releases it or stops renewing
//! the claim ([`CLAIM_EXPIRY`]).

use super::ConnId;
use std::collections::HashMap;
use yrs::block::ClientID;
use yrs::StateVector;

/// The most client ids one connection owns. Ordinary pages write as one; a page that merges
/// edits made offline under earlier ids may add a few more. Beyond this, ids are written
/// unowned, not refused.
pub const MAX_OWNED_PER_CONNECTION: usize = 64;

/// One client's clocks in an update: from `start` up to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub client: ClientID,
    pub start: u32,
    pub end: u32,
}

/// A connection adding to clocks another open connection owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this page's editor id is in use by another open connection; retrying")]
pub struct Taken {
    pub client: ClientID,
}

/// A claim another instance stopped renewing is forgotten after this long: it renews every
/// [`super::PRESENCE_SWEEP`] (5 s), so one lost renewal does not drop it.
pub const CLAIM_EXPIRY: std::time::Duration = std::time::Duration::from_secs(12);
/// Ids one instance may claim in one document, and instances whose claims one document keeps.
pub const MOST_CLAIMED_PER_INSTANCE: usize = 4096;
pub const MOST_CLAIMING_INSTANCES: usize = 64;

#[derive(Default)]
pub(super) struct Authors {
    owner: HashMap<ClientID, ConnId>,
    owned: HashMap<ConnId, Vec<ClientID>>,
    /// Ids other instances' connections own, by instance (its pseudo connection), with when
    /// the instance last said so.
    claims: HashMap<ConnId, (Vec<ClientID>, tokio::time::Instant)>,
    /// The same, by id.
    claimed: HashMap<ClientID, ConnId>,
}

impl Authors {
    /// Refuses `sections` from `from` if one adds clocks beyond `sv` to a client another
    /// connection owns. Repeating clocks the document has (a reconnecting page's sync step 2)
    /// is anyone's right.
    pub fn check(&self, from: ConnId, sections: &[Section], sv: &StateVector) -> Result<(), Taken> {
        for section in adding(sections, sv) {
            let taken = match self.owner.get(&section.client) {
                Some(owner) => *owner != from,
                None => self.claimed.contains_key(&section.client),
            };
            if taken {
                return Err(Taken {
                    client: section.client,
                });
            }
        }
        Ok(())
    }

    /// Gives `from` the clients of `sections` whose clocks went from `before` to `after` and
    /// that have no owner yet. Blocks held back for missing dependencies claim nothing until
    /// they integrate.
    /// Returns whether anything new was claimed.
    pub fn claim(
        &mut self,
        from: ConnId,
        sections: &[Section],
        before: &StateVector,
        after: &StateVector,
    ) -> bool {
        let mut claimed = false;
        let advanced = sections
            .iter()
            .filter(|section| after.get(&section.client) > before.get(&section.client));
        for section in advanced {
            let owned = self.owned.entry(from).or_default();
            if owned.len() >= MAX_OWNED_PER_CONNECTION {
                return claimed;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) =
                self.owner.entry(section.client)
            {
                entry.insert(from);
                owned.push(section.client);
                claimed = true;
            }
        }
        claimed
    }

    /// How many ids this instance's connections own.
    pub fn owned_count(&self) -> usize {
        self.owner.len()
    }

    /// The ids this instance's connections own, for the other instances.
    pub fn owned_here(&self) -> Vec<ClientID> {
        self.owner.keys().copied().collect()
    }

    /// Replaces what `instance` claims with `clients` (its whole set: an id missing from it
    /// is released), as of `now`. Beyond the bounds, the rest is not kept.
    pub fn set_claims(
        &mut self,
        instance: ConnId,
        mut clients: Vec<ClientID>,
        now: tokio::time::Instant,
    ) {
        self.drop_claims(instance);
        // Kept even when empty: it says the instance is alive (see [`Authors::silent`]).
        if self.claims.len() >= MOST_CLAIMING_INSTANCES {
            return;
        }
        clients.truncate(MOST_CLAIMED_PER_INSTANCE);
        for client in &clients {
            self.claimed.entry(*client).or_insert(instance);
        }
        self.claims.insert(instance, (clients, now));
    }

    /// Notes that `instance` is alive (it relayed presence), without changing its claims.
    pub fn heard_from(&mut self, instance: ConnId, now: tokio::time::Instant) {
        if let Some((_, at)) = self.claims.get_mut(&instance) {
            *at = now;
        } else if self.claims.len() < MOST_CLAIMING_INSTANCES {
            self.claims.insert(instance, (Vec::new(), now));
        }
    }

    /// Forgets the claims of instances that stopped renewing them, and returns those
    /// instances: gone, or no longer holding the document open.
    pub fn expire_claims(&mut self, now: tokio::time::Instant) -> Vec<ConnId> {
        let expired: Vec<ConnId> = self
            .claims
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= CLAIM_EXPIRY)
            .map(|(instance, _)| *instance)
            .collect();
        for instance in &expired {
            self.drop_claims(*instance);
        }
        expired
    }

    fn drop_claims(&mut self, instance: ConnId) {
        if let Some((clients, _)) = self.claims.remove(&instance) {
            for client in clients {
                if self.claimed.get(&client) == Some(&instance) {
                    self.claimed.remove(&client);
                }
            }
        }
    }

    /// Frees what a departing connection owned.
    pub fn release(&mut self, conn: ConnId) {
        for client in self.owned.remove(&conn).unwrap_or_default() {
            self.owner.remove(&client);
        }
    }
}

fn adding<'a>(sections: &'a [Section], sv: &'a StateVector) -> impl Iterator<Item = &'a Section> {
    sections
        .iter()
        .filter(move |section| section.end > sv.get(&section.client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(client: u64, start: u32, end: u32) -> Section {
        Section {
            client: ClientID::new(client),
            start,
            end,
        }
    }

    #[test]
    fn the_first_writer_owns_a_client_until_it_leaves() {
        let mut authors = Authors::default();
        let mut sv = StateVector::default();
        let ann = [section(7, 0, 5)];
        authors.check(1, &ann, &sv).unwrap();
        let mut after = sv.clone();
        after.set_max(ClientID::new(7), 5);
        authors.claim(1, &ann, &sv, &after);
        sv = after;
        let more = [section(7, 5, 9)];
        assert_eq!(authors.check(1, &more, &sv), Ok(()));
        assert!(authors.check(2, &more, &sv).is_err());
        // Repeating what the document has is not writing.
        assert_eq!(authors.check(2, &ann, &sv), Ok(()));
        authors.release(1);
        assert_eq!(authors.check(2, &more, &sv), Ok(()));
    }

    #[test]
    fn an_id_another_instance_claims_is_refused_until_released_or_expired() {
        let mut authors = Authors::default();
        let sv = StateVector::default();
        let now = tokio::time::Instant::now();
        let elsewhere = 1 << 63;
        authors.set_claims(elsewhere, vec![ClientID::new(7)], now);
        assert!(authors.check(1, &[section(7, 0, 1)], &sv).is_err());
        assert_eq!(authors.check(1, &[section(8, 0, 1)], &sv), Ok(()));
        // Released: the instance's whole set no longer names it.
        authors.set_claims(elsewhere, vec![], now);
        assert_eq!(authors.check(1, &[section(7, 0, 1)], &sv), Ok(()));
        // Expired: not renewed for CLAIM_EXPIRY.
        authors.set_claims(elsewhere, vec![ClientID::new(7)], now);
        authors.expire_claims(now + CLAIM_EXPIRY / 2);
        assert!(authors.check(1, &[section(7, 0, 1)], &sv).is_err());
        authors.expire_claims(now + CLAIM_EXPIRY);
        assert_eq!(authors.check(1, &[section(7, 0, 1)], &sv), Ok(()));
        // A connection here that owns an id keeps writing whatever is claimed elsewhere.
        let mut after = StateVector::default();
        after.set_max(ClientID::new(9), 1);
        assert!(authors.claim(1, &[section(9, 0, 1)], &sv, &after));
        authors.set_claims(elsewhere, vec![ClientID::new(9)], now);
        assert_eq!(authors.check(1, &[section(9, 1, 2)], &after), Ok(()));
        assert!(authors.check(2, &[section(9, 1, 2)], &after).is_err());
        // Bounded: ids per instance, and instances.
        let many: Vec<ClientID> = (0..10_000).map(ClientID::new).collect();
        authors.set_claims(elsewhere, many, now);
        assert_eq!(authors.claimed.len(), MOST_CLAIMED_PER_INSTANCE);
        for instance in 0..100u64 {
            authors.set_claims(
                (1 << 63) | (instance + 10),
                vec![ClientID::new(instance)],
                now,
            );
        }
        assert!(authors.claims.len() <= MOST_CLAIMING_INSTANCES);
    }

    #[test]
    fn a_connection_owns_a_bounded_number_of_clients() {
        let mut authors = Authors::default();
        let sv = StateVector::default();
        let many: Vec<Section> = (1..=200).map(|c| section(c, 0, 1)).collect();
        let mut after = StateVector::default();
        for c in 1..=200 {
            after.set_max(ClientID::new(c), 1);
        }
        authors.claim(1, &many, &sv, &after);
        assert_eq!(authors.owner.len(), MAX_OWNED_PER_CONNECTION);
        assert!(authors.check(2, &many[..1], &sv).is_err());
        assert_eq!(authors.check(2, &many[199..], &sv), Ok(()));
    }
}
