//! Candidates: components checked for a slot but never live in it, tried by their sha256
//! (`POST /v1/admission/review?plugin=`). Each replica compiles a candidate once, in the
//! background, and keeps the [`KEPT`] most recently used; a request never waits on a compile
//! (an interpreter's component takes seconds): it is told to come back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{LoadError, Loaded, Plugins, SlotKind, Source, sha256_hex};

/// Candidates a replica keeps compiled (or remembers as refused).
pub const KEPT: usize = 8;

/// A component checked for a slot but not live in it.
#[derive(Clone)]
pub struct Candidate(pub(crate) Arc<Loaded>);

impl Candidate {
    pub fn sha256(&self) -> &str {
        &self.0.sha256
    }
}

/// Where a candidate stands on this replica.
#[derive(Clone)]
pub enum CandidateState {
    Ready(Candidate),
    /// Being compiled and checked in the background since then.
    Compiling {
        since: Instant,
        done: watch::Receiver<bool>,
    },
    Refused(LoadError),
    /// Never seen on this replica.
    Unknown,
}

/// The candidates of one replica, least recently used first.
pub struct Candidates {
    entries: Mutex<Vec<(String, CandidateState)>>,
    /// One background compile at a time: compiling uses every core, and requests come first.
    compiling: tokio::sync::Semaphore,
}

impl Candidates {
    pub fn new() -> Self {
        Self { entries: Mutex::default(), compiling: tokio::sync::Semaphore::new(1) }
    }

    fn state(&self, sha256: &str) -> CandidateState {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.iter().position(|(known, _)| known == sha256) {
            Some(index) => {
                let entry = entries.remove(index);
                let state = entry.1.clone();
                entries.push(entry);
                state
            }
            None => CandidateState::Unknown,
        }
    }

    /// Records `state`, dropping the least recently used entry that is not compiling when full.
    fn set(&self, sha256: &str, state: CandidateState) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(known, _)| known != sha256);
        if entries.len() >= KEPT
            && let Some(oldest) =
                entries.iter().position(|(_, state)| !matches!(state, CandidateState::Compiling { .. }))
        {
            entries.remove(oldest);
        }
        entries.push((sha256.to_owned(), state));
    }
}

impl Plugins {
    /// Compiles and checks a component for `kind` exactly as an upload is, without making it
    /// live, and keeps it: a candidate to try before rolling it out. Answers after the compile,
    /// like an upload.
    pub async fn candidate(&self, kind: SlotKind, bytes: Vec<u8>) -> Result<Candidate, LoadError> {
        let candidate = Candidate(Arc::new(self.prepare_blocking(kind, bytes, Source::Candidate).await?));
        self.inner.candidates.set(candidate.sha256(), CandidateState::Ready(candidate.clone()));
        Ok(candidate)
    }

    /// Where the candidate `sha256` stands on this replica.
    pub fn candidate_state(&self, sha256: &str) -> CandidateState {
        self.inner.candidates.state(sha256)
    }

    /// Starts compiling and checking `bytes` as a candidate for `kind` in the background, unless
    /// this replica already has it (ready, compiling or refused); answers where it stands.
    pub fn prepare_candidate(&self, kind: SlotKind, bytes: Vec<u8>) -> CandidateState {
        let sha256 = sha256_hex(&bytes);
        let known = self.candidate_state(&sha256);
        if !matches!(known, CandidateState::Unknown) {
            return known;
        }
        let (finished, done) = watch::channel(false);
        let compiling = CandidateState::Compiling { since: Instant::now(), done };
        self.inner.candidates.set(&sha256, compiling.clone());
        let plugins = self.clone();
        tokio::spawn(async move {
            let candidates = &plugins.inner.candidates;
            let _turn = candidates.compiling.acquire().await.expect("the semaphore is never closed");
            let started = Instant::now();
            let state = match plugins.prepare_blocking(kind, bytes, Source::Candidate).await {
                Ok(loaded) => {
                    tracing::info!(slot = kind.as_str(), %sha256, took_ms = started.elapsed().as_millis() as u64, "candidate plugin ready");
                    CandidateState::Ready(Candidate(Arc::new(loaded)))
                }
                Err(error) => {
                    tracing::warn!(slot = kind.as_str(), %sha256, %error, "candidate plugin refused");
                    CandidateState::Refused(error)
                }
            };
            candidates.set(&sha256, state);
            let _ = finished.send(true);
        });
        compiling
    }

    /// Waits up to `patience` for a candidate being compiled (one read from the disk cache is
    /// ready in milliseconds); then says where it stands.
    pub async fn await_candidate(&self, sha256: &str, patience: Duration) -> CandidateState {
        if let CandidateState::Compiling { mut done, .. } = self.candidate_state(sha256) {
            let _ = tokio::time::timeout(patience, done.wait_for(|done| *done)).await;
        }
        self.candidate_state(sha256)
    }
}
