//! This person's presence as the others see it (name, colour, caret), and the others' presence
//! as this page shows it: the header's people and the carets over the source.

use super::*;

impl Session {
    /// This person's presence: who they are and where their caret is in the source.
    pub(super) fn local_presence(&self) -> PresenceState {
        let cursor = self.content.anchor_and_head().map(|(anchor, head)| {
            let txn = self.doc.transact();
            let text = self.content.shared_text();
            Cursor {
                anchor: RelativePosition::from_sticky(&sticky_at(text, &txn, anchor, Assoc::After)),
                head: RelativePosition::from_sticky(&sticky_at(text, &txn, head, Assoc::After)),
            }
        });
        PresenceState {
            user: Some(self.parts.me.get_untracked()),
            cursor,
            viewer: false,
        }
    }

    /// Publishes this person's presence now (also renewing it for the server's expiry).
    pub(super) fn publish_presence(&mut self) {
        let Ok(json) = serde_json::to_string(&self.local_presence()) else {
            return;
        };
        self.awareness.set_local_state_raw(json);
        self.presence_sent_at = js_sys::Date::now();
        self.send_own_presence();
        self.refresh_presence();
    }

    /// Sends this page's own awareness state (or its removal) to the server.
    pub(super) fn send_own_presence(&self) {
        let me = self.awareness.client_id();
        let Ok(mut update) = self.awareness.update_with_clients([me]) else {
            return;
        };
        if let Some(entry) = update.clients.remove(&me) {
            update.clients.insert(self.presence_id, entry);
            self.send(Message::Awareness(update));
        }
    }

    /// Whether an awareness client id is this page itself (now or on an earlier connection).
    pub(super) fn is_own(&self, id: ClientID) -> bool {
        id == self.awareness.client_id()
            || id == self.presence_id
            || self.past_presence_ids.contains(&id)
    }

    /// Without a connection, others' presence is stale: drop it until they are heard again.
    pub(super) fn forget_others(&mut self) {
        let me = self.awareness.client_id();
        let others: Vec<_> = self
            .awareness
            .iter()
            .filter(|(id, state)| *id != me && state.data.is_some())
            .map(|(id, _)| id)
            .collect();
        for id in others {
            self.awareness.remove_state(id);
        }
        self.refresh_presence();
    }

    /// Updates the header's people and the caret layer from the awareness states.
    pub(super) fn refresh_presence(&mut self) {
        let me = self.awareness.client_id();
        let mut peers: Vec<PeerBadge> = self
            .awareness
            .iter()
            .filter_map(|(id, state)| {
                let presence: PresenceState = serde_json::from_str(state.data.as_deref()?).ok()?;
                let user = presence.user.unwrap_or_default();
                Some(PeerBadge {
                    client: id.get(),
                    name: if user.name.trim().is_empty() {
                        "Anonymous".into()
                    } else {
                        user.name
                    },
                    color: user.color,
                    me: id == me,
                    // This page's own state is as it sent it, unmarked: its access says.
                    viewer: presence.viewer || (id == me && !self.editing()),
                })
            })
            .collect();
        peers.sort_by(|a, b| {
            b.me.cmp(&a.me)
                .then_with(|| a.name.cmp(&b.name))
                .then(a.client.cmp(&b.client))
        });
        if self.parts.peers.with_untracked(|current| current != &peers) {
            self.parts.peers.set(peers);
        }
        self.render_carets();
    }

    /// Redraws the others' carets and selections over the source.
    pub(super) fn render_carets(&mut self) {
        let me = self.awareness.client_id();
        let txn = self.doc.transact();
        let carets: Vec<RemoteCaret> = self
            .awareness
            .iter()
            .filter(|(id, _)| *id != me)
            .filter_map(|(id, state)| {
                let presence: PresenceState = serde_json::from_str(state.data.as_deref()?).ok()?;
                let cursor = presence.cursor?;
                let resolve = |position: &RelativePosition| {
                    position
                        .to_sticky()?
                        .get_offset(&txn)
                        .map(|offset| offset.index)
                };
                let user: User = presence.user.unwrap_or_default();
                Some(RemoteCaret {
                    client: id.get(),
                    name: user.name,
                    color: user.color,
                    anchor: resolve(&cursor.anchor)?,
                    head: resolve(&cursor.head)?,
                })
            })
            .collect();
        drop(txn);
        let Some(layer) = self.display.carets.as_mut() else {
            return;
        };
        if carets.is_empty() {
            layer.clear();
            return;
        }
        let Some(source) = self.content.element().map(|e| e.element()) else {
            return;
        };
        // Given again only when it changed: setting it restyles the whole layer.
        let size = (source.client_width(), source.client_height());
        if self.display.layer_size != Some(size) {
            self.display.layer_size = Some(size);
            let _ = layer
                .element()
                .set_attribute("style", &format!("width:{}px;height:{}px", size.0, size.1));
        }
        layer.show(self.display.overlay.chunks(self.content.text(), &carets));
        layer.element().set_scroll_top(source.scroll_top());
    }
}
