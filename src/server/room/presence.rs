//! Who is in a room and where: the awareness states, owned by the connections that set them.
//!
//! yrs's `Awareness` keeps every state it ever saw (removed ones too) and lets anyone change
//! anyone's entry, which a server facing strangers cannot afford. So the room keeps its own
//! small registry and speaks the standard awareness messages (`AwarenessUpdate`) around it:
//! - each state is parsed as a JSON object of bounded size and re-encoded from what was
//!   parsed, so nothing is relayed as received;
//! - a client id belongs to the connection that introduced it: only that connection may renew
//!   or remove it, and changing another's is a policy violation (close 1008). Repeating
//!   another's state without changing it (an older or equal clock) is ignored: stock
//!   y-websocket clients echo every state they receive back to the server;
//! - a connection may hold a few client ids and a room a bounded number; removed entries are
//!   forgotten at once, so nothing accumulates.

use super::{encode, ConnId, Room};
use crate::server::error::CloseReason;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message};
use yrs::ClientID;

/// Awareness states not renewed for this long are removed: a client that vanished without
/// a word (a closed laptop, a dead network) stops showing as present.
pub const PRESENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a room looks for expired awareness states (and expired pending updates).
pub const PRESENCE_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// How much presence one connection and one room may hold.
#[derive(Debug, Clone, Copy)]
pub struct PresenceLimits {
    /// Client ids one connection may introduce (a browser tab uses one).
    pub per_connection: usize,
    /// Client ids present in one room at once.
    pub per_room: usize,
    /// Largest JSON text of one state, in bytes.
    pub state_bytes: usize,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits {
            per_connection: 4,
            per_room: 1024,
            state_bytes: 8 * 1024,
        }
    }
}

/// What a connection introduced into the room, so that leaving can undo it.
#[derive(Debug, Default)]
pub struct Presence {
    /// Awareness client ids this connection has set a state for and still owns.
    pub awareness_clients: std::collections::HashSet<ClientID>,
    /// Cancelled when the room refuses this connection outside of a frame it sent: an update
    /// of its waited too long for what it depends on.
    pub expelled: tokio_util::sync::CancellationToken,
    /// The connection came by a view link: it receives the document and its changes and shows
    /// who it is, but writes nothing (see [`super::Room::receive`]).
    pub viewer: bool,
}

struct Entry {
    owner: ConnId,
    /// The state is a viewer's (marked so by the server that accepted it).
    viewer: bool,
    clock: u32,
    /// The state as re-encoded by the server.
    json: Arc<str>,
    renewed: tokio::time::Instant,
}

/// The room's presence states.
#[derive(Default)]
pub(super) struct Registry {
    entries: HashMap<ClientID, Entry>,
    /// Recently removed ids and their last clocks, so that a late echo of a removed state is
    /// not taken for somebody new. Bounded: see [`Registry::remember_removed`].
    removed: HashMap<ClientID, (u32, tokio::time::Instant)>,
    /// States editors took back from the instance that relayed them, for the room to forget
    /// there; drained after every [`Registry::accept`].
    taken_over: Vec<(ClientID, ConnId)>,
    /// Bumped on every change, so the encoded list of everyone can be shared until it changes.
    version: u64,
    everyone: Option<(u64, Bytes)>,
    /// How many entries there are, readable without the room's lock (for `/metrics`, which must
    /// not wait behind an integration).
    count: Arc<std::sync::atomic::AtomicUsize>,
}

const NULL: &str = "null";

/// Viewers may fill at most one in this many of a room's presence entries: a crowd reading a
/// popular view link never keeps an editor from showing.
pub const VIEWERS_SHARE: usize = 2;

/// How long a state relayed by another instance must have gone unrenewed before the editor it
/// belongs to may take it back through this instance: longer than a page's renewal interval
/// (15 s), so that only a state whose instance stopped relaying it qualifies.
pub const TAKEOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether `owner` is another instance rather than a connection to this one.
fn is_relayed(owner: ConnId) -> bool {
    owner >= super::remote::instance_conn(0)
}

