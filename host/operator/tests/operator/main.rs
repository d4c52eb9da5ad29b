//! The operator against the project's fake API server: what a Tenant, a Project and an App
//! become, drift repair, policy changes, deletion and retries.

mod election;
mod helpers;
mod lifecycle;
mod resilience;
