//! The server: HTTP routes, the WebSocket endpoint and the open documents.
//!
//! # Layout
//! - [`config`]: command-line and environment options.
//! - [`hub`]: the open rooms, created on first join and dropped with their last member.
//! - [`room`]: one document's replica, presence and fan-out; sans-IO protocol handling.
//! - [`session`]: one WebSocket connection: reader, writer, bounded queues, cleanup.
//! - [`socket`]: the WebSocket upgrade and the connection underneath, read past a close.
//! - [`journal`]: group commit of accepted updates, before they are broadcast.
//! - [`cluster`]: several instances on one PostgreSQL, joined through Redis.
//! - [`capability`]: the links to a document, their roles, and how their tokens are derived.
//! - [`links`]: making, finding, showing and resetting a document's links.
//! - [`limits`]: connections and message rates one client may use, and the total.
//! - [`readiness`]: `/readyz`, whether changes can be stored right now.
//! - [`run`]: what the process does: serve until stopped, or one admin command.
//! - [`http`]: the HTTP edge: client addresses, origins, security headers, render cap, tracing.
//! - [`redact`]: how logs name a document without revealing its id.
//! - [`storage`]: the `DocStore` trait and its SQLite implementation.
//! - [`error`]: close codes and HTTP errors.

pub mod admin;
pub mod capability;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod journal;
pub mod limits;
pub mod links;
pub mod metrics;
pub mod readiness;
pub mod redact;
pub mod room;
pub mod run;
pub mod serving;
pub mod session;
pub mod site;
pub mod socket;
pub mod storage;
pub mod tls;

pub use http::metrics_endpoint::metrics_router;
pub use run::{run, RunError};

use crate::app::{shell, App};
use crate::doc_id::DocId;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use config::Config;
use error::HttpError;
use http::client_address::ClientAddress;
use http::security_headers::provide_request_nonce;
use hub::Hub;
use journal::Journal;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use limits::{LimitSettings, Limits};
use room::RoomPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use storage::postgres::PostgresStore;
use storage::sqlite::SqliteStore;
use storage::{DocStore, StoreError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

/// Everything a request handler may need, behind one pointer: axum clones the state for every
/// request (and a WebSocket session keeps a copy), so a clone is one counter, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    pub hub: Hub,
    pub config: Arc<Config>,
    pub leptos: LeptosOptions,
    /// Fires when the server begins to shut down; every session watches it.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket sessions, which outlive the HTTP connection that upgraded them, so
    /// that shutdown can wait for them to close.
    pub sessions: TaskTracker,
    pub limits: Arc<Limits>,
    pub readiness: Arc<readiness::Readiness>,
    /// Permits for document pages being rendered; see [`http::render_gate`].
    pub renders: Arc<Semaphore>,
    /// The document store, whose size `/metrics` reports.
    pub store: Arc<dyn DocStore>,
    /// The documents' links.
    pub links: links::Links,
    /// How many documents each address may make (see [`http::new_document`]).
    pub creations: Arc<limits::PerAddressPerMinute>,
    /// How many times each address may reset links or delete documents.
    pub link_changes: Arc<limits::PerAddressPerMinute>,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Why the server could not open what it serves from.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("{0}")]
    LinkKey(#[from] capability::LinkKeyError),
    #[error(
        "instances sharing a PostgreSQL database must share the key their links are derived \
         under: set TANDEM_LINK_KEY (for example to the output of `openssl rand -base64 32`)"
    )]
    LinkKeyNeeded,
}

/// The key `config` derives links under: the one it names, or the data directory's own (made
/// on first use). A PostgreSQL database is shared by instances, which must share one key, so
/// there it must be named.
pub fn link_key(config: &Config) -> Result<capability::LinkKey, OpenError> {
    match (&config.link_key, &config.database_url) {
        (Some(key), _) => Ok(capability::LinkKey::from_base64(key)?),
        (None, None) => Ok(capability::LinkKey::load_or_create(
            &config.data_dir.join("link.key"),
        )?),
        (None, Some(_)) => Err(OpenError::LinkKeyNeeded),
    }
}

/// Resets and deletions one client address may make a minute (Share's Reset links and Delete
/// document): far more than a person does, few enough that nobody churns the store with them.
pub const LINK_CHANGES_PER_MINUTE: u32 = 30;

