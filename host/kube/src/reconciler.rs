//! Keeps each cluster in step with the database. Changes leave outbox marks in their own
//! transactions (kubeop-store); this loop drains them: it reads the object as the database has
//! it now and applies it with server-side apply (one field manager), or deletes it when the row
//! is gone. A failure keeps the mark and retries it later with capped exponential backoff, so an
//! unreachable cluster only delays, and a crash between a commit and its apply loses nothing.
//! With several replicas, one reconciles a given cluster at a time (the store's lease).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Namespace;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams};
use serde::de::DeserializeOwned;

use kubeop_core::{ClusterId, PlatformPolicy};
use kubeop_store::Store;
use kubeop_store::outbox::{Desired, Lease, Leases, Mark, ObjectKind, now_ms};

use crate::clusters::{Clusters, Connected, apply};
use crate::error::{Call, KubeError};
use crate::resources::{self, object_name};

/// Marks read at once, and how many of them are applied concurrently. Four keeps a burst's
/// applies from taking the cores and pool connections its requests need (`kubeop-bench kube`:
/// with 16, `POST /v1/projects` p50 on PostgreSQL was 7–14% above the reconciler off; with 4,
/// within 5%; 1,000 projects then reach the cluster in 2.5–3.4 s instead of 2.6 s on
/// PostgreSQL, 1.4 s instead of 1.1 s on SQLite).
const BATCH: i64 = 256;
const CONCURRENCY: usize = 4;
/// How long the reconciler lets changes gather after being woken.
const COALESCE: Duration = Duration::from_millis(20);

pub struct Reconciler {
    store: Store,
    /// The policy in force while none is stored (the configuration's).
    configured_policy: PlatformPolicy,
    clusters: Arc<Clusters>,
    field_manager: String,
    interval: Duration,
    retry_min: Duration,
    retry_max: Duration,
    metrics: ReconcilerMetrics,
}

/// Applies and deletes by kind, action and result.
#[derive(Clone)]
pub struct ReconcilerMetrics {
    pub applies: prometheus::IntCounterVec,
}

impl ReconcilerMetrics {
    pub fn new(registry: &prometheus::Registry) -> Self {
        let applies = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "kubeop_kube_reconciles_total",
                "Outbox marks reconciled into a cluster, by kind, action (apply, delete) and result",
            ),
            &["kind", "action", "result"],
        )
        .expect("valid metric");
        registry.register(Box::new(applies.clone())).expect("registered once");
        Self { applies }
    }
}

impl Reconciler {
    pub fn new(
        store: Store,
        clusters: Arc<Clusters>,
        settings: &kubeop_config::KubeConfig,
        configured_policy: PlatformPolicy,
        metrics: ReconcilerMetrics,
    ) -> Self {
        Self {
            store,
            configured_policy,
            clusters,
            field_manager: settings.field_manager.clone(),
            interval: Duration::from_millis(settings.reconcile_interval_ms),
            retry_min: Duration::from_millis(settings.retry_min_ms),
            retry_max: Duration::from_millis(settings.retry_max_ms),
            metrics,
        }
    }

    /// Runs until the task is dropped: a pass whenever a change was written, and at least every
    /// `interval` (for retries, and for other replicas' changes).
    pub async fn run(self) {
        let mut leases = Leases::default();
        loop {
            if let Err(error) = self.take_over(&mut leases).await {
                tracing::warn!(%error, "cannot take clusters over; retrying");
            }
            let next_takeover = tokio::time::Instant::now() + self.interval;
            // Drain on every change until the interval is up: then look for clusters again.
            loop {
                if let Err(error) = self.pass(&mut leases).await {
                    tracing::warn!(%error, "reconcile pass failed; retrying");
                }
                tokio::select! {
                    () = self.store.outbox_written() => {
                        // A burst of changes becomes one pass, not one pass per change, so the
                        // reconciler does not compete with the requests that write them.
                        tokio::time::sleep(COALESCE).await;
                    }
                    () = tokio::time::sleep_until(next_takeover) => break,
                }
                if tokio::time::Instant::now() >= next_takeover {
                    break;
                }
            }
        }
    }

