//! A document's links as the server hands them out: made when a document is made, found again
//! from a token, shown again from the document, and reset (see [`crate::server::capability`]).
//! Every call reads or writes the store: run them on a blocking thread.

use crate::doc_id::DocId;
use crate::server::capability::{token_hash, LinkKey, Role};
use crate::server::storage::capabilities::{Capability, NewLink};
use crate::server::storage::{DocStore, StoreError};
use std::sync::Arc;

/// Why what a link opens could not be found from async code.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The blocking thread asking the store panicked or was cancelled.
    #[error("the lookup did not finish: {0}")]
    Thread(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct Links {
    key: LinkKey,
    store: Arc<dyn DocStore>,
}

/// What a token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Live(Capability),
    /// It was a link of a document since deleted.
    Gone,
    /// Never made, or reset since.
    Nothing,
}

/// A document's current links. The edit link of a document made before links had roles is
/// its old id, which is not kept: `None` until it is reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocLinks {
    pub edit: Option<DocId>,
    pub view: Option<DocId>,
}

impl Links {
    pub fn new(key: LinkKey, store: Arc<dyn DocStore>) -> Links {
        Links { key, store }
    }

    /// What `token` opens, if it is a live link.
    pub fn open(&self, token: &DocId) -> Result<Option<Capability>, StoreError> {
        self.store.resolve(&token_hash(token))
    }

    /// What `token` opens, telling a deleted document's link from one that never was.
    pub fn find(&self, token: &DocId) -> Result<Found, StoreError> {
        let hash = token_hash(token);
        if let Some(capability) = self.store.resolve(&hash)? {
            return Ok(Found::Live(capability));
        }
        self.no_live_link(&hash)
    }

    /// What a token hashing to `hash`, which opens no live link, is: a deleted document's link,
    /// or nothing.
    fn no_live_link(&self, hash: &[u8; 32]) -> Result<Found, StoreError> {
        Ok(if self.store.is_gone(hash)? {
            Found::Gone
        } else {
            Found::Nothing
        })
    }

    /// [`Links::find`] from async code: answered at once where the store has the answer at
    /// hand (see [`DocStore::resolve_at_hand`]), otherwise on a blocking thread. A token the
    /// store knows no live link for is only asked whether it was deleted there.
    pub async fn find_async(&self, token: DocId) -> Result<Found, LookupError> {
        let hash = token_hash(&token);
        let links = self.clone();
        match self.store.resolve_at_hand(&hash) {
            Some(Ok(Some(capability))) => Ok(Found::Live(capability)),
            Some(Ok(None)) => {
                Ok(tokio::task::spawn_blocking(move || links.no_live_link(&hash)).await??)
            }
            Some(Err(_)) | None => {
                Ok(tokio::task::spawn_blocking(move || links.find(&token)).await??)
            }
        }
    }

    /// [`Links::of`] from async code, on a blocking thread.
    pub async fn of_async(&self, doc: DocId) -> Result<DocLinks, LookupError> {
        let links = self.clone();
        Ok(tokio::task::spawn_blocking(move || links.of(&doc)).await??)
    }

