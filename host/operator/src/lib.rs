//! `kubeop operator`: the in-cluster reconciler of kubeop's custom resources. A Tenant gets its
//! status, a Project becomes an isolated namespace (Pod Security labels, quota, limit range,
//! network policies) and an App becomes a Deployment, a Service and an Ingress. Everything is
//! written by server-side apply under one field manager, so drift is repaired on the next
//! reconcile and nobody else's fields are touched.
//!
//! One `kube::runtime::Controller` per kind, in the style of kube-rs/controller-rs: a shared
//! `Context`, pure builders in `objects`, one [`Error`] enum. The platform
//! policy is followed from the `kubeop-policy` ConfigMap; a change re-reconciles every Project.
//! Neither wasmtime nor sqlx is a dependency, so this crate builds and tests quickly.

mod app;
mod context;
mod error;
pub mod http;
pub mod leader;
mod objects;
mod policy;
pub mod process;
mod project;
mod tenant;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::controller;
use kube::runtime::reflector::ObjectRef;
use kubeop_crds::{App, Project, Tenant};
use serde::de::DeserializeOwned;

pub use context::Metrics;
pub use error::Error;

use context::Context;

/// How long a Project or App waits after a change before it is reconciled: the events of its
/// own writes (its objects, its status) arrive within it and make one more reconcile, not one
/// each (`kubeop-bench operator`).
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Reconciles of one kind in flight at once: a burst of a thousand objects is worked through
/// rather than held in memory all at once (each reconcile holds its objects and responses).
const CONCURRENCY: u16 = 16;

/// What the operator needs to know besides the cluster: plain values, so that the binary maps its
/// configuration onto them and tests build them by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The field manager of every server-side apply.
    pub field_manager: String,
    /// Pod Security Admission level of project namespaces: restricted, baseline or privileged.
    pub pod_security_level: String,
    /// Namespace of the ingress controller, whose pods may reach every project.
    pub ingress_namespace: String,
    /// `ingressClassName` of app Ingresses; `None` leaves the cluster's default class.
    pub ingress_class: Option<String>,
    /// Namespace of the cluster DNS pods (label `k8s-app: kube-dns`).
    pub dns_namespace: String,
    /// The quota's `requests.cpu` when the policy sets no `quotaMax`.
    pub default_quota_cpu: String,
    /// The quota's `requests.memory` when the policy sets no `quotaMax`.
    pub default_quota_memory: String,
    /// First delay of the capped exponential backoff after a failed reconcile.
    pub retry_min: Duration,
    /// The cap of that backoff.
    pub retry_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            field_manager: "kubeop-operator".into(),
            pod_security_level: "restricted".into(),
            ingress_namespace: "ingress-nginx".into(),
            ingress_class: Some("nginx".into()),
            dns_namespace: "kube-system".into(),
            default_quota_cpu: "2".into(),
            default_quota_memory: "4Gi".into(),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// Runs the Tenant, Project and App controllers until `shutdown` completes; `ready` is set
/// once every controller's caches have synced and the policy has been read (the /readyz of the
/// process), and cleared when they stop.
///
/// Fails at once only when kubeop's CustomResourceDefinitions are not installed; an unreachable
/// API server is retried with backoff by the watches themselves.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    require_definitions(&client).await?;
    // Every controller and the policy follower stop on the same signal.
    let shutdown = shutdown.boxed().shared();
    let (policy_sender, policy) = policy::channel();
    let ctx = Arc::new(Context::new(client.clone(), settings, metrics, policy.clone()));

    let projects =
        project::controller(&ctx, policy::changes(policy.clone())).graceful_shutdown_on(shutdown.clone());
    let apps = app::controller(&ctx).graceful_shutdown_on(shutdown.clone());
    let tenants = tenant::controller(&ctx).graceful_shutdown_on(shutdown.clone());

    let caches = {
        let stores = (projects.store(), apps.store(), tenants.store());
        let mut policy = policy.clone();
        let ready = ready.clone();
        async move {
            let synced = futures::try_join!(
                stores.0.wait_until_ready(),
                stores.1.wait_until_ready(),
                stores.2.wait_until_ready()
            );
            if synced.is_ok() && policy.wait_for(Option::is_some).await.is_ok() {
                ready.store(true, Ordering::SeqCst);
                tracing::info!("operator caches synced");
            }
        }
    };

    let follow_policy = policy::follow(client, policy_sender);
    tokio::join!(
        drain("project", &ctx, projects.run(project::reconcile, project::error_policy, ctx.clone())),
        drain("app", &ctx, apps.run(app::reconcile, app::error_policy, ctx.clone())),
        drain("tenant", &ctx, tenants.run(tenant::reconcile, tenant::error_policy, ctx.clone())),
        futures::future::select(caches.boxed(), shutdown.clone()),
        futures::future::select(follow_policy.boxed(), shutdown),
    );
    ready.store(false, Ordering::SeqCst);
    tracing::info!("operator stopped");
    Ok(())
}

/// Consumes a controller's stream of results. Reconcile failures were already counted and logged
/// by the error policies; what is left here are the controller's own troubles.
async fn drain<K, S>(controller: &'static str, ctx: &Context, results: S)
where
    K: Resource,
    S: futures::Stream<Item = Result<(ObjectRef<K>, controller::Action), ControllerError>>,
{
    results
        .for_each(|result| {
            match result {
                Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(controller::Error::ObjectNotFound(object)) => {
                    // Deleted while a retry was pending: forget its backoff.
                    ctx.forget(&object);
                    tracing::debug!(controller, %object, "object gone before its reconcile");
                }
                Err(error) => tracing::warn!(controller, %error, "controller error"),
            }
            futures::future::ready(())
        })
        .await;
}

type ControllerError = controller::Error<Error, kube::runtime::watcher::Error>;

/// Fails with a clear message when a kind's CustomResourceDefinition is missing, instead of
/// watches that retry a 404 forever.
async fn require_definitions(client: &kube::Client) -> anyhow::Result<()> {
    async fn served<K>(client: &kube::Client) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match Api::<K>::all(client.clone()).list_metadata(&ListParams::default().limit(1)).await {
            Err(kube::Error::Api(status)) if status.code == 404 => anyhow::bail!(
                "the {} resource ({}) is not served: install kubeop's CustomResourceDefinitions first",
                K::kind(&()),
                K::api_version(&())
            ),
            // Anything else (an API server still starting, say) is for the watches to retry.
            _ => Ok(()),
        }
    }
    served::<Tenant>(client).await?;
    served::<Project>(client).await?;
    served::<App>(client).await
}
