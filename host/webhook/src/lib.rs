//! `kubeop admission`, the admission webhook. So far: its TLS certificates ([`certs`]), generated
//! and kept in a Secret when no cert-manager provides them, with the CA written into the webhook
//! configurations' `caBundle` (what `GET /v1/platform/status` checks).

pub mod certs;
