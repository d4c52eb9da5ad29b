//! Keeping a replica's slots in step with the database (uploads by any replica) and with
//! `plugins.dir`: checked every `plugins.sync_interval_ms`, and at once on SIGHUP.
//!
//! For each slot the wanted component is the upload if there is one, else the directory's file
//! if there is one, else the built-in. A component that fails to load is logged once and not
//! retried until it changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Plugins, SlotKind, Source};

#[derive(Default)]
pub struct SyncState {
    /// Per slot, the identity of a component that failed to load.
    failed: HashMap<SlotKind, String>,
}

impl SyncState {
    pub fn forget(&mut self, kind: SlotKind) {
        self.failed.remove(&kind);
    }
}

/// The component a slot should run.
enum Wanted {
    Uploaded { sha256: String, uploaded_at: chrono::DateTime<chrono::Utc>, uploaded_by: String },
    File { path: PathBuf, stamp: Option<(SystemTime, u64)> },
    Builtin,
}

impl Wanted {
    /// A key that changes whenever the wanted component may have changed.
    fn identity(&self) -> String {
        match self {
            Wanted::Uploaded { sha256, .. } => format!("uploaded:{sha256}"),
            Wanted::File { path, stamp } => format!("file:{}:{stamp:?}", path.display()),
            Wanted::Builtin => "builtin".into(),
        }
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Plugins {
    /// Brings every slot in line with the database and the directory.
    pub async fn sync(&self) {
        // Held from the listing on: an install that lands in between would otherwise be undone
        // by a sync working from the listing before it.
        let mut state = self.inner.sync.lock().await;
        let uploads = match self.inner.uploads.uploads().await {
            Ok(uploads) => uploads,
            Err(error) => {
                tracing::warn!(%error, "cannot read uploaded plugins; keeping the active ones");
                return;
            }
        };
        for kind in SlotKind::ALL {
            // What the slot may run, best first: the upload, the directory's file, the built-in.
            let mut candidates = Vec::new();
            if let Some(upload) = uploads.iter().find(|upload| upload.kind == kind) {
                candidates.push(Wanted::Uploaded {
                    sha256: upload.sha256.clone(),
                    uploaded_at: upload.uploaded_at,
                    uploaded_by: upload.uploaded_by.clone(),
                });
            }
            if let Some(path) = self.inner.dir.as_ref().map(|dir| dir.join(kind.file_name()))
                && path.is_file()
            {
                candidates.push(Wanted::File { stamp: stamp(&path), path });
            }
            candidates.push(Wanted::Builtin);
            self.sync_slot(kind, candidates, &mut state).await;
        }
    }

    /// Runs the first candidate that loads. A new version of the source the slot already runs
    /// that fails to load leaves the running one (the last good version) in place; a source
    /// that is gone (a deleted upload, a removed file) gives way to the next candidate.
    async fn sync_slot(&self, kind: SlotKind, candidates: Vec<Wanted>, state: &mut SyncState) {
        let active = self.slot(kind).active.load_full();
        for wanted in candidates {
            let same_source = matches!(
                (&wanted, &active.source),
                (Wanted::Uploaded { .. }, Source::Uploaded { .. }) | (Wanted::Builtin, Source::Builtin)
            ) || matches!((&wanted, &active.source), (Wanted::File { path, .. }, Source::File { path: was, .. }) if path == was);
            let current = same_source
                && match (&wanted, &active.source) {
                    (Wanted::Uploaded { sha256, .. }, _) => *sha256 == active.sha256,
                    (Wanted::File { stamp, .. }, Source::File { stamp: had, .. }) => stamp == had,
                    _ => true,
                };
            if current {
                return;
            }
            let identity = wanted.identity();
            if state.failed.get(&kind) == Some(&identity) {
                if same_source {
                    return;
                }
                continue;
            }
            let (bytes, source) = match wanted {
                Wanted::Uploaded { uploaded_at, uploaded_by, .. } => {
                    match self.inner.uploads.component(kind).await {
                        Ok(Some(bytes)) => (bytes, Source::Uploaded { uploaded_at, uploaded_by }),
                        // Removed since we listed it: the next sync picks the fallback.
                        Ok(None) => return,
                        Err(error) => {
                            tracing::warn!(slot = kind.as_str(), %error, "cannot read an uploaded plugin");
                            return;
                        }
                    }
                }
                Wanted::File { path, stamp } => match std::fs::read(&path) {
                    Ok(bytes) => (bytes, Source::File { path, stamp }),
                    Err(error) => {
                        tracing::warn!(slot = kind.as_str(), path = %path.display(), %error, "cannot read plugin file");
                        continue;
                    }
                },
                Wanted::Builtin => (kind.builtin().to_vec(), Source::Builtin),
            };
            match self.prepare_blocking(kind, bytes, source).await {
                Ok(loaded) => {
                    state.failed.remove(&kind);
                    self.activate(loaded);
                    return;
                }
                Err(error) => {
                    tracing::error!(slot = kind.as_str(), from = %identity, %error, "plugin refused; the active one stays");
                    self.inner.metrics.load(kind.as_str(), "refused");
                    state.failed.insert(kind, identity);
                    if same_source {
                        return;
                    }
                }
            }
        }
    }

    /// Syncs every `plugins.sync_interval_ms`, and on SIGHUP (which also retries refused
    /// files), until the server stops.
    pub fn spawn_sync(&self) -> tokio::task::JoinHandle<()> {
        let plugins = self.clone();
        // Registered before the task runs: SIGHUP's default action would end the process.
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(
                |e| tracing::warn!(error = %e, "no SIGHUP handler; plugins reload on the timer only"),
            )
            .ok();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(plugins.inner.sync_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                {
                    let hup = async {
                        match hangup.as_mut() {
                            Some(signal) => signal.recv().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = interval.tick() => {}
                        _ = hup => {
                            tracing::info!("SIGHUP: re-reading plugins");
                            plugins.inner.sync.lock().await.failed.clear();
                        }
                    }
                }
                #[cfg(not(unix))]
                interval.tick().await;
                plugins.sync().await;
            }
        })
    }
}
