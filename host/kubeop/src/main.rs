//! The `kubeop` command: thin on purpose; everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kubeop_api::auth::{Authenticator, Caller};
use kubeop_api::http::BuildInfo;
use kubeop_config::Config;
use kubeop_core::{ProjectId, TenantId};

/// What the operator's `/version` reports.
const OPERATOR_BUILD: kubeop_operator::http::Version = kubeop_operator::http::Version {
    service: "operator",
    version: env!("CARGO_PKG_VERSION"),
    git_commit: env!("KUBEOP_GIT_COMMIT"),
    build_date: env!("KUBEOP_BUILD_DATE"),
};

/// What `/version` reports: stamped by build.rs.
const BUILD: BuildInfo = BuildInfo {
    service: "manager",
    version: env!("CARGO_PKG_VERSION"),
    git_commit: env!("KUBEOP_GIT_COMMIT"),
    build_date: env!("KUBEOP_BUILD_DATE"),
};

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
    Serve {
        /// Also run the operator's controllers in-process against the default cluster (as
        /// `operator.embedded = true`): a single binary for small setups.
        #[arg(long)]
        operator: bool,
    },
    /// Run the operator: the controllers that turn Tenant, Project and App resources into
    /// namespaces, quotas, network policies and workloads, in the cluster of the pod's
    /// ServiceAccount (or KUBECONFIG), with /healthz, /readyz, /version and /metrics on
    /// operator.metrics_addr.
    Operator,
    /// Run the admission webhook: AdmissionReview v1 over TLS on admission.addr (/validate,
    /// /mutate, /healthz, /readyz, /metrics), decided by the admission plugin, in the cluster of
    /// the pod's ServiceAccount (or KUBECONFIG). Certificates from admission.cert_file/key_file,
    /// or generated into admission.tls_secret with the CA injected into the webhook
    /// configurations.
    Admission,
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
    /// Print kubeop's CustomResourceDefinitions (Tenant, Project, App) as YAML, or write one
    /// file each into DIR (what deploy/crds/ holds).
    Crds {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Secrets at rest.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Develop plugins without a server.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum KmsCommand {
    /// Re-seal every stored secret (cluster kubeconfigs) under kms.master_key, opening them with
    /// it or with kms.previous_keys. All or nothing; run it after changing the master key.
    Rotate,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Which world a component implements, its imports and exports, size, compile time and
    /// self-check result. Fails (exit 2) when it fits no slot or fails its self-check.
    Check { file: PathBuf },
    /// Run one call of SLOT (image-policy, pricing, admission) with FILE on a JSON request and
    /// print the answer. The request is the slot's WIT record in JSON (snake_case fields).
    Run {
        slot: String,
        file: PathBuf,
        /// The request, a JSON file (`-` for standard input).
        #[arg(long, value_name = "REQUEST.json")]
        input: PathBuf,
    },
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
    match cli.command {
        Command::Openapi => {
            println!("{}", kubeop_api::http::openapi_json());
            return Ok(());
        }
        Command::Plugin(command) => return plugin(command),
        Command::Crds { dir: None } => {
            print!("{}", kubeop_crds::definitions_yaml());
            return Ok(());
        }
        Command::Crds { dir: Some(dir) } => {
            use anyhow::Context;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for crd in kubeop_crds::definitions() {
                let path = dir.join(kubeop_crds::file_name(&crd));
                std::fs::write(&path, kubeop_crds::definition_yaml(&crd))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
            return Ok(());
        }
        _ => {}
    }
    let mut config = Config::load(&cli.config_dir, cli.config.as_deref())?;
    if let Command::Serve { operator: true } = cli.command {
        config.operator.embedded = true;
    }
    // Settings whose owners are the server's crates: checked before anything runs or logs.
    kubeop_api::check_config(&config)?;
    let _log = kubeop_api::telemetry::init(&config.log).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Config => print!("{}", config.to_redacted_toml()),
        Command::Token { role, scope, ttl, subject } => {
            let caller = caller_for(role, scope.as_deref(), subject)?;
            let max_lifetime = Duration::from_secs(u64::from(config.auth.max_token_lifetime_minutes) * 60);
            anyhow::ensure!(
                ttl <= max_lifetime,
                "--ttl {}: longer than the {} the server accepts (auth.max_token_lifetime_minutes)",
                humantime::format_duration(ttl),
                humantime::format_duration(max_lifetime)
            );
            let auth = Authenticator::new(&config.signing_key()?, true, max_lifetime);
            println!("{}", auth.mint(&caller, ttl).token);
        }
        Command::Migrate => runtime()?.block_on(async {
            let store = kubeop_api::open_store(&config, &kubeop_api::metrics::Metrics::new()).await?;
            store.migrate().await?;
            tracing::info!(engine = store.engine(), "database migrated");
            anyhow::Ok(())
        })?,
        Command::Operator => runtime()?.block_on(async {
            use anyhow::Context;
            let shutdown = kubeop_api::shutdown_signal()?;
            let client = kube::Client::try_default()
                .await
                .context("no cluster: not running in a pod, and no usable KUBECONFIG")?;
            let addr = config.operator.metrics_addr.socket_addr();
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            kubeop_operator::process::run(client, &config.operator, listener, OPERATOR_BUILD, shutdown).await
        })?,
        Command::Admission => runtime()?.block_on(admission(&config))?,
        Command::Serve { .. } => runtime()?.block_on(async {
            tracing::info!(
                profile = config.profile.as_str(),
                strict = config.strict,
                auth = config.auth.require,
                "kubeop manager starting"
            );
            kubeop_api::Server::build(&config).await?.with_build_info(BUILD).run().await?;
            anyhow::Ok(())
        })?,
        Command::Kms(KmsCommand::Rotate) => runtime()?.block_on(async {
            let (resealed, total) = kubeop_api::rotate_kms(&config).await?;
            println!("re-sealed {resealed} of {total} secret(s) under the current master key");
            anyhow::Ok(())
        })?,
        Command::Openapi | Command::Plugin(_) | Command::Crds { .. } => {
            unreachable!("handled before loading the configuration")
        }
    }
    Ok(())
}

async fn admission(config: &kubeop_config::Config) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::sync::Arc;

    let shutdown = kubeop_api::shutdown_signal()?;
    let fallback = kubeop_api::policy::from_config(&config.policy)?;
    let uploads: Arc<dyn kubeop_plugins::UploadStore> = if config.admission.database {
        let store = kubeop_api::open_store(config, &kubeop_api::metrics::Metrics::new()).await?;
        Arc::new(kubeop_api::uploads::StoreUploads(store))
    } else {
        Arc::new(kubeop_plugins::NoUploads)
    };
    let (metrics, plugin_metrics) = kubeop_webhook::server::Metrics::with_plugins()?;
    // No compile cache on disk: the pod's root filesystem is read-only, and the admission
    // component compiles in milliseconds.
    let plugins = kubeop_plugins::Plugins::start(&config.plugins, None, uploads, plugin_metrics).await?;
    let client = kube::Client::try_default()
        .await
        .context("no cluster: not running in a pod, and no usable KUBECONFIG")?;
    let addr = config.admission.addr.socket_addr();
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    kubeop_webhook::process::run(client, &config.admission, plugins, metrics, fallback, listener, shutdown)
        .await
}

fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    use anyhow::Context;
    use kubeop_plugins::{self as plugins, SlotKind};

    let read =
        |file: &PathBuf| std::fs::read(file).with_context(|| format!("cannot read {}", file.display()));
    match command {
        PluginCommand::Check { file } => {
            let bytes = read(&file)?;
            let report = plugins::inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("file:         {}", file.display());
            println!("size:         {} bytes", report.size);
            println!("sha256:       {}", report.sha256);
            println!("compile time: {:.1} ms", report.compile_time.as_secs_f64() * 1000.0);
            println!("imports:");
            let width = report.imports.iter().map(String::len).max().unwrap_or(0);
            for import in &report.imports {
                match plugins::grant(import) {
                    Some(grant) => println!("  {import:width$}  linked, {grant}"),
                    None => println!("  {import:width$}  REFUSED: kubeop does not provide it"),
                }
            }
            println!("exports:      {}", report.exports.join(", "));
            if report.fits.is_empty() {
                println!("world:        none of kubeop's (image-policy, pricing, admission)");
                anyhow::bail!("{} implements no plugin world", file.display());
            }
            for (kind, check) in &report.fits {
                match check {
                    Ok(()) => println!("world:        {kind} (self-check passed)"),
                    Err(why) => println!("world:        {kind} (self-check FAILED: {why})"),
                }
            }
            if report.fits.iter().all(|(_, check)| check.is_err()) {
                anyhow::bail!("{} fails its self-check", file.display());
            }
        }
        PluginCommand::Run { slot, file, input } => {
            let kind = SlotKind::parse(&slot)
                .with_context(|| format!("no slot `{slot}` (slots: image-policy, pricing, admission)"))?;
            let bytes = read(&file)?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the request from standard input")?
            } else {
                std::fs::read_to_string(&input).with_context(|| format!("cannot read {}", input.display()))?
            };
            let request: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", input.display()))?;
            let plugin = plugins::Standalone::load(kind, &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let answer = plugin.call_json(request).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
    }
    Ok(())
}

/// The roles a token can carry.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Admin,
    Tenant,
    Project,
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
