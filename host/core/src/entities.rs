//! The platform's three resources as the API shows them: a tenant holds projects (one
//! namespace each), a project holds apps.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{AppId, ClusterId, Hostname, Name, Namespace, ProjectId, TenantId};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: Name,
    /// The registered cluster the tenant's projects live on; absent: the default cluster.
    #[serde(rename = "clusterID", skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<ClusterId>,
    pub created_at: DateTime<Utc>,
}

/// A Kubernetes cluster registered with `POST /v1/clusters`. Its kubeconfig is sealed at rest
/// and never shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cluster {
    pub id: ClusterId,
    pub name: Name,
    /// The API server's URL, from the kubeconfig's current context.
    pub server: String,
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
    use super::{App, Cluster, Project, Tenant};

    crate::from_row!(Tenant { id, name, cluster_id, created_at });
    crate::from_row!(Cluster { id, name, server, created_at });
    crate::from_row!(Project { id, tenant_id, name, namespace, created_at });
    crate::from_row!(App { id, project_id, tenant_id, name, image, host, created_at });
}