    /// Resets each of `roles` (see [`Links::reset`]) from async code, on a blocking thread;
    /// returns each reset role with its new generation.
    pub async fn reset_async(
        &self,
        doc: DocId,
        roles: Vec<Role>,
    ) -> Result<Vec<(Role, u32)>, LookupError> {
        let links = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            roles
                .into_iter()
                .map(|role| Ok((role, links.reset_generation(&doc, role)?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await??)
    }

    /// Removes the document and everything stored of it, keeping its links as gone; from
    /// async code, on a blocking thread. Returns whether it was stored.
    pub async fn delete_async(&self, doc: DocId) -> Result<bool, LookupError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.delete_document(&doc)).await??)
    }

    /// [`Links::open`] from async code: the store is asked on a blocking thread, so a slow
    /// store holds no runtime worker.
    pub async fn open_async(&self, token: DocId) -> Result<Option<Capability>, LookupError> {
        let links = self.clone();
        Ok(tokio::task::spawn_blocking(move || links.open(&token)).await??)
    }

    /// [`Links::create`] from async code, on a blocking thread.
    pub async fn create_async(&self) -> Result<(DocId, DocId), LookupError> {
        let links = self.clone();
        Ok(tokio::task::spawn_blocking(move || links.create()).await??)
    }

    /// Makes a document with both its links; returns its internal id and its edit link.
    pub fn create(&self) -> Result<(DocId, DocId), StoreError> {
        let doc = DocId::from_random_bytes(rand::random());
        let edit = self.create_for(&doc)?;
        Ok((doc, edit))
    }

    /// Gives `doc`, a document made without links (as `tandem import` makes one), both its
    /// links; returns its edit link.
    pub fn create_for(&self, doc: &DocId) -> Result<DocId, StoreError> {
        for role in [Role::View, Role::Edit] {
            self.issue(doc, role, 1, true)?;
        }
        Ok(self.key.derive(doc, Role::Edit, 1))
    }

    /// The document's current links.
    pub fn of(&self, doc: &DocId) -> Result<DocLinks, StoreError> {
        let mut links = DocLinks {
            edit: None,
            view: None,
        };
        for (role, generation) in self.store.links(doc)? {
            let legacy = role == Role::Edit && generation == 0;
            let token = (!legacy).then(|| self.key.derive(doc, role, generation));
            match role {
                Role::Edit => links.edit = token,
                Role::View => links.view = token,
            }
        }
        Ok(links)
    }

    /// Replaces the document's `role` link with a new one (made if it had none) and returns
    /// it: from then on the old one opens nothing.
    pub fn reset(&self, doc: &DocId, role: Role) -> Result<DocId, StoreError> {
        let next = self.reset_generation(doc, role)?;
        Ok(self.key.derive(doc, role, next))
    }

    /// Moves the document's `role` link to its next generation; returns that generation.
    fn reset_generation(&self, doc: &DocId, role: Role) -> Result<u32, StoreError> {
        let current = self
            .store
            .links(doc)?
            .into_iter()
            .find(|(r, _)| *r == role)
            .map_or(0, |(_, generation)| generation);
        let next = current
            .checked_add(1)
            .ok_or(StoreError::Unsupported("more link resets"))?;
        self.issue(doc, role, next, false)?;
        Ok(next)
    }

    fn issue(
        &self,
        doc: &DocId,
        role: Role,
        generation: u32,
        new_document: bool,
    ) -> Result<(), StoreError> {
        let token = self.key.derive(doc, role, generation);
        self.store.set_link(
            doc,
            role,
            NewLink {
                token_hash: token_hash(&token),
                generation,
                new_document,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::sqlite::SqliteStore;

    fn links() -> (tempfile::TempDir, Links) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), 0).unwrap());
        let key = LinkKey::load_or_create(&dir.path().join("link.key")).unwrap();
        (dir, Links::new(key, store))
    }

    #[test]
    fn a_new_document_opens_by_its_edit_and_view_links_and_nothing_else() {
        let (_dir, links) = links();
        let (doc, edit) = links.create().unwrap();
        assert_ne!(doc, edit, "the internal id is not a link");
        assert_eq!(links.open(&doc).unwrap(), None);
        let opened = links.open(&edit).unwrap().unwrap();
        assert_eq!((opened.doc.clone(), opened.role), (doc.clone(), Role::Edit));
        let shown = links.of(&doc).unwrap();
        assert_eq!(shown.edit.as_ref(), Some(&edit));
        let view = shown.view.unwrap();
        assert_eq!(links.open(&view).unwrap().unwrap().role, Role::View);
    }

    #[test]
    fn a_reset_link_is_replaced_by_one_shown_from_then_on() {
        let (_dir, links) = links();
        let (doc, edit) = links.create().unwrap();
        let view = links.of(&doc).unwrap().view.unwrap();
        let new_view = links.reset(&doc, Role::View).unwrap();
        assert_ne!(new_view, view);
        assert_eq!(links.open(&view).unwrap(), None);
        assert_eq!(links.open(&new_view).unwrap().unwrap().role, Role::View);
        assert_eq!(links.of(&doc).unwrap().view, Some(new_view));
        // The edit link is untouched.
        assert_eq!(links.open(&edit).unwrap().unwrap().role, Role::Edit);
    }
}
