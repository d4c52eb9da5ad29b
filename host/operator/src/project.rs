//! Project → its namespace, quota, limit range and network policies. The Project is
//! cluster-scoped, so the objects carry its labels rather than an owner reference (a namespace
//! cannot be owned for cascading); the finalizer deletes the namespace, and with it the rest.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kubeop_crds::{Project, ProjectStatus, labels};
use serde::de::DeserializeOwned;

use crate::context::{Context, ready_condition};
use crate::error::{Error, Result};
use crate::objects;

pub const FINALIZER: &str = "paas.kubeop.io/cleanup";
const CONTROLLER: &str = "project";
/// Watches repair drift at once; this catches whatever a watch could not see.
const RESYNC: Duration = Duration::from_secs(300);

/// Watches Projects, the objects written into their namespaces (a hand edit or deletion
/// reconciles the Project again) and, through `policy_changes`, the platform policy.
pub fn controller(
    ctx: &Context,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
) -> Controller<Project> {
    let projects = Controller::new(Api::<Project>::all(ctx.client.clone()), watcher::Config::default())
        .with_config(controller::Config::default().debounce(crate::DEBOUNCE).concurrency(crate::CONCURRENCY));
    let store = projects.store();
    let ours = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    projects
        .watches(
            Api::<Namespace>::all(ctx.client.clone()),
            ours.clone(),
            by_namespace(&store, |ns: &Namespace| ns.name_any()),
        )
        .watches(
            Api::<ResourceQuota>::all(ctx.client.clone()),
            ours.clone(),
            by_namespace(&store, namespace_of),
        )
        .watches(Api::<LimitRange>::all(ctx.client.clone()), ours.clone(), by_namespace(&store, namespace_of))
        .watches(Api::<NetworkPolicy>::all(ctx.client.clone()), ours, by_namespace(&store, namespace_of))
        .reconcile_all_on(policy_changes)
}

fn namespace_of<K: Resource>(object: &K) -> String {
    object.meta().namespace.clone().unwrap_or_default()
}

/// Maps an object to the Project whose namespace it is in (or is).
fn by_namespace<K>(
    store: &Store<Project>,
    namespace: impl Fn(&K) -> String + Send + Sync + 'static,
) -> impl Fn(K) -> Option<ObjectRef<Project>> + Send + Sync + 'static
where
    K: Resource + DeserializeOwned,
{
    let store = store.clone();
    move |object| {
        let namespace = namespace(&object);
        store
            .find(|project| project.spec.namespace == namespace)
            .map(|project| ObjectRef::from_obj(&*project))
    }
}

pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measure(CONTROLLER, &*project, reconcile_project(project.clone(), &ctx)).await
}

async fn reconcile_project(project: Arc<Project>, ctx: &Context) -> Result<Action> {
    let api: Api<Project> = Api::all(ctx.client.clone());
    if ctx.add_finalizer(&api, &*project, FINALIZER).await? {
        // The patch brings the Project back with its finalizer.
        return Ok(Action::await_change());
    }
    let name = project.name_any();
    finalizer(&api, FINALIZER, project, |event| async move {
        match event {
            Event::Apply(project) => apply(&project, ctx).await,
            Event::Cleanup(project) => cleanup(&project, ctx).await,
        }
    })
    .await
    .map_err(|error| Error::from_finalizer(error, "Project", &name))
}

pub fn error_policy(project: Arc<Project>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, &*project, error)
}

async fn apply(project: &Project, ctx: &Context) -> Result<Action> {
    let result = apply_objects(project, ctx).await;
    let api: Api<Project> = Api::all(ctx.client.clone());
    let conditions = project.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = project.metadata.generation;
    let (ready, reason, message) = match &result {
        Ok(()) => (
            true,
            "Reconciled",
            format!("namespace {} has its quota, limit range and network policies", project.spec.namespace),
        ),
        Err(error) => (false, error.reason(), error.to_string()),
    };
    let status = ProjectStatus {
        namespace: Some(project.spec.namespace.clone()),
        ready: Some(ready),
        observed_generation: generation,
        conditions: vec![ready_condition(conditions, ready, reason, message.clone(), generation)],
    };
    let written = ctx.write_status(&api, project, project.status.as_ref(), status).await;
    // The failure of the apply is the one worth reporting; a status that cannot be written
    // when the API is failing anyway adds nothing.
    result?;
    if written? {
        ctx.publish(project.object_ref(&()), EventType::Normal, "Reconciled", message);
    }
    Ok(Action::requeue(RESYNC))
}

