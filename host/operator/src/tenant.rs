//! Tenant → its status (ready, and how many Projects it has here). Deleting a Tenant deletes its
//! Projects, whose own finalizers then delete their namespaces.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use kubeop_crds::{Project, Tenant, TenantStatus};

use crate::context::{Context, ready_condition};
use crate::error::{Error, Result};

pub const FINALIZER: &str = "paas.kubeop.io/cleanup";
const CONTROLLER: &str = "tenant";
const RESYNC: Duration = Duration::from_secs(300);
const TENANT_DEBOUNCE: Duration = Duration::from_secs(1);

/// Watches Tenants and Projects: a Project coming or going reconciles its Tenant, so the count
/// follows.
pub fn controller(ctx: &Context) -> Controller<Tenant> {
    // A burst of project changes is one recount, not one per change.
    Controller::new(Api::<Tenant>::all(ctx.client.clone()), watcher::Config::default())
        .with_config(controller::Config::default().debounce(TENANT_DEBOUNCE))
        .watches(Api::<Project>::all(ctx.client.clone()), watcher::Config::default(), |project: Project| {
            Some(ObjectRef::new(&project.spec.tenant_ref))
        })
}

pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measure(CONTROLLER, &*tenant, reconcile_tenant(tenant.clone(), &ctx)).await
}

pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, &*tenant, error)
}

async fn reconcile_tenant(tenant: Arc<Tenant>, ctx: &Context) -> Result<Action> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    if ctx.add_finalizer(&api, &*tenant, FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let name = tenant.name_any();
    finalizer(&api, FINALIZER, tenant, |event| async move {
        match event {
            Event::Apply(tenant) => apply(&tenant, ctx).await,
            Event::Cleanup(tenant) => cleanup(&tenant, ctx).await,
        }
    })
    .await
    .map_err(|error| Error::from_finalizer(error, "Tenant", &name))
}

/// The tenant's Projects on this cluster, those being deleted left out. Read from the API
/// rather than a cache, so the count is never behind the event that triggered it.
async fn projects_of(tenant: &Tenant, ctx: &Context) -> Result<Vec<Project>> {
    let projects: Api<Project> = Api::all(ctx.client.clone());
    let all =
        projects.list(&ListParams::default()).await.map_err(Error::kube("list", "Project", String::new()))?;
    let name = tenant.name_any();
    Ok(all
        .items
        .into_iter()
        .filter(|p| p.spec.tenant_ref == name && p.meta().deletion_timestamp.is_none())
        .collect())
}

async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    let count = projects_of(tenant, ctx).await?.len();
    let generation = tenant.metadata.generation;
    let previous = tenant.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let noun = if count == 1 { "project" } else { "projects" };
    let status = TenantStatus {
        ready: Some(true),
        projects: Some(u32::try_from(count).unwrap_or(u32::MAX)),
        observed_generation: generation,
        conditions: vec![ready_condition(
            previous,
            true,
            "Reconciled",
            format!("{count} {noun}"),
            generation,
        )],
    };
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    ctx.write_status(&api, tenant, tenant.status.as_ref(), status).await?;
    Ok(Action::requeue(RESYNC))
}

/// Deletes the tenant's Projects; each one's finalizer takes its namespace along.
async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    let api: Api<Project> = Api::all(ctx.client.clone());
    for project in projects_of(tenant, ctx).await? {
        ctx.delete(&api, None, &project.name_any()).await?;
    }
    Ok(Action::await_change())
}
