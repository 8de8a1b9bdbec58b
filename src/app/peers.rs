//! The header's list of who is in the document, shared by the editor and the view page.

use super::live::PeerBadge;
use crate::protocol::presence::{initials, safe_color};
use leptos::prelude::*;

/// Everyone in the document now, this page first; people reading by the view link are marked
/// as viewers. Names and colours are whatever people chose: the name is text, and a colour is
/// used only if it is a plain colour value.
#[component]
pub fn PeerList(peers: RwSignal<Vec<PeerBadge>>) -> impl IntoView {
    view! {
        <ul class="peers" data-testid="peers" aria-label="People in this document">
            <For
                each=move || peers.get()
                key=|peer| (peer.client, peer.name.clone(), peer.color.clone(), peer.viewer)
                children=|peer| {
                    let color = safe_color(&peer.color).unwrap_or("#888888").to_string();
                    let label = match (peer.me, peer.viewer) {
                        (true, true) => format!("{} (you, viewing)", peer.name),
                        (true, false) => format!("{} (you)", peer.name),
                        (false, true) => format!("{} (viewing)", peer.name),
                        (false, false) => peer.name.clone(),
                    };
                    view! {
                        <li
                            class="peer"
                            class:me=peer.me
                            class:viewer=peer.viewer
                            data-testid="peer"
                            data-name=peer.name.clone()
                            data-color=color.clone()
                            data-me=peer.me.to_string()
                            data-viewer=peer.viewer.to_string()
                            title=label.clone()
                            aria-label=label
                            style=format!("--peer:{color}")
                        >
                            {initials(&peer.name)}
                        </li>
                    }
                }
            />
        </ul>
    }
}