/// Capacity of the journal's queue: updates applied but not yet committed, across all rooms.
const JOURNAL_QUEUE: usize = 4096;

impl AppState {
    /// Opens the store in the configured data directory and builds the state around it.
    pub fn open(config: Config) -> Result<Self, OpenError> {
        let store: Arc<dyn DocStore> = match &config.database_url {
            Some(url) => {
                let store = PostgresStore::open(url)?;
                tracing::info!("document store open: PostgreSQL");
                Arc::new(store)
            }
            None => {
                let store =
                    SqliteStore::open(&config.data_dir, config.max_storage_mb * 1024 * 1024)?;
                tracing::info!(path = %store.path().display(), "document store open");
                Arc::new(store)
            }
        };
        let links = links::Links::new(link_key(&config)?, store.clone());
        // Installed before anything is counted.
        metrics::handle();
        let journal = Journal::start(store.clone(), JOURNAL_QUEUE);
        let readiness = Arc::new(readiness::Readiness::new(journal.clone(), store.clone()));
        let policy = RoomPolicy {
            compact_after_updates: config.compact_after_updates.max(1),
            compact_after_bytes: config.compact_after_bytes.max(1),
            max_doc_bytes: config.max_doc_bytes.max(1),
            integration_time_limit: std::time::Duration::from_millis(
                config.max_integration_ms.max(1),
            ),
            presence: room::PresenceLimits::default(),
        };
        let limits = Limits::with_max_connections(
            LimitSettings {
                connections_per_address: config.max_connections_per_address.max(1),
                new_connections_per_second: config.max_new_connections_per_second.max(1),
                messages_per_second: config.max_messages_per_second.max(1),
            },
            config.max_connections.max(1),
        );
        let cluster = match &config.redis_url {
            Some(url) => Some(cluster::Cluster::start(
                url,
                store.clone(),
                config.test_redis_drop_half,
            )?),
            None => None,
        };
        let config_new_documents = config.max_new_documents_per_minute;
        let renders = Arc::new(Semaphore::new(
            config
                .max_concurrent_renders
                .clamp(1, Semaphore::MAX_PERMITS),
        ));
        Ok(AppState(Arc::new(Shared {
            hub: Hub::new(
                store.clone(),
                journal,
                policy,
                fanout_capacity(config.send_queue),
                cluster,
            ),
            config: Arc::new(config),
            leptos: site::options(),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            limits,
            readiness,
            renders,
            store,
            links,
            creations: Arc::new(limits::PerAddressPerMinute::new(config_new_documents)),
            link_changes: Arc::new(limits::PerAddressPerMinute::new(LINK_CHANGES_PER_MINUTE)),
        })))
    }
}

/// What every page's shell reads while rendering: its script nonce, where the site's files
/// are served from and which wasm chunks each route needs.
fn provide_page_context() {
    provide_request_nonce();
    provide_context(crate::app::AssetRoot(site::asset_root()));
    if let Some(request) = use_context::<axum::http::request::Parts>() {
        provide_context(site::chunk_preloads(request.uri.path()));
    }
}

/// The app's routes, generated once per process. Generating them runs the app with resource
/// loading switched off by a flag global to the process (leptos_server's
/// `SuppressResourceLoad`): a page whose document resource first ran meanwhile, for any
/// router in the process, waited for good (leptos-rs/leptos#4773). Generated once, before any
/// router exists, nothing can be rendering then.
fn routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

pub fn router(state: AppState) -> Router {
    let routes = routes();
    let hub = state.hub.clone();
    let links = state.links.clone();
    let link_changes = crate::app::share::LinkChangeGate {
        limit: state.link_changes.clone(),
        trusted_proxies: Arc::new(state.config.trusted_proxies.clone()),
    };
    let page_settings = crate::app::document::PageSettings {
        heartbeat_ms: state.config.heartbeat_ms,
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(http::metrics_endpoint::loopback_metrics))
        .route("/new", get(http::new_document::new_document))
        .route("/ws/{doc}", get(websocket))
        .route("/link/{doc}", get(http::link_status::link_status))
        .route("/d/{doc}/raw", get(http::raw::raw_markdown))
        .route("/d/{doc}/html", get(http::raw::standalone_html))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(hub.clone());
                provide_context(links.clone());
                provide_context(link_changes.clone());
                provide_context(page_settings);
                provide_page_context();
            },
            {
                let options = state.leptos.clone();
                move || shell(options.clone())
            },
        );
    site::with_site(app, provide_page_context, shell)
        .layer(middleware::from_fn(bad_doc_id_is_400))
        .layer(middleware::from_fn(
            http::call_errors::bad_arguments_are_400,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::render_gate::limit_renders,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::security_headers::add_security_headers,
        ))
        .layer(http::compress::layer())
        .layer(TraceLayer::new_for_http().make_span_with(http::request_span::RouteSpan))
        .with_state(state)
}

