//! CronJobs: a scheduled workload in a project, as the original kubeOP's API had them. The
//! manager stores them and writes each to its project's namespace as a batch/v1 CronJob.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CronJobId, CronSchedule, Invalid, Name, ProjectId, TenantId};

/// Kubernetes caps a CronJob's name at 52 characters: its Jobs are named `<name>-<minutes>`
/// and Job names must stay valid labels (63).
pub const MAX_CRONJOB_NAME: usize = 52;
/// Bounds on what one CronJob carries, so a stored row always fits an API object.
pub const MAX_ARGUMENTS: usize = 64;
pub const MAX_ARGUMENT_BYTES: usize = 4096;
pub const MAX_ENV_VARS: usize = 128;
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// What to do when a run is due while the previous one is still running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ConcurrencyPolicy {
    #[default]
    Allow,
    Forbid,
    Replace,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "Allow" => Ok(ConcurrencyPolicy::Allow),
            "Forbid" => Ok(ConcurrencyPolicy::Forbid),
            "Replace" => Ok(ConcurrencyPolicy::Replace),
            other => Err(Invalid::new(format!("`{other}` is not one of Allow, Forbid, Replace"))),
        }
    }
}

/// A CronJob as stored: every field already validated.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    pub id: CronJobId,
    #[serde(rename = "projectID")]
    pub project_id: ProjectId,
    /// The tenant owning the project.
    #[serde(rename = "tenantID")]
    pub tenant_id: TenantId,
    pub name: Name,
    #[schema(value_type = String, example = "*/15 * * * *")]
    pub schedule: CronSchedule,
    /// The image reference as given.
    #[schema(example = "docker.io/library/busybox:1.36")]
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub suspend: bool,
    pub concurrency_policy: ConcurrencyPolicy,
    pub successful_jobs_history_limit: i32,
    pub failed_jobs_history_limit: i32,
    pub starting_deadline_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A CronJob's name: a DNS-1123 label of at most [`MAX_CRONJOB_NAME`] characters.
pub fn parse_cronjob_name(raw: &str) -> Result<Name, Invalid> {
    let name = Name::parse(raw)?;
    if name.as_str().len() > MAX_CRONJOB_NAME {
        return Err(Invalid::new(format!(
            "`{raw}` is longer than {MAX_CRONJOB_NAME} characters (Kubernetes' limit for a CronJob name)"
        )));
    }
    Ok(name)
}

/// An environment variable's name as Kubernetes accepts it: letters, digits, `_`, `-`, `.`,
/// not starting with a digit.
pub fn check_env_name(name: &str) -> Result<(), Invalid> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '.'));
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !first_ok || !rest_ok || name.len() > 256 {
        return Err(Invalid::new(format!(
            "`{name}` is not a valid environment variable name (letters, digits, `_`, `-`, `.`; not \
             starting with a digit; at most 256 characters)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kubernetes_cronjob_limit() {
        assert!(parse_cronjob_name(&"a".repeat(52)).is_ok());
        assert!(parse_cronjob_name(&"a".repeat(53)).unwrap_err().0.contains("52"));
        assert!(parse_cronjob_name("Bad_Name").is_err());
    }

    #[test]
    fn env_names_follow_kubernetes() {
        for good in ["PATH", "_x", "a.b-c", "A1"] {
            assert!(check_env_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A B", "A=B", "é"] {
            assert!(check_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn concurrency_policies_are_kubernetes_spellings() {
        assert_eq!(ConcurrencyPolicy::parse("Forbid").unwrap(), ConcurrencyPolicy::Forbid);
        assert!(ConcurrencyPolicy::parse("forbid").is_err());
    }
}
