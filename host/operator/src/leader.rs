//! Several operator replicas are safe: one acts at a time, the one holding a
//! coordination.k8s.io Lease (kube-lease-manager: server-side apply on the Lease, so two
//! replicas can never both lock it). The others wait, ready to take over when the leader stops
//! renewing; a leader that loses the lease stops its controllers at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};

use crate::{Metrics, Settings};

/// Which Lease, and who this replica is.
#[derive(Debug, Clone)]
pub struct Election {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique among the replicas: the pod's name in a cluster.
    pub identity: String,
    /// A leader that has not renewed for this long is replaced…
    pub duration: Duration,
    /// …and it renews this long before that.
    pub grace: Duration,
}

/// What `/readyz` and `/metrics` of the process report.
#[derive(Debug, Default)]
pub struct State {
    /// This replica holds the lease (always, without an election).
    pub leading: AtomicBool,
    /// The controllers' caches are synced (only while leading).
    pub synced: Arc<AtomicBool>,
}

impl State {
    /// Ready to serve its purpose: a leader once its caches are synced, a standby at once.
    pub fn ready(&self) -> bool {
        !self.leading.load(Ordering::SeqCst) || self.synced.load(Ordering::SeqCst)
    }
}

/// Runs the controllers while this replica leads (always, with `election` `None`), until
/// `shutdown`; releases the lease on the way out so a standby takes over without waiting for
/// it to expire.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Metrics,
    election: Option<Election>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = shutdown.boxed().shared();
    let Some(election) = election else {
        state.leading.store(true, Ordering::SeqCst);
        return crate::run(client, settings, metrics, state.synced.clone(), shutdown).await;
    };
    let params = LeaseParams::new(
        election.identity.clone(),
        election.duration.as_secs().max(2),
        election.grace.as_secs().max(1),
    )
    .with_field_manager(format!("{}-lease", settings.field_manager));
    // The lease's namespace may not exist yet (the manager's policy reconciler or bootstrap
    // creates kubeop-system): wait for it rather than fail.
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&election.lease_namespace)
            .with_parameters(params.clone())
            .build()
            .await;
        match built {
            Ok(manager) => break manager,
            Err(error) => {
                tracing::warn!(%error, lease = %election.lease_name, "cannot use the lease yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(election.grace) => {}
                    () = shutdown.clone() => return Ok(()),
                }
            }
        }
    };
    let (mut leading, task) = manager.watch().await;
    tracing::info!(identity = %election.identity, lease = %election.lease_name, "waiting for the lease");
    loop {
        // Standby until this replica holds the lease, or the process stops.
        tokio::select! {
            changed = leading.wait_for(|leads| *leads) => {
                if changed.is_err() {
                    anyhow::bail!("the lease manager stopped");
                }
            }
            () = shutdown.clone() => break,
        }
        tracing::info!(identity = %election.identity, "leading: starting the controllers");
        state.leading.store(true, Ordering::SeqCst);
        let mut watch = leading.clone();
        let lost = async move {
            let _ = watch.wait_for(|leads| !*leads).await;
        };
        let stop = futures::future::select(lost.boxed(), shutdown.clone()).map(drop);
        let result =
            crate::run(client.clone(), settings.clone(), metrics.clone(), state.synced.clone(), stop).await;
        state.leading.store(false, Ordering::SeqCst);
        result?;
        if shutdown.clone().now_or_never().is_some() {
            break;
        }
        tracing::warn!(identity = %election.identity, "lost the lease: controllers stopped, standing by");
    }
    // Closing the channel makes the manager release the lease.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => tracing::info!("lease released"),
        Ok(Err(error)) => tracing::warn!(%error, "could not release the lease; it expires on its own"),
        Err(error) => tracing::warn!(%error, "lease manager task failed"),
    }
    Ok(())
}
