//! App → a Deployment, a Service and (with a host) an Ingress, all owned by the App so that
//! Kubernetes collects them with it; the App's status follows the Deployment's.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kubeop_crds::{App, AppStatus, Project, labels};

use crate::context::{Context, condition, ready_condition};
use crate::error::{Error, Result};
use crate::objects;

const CONTROLLER: &str = "app";
const RESYNC: Duration = Duration::from_secs(300);

/// Watches Apps, what they own (a hand edit or deletion reconciles the App again) and Projects
/// (an App waiting for its Project goes ahead as soon as it appears).
pub fn controller(ctx: &Context) -> Controller<App> {
    let apps = Controller::new(Api::<App>::all(ctx.client.clone()), watcher::Config::default())
        .with_config(controller::Config::default().debounce(crate::DEBOUNCE).concurrency(crate::CONCURRENCY));
    let store = apps.store();
    let ours = watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY, labels::MANAGER));
    apps.owns(Api::<Deployment>::all(ctx.client.clone()), ours.clone())
        .owns(Api::<Service>::all(ctx.client.clone()), ours.clone())
        .owns(Api::<Ingress>::all(ctx.client.clone()), ours)
        .watches(
            Api::<Project>::all(ctx.client.clone()),
            watcher::Config::default(),
            move |project: Project| {
                store
                    .state()
                    .into_iter()
                    .filter(|app| app.namespace().as_deref() == Some(project.spec.namespace.as_str()))
                    .map(|app| ObjectRef::from_obj(&*app))
                    .collect::<Vec<_>>()
            },
        )
}

pub async fn reconcile(app: Arc<App>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measure(CONTROLLER, &*app, reconcile_app(&app, &ctx)).await
}

pub fn error_policy(app: Arc<App>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, &*app, error)
}

async fn reconcile_app(app: &App, ctx: &Context) -> Result<Action> {
    let result = apply(app, ctx).await;
    let previous = app.status.as_ref();
    let status = match &result {
        Ok(deployment) => status_of(app, deployment),
        Err(error) => AppStatus {
            ready: Some(false),
            ready_replicas: previous.and_then(|s| s.ready_replicas),
            observed_generation: app.metadata.generation,
            conditions: vec![ready_condition(
                previous.map(|s| s.conditions.as_slice()).unwrap_or_default(),
                false,
                error.reason(),
                error.to_string(),
                app.metadata.generation,
            )],
        },
    };
    let message = status.conditions[0].message.clone();
    let api: Api<App> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let written = ctx.write_status(&api, app, previous, status).await;
    result?;
    if written? {
        ctx.publish(app.object_ref(&()), EventType::Normal, "Reconciled", message);
    }
    Ok(Action::requeue(RESYNC))
}

/// Applies the workload once its Project is there; answers the Deployment as stored, whose
/// status the App reports.
async fn apply(app: &App, ctx: &Context) -> Result<Deployment> {
    let namespace = app.namespace().unwrap_or_default();
    require_project(app, ctx, &namespace).await?;
    let client = &ctx.client;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &namespace);
    let ingress = async {
        match objects::ingress(app, &ctx.settings) {
            Some(ingress) => ctx.apply(&ingresses, &ingress).await.map(drop),
            // The host was removed: so is the route.
            None => ctx.delete(&ingresses, Some(&namespace), &app.name_any()).await,
        }
    };
    let (deployment, service) = (objects::deployment(app), objects::service(app));
    let (deployment, _, ()) =
        futures::try_join!(ctx.apply(&deployments, &deployment), ctx.apply(&services, &service), ingress)?;
    Ok(deployment)
}

/// An App runs in its Project's namespace only: without the Project there is no quota or
/// network policy around it.
async fn require_project(app: &App, ctx: &Context, namespace: &str) -> Result<()> {
    let projects: Api<Project> = Api::all(ctx.client.clone());
    let name = &app.spec.project_ref;
    let project = projects.get_opt(name).await.map_err(Error::kube("read", "Project", name.clone()))?;
    match project {
        Some(project)
            if project.spec.namespace == namespace && project.meta().deletion_timestamp.is_none() =>
        {
            Ok(())
        }
        _ => Err(Error::ProjectMissing { project: name.clone(), namespace: namespace.to_owned() }),
    }
}

