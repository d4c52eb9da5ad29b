//! The `kubeop` command: thin on purpose; everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kubeop::auth::{Authenticator, Caller, Role};
use kubeop::config::Config;
use kubeop::domain::{ProjectId, TenantId};

#[derive(Parser)]
#[command(name = "kubeop", version, about = "Control plane for multi-tenant Kubernetes platforms")]
struct Cli {
    /// A TOML file layered over config/<profile>.toml (and under the environment).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The directory with default.toml and the profile files.
    #[arg(long, global = true, value_name = "DIR", default_value = "config", env = "KUBEOP_CONFIG_DIR")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the manager REST API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint an API token with the configured signing key.
    Token {
        #[arg(long, value_enum)]
        role: Role,
        /// The tenant id (role tenant) or project id (role project); `tenant:`/`project:` prefixes allowed.
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The `sub` claim: who the token is for.
        #[arg(long, default_value = "operator")]
        subject: String,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kubeop: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        println!("{}", kubeop::http::openapi_json());
        return Ok(());
    }
    let config = Config::load(&cli.config_dir, cli.config.as_deref())?;
    kubeop::telemetry::init(&config.log).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Config => print!("{}", config.to_redacted_toml()),
        Command::Token { role, scope, ttl, subject } => {
            let caller = caller_for(role, scope.as_deref(), subject)?;
            let auth = Authenticator::new(&config.signing_key()?, true);
            println!("{}", auth.mint(&caller, ttl).token);
        }
        Command::Migrate => runtime()?.block_on(async {
            let store = kubeop::open_store(&config, &kubeop::metrics::Metrics::new()).await?;
            store.migrate().await?;
            tracing::info!(engine = store.engine(), "database migrated");
            anyhow::Ok(())
        })?,
        Command::Serve => runtime()?.block_on(async {
            let server = kubeop::Server::build(&config).await?;
            tracing::info!(
                addr = %server.local_addr(),
                profile = config.profile.as_str(),
                database = server.state().store.engine(),
                auth = config.auth.require,
                "kubeop manager listening"
            );
            server.run().await?;
            anyhow::Ok(())
        })?,
        Command::Openapi => unreachable!("handled before loading the configuration"),
    }
    Ok(())
}

fn caller_for(role: Role, scope: Option<&str>, subject: String) -> anyhow::Result<Caller> {
    let scope = scope.map(|s| s.split_once(':').map_or(s, |(_, id)| id));
    Ok(match (role, scope) {
        (Role::Admin, _) => Caller::Admin { subject },
        (Role::Tenant, Some(id)) => Caller::Tenant { subject, tenant: TenantId::parse(id)? },
        (Role::Project, Some(id)) => Caller::Project { subject, project: ProjectId::parse(id)? },
        (_, None) => anyhow::bail!("--role {role:?} needs --scope with the id it is for"),
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
