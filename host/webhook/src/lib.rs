//! `kubeop admission`, the admission webhook: the API server sends it what is created or changed
//! in kubeop's namespaces as AdmissionReview v1 over TLS, and the admission plugin decides.
//!
//! - [`review`]: one review, from the AdmissionReview to the plugin's answer (shared with the
//!   manager's `POST /v1/admission/review`).
//! - [`cluster`]: namespace owners, served hosts and the policy, watched.
//! - [`certs`]: the CA and serving certificate, generated into a Secret and injected into the
//!   webhook configurations when no cert-manager provides them.
//! - [`server`], [`process`]: HTTPS and the process around it.

pub mod certs;
pub mod cluster;
pub mod process;
pub mod review;
pub mod server;