    /// Takes over the clusters no replica reconciles yet, re-applying everything of a cluster it
    /// takes over (drift, a default cluster configured after tenants existed).
    pub async fn take_over(&self, leases: &mut Leases) -> Result<(), KubeError> {
        let mut clusters: Vec<Option<ClusterId>> =
            self.store.cluster_ids().await?.into_iter().map(Some).collect();
        if self.clusters.has_default() {
            clusters.push(None);
        }
        for cluster in &clusters {
            if self.store.lease_cluster(leases, cluster.as_ref()).await? == Lease::Taken {
                self.store.mark_cluster_for_resync(cluster.as_ref()).await?;
            }
        }
        Ok(())
    }

    /// Drains every mark due now, cluster by cluster; answers how many were applied.
    pub async fn pass(&self, leases: &mut Leases) -> Result<usize, KubeError> {
        let mut done = 0;
        let now = now_ms();
        for cluster in self.store.clusters_with_due_marks(now).await? {
            if self.store.lease_cluster(leases, cluster.as_ref()).await? == Lease::Elsewhere {
                continue; // another replica reconciles this cluster
            }
            loop {
                let marks = self.store.due_marks(cluster.as_ref(), now, BATCH).await?;
                if marks.is_empty() {
                    break;
                }
                let connected = match self.clusters.connect(cluster.as_ref()).await {
                    Ok(connected) => Some(connected),
                    Err(error) => {
                        for mark in &marks {
                            self.failed(mark, &error).await?;
                        }
                        None
                    }
                };
                let Some(connected) = connected else { break };
                // Kinds in order (the store sorts them): a project's namespace before its apps.
                // (Plain loops: closures here would make the spawned future not `Send`-provable.)
                for kind in [
                    ObjectKind::Policy,
                    ObjectKind::Tenant,
                    ObjectKind::Project,
                    ObjectKind::App,
                    ObjectKind::CronJob,
                ] {
                    let mut of_kind = Vec::new();
                    for mark in &marks {
                        if mark.kind == kind {
                            of_kind.push(mark);
                        }
                    }
                    for chunk in of_kind.chunks(CONCURRENCY) {
                        let ids: Vec<&str> = chunk.iter().map(|m| m.object_id.as_str()).collect();
                        let mut desired = self.store.desired(kind, &ids).await?;
                        let mut applying = Vec::with_capacity(chunk.len());
                        for mark in chunk {
                            let wanted = desired.remove(&mark.object_id).unwrap_or(Desired::Gone);
                            applying.push(self.reconcile_one(&connected, mark, wanted));
                        }
                        let mut completed = Vec::with_capacity(chunk.len());
                        for (mark, result) in chunk.iter().zip(futures::future::join_all(applying).await) {
                            if result? {
                                completed.push(*mark);
                            }
                        }
                        self.store.complete_marks(&completed).await?;
                        done += completed.len();
                    }
                }
            }
        }
        Ok(done)
    }

    /// Applies one mark; `Ok(true)` when the cluster now matches it (the caller completes the
    /// marks of a batch together), `Ok(false)` when it failed and will be retried.
    async fn reconcile_one(
        &self,
        connected: &Connected,
        mark: &Mark,
        desired: Desired,
    ) -> Result<bool, KubeError> {
        let action = if matches!(desired, Desired::Gone) { "delete" } else { "apply" };
        match self.reconcile(connected, mark, desired).await {
            Ok(()) => {
                self.metrics.applies.with_label_values(&[mark.kind.as_str(), action, "ok"]).inc();
                Ok(true)
            }
            Err(error) => {
                self.metrics.applies.with_label_values(&[mark.kind.as_str(), action, "error"]).inc();
                self.failed(mark, &error).await?;
                Ok(false)
            }
        }
    }

    async fn failed(&self, mark: &Mark, error: &KubeError) -> Result<(), KubeError> {
        let delay = backoff(self.retry_min, self.retry_max, mark.attempts);
        tracing::warn!(
            kind = mark.kind.as_str(),
            id = %mark.object_id,
            attempts = mark.attempts + 1,
            retry_in_ms = delay.as_millis() as u64,
            %error,
            "cluster not updated yet"
        );
        self.store.fail_mark(mark, &error.to_string(), now_ms() + delay.as_millis() as i64).await?;
        Ok(())
    }

