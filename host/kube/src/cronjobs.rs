//! Running a project's CronJob now, as `kubectl create job --from=cronjob/<name>` does.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, PostParams};

use kubeop_core::CronJobId;

use crate::clusters::{Connected, apply};
use crate::error::{Call, KubeError};
use crate::resources;

/// Applies the CronJob as the database has it (so a run right after a create does not wait for
/// the reconciler, and runs what was last stored), then creates a Job from its template, owned
/// by it. Answers the Job as created.
pub async fn run(
    connected: &Connected,
    cronjob: &kubeop_core::CronJob,
    namespace: &str,
    field_manager: &str,
) -> Result<Job, KubeError> {
    let cronjobs: Api<CronJob> = Api::namespaced(connected.client.clone(), namespace);
    let applied = apply(connected, cronjobs, &resources::cronjob(cronjob, namespace), field_manager).await?;
    let job = resources::job_from_cronjob(&applied, &job_name(cronjob.name.as_str()));
    let jobs: Api<Job> = Api::namespaced(connected.client.clone(), namespace);
    let params = PostParams { field_manager: Some(field_manager.to_owned()), ..PostParams::default() };
    jobs.create(&params, &job).await.map_err(|e| {
        let resource = format!("jobs in {namespace}");
        KubeError::from_kube(e, Call { cluster: &connected.label(), verb: "create", resource: &resource })
    })
}

/// `<cronjob>-<10 random characters>`: at most 63 characters (a CronJob's name has at most 52),
/// lower-case letters and digits, unique without asking the cluster.
fn job_name(cronjob: &str) -> String {
    let random = CronJobId::generate();
    let random = random.as_str();
    format!("{cronjob}-{}", &random[random.len() - 10..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_labels_and_differ() {
        let longest = "a".repeat(kubeop_core::MAX_CRONJOB_NAME);
        let (first, second) = (job_name(&longest), job_name(&longest));
        assert_eq!(first.len(), 63);
        assert_ne!(first, second);
        assert!(first.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{first}");
    }
}
