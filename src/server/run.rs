//! What the process does: serve until SIGTERM or Ctrl-C, or run one admin command (backup,
//! export, import, stats) and exit.

use super::config::{Command, Config};
use super::storage::StoreError;
use super::{admin, serve, site, storage, tls, AppState};
use crate::server::http::metrics_endpoint::metrics_router;
use tokio::net::TcpListener;

/// Errors that stop the process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Open(#[from] super::OpenError),
    #[error("{0}")]
    Admin(#[from] admin::AdminError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(
        "with --database-url, back the database up with pg_dump, which reads one consistent \
         snapshot while Tandem writes"
    )]
    BackupWithPgDump,
}

/// Where this configuration serves, as the start of a link.
fn origin(config: &Config) -> String {
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", config.addr)
}

/// Runs the configured command: serve until SIGTERM or Ctrl-C, or take a backup.
pub async fn run(config: Config) -> Result<(), RunError> {
    match &config.command {
        Some(Command::Backup { file }) => {
            if config.database_url.is_some() {
                return Err(RunError::BackupWithPgDump);
            }
            storage::sqlite::backup_data_dir(&config.data_dir, file)?;
            tracing::info!(file = %file.display(), "backup written");
            return Ok(());
        }
        Some(Command::Export { id }) => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            admin::export(
                admin::Location::of(&config),
                id,
                &mut std::io::stdout().lock(),
                terminal,
            )?;
            return Ok(());
        }
        Some(Command::Import { file, title }) => {
            let id = admin::import(
                admin::Location::of(&config),
                || super::link_key(&config),
                file,
                title.as_deref(),
                config.max_doc_bytes,
            )?;
            print_lines(&[format!("{}/d/{id}", origin(&config))])?;
            return Ok(());
        }
        Some(Command::Links { id }) => {
            let links = admin::links(
                admin::Location::of(&config),
                || super::link_key(&config),
                id,
            )?;
            let origin = origin(&config);
            let shown = |path: &str, token: Option<crate::doc_id::DocId>| match token {
                Some(token) => format!("{origin}/{path}/{token}"),
                // A document made before links had roles: its edit link is its old id.
                None => "(the link it was made with; reset it to see a new one)".into(),
            };
            print_lines(&[
                format!("edit: {}", shown("d", links.edit)),
                format!("view: {}", shown("v", links.view)),
            ])?;
            return Ok(());
        }
        Some(Command::Stats) => {
            let stats = admin::stats(admin::Location::of(&config))?;
            print_lines(&[
                format!("documents: {}", stats.documents),
                format!("database bytes: {}", stats.bytes),
            ])?;
            return Ok(());
        }
        Some(Command::Serve) | None => {}
    }
    let state = AppState::open(config.clone())?;
    site::log_source(&state.leptos);
    if let Some(addr) = config.metrics_addr {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        let app = metrics_router(state.clone());
        let shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics listener failed");
            }
        });
    }
    let listener = TcpListener::bind(config.addr).await?;
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls::load_config(cert, key)?;
            let addr = listener.local_addr()?;
            let listener = tls::TlsListener::new(listener, tls, state.shutdown.clone())?;
            tracing::info!("Tandem listening on https://{addr}");
            Ok(serve(listener, state).await?)
        }
        _ => {
            tracing::info!("Tandem listening on http://{}", listener.local_addr()?);
            Ok(serve(listener, state).await?)
        }
    }
}

/// Prints an admin command's answer; a closed pipe is an error, not a panic.
fn print_lines(lines: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
