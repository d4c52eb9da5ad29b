//! Following what other replicas change: on PostgreSQL, their notifications (caches, policy and
//! plugins follow within milliseconds); on every engine, a periodic re-read of the policy as the
//! fallback for SQLite and for notifications lost while disconnected.

use std::sync::Arc;
use std::time::Duration;

use kubeop_plugins::Plugins;
use kubeop_store::Store;
use kubeop_store::changes::Change;

use crate::policy::PolicyState;

/// What a replica keeps in step with the others.
pub struct Followed {
    pub store: Store,
    pub policy: Arc<PolicyState>,
    pub plugins: Plugins,
}

pub fn spawn_follower(state: Followed, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut listener = match state.store.listen().await {
                None => loop {
                    tick.tick().await;
                    reload_policy(&state).await;
                    warm_candidates(&state).await;
                },
                Some(Ok(listener)) => listener,
                Some(Err(error)) => {
                    tracing::warn!(%error, "cannot listen for other replicas' changes; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Whatever changed while we were not listening.
            refresh_everything(&state).await;
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => match Change::decode(notification.payload()) {
                            Some(change) => apply(&state, change).await,
                            None => tracing::debug!(payload = notification.payload(), "ignoring an unknown change"),
                        },
                        // The connection dropped and came back: notifications may be lost.
                        Ok(None) => refresh_everything(&state).await,
                        Err(error) => {
                            tracing::warn!(%error, "lost the change notifications; reconnecting");
                            break;
                        }
                    },
                    _ = tick.tick() => {
                        reload_policy(&state).await;
                        warm_candidates(&state).await;
                    }
                }
            }
        }
    })
}

async fn apply(state: &Followed, change: Change) {
    match change {
        Change::Policy => reload_policy(state).await,
        Change::Plugins => {
            state.plugins.sync().await;
            warm_candidates(state).await;
        }
        other => state.store.forget_cached(&other),
    }
}

async fn refresh_everything(state: &Followed) {
    state.store.forget_all_cached();
    reload_policy(state).await;
    state.plugins.sync().await;
    warm_candidates(state).await;
}

async fn warm_candidates(state: &Followed) {
    crate::http::admission::warm_candidates(&state.store, &state.plugins).await;
}

async fn reload_policy(state: &Followed) {
    if let Err(error) = state.policy.reload(&state.store).await {
        tracing::warn!(%error, "cannot re-read the platform policy; keeping the one in force");
    }
}