impl Registry {
    /// A handle on the entry count that reads without the room's lock.
    pub fn counter(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.count.clone()
    }

    fn recount(&self) {
        self.count
            .store(self.entries.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The names connection `conn` shows (`user.name` of its states), for the History.
    pub fn names_of(&self, conn: ConnId) -> Vec<String> {
        self.entries
            .values()
            .filter(|entry| entry.owner == conn)
            .filter_map(|entry| {
                let state: serde_json::Value = serde_json::from_str(&entry.json).ok()?;
                Some(state.get("user")?.get("name")?.as_str()?.to_owned())
            })
            .collect()
    }

    /// Applies what connection `from` says about presence; returns the accepted entries,
    /// re-encoded, for the others.
    fn accept(
        &mut self,
        from: ConnId,
        presence: &mut Presence,
        update: AwarenessUpdate,
        limits: PresenceLimits,
    ) -> Result<AwarenessUpdate, CloseReason> {
        let now = tokio::time::Instant::now();
        let mut accepted = HashMap::new();
        for (client, entry) in update.clients {
            match self.entries.get(&client) {
                // A state another instance relays. Its editor may be back through this one
                // (their instance went away): once that instance has stopped renewing the state
                // for longer than a page's renewal interval, the state is the editor's again.
                // Until then, or if it is not a state at all, nothing changes, and nobody is
                // closed: the other instance's editor is not this connection's to replace.
                Some(existing) if is_relayed(existing.owner) && !is_relayed(from) => {
                    let stale = now.saturating_duration_since(existing.renewed) >= TAKEOVER_AFTER;
                    // A viewer never takes an editor's state over.
                    if !stale
                        || presence.viewer
                        || entry.clock <= existing.clock
                        || &*entry.json == NULL
                        || presence.awareness_clients.len() >= limits.per_connection
                    {
                        continue;
                    }
                    reencode(&entry.json, limits.state_bytes, None)?;
                    let previous = existing.owner;
                    self.entries.remove(&client);
                    self.taken_over.push((client, previous));
                }
                Some(existing) if existing.owner != from => {
                    if entry.clock <= existing.clock {
                        continue; // an echo of what the server itself sent
                    }
                    return Err(CloseReason::policy(format!(
                        "presence {client} belongs to another connection"
                    )));
                }
                // Another instance never echoes: its state at the clock of a removal made here
                // (it went quiet) is its answer to "who is here", and stands.
                None if self.removed.get(&client).is_some_and(|(clock, _)| {
                    entry.clock < *clock || (entry.clock == *clock && !is_relayed(from))
                }) =>
                {
                    continue; // a late echo of a state that is gone
                }
                _ => {}
            }
            if &*entry.json == NULL {
                if let Some(existing) = self.entries.get(&client) {
                    if entry.clock >= existing.clock {
                        self.entries.remove(&client);
                        self.remember_removed(client, entry.clock, now);
                        presence.awareness_clients.remove(&client);
                        accepted.insert(client, removal(entry.clock));
                    }
                }
                continue;
            }
            // A state from this instance's own connection says whether it may edit, as the
            // server knows it; one relayed by another instance was stamped there.
            let role = (!is_relayed(from)).then_some(presence.viewer);
            let (json, viewer) = reencode(&entry.json, limits.state_bytes, role)?;
            if viewer
                && !self.entries.contains_key(&client)
                && !self.viewer_has_room(presence, limits)
            {
                // Viewers never crowd out editors, nor are they closed for being many: beyond
                // their share, a viewer is simply not shown.
                continue;
            }
            match self.entries.get_mut(&client) {
                Some(existing) => {
                    // A stale or repeated state changes nothing (y-protocols keeps the newer).
                    if entry.clock <= existing.clock {
                        continue;
                    }
                    existing.clock = entry.clock;
                    existing.json = json.clone();
                    existing.renewed = now;
                }
                None => {
                    if presence.awareness_clients.len() >= limits.per_connection {
                        return Err(CloseReason::policy(format!(
                            "at most {} presence entries per connection",
                            limits.per_connection
                        )));
                    }
                    if self.entries.len() >= limits.per_room {
                        if viewer {
                            continue; // a viewer is not shown, never closed
                        }
                        return Err(CloseReason::policy(format!(
                            "this document already shows {} people",
                            limits.per_room
                        )));
                    }
                    self.entries.insert(
                        client,
                        Entry {
                            owner: from,
                            viewer,
                            clock: entry.clock,
                            json: json.clone(),
                            renewed: now,
                        },
                    );
                    presence.awareness_clients.insert(client);
                }
            }
            accepted.insert(
                client,
                AwarenessUpdateEntry {
                    clock: entry.clock,
                    json,
                },
            );
        }
        if !accepted.is_empty() {
            self.version += 1;
        }
        self.recount();
        Ok(AwarenessUpdate { clients: accepted })
    }

    /// Whether a viewer's new state may be shown: one per viewer connection, and viewers
    /// together at most [`VIEWERS_SHARE`] of the room's entries.
    fn viewer_has_room(&self, presence: &Presence, limits: PresenceLimits) -> bool {
        let shown = self.entries.values().filter(|entry| entry.viewer).count();
        (presence.awareness_clients.is_empty() || !presence.viewer)
            && shown < limits.per_room / VIEWERS_SHARE
    }

    /// Applies presence another instance accepted from its editors (see [`super::remote`]),
    /// owned by `owner`, the instance's pseudo connection. Like [`Self::accept`], one entry at a
    /// time, except that an entry breaking a rule is skipped rather than refused, and the
    /// instance may hold as many as the room: it relays many people.
    pub(super) fn accept_remote(
        &mut self,
        owner: ConnId,
        presence: &mut Presence,
        update: AwarenessUpdate,
        limits: PresenceLimits,
    ) -> AwarenessUpdate {
        let limits = PresenceLimits {
            per_connection: limits.per_room,
            ..limits
        };
        let mut clients = HashMap::new();
        for (client, entry) in update.clients {
            let one = AwarenessUpdate {
                clients: HashMap::from([(client, entry)]),
            };
            // Each refusal happens before the entry changes anything.
            if let Ok(accepted) = self.accept(owner, presence, one, limits) {
                clients.extend(accepted.clients);
            }
        }
        AwarenessUpdate { clients }
    }

    /// Whether any of this instance's own editors shows.
    pub(super) fn shows_local(&self) -> bool {
        self.entries.values().any(|entry| !is_relayed(entry.owner))
    }

    /// The states `instance` relays, with their owner.
    pub(super) fn relayed_by(&self, instance: ConnId) -> Vec<(ClientID, ConnId)> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.owner == instance)
            .map(|(client, entry)| (*client, entry.owner))
            .collect()
    }