/// The App's status from its Deployment's: Ready once the current generation has at least the
/// desired replicas available, with the Deployment's Available and Progressing conditions
/// alongside (they say why not).
fn status_of(app: &App, deployment: &Deployment) -> AppStatus {
    let generation = app.metadata.generation;
    let previous = app.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let desired = objects::app_replicas(app);
    let status = deployment.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let deployment_conditions = status.conditions.unwrap_or_default();
    let find = |type_: &str| deployment_conditions.iter().find(|c| c.type_ == type_);
    let failing = |type_: &str| find(type_).filter(|c| c.status == "False");
    // A status older than the Deployment's spec says nothing about the new replicas.
    let current =
        status.observed_generation.is_some() && status.observed_generation >= deployment.metadata.generation;
    let counted = format!("{available} of {desired} replicas available");
    let (ready, reason, message) = if desired == 0 {
        (false, "ScaledToZero".to_owned(), "the app has 0 replicas".to_owned())
    } else if current && available >= desired {
        let reason = find("Available").and_then(|c| c.reason.clone()).unwrap_or_else(|| "Available".into());
        (true, reason, counted)
    } else if let Some(failed) = failing("Progressing").or_else(|| failing("Available")) {
        let message = failed.message.clone().map_or(counted.clone(), |m| format!("{counted}: {m}"));
        (false, failed.reason.clone().unwrap_or_else(|| "Unavailable".into()), message)
    } else {
        (false, "Progressing".to_owned(), counted)
    };
    let mut conditions = vec![ready_condition(previous, ready, &reason, message, generation)];
    conditions.extend(["Available", "Progressing"].into_iter().filter_map(find).map(|c| {
        condition(
            previous,
            &c.type_,
            &c.status,
            c.reason.as_deref().unwrap_or(&c.type_),
            c.message.clone().unwrap_or_default(),
            generation,
            c.last_transition_time.clone(),
        )
    }));
    AppStatus {
        ready: Some(ready),
        ready_replicas: Some(status.ready_replicas.unwrap_or(0)),
        observed_generation: generation,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use kubeop_crds::AppSpec;

    use super::*;

    fn app(replicas: i32) -> App {
        let mut app = App::new(
            "a-01",
            AppSpec {
                name: "shop".into(),
                project_ref: "p-01".into(),
                image: "nginx".into(),
                host: None,
                replicas: Some(replicas),
                port: None,
                env: vec![],
                resources: None,
            },
        );
        app.metadata.generation = Some(3);
        app
    }

    fn deployment(observed: i64, available: i32, conditions: &[(&str, &str, &str, &str)]) -> Deployment {
        let mut deployment = objects::deployment(&app(2));
        deployment.metadata.generation = Some(2);
        deployment.status = Some(DeploymentStatus {
            observed_generation: Some(observed),
            available_replicas: Some(available),
            ready_replicas: Some(available),
            conditions: Some(
                conditions
                    .iter()
                    .map(|(type_, status, reason, message)| DeploymentCondition {
                        type_: (*type_).into(),
                        status: (*status).into(),
                        reason: Some((*reason).into()),
                        message: Some((*message).into()),
                        ..DeploymentCondition::default()
                    })
                    .collect(),
            ),
            ..DeploymentStatus::default()
        });
        deployment
    }

    fn ready(status: &AppStatus) -> (&str, &str, &str) {
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        (ready.status.as_str(), ready.reason.as_str(), ready.message.as_str())
    }

    #[test]
    fn ready_once_the_desired_replicas_are_available() {
        let available =
            [("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")];
        let status = status_of(&app(2), &deployment(2, 2, &available));
        assert_eq!(ready(&status), ("True", "MinimumReplicasAvailable", "2 of 2 replicas available"));
        assert_eq!(
            (status.ready, status.ready_replicas, status.observed_generation),
            (Some(true), Some(2), Some(3))
        );
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Available"]);
    }

    #[test]
    fn not_ready_says_why_from_the_deployment() {
        let stuck = [
            (
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"x\" has timed out progressing.",
            ),
        ];
        let status = status_of(&app(2), &deployment(2, 1, &stuck));
        assert_eq!(
            ready(&status),
            (
                "False",
                "ProgressDeadlineExceeded",
                "1 of 2 replicas available: ReplicaSet \"x\" has timed out progressing."
            )
        );
        assert_eq!(status.ready_replicas, Some(1));
    }

    #[test]
    fn a_stale_deployment_status_is_not_ready() {
        let status = status_of(&app(2), &deployment(1, 2, &[]));
        assert_eq!(ready(&status), ("False", "Progressing", "2 of 2 replicas available"));
        assert_eq!(ready(&status_of(&app(0), &deployment(2, 0, &[]))).1, "ScaledToZero");
    }
}
