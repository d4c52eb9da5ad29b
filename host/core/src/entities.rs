//! The platform's three resources as the API shows them: a tenant holds projects (one
//! namespace each), a project holds apps.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{AppId, Hostname, Name, Namespace, ProjectId, TenantId};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: Name,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: Name,
    /// `kubeop-<tenant>-<project>`, fixed when the project is created.
    pub namespace: Namespace,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct App {
    pub id: AppId,
    pub project_id: ProjectId,
    /// The tenant owning the app's project.
    pub tenant_id: TenantId,
    pub name: Name,
    /// The image reference as given.
    #[schema(example = "docker.io/library/nginx:1.25")]
    pub image: String,
    pub host: Option<Hostname>,
    pub created_at: DateTime<Utc>,
}

#[cfg(feature = "sqlx")]
mod rows {
    use super::{App, Project, Tenant};

    crate::from_row!(Tenant { id, name, created_at });
    crate::from_row!(Project { id, tenant_id, name, namespace, created_at });
    crate::from_row!(App { id, project_id, tenant_id, name, image, host, created_at });
}
