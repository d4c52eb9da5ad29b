//! Why a reconcile failed: for the retry (every error is retried with backoff), the metrics
//! (`metric_label`), and the Ready condition and Warning event users read (`reason`, `Display`).

use kube::runtime::finalizer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a call, or could not be reached.
    #[error("could not {verb} {kind} {name}: {source}")]
    Kube {
        verb: &'static str,
        kind: String,
        /// `namespace/name`, or the name of a cluster-scoped object.
        name: String,
        /// Boxed: kube's error is large, and every `Result` here would carry its size.
        #[source]
        source: Box<kube::Error>,
    },
    /// An App whose Project does not exist (yet, or any more) in its namespace.
    #[error("project {project} does not exist or does not own namespace {namespace}")]
    ProjectMissing { project: String, namespace: String },
    /// A Project naming a namespace that kubeop does not manage or that another project has:
    /// taking it over would put a stranger's workloads under this project's policies, and
    /// deleting the Project would delete them.
    #[error("namespace {namespace} is not this project's: {why}")]
    NamespaceTaken { namespace: String, why: String },
    /// The operator stopped before it could read the platform policy: nothing is written
    /// without knowing the quota it allows.
    #[error("the platform policy has not been read (the operator is stopping)")]
    PolicyUnknown,
    /// The platform policy's `quotaMax` is not a Kubernetes quantity.
    #[error("the platform policy's quotaMax {0:?} is not a Kubernetes quantity")]
    InvalidPolicy(String),
    /// The finalizer machinery itself failed (an object without a name, say).
    #[error("finalizer: {0}")]
    Finalizer(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The `error` label of `kubeop_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube_api",
            Error::ProjectMissing { .. } => "project_missing",
            Error::NamespaceTaken { .. } => "namespace_taken",
            Error::PolicyUnknown => "policy_unknown",
            Error::InvalidPolicy(_) => "invalid_policy",
            Error::Finalizer(_) => "finalizer",
        }
    }

    /// The reason of the `Ready=False` condition and of the Warning event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApplyFailed",
            Error::ProjectMissing { .. } => "ProjectMissing",
            Error::NamespaceTaken { .. } => "NamespaceTaken",
            Error::PolicyUnknown => "PolicyUnknown",
            Error::InvalidPolicy(_) => "InvalidPolicy",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }

    /// Wraps a failed API call: `map_err(Error::kube("apply", "Deployment", name))`.
    pub(crate) fn kube(verb: &'static str, kind: &str, name: String) -> impl FnOnce(kube::Error) -> Error {
        let kind = kind.to_owned();
        move |source| Error::Kube { verb, kind, name, source: Box::new(source) }
    }

    /// The finalizer helper's error, flattened: our own errors come back as they were.
    pub(crate) fn from_finalizer(error: finalizer::Error<Error>, kind: &str, name: &str) -> Error {
        match error {
            finalizer::Error::ApplyFailed(error) | finalizer::Error::CleanupFailed(error) => error,
            finalizer::Error::AddFinalizer(source) | finalizer::Error::RemoveFinalizer(source) => {
                Error::kube("update the finalizers of", kind, name.to_owned())(source)
            }
            other => Error::Finalizer(other.to_string()),
        }
    }
}
