//! `/readyz`: whether this server can store changes right now.
//!
//! `/healthz` says the process is up; readiness says more: the journal's threads are running
//! and the store would accept a write. A load balancer or orchestrator polls it every few
//! seconds, so the answer is kept for [`FRESH_FOR`]: however often it is asked, the store is
//! probed at most once per interval, and concurrent polls share one probe.

use super::journal::Journal;
use super::storage::{DocStore, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

/// How long a probe's answer is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Why the server is not ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotReady {
    #[error("the journal has stopped; changes cannot be stored")]
    JournalStopped,
    /// The store's error, as text: the answer is cached and shared between polls.
    #[error("storage is not writable: {0}")]
    Store(String),
}

impl From<StoreError> for NotReady {
    fn from(error: StoreError) -> Self {
        NotReady::Store(error.to_string())
    }
}

pub struct Readiness {
    journal: Journal,
    store: Arc<dyn DocStore>,
    last: Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

impl Readiness {
    pub fn new(journal: Journal, store: Arc<dyn DocStore>) -> Self {
        Readiness {
            journal,
            store,
            last: Mutex::new(None),
        }
    }

    /// Ready, or why not; probes the store at most once per [`FRESH_FOR`].
    pub async fn check(&self) -> Result<(), NotReady> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last {
            if at.elapsed() < FRESH_FOR {
                return answer.clone();
            }
        }
        let answer = self.probe().await;
        if let Err(reason) = &answer {
            tracing::warn!(%reason, "not ready");
        }
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn probe(&self) -> Result<(), NotReady> {
        if !self.journal.is_alive() {
            return Err(NotReady::JournalStopped);
        }
        // The probe waits for the store's writer, which a commit may hold: off the runtime.
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.check_writable()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Panicked.into()),
        }
    }
}