    async fn reconcile(&self, connected: &Connected, mark: &Mark, desired: Desired) -> Result<(), KubeError> {
        let client = &connected.client;
        let name = object_name(&mark.object_id);
        match desired {
            Desired::Tenant(tenant) => {
                apply(connected, Api::all(client.clone()), &resources::tenant(&tenant), &self.field_manager)
                    .await
                    .map(drop)
            }
            Desired::Project(project) => {
                apply(
                    connected,
                    Api::all(client.clone()),
                    &resources::namespace(&project),
                    &self.field_manager,
                )
                .await?;
                apply(connected, Api::all(client.clone()), &resources::project(&project), &self.field_manager)
                    .await
                    .map(drop)
            }
            Desired::App(app) => {
                let namespace = mark.namespace.as_deref().unwrap_or_default();
                let api = Api::namespaced(client.clone(), namespace);
                apply(connected, api, &resources::app(&app, namespace), &self.field_manager).await.map(drop)
            }
            Desired::CronJob(cronjob) => {
                let namespace = mark.namespace.as_deref().unwrap_or_default();
                let api = Api::namespaced(client.clone(), namespace);
                apply(connected, api, &resources::cronjob(&cronjob, namespace), &self.field_manager)
                    .await
                    .map(drop)
            }
            Desired::Policy => {
                let policy = match self.store.platform_policy().await? {
                    Some(stored) => stored.policy,
                    None => self.configured_policy.clone(),
                };
                apply(
                    connected,
                    Api::all(client.clone()),
                    &crate::platform::system_namespace(),
                    &self.field_manager,
                )
                .await?;
                let api = Api::namespaced(client.clone(), kubeop_crds::platform::SYSTEM_NAMESPACE);
                apply(connected, api, &resources::policy_config_map(&policy), &self.field_manager)
                    .await
                    .map(drop)
            }
            Desired::Gone => match mark.kind {
                ObjectKind::Tenant => {
                    delete::<kubeop_crds::Tenant>(connected, Api::all(client.clone()), &name).await
                }
                ObjectKind::Project => {
                    delete::<kubeop_crds::Project>(connected, Api::all(client.clone()), &name).await?;
                    // The namespace goes with its project, and every app in it.
                    match mark.namespace.as_deref() {
                        Some(namespace) => {
                            delete::<Namespace>(connected, Api::all(client.clone()), namespace).await
                        }
                        None => Ok(()),
                    }
                }
                ObjectKind::App => match mark.namespace.as_deref() {
                    Some(namespace) => {
                        delete::<kubeop_crds::App>(
                            connected,
                            Api::namespaced(client.clone(), namespace),
                            &name,
                        )
                        .await
                    }
                    None => Ok(()),
                },
                // Found by its id label (the row, with the name, is gone); its Jobs follow
                // (owner references, background propagation).
                ObjectKind::CronJob => match mark.namespace.as_deref() {
                    Some(namespace) => {
                        let api: Api<CronJob> = Api::namespaced(client.clone(), namespace);
                        let selected = ListParams::default().labels(&format!(
                            "{}={}",
                            kubeop_crds::labels::CRONJOB_ID,
                            mark.object_id
                        ));
                        match api.delete_collection(&DeleteParams::background(), &selected).await {
                            Ok(_) => Ok(()),
                            // The namespace is gone (its project was deleted): so is the CronJob.
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                            Err(e) => {
                                let resource = format!("cronjobs in {namespace}");
                                let call = Call {
                                    cluster: &connected.label(),
                                    verb: "deletecollection",
                                    resource: &resource,
                                };
                                Err(KubeError::from_kube(e, call))
                            }
                        }
                    }
                    None => Ok(()),
                },
                // A policy is never gone: its mark goes with its cluster.
                ObjectKind::Policy => Ok(()),
            },
        }
    }
}

/// Deletes an object; one already gone is what was wanted.
async fn delete<K>(connected: &Connected, api: Api<K>, name: &str) -> Result<(), KubeError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => {
            let resource = format!("{} {name}", K::plural(&Default::default()));
            Err(KubeError::from_kube(
                e,
                Call { cluster: &connected.label(), verb: "delete", resource: &resource },
            ))
        }
    }
}

/// `min · 2^attempts`, at most `max`.
pub fn backoff(min: Duration, max: Duration, attempts: i32) -> Duration {
    let factor = 1u32.checked_shl(attempts.clamp(0, 31) as u32).unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(60));
        let waits: Vec<u128> = (0..10).map(|a| backoff(min, max, a).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
        assert_eq!(backoff(min, max, i32::MAX), max);
        assert_eq!(backoff(min, max, -1), min);
    }
}
