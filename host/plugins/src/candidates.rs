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
        Self::push(&mut entries, sha256, state);
    }

    /// Records `compiling` unless `sha256` is known, in one step (two reviews naming the same
    /// new candidate start one compile); `Err` with what is known otherwise.
    fn claim(&self, sha256: &str, compiling: CandidateState) -> Result<(), CandidateState> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = entries.iter().find(|(known, _)| known == sha256) {
            return Err(known.1.clone());
        }
        Self::push(&mut entries, sha256, compiling);
        Ok(())
    }

    fn push(entries: &mut Vec<(String, CandidateState)>, sha256: &str, state: CandidateState) {
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
        let (finished, done) = watch::channel(false);
        let compiling = CandidateState::Compiling { since: Instant::now(), done };
        if let Err(known) = self.inner.candidates.claim(&sha256, compiling.clone()) {
            return known;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> CandidateState {
        CandidateState::Refused(LoadError::NotWasm)
    }

    fn compiling() -> CandidateState {
        CandidateState::Compiling { since: Instant::now(), done: watch::channel(false).1 }
    }

    fn known(candidates: &Candidates) -> Vec<String> {
        candidates.entries.lock().unwrap().iter().map(|(sha, _)| sha.clone()).collect()
    }

    #[test]
    fn the_least_recently_used_goes_first_and_a_compile_is_never_dropped() {
        let candidates = Candidates::new();
        candidates.set("compiling", compiling());
        for n in 1..KEPT {
            candidates.set(&n.to_string(), refused());
        }
        // "1" was used: "2" is now the least recently used that is not compiling.
        assert!(matches!(candidates.state("1"), CandidateState::Refused(_)));
        candidates.set("new", refused());
        let kept = known(&candidates);
        assert_eq!(kept.len(), KEPT);
        assert!(kept.contains(&"compiling".to_owned()) && kept.contains(&"1".to_owned()), "{kept:?}");
        assert!(!kept.contains(&"2".to_owned()), "{kept:?}");
        assert!(matches!(candidates.state("2"), CandidateState::Unknown));
    }

    #[test]
    fn a_candidate_is_claimed_once() {
        let candidates = Candidates::new();
        assert!(candidates.claim("a", compiling()).is_ok());
        assert!(matches!(candidates.claim("a", compiling()), Err(CandidateState::Compiling { .. })));
        candidates.set("a", refused());
        assert!(matches!(candidates.claim("a", compiling()), Err(CandidateState::Refused(_))));
    }
}
