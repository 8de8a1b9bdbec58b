//! Links taken back while a document is open: a link reset, or the document deleted.
//!
//! Every connection came by a link of some role and generation. When a link is reset, the
//! room learns the first generation still valid for its role, and every connection that came
//! by an earlier one is closed with 4001; when the document is deleted, every connection is
//! closed with 4002 and the room accepts no more changes. The state is a `watch`: a
//! connection compares its own link with it when it joins and whenever it changes.

use super::Room;
use crate::server::capability::Role;
use crate::server::error::CloseReason;
use tokio::sync::watch;

/// What has been taken back of a document's links since its room opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Edit links of a generation below this open nothing any more.
    pub edit_below: u32,
    /// View links of a generation below this open nothing any more.
    pub view_below: u32,
    pub deleted: bool,
}

/// One change to a document's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// The `role` link moved to `generation`: every earlier one opens nothing.
    Reset { role: Role, generation: u32 },
    /// The document was deleted.
    Deleted,
}

impl Revoked {
    /// Why a connection that came by the `role` link of `generation` must close, if it must.
    pub fn closes(&self, role: Role, generation: u32) -> Option<CloseReason> {
        if self.deleted {
            return Some(CloseReason::deleted());
        }
        let below = match role {
            Role::Edit => self.edit_below,
            Role::View => self.view_below,
        };
        (generation < below).then(CloseReason::link_reset)
    }

    fn apply(&mut self, change: LinkChange) -> bool {
        let before = *self;
        match change {
            LinkChange::Reset { role, generation } => {
                let below = match role {
                    Role::Edit => &mut self.edit_below,
                    Role::View => &mut self.view_below,
                };
                *below = (*below).max(generation);
            }
            LinkChange::Deleted => self.deleted = true,
        }
        *self != before
    }
}

impl Room {
    /// The room's taken-back links, to compare a connection's own link with.
    pub fn revocations(&self) -> watch::Receiver<Revoked> {
        self.revoked.subscribe()
    }

    /// Takes back links: every connection that came by one is closed, at once.
    pub fn revoke(&self, change: LinkChange) {
        let changed = self
            .revoked
            .send_if_modified(|revoked| revoked.apply(change));
        if changed {
            tracing::info!(doc = %self.tag, ?change, "links taken back; closing the connections that came by them");
        }
    }

    /// Whether the document was deleted while the room was open.
    pub fn deleted(&self) -> bool {
        self.revoked.borrow().deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_closes_earlier_generations_of_its_role_only() {
        let mut revoked = Revoked::default();
        assert!(revoked.closes(Role::Edit, 0).is_none());
        revoked.apply(LinkChange::Reset {
            role: Role::Edit,
            generation: 2,
        });
        assert_eq!(revoked.closes(Role::Edit, 1).unwrap().code, 4001);
        assert!(revoked.closes(Role::Edit, 2).is_none());
        assert!(revoked.closes(Role::View, 1).is_none());
        // A late, older reset does not bring an earlier generation back.
        assert!(!revoked.apply(LinkChange::Reset {
            role: Role::Edit,
            generation: 1,
        }));
        assert!(revoked.closes(Role::Edit, 1).is_some());
        revoked.apply(LinkChange::Deleted);
        assert_eq!(revoked.closes(Role::Edit, 2).unwrap().code, 4002);
        assert_eq!(revoked.closes(Role::View, 5).unwrap().code, 4002);
    }
}
