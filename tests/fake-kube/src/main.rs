//! `fake-kube`: a fake Kubernetes API server over HTTPS, to try kubeop without a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kubeop_fake_kube::FakeKube;

#[derive(Parser)]
#[command(about = "A fake Kubernetes API server (test support; keeps everything in memory)")]
struct Args {
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Write an admin kubeconfig here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = FakeKube::new();
    let https = fake.serve_https_on(args.addr).await?;
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, https.admin_kubeconfig())?;
        eprintln!("admin kubeconfig written to {}", path.display());
    }
    println!("{}", https.url);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
