//! The manager's side of Kubernetes: the clusters tenants live on ([`clusters`]), the objects
//! the database implies ([`resources`]), the background reconciler that keeps each cluster in
//! step ([`reconciler`]), project kubeconfigs with real short-lived tokens ([`kubeconfigs`]) and
//! kubeop's own in-cluster parts ([`platform`]: bootstrap, status, autoscale).
//! Uses kubeop's store, never the HTTP layer.

pub mod clusters;
pub mod cronjobs;
pub mod error;
pub mod kubeconfigs;
pub mod platform;
pub mod reconciler;
pub mod resources;
pub mod status;

pub use clusters::{ClusterStatus, Clusters, Connected, parse_kubeconfig};
pub use error::KubeError;
pub use reconciler::{Reconciler, ReconcilerMetrics};
pub use status::{Statuses, SyncState, SyncStatus};
