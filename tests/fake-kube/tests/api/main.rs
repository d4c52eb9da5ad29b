//! Black-box tests: the real kube::Client (and kubectl) against the fake API server.

mod helpers;

mod apply;
mod auth;
mod crd;
mod crud;
mod watch;
