//! kubeop's domain: validated values and the Tenant/Project/App entities. Everything that
//! arrives as a raw string becomes one of these at the edge, so the rest of the code never
//! handles input that could still be invalid. Shared by the manager and, later, the in-cluster
//! operator: no database, no WebAssembly, no HTTP here (the `sqlx` feature only derives how the
//! store binds these types).

mod cron;
mod cronjob;
mod entities;
mod host;
mod ids;
mod image;
mod money;
mod name;
mod page;
mod policy;
mod quantity;
#[cfg(feature = "sqlx")]
mod sqlx_impls;
mod usage;

pub use cron::{CronError, CronSchedule};
pub use cronjob::{
    ConcurrencyPolicy, CronJob, MAX_ARGUMENT_BYTES, MAX_ARGUMENTS, MAX_CRONJOB_NAME, MAX_ENV_VALUE_BYTES,
    MAX_ENV_VARS, check_env_name, parse_cronjob_name,
};
pub use entities::{App, Cluster, Project, Tenant};
pub use host::Hostname;
pub use ids::{AppId, ClusterId, CronJobId, IdError, ProjectId, ResourceId, TenantId};
pub use image::ImageRef;
pub use money::{Percent, Rate, Rates, parse_decimal};
pub use name::{Name, Namespace};
pub use page::{Cursor, Page};
pub use policy::{
    AdmissionPolicy, Cidr, HostPattern, MAX_ADMISSION_ENTRIES, PlatformPolicy, QuotaMax, Registry, RuleName,
    ServiceType,
};
pub use quantity::Quantity;
pub use usage::{
    BatchError, BucketOverflow, Hour, PointError, UsageBatch, UsagePoint, UsageWindow, parse_timestamp,
};

/// Why a value was refused; the message is shown to the API caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
