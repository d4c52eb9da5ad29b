//! The manager's side of Kubernetes: the clusters tenants live on ([`clusters`]), the objects
//! the database implies ([`resources`]), the background reconciler that keeps each cluster in
//! step ([`reconciler`]) and project kubeconfigs with real short-lived tokens ([`kubeconfigs`]).
//! Uses kubeop's store, never the HTTP layer.

pub mod clusters;
pub mod error;
pub mod kubeconfigs;
pub mod reconciler;
pub mod resources;
pub mod status;

pub use clusters::{ClusterStatus, Clusters, Connected, parse_kubeconfig};
pub use error::KubeError;
pub use reconciler::{Reconciler, ReconcilerMetrics};
pub use status::{Statuses, SyncState, SyncStatus};