/// Applies the namespace first (everything else lives in it), then the rest together.
async fn apply_objects(project: &Project, ctx: &Context) -> Result<()> {
    let policy = ctx.policy().await?;
    let settings = &ctx.settings;
    let quota = objects::resource_quota(project, settings, &policy)?;
    let namespace_name = &project.spec.namespace;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    claim_namespace(project, &namespaces).await?;
    ctx.apply(&namespaces, &objects::namespace(project, settings)).await?;

    let quotas = Api::<ResourceQuota>::namespaced(ctx.client.clone(), namespace_name);
    let limit_ranges = Api::<LimitRange>::namespaced(ctx.client.clone(), namespace_name);
    let network_policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), namespace_name);
    let wanted = objects::network_policies(project, settings, &policy);
    let stale_egress =
        !wanted.iter().any(|p| p.metadata.name.as_deref() == Some(objects::ALLOW_EGRESS_BASELINE));
    let policies = futures::future::try_join_all(wanted.iter().map(|p| ctx.apply(&network_policies, p)));
    let egress = async {
        // The policy dropped its last egress CIDR: the policy allowing them goes too.
        if stale_egress {
            ctx.delete(&network_policies, Some(namespace_name), objects::ALLOW_EGRESS_BASELINE).await?;
        }
        Ok::<(), Error>(())
    };
    let limit_range = objects::limit_range(project);
    futures::try_join!(ctx.apply(&quotas, &quota), ctx.apply(&limit_ranges, &limit_range), policies, egress)?;
    Ok(())
}

/// Refuses a namespace kubeop does not manage or that belongs to another project: the
/// finalizer deletes the namespace, and it must never delete someone else's.
async fn claim_namespace(project: &Project, namespaces: &Api<Namespace>) -> Result<()> {
    let name = &project.spec.namespace;
    let existing = namespaces.get_opt(name).await.map_err(Error::kube("read", "Namespace", name.clone()))?;
    let Some(existing) = existing else { return Ok(()) };
    match why_not_ours(project, &existing) {
        None => Ok(()),
        Some(why) => Err(Error::NamespaceTaken { namespace: name.clone(), why }),
    }
}

/// Why `namespace` is not the project's to manage, if it is not.
fn why_not_ours(project: &Project, namespace: &Namespace) -> Option<String> {
    let theirs = namespace.labels();
    if theirs.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGER) {
        return Some("it is not managed by kubeop".into());
    }
    let ours = project.labels().get(labels::PROJECT_ID);
    match (ours, theirs.get(labels::PROJECT_ID)) {
        (Some(ours), Some(theirs)) if ours != theirs => Some(format!("it belongs to project {theirs}")),
        _ => None,
    }
}

/// Deletes the namespace (Kubernetes deletes what is in it); the finalizer goes once the
/// deletion is accepted.
async fn cleanup(project: &Project, ctx: &Context) -> Result<Action> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let name = &project.spec.namespace;
    let existing = namespaces.get_opt(name).await.map_err(Error::kube("read", "Namespace", name.clone()))?;
    match existing {
        Some(namespace) if why_not_ours(project, &namespace).is_none() => {
            ctx.delete(&namespaces, None, name).await?;
            ctx.publish(
                project.object_ref(&()),
                EventType::Normal,
                "Deleted",
                format!("namespace {name} deleted"),
            );
        }
        Some(_) => tracing::info!(namespace = %name, "namespace not the project's: left in place"),
        None => {}
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;
    use kubeop_crds::ProjectSpec;

    use super::*;

    fn project(id: &str) -> Project {
        let mut project = Project::new(
            "p-01",
            ProjectSpec {
                tenant_ref: "t-01".into(),
                name: "web".into(),
                namespace: "kubeop-acme-web".into(),
            },
        );
        project.metadata.labels = Some(BTreeMap::from([(labels::PROJECT_ID.to_owned(), id.to_owned())]));
        project
    }

    fn namespace(labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("kubeop-acme-web".into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    #[test]
    fn only_kubeops_namespaces_of_the_same_project_are_claimed() {
        let managed = (labels::MANAGED_BY, labels::MANAGER);
        assert_eq!(why_not_ours(&project("p_01"), &namespace(&[managed])), None, "made by the manager first");
        assert_eq!(
            why_not_ours(&project("p_01"), &namespace(&[managed, (labels::PROJECT_ID, "p_01")])),
            None
        );
        assert!(why_not_ours(&project("p_01"), &namespace(&[])).unwrap().contains("not managed by kubeop"));
        let other = namespace(&[managed, (labels::PROJECT_ID, "p_02")]);
        assert!(why_not_ours(&project("p_01"), &other).unwrap().contains("p_02"));
    }
}
