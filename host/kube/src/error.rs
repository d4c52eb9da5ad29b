//! Kubernetes failures as the API answers them. Messages name the cluster, the verb and the
//! resource, never a credential.

use kubeop_core::{ClusterId, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig given to register a cluster is unusable.
    #[error("{0}")]
    InvalidKubeconfig(String),
    #[error("no cluster configured for tenant {0}")]
    NoCluster(TenantId),
    /// A platform call named no cluster and there is no default one.
    #[error("no cluster configured (give ?clusterID= or configure kube.default)")]
    NoDefaultCluster,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// kubeop's own credentials lack a permission.
    #[error("cluster {cluster} refused kubeop: it may not {verb} {resource} ({message})")]
    Forbidden { cluster: String, verb: &'static str, resource: String, message: String },
    /// Not reachable, timed out, or answering 5xx.
    #[error("cluster {cluster} is unavailable: {why}")]
    Unavailable { cluster: String, why: String },
    /// The cluster answered something else unexpected (a 4xx kubeop did not expect).
    #[error("cluster {cluster} refused the {verb} of {resource}: {message}")]
    Refused { cluster: String, verb: &'static str, resource: String, message: String },
    /// The sealed kubeconfig cannot be opened (wrong KMS key) or no KMS key is configured.
    #[error("the kubeconfig of cluster {0} cannot be opened with the configured KMS keys")]
    Sealed(ClusterId),
    #[error(transparent)]
    Store(#[from] kubeop_store::StoreError),
}

/// A cluster as messages name it: its id, or `default`.
pub fn cluster_label(cluster: Option<&ClusterId>) -> String {
    cluster.map_or_else(|| "default".to_owned(), ToString::to_string)
}

/// What kubeop was doing when a call failed, for the message.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub cluster: &'a str,
    pub verb: &'static str,
    pub resource: &'a str,
}

impl KubeError {
    /// Maps a `kube` error: 404/409 keep their meaning, 401/403 are kubeop's own credentials
    /// failing (the operator must fix them), transport errors and 5xx mean unavailable.
    pub fn from_kube(error: kube::Error, call: Call<'_>) -> Self {
        let cluster = call.cluster.to_owned();
        match error {
            kube::Error::Api(status) => match status.code {
                404 => {
                    KubeError::NotFound(format!("{} not found on cluster {}", call.resource, call.cluster))
                }
                409 => KubeError::Conflict(format!(
                    "{} on cluster {}: {}",
                    call.resource, call.cluster, status.message
                )),
                401 | 403 => KubeError::Forbidden {
                    cluster,
                    verb: call.verb,
                    resource: call.resource.to_owned(),
                    message: status.message,
                },
                code if code >= 500 || code == 429 => {
                    KubeError::Unavailable { cluster, why: format!("it answered {code} {}", status.reason) }
                }
                _ => KubeError::Refused {
                    cluster,
                    verb: call.verb,
                    resource: call.resource.to_owned(),
                    message: status.message,
                },
            },
            other => KubeError::Unavailable { cluster, why: transport_reason(&other) },
        }
    }
}

/// The innermost cause of a transport failure ("connection refused", "deadline has elapsed"),
/// which is what a person needs; never a URL with credentials (kube puts none in errors).
fn transport_reason(error: &kube::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let reason = source.to_string();
    if reason.is_empty() { error.to_string() } else { reason }
}
