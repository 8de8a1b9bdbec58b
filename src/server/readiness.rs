//! `/readyz`: whether this server can store changes right now.
//!
//! `/healthz` says the process is up; readiness says more: the journal's threads are running
//! and the store would accept a write. A load balancer or orchestrator polls it every few
//! seconds, so the answer is kept for [`FRESH_FOR`]: however often it is asked, the store is
//! probed at most once per interval, and concurrent polls share one probe. A probe waits for the
//! store's writer; one that takes longer than [`PROBE_PATIENCE`] is answered "not ready" and left
//! to finish, and the next poll waits for that same probe rather than starting another, so a
//! store that hangs never collects blocked threads.

use super::journal::Journal;
use super::storage::{DocStore, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

/// How long a probe's answer is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// How long a poll waits for the store's answer: longer than a large commit, shorter than the
/// usual timeout of an orchestrator's probe.
pub const PROBE_PATIENCE: Duration = Duration::from_secs(2);

/// Why the server is not ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotReady {
    #[error("the journal has stopped; changes cannot be stored")]
    JournalStopped,
    /// The store's error, as text: the answer is cached and shared between polls.
    #[error("storage is not writable: {0}")]
    Store(String),
    #[error("storage did not answer within {} s", PROBE_PATIENCE.as_secs())]
    Unresponsive,
}

impl From<StoreError> for NotReady {
    fn from(error: StoreError) -> Self {
        NotReady::Store(error.to_string())
    }
}

pub struct Readiness {
    journal: Journal,
    store: Arc<dyn DocStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    answer: Option<(Instant, Result<(), NotReady>)>,
    /// A probe that outlasted its poll's patience, still running.
    probe: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Readiness {
    pub fn new(journal: Journal, store: Arc<dyn DocStore>) -> Self {
        Readiness {
            journal,
            store,
            state: Mutex::new(State::default()),
        }
    }

    /// Ready, or why not; probes the store at most once per [`FRESH_FOR`].
    pub async fn check(&self) -> Result<(), NotReady> {
        let mut state = self.state.lock().await;
        if let Some((at, answer)) = &state.answer {
            if at.elapsed() < FRESH_FOR {
                return answer.clone();
            }
        }
        let answer = self.probe(&mut state).await;
        if let Err(reason) = &answer {
            tracing::warn!(%reason, "not ready");
        }
        state.answer = Some((Instant::now(), answer.clone()));
        answer
    }

    async fn probe(&self, state: &mut State) -> Result<(), NotReady> {
        if !self.journal.is_alive() {
            return Err(NotReady::JournalStopped);
        }
        // The probe waits for the store's writer, which a commit may hold: off the runtime.
        let mut probe = state.probe.take().unwrap_or_else(|| {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.check_writable())
        });
        match tokio::time::timeout(PROBE_PATIENCE, &mut probe).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(StoreError::Panicked.into()),
            Err(_) => {
                state.probe = Some(probe);
                Err(NotReady::Unresponsive)
            }
        }
    }
}