    /// The states this instance's own editors set (not those relayed from other instances).
    pub(super) fn owned_locally(&self) -> AwarenessUpdate {
        let clients = self
            .entries
            .iter()
            .filter(|(_, entry)| !is_relayed(entry.owner))
            .map(|(client, entry)| {
                (
                    *client,
                    AwarenessUpdateEntry {
                        clock: entry.clock,
                        json: entry.json.clone(),
                    },
                )
            })
            .collect();
        AwarenessUpdate { clients }
    }

    /// Removes `clients` (all owned by one departing connection, or expired) and returns the
    /// removal message for everyone else.
    fn remove(&mut self, clients: impl IntoIterator<Item = ClientID>) -> AwarenessUpdate {
        let mut removed = HashMap::new();
        let now = tokio::time::Instant::now();
        for client in clients {
            if let Some(entry) = self.entries.remove(&client) {
                // A removal outranks the state it removes. A relayed state is removed here
                // because its instance went quiet, not by its editor: at the same clock (Yjs
                // clients apply a removal at an equal clock), so that the editor's next renewal,
                // one clock on, is taken again, here or through another instance.
                let clock = match is_relayed(entry.owner) {
                    true => entry.clock,
                    false => entry.clock.saturating_add(1),
                };
                self.remember_removed(client, clock, now);
                removed.insert(client, removal(clock));
            }
        }
        if !removed.is_empty() {
            self.version += 1;
        }
        self.recount();
        AwarenessUpdate { clients: removed }
    }

