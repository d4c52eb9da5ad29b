//! The Kubernetes objects the database implies: kubeop's custom resources, the namespace of
//! each project, each project's CronJobs and the platform policy's ConfigMap. Typed values,
//! named after the database ids (CronJobs after their name), labelled with them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Namespace, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::ObjectMeta;

use kubeop_core::{App, PlatformPolicy, Project, Tenant};
use kubeop_crds::platform::{self, PolicyDocument, QuotaMaxDocument};
use kubeop_crds::{AppSpec, ProjectSpec, TenantSpec, labels};

/// An object's name from a database id: `t_01j…` → `t-01j…` (ids are lower case; `_` is not
/// allowed in a Kubernetes name).
pub fn object_name(id: &str) -> String {
    id.replace('_', "-")
}

fn meta(name: String, namespace: Option<String>, ids: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta { name: Some(name), namespace, labels: Some(id_labels(ids)), ..ObjectMeta::default() }
}

/// The ids as labels, with kubeop as the manager.
fn id_labels(ids: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> =
        ids.iter().map(|(key, id)| ((*key).to_owned(), (*id).to_owned())).collect();
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    labels
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

/// The platform policy as the `kubeop-policy` ConfigMap the operator and webhook read.
pub fn policy_config_map(policy: &PlatformPolicy) -> ConfigMap {
    let document = PolicyDocument {
        image_allowlist: policy.image_allowlist.iter().map(|r| r.as_str().to_owned()).collect(),
        egress_baseline: policy.egress_baseline.iter().map(|c| c.as_str().to_owned()).collect(),
        quota_max: QuotaMaxDocument {
            requests_cpu: policy.quota_max.requests_cpu.as_ref().map(|q| q.as_str().to_owned()),
            requests_memory: policy.quota_max.requests_memory.as_ref().map(|q| q.as_str().to_owned()),
        },
        allowed_hosts: policy.admission.allowed_host_texts(),
        allowed_service_types: policy.admission.allowed_service_type_texts(),
        audit_rules: policy.admission.audit_rule_texts(),
    };
    let json = serde_json::to_string(&document).expect("strings serialise");
    ConfigMap {
        metadata: meta(platform::POLICY_CONFIG_MAP.into(), Some(platform::SYSTEM_NAMESPACE.into()), &[]),
        data: Some(BTreeMap::from([(platform::POLICY_KEY.to_owned(), json)])),
        ..ConfigMap::default()
    }
}

/// A project's CronJob, its pods under the same baseline as apps' (non-root, read-only root
/// filesystem, no capabilities, default requests and limits).
pub fn cronjob(cronjob: &kubeop_core::CronJob, namespace: &str) -> CronJob {
    let ids = [
        (labels::TENANT_ID, cronjob.tenant_id.as_str()),
        (labels::PROJECT_ID, cronjob.project_id.as_str()),
        (labels::CRONJOB_ID, cronjob.id.as_str()),
    ];
    let container = Container {
        name: cronjob.name.to_string(),
        image: Some(cronjob.image.clone()),
        command: (!cronjob.command.is_empty()).then(|| cronjob.command.clone()),
        args: (!cronjob.args.is_empty()).then(|| cronjob.args.clone()),
        env: (!cronjob.env.is_empty()).then(|| {
            cronjob
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                })
                .collect()
        }),
        resources: Some(platform::default_resources()),
        security_context: Some(platform::container_security_context()),
        ..Container::default()
    };
    let pod = PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(id_labels(&ids)), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("OnFailure".into()),
            automount_service_account_token: Some(false),
            security_context: Some(platform::pod_security_context()),
            ..PodSpec::default()
        }),
    };
    CronJob {
        metadata: meta(cronjob.name.to_string(), Some(namespace.to_owned()), &ids),
        spec: Some(CronJobSpec {
            schedule: cronjob.schedule.as_str().to_owned(),
            suspend: Some(cronjob.suspend),
            concurrency_policy: Some(cronjob.concurrency_policy.as_str().to_owned()),
            successful_jobs_history_limit: Some(cronjob.successful_jobs_history_limit),
            failed_jobs_history_limit: Some(cronjob.failed_jobs_history_limit),
            starting_deadline_seconds: cronjob.starting_deadline_seconds,
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec { template: pod, ..JobSpec::default() }),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

/// A Job run now from a CronJob as the cluster has it, as `kubectl create job --from=cronjob/…`
/// builds it: the CronJob's job template, its labels and annotations, the
/// `cronjob.kubernetes.io/instantiate: manual` annotation and the CronJob as owner (so the Job
/// goes when the CronJob does).
pub fn job_from_cronjob(cronjob: &CronJob, job_name: &str) -> Job {
    let template = cronjob.spec.as_ref().map(|spec| spec.job_template.clone()).unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    let owner = OwnerReference {
        api_version: CronJob::api_version(&()).into_owned(),
        kind: CronJob::kind(&()).into_owned(),
        name: cronjob.metadata.name.clone().unwrap_or_default(),
        uid: cronjob.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_owned()),
            namespace: cronjob.metadata.namespace.clone(),
            labels: template_meta.labels.or_else(|| cronjob.metadata.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}
