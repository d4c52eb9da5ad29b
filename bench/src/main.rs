//! kubeop benchmarks. Each prints its figures next to a baseline measured in the same run, so
//! the ratio means something on a shared, noisy machine.
//!
//! `cargo run --release -p kubeop-bench -- http` — requests/s and latency of the manager API.

mod http;
mod load;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Http(options) => http::run(options),
    }
}
