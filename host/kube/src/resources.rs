//! The Kubernetes objects the database implies: kubeop's custom resources and the namespace of
//! each project. Typed values, named after the database ids, labelled with them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;

use kubeop_core::{App, Project, Tenant};
use kubeop_crds::{AppSpec, ProjectSpec, TenantSpec, labels};

/// An object's name from a database id: `t_01j…` → `t-01j…` (ids are lower case; `_` is not
/// allowed in a Kubernetes name).
pub fn object_name(id: &str) -> String {
    id.replace('_', "-")
}

fn meta(name: String, namespace: Option<String>, ids: &[(&str, &str)]) -> ObjectMeta {
    let mut labels: BTreeMap<String, String> =
        ids.iter().map(|(key, id)| ((*key).to_owned(), (*id).to_owned())).collect();
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    ObjectMeta { name: Some(name), namespace, labels: Some(labels), ..ObjectMeta::default() }
}

pub fn tenant(tenant: &Tenant) -> kubeop_crds::Tenant {
    let mut object = kubeop_crds::Tenant::new(
        &object_name(tenant.id.as_str()),
        TenantSpec { name: tenant.name.to_string() },
    );
    object.metadata = meta(object_name(tenant.id.as_str()), None, &[(labels::TENANT_ID, tenant.id.as_str())]);
    object
}

pub fn project(project: &Project) -> kubeop_crds::Project {
    let spec = ProjectSpec {
        tenant_ref: object_name(project.tenant_id.as_str()),
        name: project.name.to_string(),
        namespace: project.namespace.as_str().to_owned(),
    };
    let mut object = kubeop_crds::Project::new(&object_name(project.id.as_str()), spec);
    object.metadata = meta(
        object_name(project.id.as_str()),
        None,
        &[(labels::TENANT_ID, project.tenant_id.as_str()), (labels::PROJECT_ID, project.id.as_str())],
    );
    object
}

/// The project's namespace, labelled so the operator and the admission webhook can tell whose
/// it is. The operator adds quotas and policies later; this is what credentials need first.
pub fn namespace(project: &Project) -> Namespace {
    Namespace {
        metadata: meta(
            project.namespace.as_str().to_owned(),
            None,
            &[(labels::TENANT_ID, project.tenant_id.as_str()), (labels::PROJECT_ID, project.id.as_str())],
        ),
        ..Namespace::default()
    }
}

pub fn app(app: &App, namespace: &str) -> kubeop_crds::App {
    let spec = AppSpec {
        name: app.name.to_string(),
        project_ref: object_name(app.project_id.as_str()),
        image: app.image.clone(),
        host: app.host.as_ref().map(|host| host.as_str().to_owned()),
        replicas: None,
        port: None,
        env: Vec::new(),
        resources: None,
    };
    let mut object = kubeop_crds::App::new(&object_name(app.id.as_str()), spec);
    object.metadata = meta(
        object_name(app.id.as_str()),
        Some(namespace.to_owned()),
        &[
            (labels::TENANT_ID, app.tenant_id.as_str()),
            (labels::PROJECT_ID, app.project_id.as_str()),
            (labels::APP_ID, app.id.as_str()),
        ],
    );
    object
}