    /// Keeps a removed id's clock for [`PRESENCE_TIMEOUT`], at most 4,096 of them: enough to
    /// recognise echoes, which follow a removal within moments.
    fn remember_removed(&mut self, client: ClientID, clock: u32, now: tokio::time::Instant) {
        const MOST: usize = 4096;
        if self.removed.len() >= MOST {
            self.removed
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < PRESENCE_TIMEOUT);
            if self.removed.len() >= MOST {
                self.removed.clear();
            }
        }
        self.removed.insert(client, (clock, now));
    }

    /// Everyone's state as one message, encoded once per version and shared.
    fn everyone(&mut self) -> Option<Bytes> {
        if self.entries.is_empty() {
            return None;
        }
        if let Some((version, frame)) = &self.everyone {
            if *version == self.version {
                return Some(frame.clone());
            }
        }
        let clients = self
            .entries
            .iter()
            .map(|(client, entry)| {
                (
                    *client,
                    AwarenessUpdateEntry {
                        clock: entry.clock,
                        json: entry.json.clone(),
                    },
                )
            })
            .collect();
        let frame = encode(Message::Awareness(AwarenessUpdate { clients }));
        self.everyone = Some((self.version, frame.clone()));
        Some(frame)
    }

    fn expired(&self, now: tokio::time::Instant) -> Vec<(ClientID, ConnId)> {
        self.entries
            .iter()
            .filter(|(_, entry)| now.saturating_duration_since(entry.renewed) >= PRESENCE_TIMEOUT)
            .map(|(client, entry)| (*client, entry.owner))
            .collect()
    }
}

/// Forgets that instance `owner` relays `client` (taken back by its editor, or expired), and
/// the instance once it relays nobody.
fn forget_relayed(remote: &mut HashMap<ConnId, Presence>, client: ClientID, owner: ConnId) {
    if let Some(relayed) = remote.get_mut(&owner) {
        relayed.awareness_clients.remove(&client);
        if relayed.awareness_clients.is_empty() {
            remote.remove(&owner);
        }
    }
}

fn removal(clock: u32) -> AwarenessUpdateEntry {
    AwarenessUpdateEntry {
        clock,
        json: NULL.into(),
    }
}

/// The key of a presence state that marks a connection that came by a view link. The server
/// sets it on viewers' states and removes it from editors', so nobody can pass for the other.
pub const VIEWER_KEY: &str = "viewer";

/// Parses a state as a JSON object and writes it back out: whatever else rode along (a second
/// value, invalid UTF-16 escapes, duplicate keys) is gone, and size is bounded before parsing.
/// With `viewer`, the state is marked as a viewer's (`"viewer": true`) or not at all.
fn reencode(
    json: &str,
    max_bytes: usize,
    viewer: Option<bool>,
) -> Result<(Arc<str>, bool), CloseReason> {
    if json.len() > max_bytes {
        return Err(CloseReason::too_big(format!(
            "a presence state may have at most {max_bytes} bytes"
        )));
    }
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| CloseReason::invalid(format!("presence is not a JSON object: {e}")))?;
    match viewer {
        Some(true) => {
            object.insert(VIEWER_KEY.into(), serde_json::Value::Bool(true));
        }
        Some(false) => {
            object.remove(VIEWER_KEY);
        }
        None => {}
    }
    let marked = object.get(VIEWER_KEY) == Some(&serde_json::Value::Bool(true));
    let text = serde_json::to_string(&object)
        .map_err(|e| CloseReason::invalid(format!("presence does not re-encode: {e}")))?;
    Ok((text.into(), marked))
}

