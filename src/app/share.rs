//! The Share dialog's server functions: a document's current links, resetting them, and
//! deleting the document. Each takes the caller's edit link as its proof of right: whoever
//! holds the edit link may share, reset and delete; a view link, or a link that opens nothing,
//! gets "not found".

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A document's current links, as the paths a browser opens (`/d/{token}`, `/v/{token}`).
/// The edit link of a document made before links had roles is its old id, which is not kept:
/// `None` until it is reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLinks {
    pub edit: Option<String>,
    pub view: Option<String>,
}

#[cfg(feature = "ssr")]
impl From<crate::server::links::DocLinks> for DocumentLinks {
    fn from(links: crate::server::links::DocLinks) -> Self {
        DocumentLinks {
            edit: links.edit.map(|token| format!("/d/{token}")),
            view: links.view.map(|token| format!("/v/{token}")),
        }
    }
}

/// How often each client address may reset links or delete documents, as the server fns see
/// it (provided by the server's router).
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct LinkChangeGate {
    pub limit: std::sync::Arc<crate::server::limits::PerAddressPerMinute>,
    pub trusted_proxies: std::sync::Arc<Vec<ipnet::IpNet>>,
}

/// Refuses the call with 429 when its address has changed links too often this minute.
#[cfg(feature = "ssr")]
async fn within_link_changes() -> Result<(), ServerFnError> {
    use axum::extract::ConnectInfo;
    use axum::http::HeaderMap;
    let gate = use_context::<LinkChangeGate>()
        .ok_or_else(|| ServerFnError::new("no link change limit"))?;
    let ConnectInfo(peer) = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>()
        .await
        .map_err(|_| ServerFnError::new("the caller's address is unknown"))?;
    let headers = leptos_axum::extract::<HeaderMap>()
        .await
        .unwrap_or_default();
    let client =
        crate::server::http::client_address::resolve(peer.ip(), &headers, &gate.trusted_proxies);
    if gate.limit.allows(client) {
        return Ok(());
    }
    tracing::info!(address = %client, "too many link resets or deletions from one address");
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::TOO_MANY_REQUESTS);
        response.insert_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("60"),
        );
    }
    Err(ServerFnError::new(
        "too many link resets or deletions from this address; try again in a minute",
    ))
}

/// The links of the document `token` is the edit link of.
#[server(endpoint = "share_links")]
pub async fn share_links(token: String) -> Result<DocumentLinks, ServerFnError> {
    use crate::server::links::Links;
    let doc = super::document::edit_link(&token).await?;
    let links = use_context::<Links>().ok_or_else(|| ServerFnError::new("no document links"))?;
    let failed = |error: crate::server::links::LookupError| {
        tracing::error!(%error, "a document's links could not be read");
        ServerFnError::new(format!("the links could not be read: {error}"))
    };
    let mut shown = links.of_async(doc.clone()).await.map_err(failed)?;
    if shown.view.is_none() {
        // A document made before links had roles gets its view link when it is first shared.
        let role = crate::server::capability::Role::View;
        links
            .reset_async(doc.clone(), vec![role])
            .await
            .map_err(failed)?;
        shown = links.of_async(doc).await.map_err(failed)?;
    }
    Ok(with_own_edit_link(shown, &token))
}

/// The links to show, with the caller's own edit link where the document's is not kept: the
/// edit link of a document made before links had roles is its old id, the one the caller
/// just proved to hold.
#[cfg(feature = "ssr")]
fn with_own_edit_link(links: crate::server::links::DocLinks, token: &str) -> DocumentLinks {
    let mut shown = DocumentLinks::from(links);
    shown.edit.get_or_insert_with(|| format!("/d/{token}"));
    shown
}

/// Replaces the edit link, the view link or both with new ones, and closes every session
/// opened with a replaced link (close code 4001). Returns the links from then on: a page
/// that reset its own edit link goes on at the new one.
#[server(endpoint = "reset_links")]
pub async fn reset_links(
    token: String,
    edit: bool,
    view: bool,
) -> Result<DocumentLinks, ServerFnError> {
    use crate::server::capability::Role;
    use crate::server::hub::Hub;
    use crate::server::links::Links;
    let doc = super::document::edit_link(&token).await?;
    within_link_changes().await?;
    let links = use_context::<Links>().ok_or_else(|| ServerFnError::new("no document links"))?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    let roles: Vec<Role> = [(edit, Role::Edit), (view, Role::View)]
        .into_iter()
        .filter_map(|(wanted, role)| wanted.then_some(role))
        .collect();
    if roles.is_empty() {
        return Err(ServerFnError::new(
            "choose the edit link, the view link or both",
        ));
    }
    let shown = hub.reset_links(&links, doc, roles).await.map_err(|error| {
        use crate::server::hub::RevokeError;
        use crate::server::links::LookupError;
        use crate::server::storage::StoreError;
        // Deleted since the link was checked: as gone as if it had been first.
        if let RevokeError::Links(LookupError::Store(StoreError::Deleted)) = error {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(axum::http::StatusCode::GONE);
            }
            return ServerFnError::new(super::document::GONE);
        }
        tracing::error!(%error, "a document's links could not be reset");
        ServerFnError::new(format!("the links could not be reset: {error}"))
    })?;
    Ok(with_own_edit_link(shown, &token))
}

/// Deletes the document `token` is the edit link of: its text, history and links are removed
/// from the store, every open session is closed (close code 4002), and both links answer
/// 410 Gone from then on.
#[server(endpoint = "delete_document")]
pub async fn delete_document(token: String) -> Result<(), ServerFnError> {
    use crate::server::hub::Hub;
    use crate::server::links::Links;
    let doc = super::document::edit_link(&token).await?;
    within_link_changes().await?;
    let links = use_context::<Links>().ok_or_else(|| ServerFnError::new("no document links"))?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    hub.delete(&links, doc).await.map_err(|error| {
        tracing::error!(%error, "a document could not be deleted");
        ServerFnError::new(format!("the document could not be deleted: {error}"))
    })
}
