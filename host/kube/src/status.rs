//! What the clusters say about projects and apps, for `GET /v1/projects/{id}` and
//! `GET /v1/apps/{id}`: every replica watches the Project and App resources of each cluster and
//! keeps their Ready conditions in memory, so a request never waits on a cluster. Whether the
//! cluster is still behind (or failing) comes from the outbox in the database, which every
//! replica shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use kubeop_core::{ClusterId, Tenant};
use kubeop_store::Store;
use kubeop_store::outbox::{Mark, ObjectKind};

use crate::clusters::Clusters;
use crate::error::{KubeError, cluster_label};
use crate::resources::object_name;

/// Where a project or app stands on its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    pub state: SyncState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The namespace the resource lives in (a project's own, an app's project's).
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Not yet applied to the cluster, or applied and not yet reported ready.
    Pending,
    /// The resource reports `Ready=True`.
    Ready,
    /// Applying it fails (and is being retried), or it reports `Ready=False`.
    Error,
}

/// The Ready condition of one resource as last watched.
#[derive(Debug, Clone)]
struct Observed {
    ready: Option<Condition>,
}

pub struct Statuses {
    store: Store,
    clusters: Arc<Clusters>,
    observed: Arc<RwLock<HashMap<String, Observed>>>,
}

impl Statuses {
    pub fn new(store: Store, clusters: Arc<Clusters>) -> Self {
        Self { store, clusters, observed: Arc::default() }
    }

    /// The status of a project or app of `tenant` in `namespace`; `None` when the tenant has no
    /// cluster. One read of the outbox by primary key, and memory.
    pub async fn of(
        &self,
        kind: ObjectKind,
        id: &str,
        tenant: &Tenant,
        namespace: &str,
    ) -> Result<Option<SyncStatus>, KubeError> {
        if tenant.cluster_id.is_none() && !self.clusters.has_default() {
            return Ok(None);
        }
        let cluster = cluster_label(tenant.cluster_id.as_ref());
        let status = |state, message: String| SyncStatus {
            state,
            message: Some(message),
            namespace: namespace.to_owned(),
        };
        if let Some(mark) = self.store.pending_mark(kind, id).await? {
            return Ok(Some(pending_or_failing(&mark, &cluster, status)));
        }
        let observed = self.observed.read().expect("not poisoned").get(&object_name(id)).cloned();
        Ok(Some(match observed.and_then(|o| o.ready) {
            Some(ready) if ready.status == "True" => SyncStatus {
                state: SyncState::Ready,
                message: (!ready.message.is_empty()).then_some(ready.message),
                namespace: namespace.to_owned(),
            },
            Some(ready) if ready.status == "False" => {
                status(SyncState::Error, format!("{}: {}", ready.reason, ready.message))
            }
            _ => status(
                SyncState::Pending,
                format!("applied to cluster {cluster}; waiting for the operator to report it ready"),
            ),
        }))
    }

    /// Keeps a watch on every cluster's Projects and Apps, following registrations and
    /// deletions; runs until dropped.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut watching: HashMap<Option<ClusterId>, Vec<JoinHandle<()>>> = HashMap::new();
        loop {
            match self.wanted().await {
                Ok(wanted) => {
                    watching.retain(|cluster, tasks| {
                        let keep = wanted.contains(cluster) && tasks.iter().all(|t| !t.is_finished());
                        if !keep {
                            tasks.iter().for_each(JoinHandle::abort);
                        }
                        keep
                    });
                    for cluster in wanted {
                        if watching.contains_key(&cluster) {
                            continue;
                        }
                        match self.clusters.connect(cluster.as_ref()).await {
                            Ok(connected) => {
                                let client = connected.client;
                                let tasks = vec![
                                    tokio::spawn(watch(
                                        Api::<kubeop_crds::Project>::all(client.clone()),
                                        self.observed.clone(),
                                        |p| ready(&p.status.as_ref()?.conditions),
                                    )),
                                    tokio::spawn(watch(
                                        Api::<kubeop_crds::App>::all(client),
                                        self.observed.clone(),
                                        |a| ready(&a.status.as_ref()?.conditions),
                                    )),
                                ];
                                watching.insert(cluster, tasks);
                            }
                            Err(error) => tracing::debug!(%error, "cannot watch cluster yet"),
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot list clusters to watch"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The registered clusters, and the default one when configured.
    async fn wanted(&self) -> Result<Vec<Option<ClusterId>>, KubeError> {
        let mut wanted: Vec<Option<ClusterId>> =
            self.store.cluster_ids().await?.into_iter().map(Some).collect();
        if self.clusters.has_default() {
            wanted.push(None);
        }
        Ok(wanted)
    }
}

fn pending_or_failing(
    mark: &Mark,
    cluster: &str,
    status: impl Fn(SyncState, String) -> SyncStatus,
) -> SyncStatus {
    match &mark.last_error {
        Some(error) => status(
            SyncState::Error,
            format!("not yet applied to cluster {cluster} ({} attempts, retrying): {error}", mark.attempts),
        ),
        None => status(SyncState::Pending, format!("waiting to be applied to cluster {cluster}")),
    }
}

fn ready(conditions: &[Condition]) -> Option<Condition> {
    conditions.iter().find(|c| c.type_ == "Ready").cloned()
}

/// Follows one resource kind on one cluster (kube's watcher relists and backs off by itself).
async fn watch<K>(
    api: Api<K>,
    observed: Arc<RwLock<HashMap<String, Observed>>>,
    ready: fn(&K) -> Option<Condition>,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => {
                let seen = Observed { ready: ready(&object) };
                observed.write().expect("not poisoned").insert(object.name_any(), seen);
            }
            Ok(Event::Delete(object)) => {
                observed.write().expect("not poisoned").remove(&object.name_any());
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(error) => tracing::debug!(%error, "watch interrupted; kube retries"),
        }
    }
}
