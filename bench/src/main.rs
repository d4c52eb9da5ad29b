//! kubeop benchmarks. Each prints its figures next to a baseline measured in the same run, so
//! the ratio means something on a shared, noisy machine.
//!
//! `cargo run --release -p kubeop-bench -- http` — requests/s and latency of the manager API.
//! `cargo run --release -p kubeop-bench -- plugins` — plugin call cost, its share of
//! `POST /v1/apps`, and a swap under load on two replicas.
//! `cargo run --release -p kubeop-bench -- plugins --lang` — the same plugins written in Rust,
//! JavaScript and Python, per slot: size, compile, call cost, memory, and end to end.

mod admission;
mod attack;
mod billing;
mod bootstrap;
mod http;
mod kube;
mod languages;
mod load;
mod logs;
mod operator;
mod plugins;
mod procfs;
mod server;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "kubeop benchmarks")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// GET /v1/tenants/{id} and POST /v1/tenants on SQLite and PostgreSQL, against GET /healthz.
    Http(http::Options),
    /// The image-policy plugin: call cost against native Rust, POST /v1/apps with and without
    /// it, and a swap under load on two replicas sharing PostgreSQL. With --lang: plugins in
    /// Rust, JavaScript and Python side by side in each slot.
    Plugins(plugins::Options),
    /// Usage ingest with 1,000-point batches, and invoices over a full month.
    Billing(billing::Options),
    /// The security review's attacks on the real binary: held connections, oversized bodies.
    Attack(attack::Options),
    /// A burst of 1,000 project creations reaching the HTTPS fake cluster, POST latency with the
    /// reconciler on against off, and kubeconfig issuance.
    Kube(kube::Options),
    /// POST /v1/platform/bootstrap's applies against the HTTPS fake: a fresh cluster, then the
    /// same cluster again, against one round trip.
    Bootstrap(bootstrap::Options),
    /// `kubeop operator` as its own process: Projects with one App each created at once on the
    /// HTTPS fake, until all are Ready; reconciles per second and resident memory.
    Operator(operator::Options),
    /// `kubeop admission` as its own process: AdmissionReview round trips over HTTPS at a fixed
    /// rate and at the peak, with the built-in admission plugin and with a no-op one.
    Admission(admission::Options),
    /// The access log's cost: `kubeop serve` with the production profile, its access log off
    /// (filter `warn`) and on (`info`, to a file), alternately.
    Logs(logs::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Http(options) => http::run(options),
        Bench::Plugins(options) => plugins::run(options),
        Bench::Billing(options) => billing::run(options),
        Bench::Logs(options) => logs::run(options),
        Bench::Attack(options) => attack::run(options),
        Bench::Kube(options) => kube::run(options),
        Bench::Bootstrap(options) => bootstrap::run(options),
        Bench::Operator(options) => operator::run(options),
        Bench::Admission(options) => admission::run(options),
    }
}