/// Serves on `listener` until `state.shutdown` fires, then closes every session with 1001,
/// waits for them (at most a few seconds) and flushes the journal.
/// `listener` is plain TCP, or [`tls::TlsListener`] for HTTPS and `wss://`.
pub async fn serve<L>(listener: L, state: AppState) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: serving::NoDelay,
{
    let shutdown = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let hub = state.hub.clone();
    let app = router(state);
    serving::serve_connections(listener, app, shutdown).await;
    sessions.close();
    if tokio::time::timeout(std::time::Duration::from_secs(8), sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    // Every accepted update is already durable; this waits for the compactions of the rooms
    // that just closed.
    if tokio::time::timeout(std::time::Duration::from_secs(1), hub.journal().flush())
        .await
        .is_err()
    {
        tracing::warn!("journal did not finish in time; its log is intact");
    }
    Ok(())
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 `ready` when changes can be stored, 503 with the reason otherwise.
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.readiness.check().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

#[derive(serde::Deserialize)]
struct SocketParams {
    client: Option<String>,
}

async fn websocket(
    Path(raw): Path<String>,
    Query(params): Query<SocketParams>,
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    uri: Uri,
    headers: HeaderMap,
    upgrade: socket::Upgrade,
) -> Result<Response, HttpError> {
    let token = DocId::parse(&raw)?;
    http::origin::check_origin(&headers, uri.authority(), &state.config)?;
    // Counted before the link is looked up: a client guessing links pays as one connecting.
    let admission = state.limits.admit(client).inspect_err(|refusal| {
        tracing::info!(address = %client, %refusal, "connection refused");
    })?;
    let epoch = state.hub.links_epoch();
    // An unknown link opens nothing: no new document is made by naming one.
    let capability = match state.links.find_async(token.clone()).await? {
        links::Found::Live(capability) => capability,
        links::Found::Gone => return Err(HttpError::Gone),
        links::Found::Nothing => return Err(HttpError::UnknownLink),
    };
    let id = capability.doc;
    let link = session::LinkGrant {
        role: capability.role,
        generation: capability.generation,
        recheck: Some(session::Recheck {
            links: state.links.clone(),
            token,
            epoch,
        }),
    };
    let acks = params.client.as_deref() == Some(crate::protocol::CLIENT_TANDEM);
    let limit = state.config.max_message_bytes;
    let config = socket::config(limit);
    let response = upgrade.on_upgrade(config, move |socket| {
        let settings = session::SessionSettings {
            send_queue: state.config.send_queue,
            send_queue_bytes: state
                .config
                .max_doc_bytes
                .saturating_add(session::SEND_QUEUE_EXTRA_BYTES),
            acks,
            messages: state.limits.message_limiter(),
            admission,
            max_message_bytes: limit,
            link,
        };
        let session = session::run(
            socket,
            state.hub.clone(),
            id,
            settings,
            state.shutdown.clone(),
        );
        state.sessions.track_future(session)
    });
    Ok(response)
}

/// The editor page renders its own "not a valid link" view; this gives that page the 400
/// status it deserves, decided where the path is parsed.
async fn bad_doc_id_is_400(request: Request, next: Next) -> Response {
    let malformed = request
        .uri()
        .path()
        .strip_prefix("/d/")
        .or_else(|| request.uri().path().strip_prefix("/v/"))
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|raw| DocId::parse(raw).is_err());
    let mut response = next.run(request).await;
    if malformed {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response.into_response()
}

/// Entries a document's broadcast ring holds: twice a connection's send queue, and at least
/// twice the changes one connection may have on their way to disk. An entry is one frame of
/// presence or one commit's changes to the document (see `room::fanout`), at most the
/// journal's batch of 512.
fn fanout_capacity(send_queue: usize) -> usize {
    (send_queue * 2).max(2 * session::MAX_UNCONFIRMED)
}
