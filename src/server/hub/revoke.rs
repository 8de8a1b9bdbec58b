//! Taking links back from open documents: resetting a document's links and deleting it.
//!
//! The store changes first, so no new connection can open by a link once it is taken back;
//! then the open room closes every connection that came by one (see
//! [`crate::server::room::revocation`]), and the other instances are told to do the same.
//!
//! A connection checks its link when it joins, but it found its link in the store before:
//! a reset landing in between would be missed. So every reset and deletion also moves the
//! hub's links epoch on, before the room hears of it, and a connection whose epoch moved while
//! it was joining looks its link up again (see [`Hub::links_epoch`]). The epoch is one for
//! the whole process: a reset anywhere costs the connections joining meanwhile one more
//! look-up, never their connection.

use super::Hub;
use crate::doc_id::DocId;
use crate::server::capability::Role;
use crate::server::links::{DocLinks, Links, LookupError};
use crate::server::redact::doc_tag;
use crate::server::room::revocation::LinkChange;
use crate::server::storage::StoreError;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long deleting waits for the connections of the document to close before removing
/// what their last changes stored anyway (the room removes it again when it closes).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Why links could not be reset or a document deleted.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("{0}")]
    Links(#[from] LookupError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Hub {
    /// Moves on whenever links are taken back anywhere in this process.
    pub fn links_epoch(&self) -> u64 {
        self.inner.links_epoch.load(Ordering::SeqCst)
    }

    /// Takes links of `doc` back in this instance: its connections that came by them close.
    pub fn revoke(&self, doc: &DocId, change: LinkChange) {
        self.inner.links_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(room) = self.get(doc) {
            room.revoke(change);
        }
    }

    /// Replaces `roles`' links of `doc` with new ones, closes the connections that came by the
    /// old ones here and on the other instances, and returns the links from then on.
    pub async fn reset_links(
        &self,
        links: &Links,
        doc: DocId,
        roles: Vec<Role>,
    ) -> Result<DocLinks, RevokeError> {
        // One role at a time, each taken back as soon as it is reset: should the next one
        // fail, the old link already reset opens nothing and keeps nobody connected.
        for role in roles {
            for (role, generation) in links.reset_async(doc.clone(), vec![role]).await? {
                let change = LinkChange::Reset { role, generation };
                self.revoke(&doc, change);
                if let Some(cluster) = &self.inner.cluster {
                    cluster.announce(&doc, change);
                }
                tracing::info!(doc = %doc_tag(&doc), role = role.as_str(), generation, "link reset");
            }
        }
        Ok(links.of_async(doc).await?)
    }

    /// Deletes `doc`: its links answer "gone" from now on, every connection to it closes
    /// (here and on the other instances), and every row of it is removed. Returns once the
    /// store has removed it; what the closing connections still had in flight is removed
    /// after it lands, in the background.
    pub async fn delete(&self, links: &Links, doc: DocId) -> Result<(), RevokeError> {
        links.delete_async(doc.clone()).await?;
        self.revoke(&doc, LinkChange::Deleted);
        if let Some(cluster) = &self.inner.cluster {
            cluster.announce(&doc, LinkChange::Deleted);
        }
        tracing::info!(doc = %doc_tag(&doc), "document deleted");
        let hub = self.clone();
        tokio::spawn(async move {
            // The room may have queued changes and a compaction; they land, then are removed
            // (the room removes them again when it closes).
            let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
            while hub.get(&doc).is_some() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Err(error) = hub.inner.journal.erase(doc.clone()).await {
                tracing::error!(doc = %doc_tag(&doc), %error, "a deleted document's last rows could not be removed");
            }
        });
        Ok(())
    }
}