impl Room {
    /// Applies an awareness message from connection `from` and relays what was accepted.
    pub(super) fn receive_presence(
        &self,
        from: ConnId,
        presence: &mut Presence,
        update: AwarenessUpdate,
    ) -> Result<(), CloseReason> {
        let accepted = {
            let mut state = self.lock();
            let state = &mut *state;
            let accepted = state
                .presence
                .accept(from, presence, update, self.presence_limits);
            for (client, previous) in state.presence.taken_over.drain(..) {
                forget_relayed(&mut state.remote, client, previous);
            }
            accepted?
        };
        if !accepted.clients.is_empty() {
            self.send_presence(from, accepted);
        }
        Ok(())
    }

    /// Everyone's presence, for a greeting or an awareness query.
    pub(super) fn everyone_present(&self) -> Option<Bytes> {
        self.lock().presence.everyone()
    }

    /// Removes the awareness states a departing connection introduced and tells the others.
    pub fn leave(&self, from: ConnId, presence: &Presence) {
        // Whatever waits for its batch goes now, the departing connection's last word among
        // it (a page that leaves says so first): if this was the room's last connection, the
        // room and its batch task go with it, and the batch would never be sent.
        self.send_presence_batch();
        let removal = {
            let mut state = self.lock();
            state.pending.forget(from);
            let owned = state.authors.owned_count();
            state.authors.release(from);
            if state.authors.owned_count() < owned {
                self.relay_claims(&state);
            }
            if presence.awareness_clients.is_empty() {
                return;
            }
            state
                .presence
                .remove(presence.awareness_clients.iter().copied())
        };
        if !removal.clients.is_empty() {
            let frame = encode(Message::Awareness(removal));
            self.relay_presence(&frame);
            self.publish(from, frame);
        }
    }

    /// Removes awareness states that were not renewed within [`PRESENCE_TIMEOUT`] and tells
    /// everyone; refuses pending updates that waited too long. The room's sweeper calls this.
    pub fn sweep(&self) {
        let now = tokio::time::Instant::now();
        let removal = {
            let mut state = self.lock();
            self.expire_pending(&mut state, now);
            // Instances that went silent take the presence they relayed with them, rather than
            // leaving it for the presence timeout.
            let silent = state.authors.expire_claims(now);
            // The ids written as here, renewed for the other instances: also how they know
            // this instance is alive while it shows anyone.
            if state.authors.owned_count() > 0 || state.presence.shows_local() {
                self.relay_claims(&state);
            }
            let mut expired = state.presence.expired(now);
            for instance in silent {
                expired.extend(state.presence.relayed_by(instance));
            }
            expired.sort_by_key(|(client, _)| client.get());
            expired.dedup();
            if expired.is_empty() {
                return;
            }
            tracing::debug!(doc = %self.tag, count = expired.len(), "expired silent presence");
            // States relayed from an instance that went quiet: it no longer holds them either.
            for (client, owner) in &expired {
                forget_relayed(&mut state.remote, *client, *owner);
            }
            state
                .presence
                .remove(expired.into_iter().map(|(client, _)| client))
        };
        // From no connection: everyone must hear it. Other instances ignore the removal of
        // states they own, which expire there on their own. States still waiting go first.
        self.send_presence_batch();
        let frame = encode(Message::Awareness(removal));
        self.relay_presence(&frame);
        self.publish(ConnId::MAX, frame);
    }

    /// How many presence states the room holds, without taking its lock.
    pub fn presence_count(&self) -> usize {
        self.presence_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
