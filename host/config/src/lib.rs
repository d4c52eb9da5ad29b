//! Configuration, layered with figment: compiled defaults → `config/default.toml` →
//! `config/<profile>.toml` (`KUBEOP_PROFILE`, default `development`; any name with a file) →
//! `--config FILE` → the environment. The seed's variable names (`KUBEOP_HTTP_ADDR`, …) map onto
//! their keys; every other key is `KUBEOP_<SECTION>__<KEY>`. Every value is read from its own
//! text (see `sources`). This crate imports nothing of the server: each setting's owner checks
//! what only it understands, with [`ConfigError::invalid`] naming the variable.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod secrets;
mod sources;

pub use secrets::{KMS_KEY_BYTES, KmsKey, MIN_SIGNING_KEY_BYTES, SigningKey, random_key, redacted_url};
use secrets::{kms_key_list, optional_kms_key, optional_signing_key, redact_password};
pub use sources::env_name;
use sources::{Environment, TomlText};

/// The files as shipped, used when there is no `config/` directory beside the process (an
/// installed binary run from anywhere behaves exactly like a checkout).
const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../../config/default.toml")),
    ("development", include_str!("../../../config/development.toml")),
    ("production", include_str!("../../../config/production.toml")),
];

/// The profile used when `KUBEOP_PROFILE` is unset.
pub const DEFAULT_PROFILE: &str = "development";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Chosen by `KUBEOP_PROFILE`, never by a file.
    #[serde(skip)]
    pub profile: String,
    /// Production safeguards: auth required, a signing key required, JSON logs, no generated
    /// keys. A profile file opts in (`production.toml` does).
    pub strict: bool,
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub db: DbConfig,
    pub auth: AuthConfig,
    pub kms: KmsConfig,
    pub log: LogConfig,
    pub policy: PolicyConfig,
    pub plugins: PluginsConfig,
    pub billing: BillingConfig,
    pub kube: KubeConfig,
    pub operator: OperatorConfig,
    pub admission: AdmissionConfig,
}

/// `kubeop operator` (and `kubeop serve --operator`): the in-cluster controllers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Run the controllers inside `kubeop serve`, against the default cluster.
    pub embedded: bool,
    /// Where `kubeop operator` serves /healthz, /readyz, /version and /metrics.
    pub metrics_addr: ListenAddr,
    /// The field manager of every object the operator applies.
    pub field_manager: String,
    /// Pod Security Admission level of project namespaces: restricted, baseline or privileged.
    pub pod_security_level: String,
    /// The ingress controller's namespace, which may reach every project's pods.
    pub ingress_namespace: String,
    /// `ingressClassName` of apps' Ingresses; empty: the cluster's default class.
    pub ingress_class: String,
    /// Where cluster DNS runs (pods labelled k8s-app=kube-dns), which every project may reach.
    pub dns_namespace: String,
    /// A project's quota while the platform policy sets no quotaMax.
    pub default_quota_cpu: String,
    pub default_quota_memory: String,
    /// One replica acts at a time, holding a coordination.k8s.io Lease.
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    /// A leader that has not renewed its lease for this long is replaced; it renews
    /// `lease_grace_secs` before that.
    pub lease_duration_secs: u64,
    pub lease_grace_secs: u64,
    /// First and longest wait before retrying a failed reconcile (doubling in between), in ms.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

/// `kubeop admission`: the admission webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Where the webhook serves HTTPS: /validate, /mutate, /healthz, /readyz, /metrics.
    pub addr: ListenAddr,
    /// Certificate and key files (PEM, e.g. mounted from cert-manager), re-read when they change.
    /// Both empty: the certificates are generated and kept in `tls_secret`.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The `kubernetes.io/tls` Secret in `namespace` holding the generated CA and certificate.
    pub tls_secret: String,
    /// The namespace of the webhook, its Service and Secret.
    pub namespace: String,
    /// The Service the API server calls (the certificate is issued for its DNS names).
    pub service: String,
    /// The webhook configurations (validating and mutating) that get the generated CA.
    pub webhook_configuration: String,
    /// What a review gets when the plugin fails: `deny` (with the reason) or `allow` (with a
    /// warning).
    pub failure_mode: String,
    /// Read uploaded plugins from the manager's database (`db.url`), as the manager's replicas
    /// do, so `PUT /v1/platform/plugins/admission` reaches the webhook. Off: `plugins.dir` only.
    pub database: bool,
    /// The largest AdmissionReview accepted, in bytes.
    pub max_review_bytes: usize,
}

/// Admission failure modes.
pub const ADMISSION_FAILURE_MODES: [&str; 2] = ["deny", "allow"];

/// Pod Security Admission levels.
pub const POD_SECURITY_LEVELS: [&str; 3] = ["restricted", "baseline", "privileged"];

/// The Kubernetes clusters the manager writes to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeConfig {
    /// The cluster of tenants registered without one.
    pub default: DefaultCluster,
    /// The kubeconfig file of `default = "kubeconfig"`; empty: `KUBECONFIG`, then `~/.kube/config`.
    pub kubeconfig: PathBuf,
    /// Whether this replica runs the reconciler (one replica per cluster reconciles at a time
    /// anyway; `false` keeps a replica to serving requests).
    pub reconciler: bool,
    /// The field manager of every server-side apply.
    pub field_manager: String,
    /// Longest wait for one Kubernetes API call, in milliseconds.
    pub request_timeout_ms: u64,
    /// How often the reconciler looks for work when nothing told it, in milliseconds.
    pub reconcile_interval_ms: u64,
    /// First and longest wait before retrying a failed apply (doubling in between), in ms.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// Lifetime of an issued kubeconfig's token unless `?ttlMinutes=` says otherwise.
    pub kubeconfig_ttl_minutes: u32,
    /// The longest `?ttlMinutes=` accepted.
    pub max_kubeconfig_ttl_minutes: u32,
    /// The image bootstrap installs; empty: `ghcr.io/kubeop/kubeop:<version>`.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// The webhook configurations' `failurePolicy`: `Fail` or `Ignore`.
    pub webhook_failure_policy: String,
}

/// Image pull policies Kubernetes knows.
pub const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
/// Webhook failure policies Kubernetes knows.
pub const FAILURE_POLICIES: [&str; 2] = ["Fail", "Ignore"];

/// Where tenants without a registered cluster go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultCluster {
    /// No default: such tenants have no cluster (cluster endpoints answer 503).
    None,
    /// The cluster kubeop runs in (its ServiceAccount).
    Incluster,
    /// The cluster of a kubeconfig file (`kube.kubeconfig`, `KUBECONFIG`, `~/.kube/config`).
    Kubeconfig,
}

/// Usage metering and invoices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Price of one milli-CPU for one hour, for tenants without rates of their own: a decimal,
    /// kept as written (the billing owner parses it exactly).
    pub rate_cpu_milli: String,
    /// Price of one MiB of memory for one hour, for tenants without rates of their own.
    pub rate_mem_mib: String,
    /// ISO 4217 code of invoice amounts.
    pub currency: String,
    /// Digits after the decimal point of an invoice amount (the currency's minor unit).
    pub precision: u8,
    /// Points older than this many days are refused.
    pub max_age_days: u32,
    /// Points more than this many seconds in the future are refused.
    pub max_future_secs: u32,
    /// Most points in one ingest request.
    pub max_batch_points: usize,
    /// The most milli-CPU one point may carry (for one hour); more is refused.
    pub max_point_cpu_milli: i64,
    /// The most MiB of memory one point may carry.
    pub max_point_mem_mib: i64,
    /// Days an `Idempotency-Key` is remembered (at least 35).
    pub idempotency_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: ListenAddr,
    pub body_limit_bytes: usize,
    pub shutdown_grace_secs: u64,
    /// A request's head must arrive within this long of its first byte (of the connection's
    /// opening, for the first request).
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no traffic for this long is closed.
    pub idle_timeout_ms: u64,
    /// The longest a request may take once its head has arrived (body included): 408 after.
    pub request_timeout_ms: u64,
    /// The most connections open at once; further ones are answered 503 and closed. Kept below
    /// the process's file descriptor limit whatever is set here.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    #[serde(serialize_with = "redact_password")]
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub read_cache_ttl_ms: u64,
    pub read_cache_capacity: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub require: bool,
    #[serde(default, deserialize_with = "optional_signing_key", skip_serializing_if = "Option::is_none")]
    pub jwt_signing_key: Option<SigningKey>,
    pub max_token_ttl_minutes: u32,
    /// Tokens living longer than this (`exp` − `iat`) are refused, whoever signed them.
    pub max_token_lifetime_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    #[serde(default, deserialize_with = "optional_kms_key", skip_serializing_if = "Option::is_none")]
    pub master_key: Option<KmsKey>,
    /// Earlier master keys: secrets they sealed still open, and `kubeop kms rotate` re-wraps
    /// them under `master_key`. Base64, a TOML array or comma-separated.
    #[serde(default, deserialize_with = "kms_key_list")]
    pub previous_keys: Vec<KmsKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
    /// A file to append the log to; empty: standard error.
    pub file: PathBuf,
}

/// The platform policy in force until one is stored with `PUT /v1/platform/policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(deserialize_with = "comma_list")]
    pub image_allowlist: Vec<String>,
    #[serde(deserialize_with = "comma_list")]
    pub egress_baseline: Vec<String>,
    pub quota_max_requests_cpu: String,
    pub quota_max_requests_memory: String,
    /// Hosts apps, Ingresses and HTTPRoutes may serve (`shop.example.com`, `*.apps.example.com`).
    #[serde(deserialize_with = "comma_list")]
    pub allowed_hosts: Vec<String>,
    /// Service types allowed besides ClusterIP (NodePort, LoadBalancer, ExternalName).
    #[serde(deserialize_with = "comma_list")]
    pub allowed_service_types: Vec<String>,
    /// Admission rules whose denials are only warnings.
    #[serde(deserialize_with = "comma_list")]
    pub audit_rules: Vec<String>,
}

/// A list given as a TOML array or, from the environment, as comma-separated text.
fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Text(String),
        Items(Vec<String>),
    }
    Ok(match List::deserialize(deserializer)? {
        List::Text(text) => {
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
        List::Items(items) => items,
    })
}

/// The WebAssembly plugin host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// A directory with `<slot>.wasm` files that replace the built-in plugins; empty: none.
    pub dir: PathBuf,
    /// Longest a plugin call may run, in milliseconds, unless its slot says otherwise.
    pub deadline_ms: u64,
    /// Most memory one plugin call may use, in MiB, unless its slot says otherwise.
    pub memory_mib: u64,
    /// Largest output (reasons, invoice lines, messages) a call may return, in bytes.
    pub max_output_bytes: usize,
    /// Plugin calls running at once; further calls wait.
    pub max_concurrent_calls: usize,
    /// Largest component accepted by `PUT /v1/platform/plugins/{slot}`, in bytes.
    pub max_upload_bytes: usize,
    /// How often each replica checks the database and `dir` for new plugins, in milliseconds.
    pub sync_interval_ms: u64,
    pub image_policy: SlotConfig,
    pub pricing: SlotConfig,
    pub admission: SlotConfig,
}

/// Per-slot overrides of the plugin limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: DEFAULT_PROFILE.to_owned(),
            strict: false,
            data_dir: PathBuf::from(".kubeop"),
            http: HttpConfig {
                addr: ListenAddr::parse("localhost:18080").expect("a literal address"),
                body_limit_bytes: 1024 * 1024,
                shutdown_grace_secs: 20,
                header_timeout_ms: 5_000,
                idle_timeout_ms: 60_000,
                request_timeout_ms: 30_000,
                max_connections: 4096,
            },
            db: DbConfig {
                url: String::new(),
                max_connections: 16,
                acquire_timeout_secs: 5,
                read_cache_ttl_ms: 1000,
                read_cache_capacity: 100_000,
            },
            auth: AuthConfig {
                require: true,
                jwt_signing_key: None,
                max_token_ttl_minutes: 10_080,
                max_token_lifetime_minutes: 43_200,
            },
            kms: KmsConfig { master_key: None, previous_keys: Vec::new() },
            log: LogConfig { format: LogFormat::Pretty, filter: "info".into(), file: PathBuf::new() },
            policy: PolicyConfig::default(),
            billing: BillingConfig {
                rate_cpu_milli: "0".into(),
                rate_mem_mib: "0".into(),
                currency: "USD".into(),
                precision: 2,
                max_age_days: 35,
                max_future_secs: 300,
                max_batch_points: 10_000,
                max_point_cpu_milli: 1_000_000_000,
                max_point_mem_mib: 1_000_000_000,
                idempotency_days: 35,
            },
            kube: KubeConfig {
                default: DefaultCluster::None,
                kubeconfig: PathBuf::new(),
                reconciler: true,
                field_manager: "kubeop".into(),
                request_timeout_ms: 10_000,
                reconcile_interval_ms: 1_000,
                retry_min_ms: 500,
                retry_max_ms: 60_000,
                kubeconfig_ttl_minutes: 60,
                max_kubeconfig_ttl_minutes: 1_440,
                image: String::new(),
                image_pull_policy: "IfNotPresent".into(),
                webhook_failure_policy: "Fail".into(),
            },
            operator: OperatorConfig {
                embedded: false,
                metrics_addr: ListenAddr::parse("127.0.0.1:8080").expect("a literal address"),
                field_manager: "kubeop-operator".into(),
                pod_security_level: "restricted".into(),
                ingress_namespace: "ingress-nginx".into(),
                ingress_class: "nginx".into(),
                dns_namespace: "kube-system".into(),
                default_quota_cpu: "2".into(),
                default_quota_memory: "4Gi".into(),
                leader_election: true,
                lease_name: "kubeop-operator".into(),
                lease_namespace: "kubeop-system".into(),
                lease_duration_secs: 15,
                lease_grace_secs: 5,
                retry_min_ms: 500,
                retry_max_ms: 60_000,
            },
            admission: AdmissionConfig {
                addr: ListenAddr::parse("127.0.0.1:8443").expect("a literal address"),
                cert_file: PathBuf::new(),
                key_file: PathBuf::new(),
                tls_secret: "kubeop-admission-tls".into(),
                namespace: "kubeop-system".into(),
                service: "kubeop-admission".into(),
                webhook_configuration: "kubeop-admission".into(),
                failure_mode: "deny".into(),
                database: false,
                max_review_bytes: 8 * 1024 * 1024,
            },
            plugins: PluginsConfig {
                dir: PathBuf::new(),
                deadline_ms: 50,
                memory_mib: 32,
                max_output_bytes: 64 * 1024,
                max_concurrent_calls: 16,
                max_upload_bytes: 64 * 1024 * 1024,
                sync_interval_ms: 1000,
                image_policy: SlotConfig::default(),
                pricing: SlotConfig::default(),
                admission: SlotConfig::default(),
            },
        }
    }
}

/// Why the configuration cannot be used, as one line that names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// The value of `key` (`section.key`) is unusable: the message names its variable. For the
    /// owners of a setting, which check what only they understand.
    pub fn invalid(key: &str, why: impl std::fmt::Display) -> Self {
        Self(format!("{}: {why}", env_name(key)))
    }
}

impl Config {
    /// Reads every layer. `dir` holds `default.toml` and the profile files; when it does not exist
    /// the copies built into the binary are used (for the shipped profiles).
    pub fn load(dir: &Path, file: Option<&Path>) -> Result<Self, ConfigError> {
        let profile = match std::env::var("KUBEOP_PROFILE") {
            Ok(name) if !name.is_empty() => name,
            _ => DEFAULT_PROFILE.to_owned(),
        };
        Self::load_from(dir, &profile, file, Environment::from_process())
    }

    /// The configuration `profile` gives with `variables` as the environment, for tools that
    /// run a server exactly as a profile configures it (the benchmarks).
    pub fn load_profile(dir: &Path, profile: &str, variables: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let vars = variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self::load_from(dir, profile, None, Environment::new(vars))
    }

    fn load_from(
        dir: &Path,
        profile: &str,
        file: Option<&Path>,
        env: Environment,
    ) -> Result<Self, ConfigError> {
        let valid_name = !profile.is_empty()
            && profile.len() <= 63
            && profile.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(ConfigError(format!(
                "KUBEOP_PROFILE: `{profile}` is not a profile name (lower-case letters, digits, `-` and `_`)"
            )));
        }
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(layer(dir, "default")?)
            .merge(layer(dir, profile)?);
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!("--config: no file at {}", file.display())));
            }
            figment = figment.merge(TomlText::file(file));
        }
        // Lossy: a number or a boolean a setting needs is read from the text that gives it.
        let mut config: Config = figment.merge(env).extract_lossy().map_err(describe)?;
        config.profile = profile.to_owned();
        config.check()?;
        Ok(config)
    }

    /// Rules that involve more than one key, and the safeguards of a strict profile.
    fn check(&self) -> Result<(), ConfigError> {
        if self.strict {
            let refuse = |key: &str, why: String| {
                Err(ConfigError::invalid(key, format!("the {} profile {why} (it is strict)", self.profile)))
            };
            if !self.auth.require {
                return refuse("auth.require", "refuses to run with auth off".into());
            }
            if self.auth.jwt_signing_key.is_none() {
                return refuse(
                    "auth.jwt_signing_key",
                    format!("needs a signing key (base64 of at least {MIN_SIGNING_KEY_BYTES} random bytes)"),
                );
            }
            if self.log.format != LogFormat::Json {
                return refuse("log.format", "logs JSON for the log collectors, not `pretty`".into());
            }
        }
        if self.auth.max_token_ttl_minutes == 0 {
            return Err(ConfigError::invalid("auth.max_token_ttl_minutes", "must be at least 1"));
        }
        if self.auth.max_token_lifetime_minutes < self.auth.max_token_ttl_minutes {
            return Err(ConfigError::invalid(
                "auth.max_token_lifetime_minutes",
                "must be at least auth.max_token_ttl_minutes (tokens the server mints must be accepted)",
            ));
        }
        for (key, value) in [
            ("http.header_timeout_ms", self.http.header_timeout_ms),
            ("http.idle_timeout_ms", self.http.idle_timeout_ms),
            ("http.request_timeout_ms", self.http.request_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            ("kube.request_timeout_ms", self.kube.request_timeout_ms),
            ("kube.reconcile_interval_ms", self.kube.reconcile_interval_ms),
            ("kube.retry_min_ms", self.kube.retry_min_ms),
            ("kube.kubeconfig_ttl_minutes", u64::from(self.kube.kubeconfig_ttl_minutes)),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.kube.retry_max_ms < self.kube.retry_min_ms {
            return Err(ConfigError::invalid("kube.retry_max_ms", "must be at least kube.retry_min_ms"));
        }
        if self.kube.max_kubeconfig_ttl_minutes < self.kube.kubeconfig_ttl_minutes {
            return Err(ConfigError::invalid(
                "kube.max_kubeconfig_ttl_minutes",
                "must be at least kube.kubeconfig_ttl_minutes",
            ));
        }
        if !PULL_POLICIES.contains(&self.kube.image_pull_policy.as_str()) {
            return Err(ConfigError::invalid(
                "kube.image_pull_policy",
                "must be Always, IfNotPresent or Never",
            ));
        }
        if !FAILURE_POLICIES.contains(&self.kube.webhook_failure_policy.as_str()) {
            return Err(ConfigError::invalid("kube.webhook_failure_policy", "must be Fail or Ignore"));
        }
        if self.kube.field_manager.is_empty() || self.kube.field_manager.len() > 128 {
            return Err(ConfigError::invalid("kube.field_manager", "must be 1 to 128 characters"));
        }
        if self.db.max_connections == 0 {
            return Err(ConfigError::invalid("db.max_connections", "must be at least 1"));
        }
        self.operator.validate()?;
        self.admission.validate()
    }

    /// The database to open: the configured URL, or an SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.db.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("kubeop.db").display())
        } else {
            self.db.url.clone()
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = serde_json::to_value(self).expect("the configuration serialises");
        shown
            .as_object_mut()
            .expect("a struct is an object")
            .insert("profile".into(), self.profile.clone().into());
        let serde_json::Value::Object(fields) = shown else { unreachable!("a struct is an object") };
        let mut document = toml_edit::DocumentMut::new();
        // Plain keys first, then one table per section, as a person would write the file.
        for (key, value) in fields.iter().filter(|(_, v)| !v.is_object()) {
            if let Some(value) = toml_value(value) {
                document[key.as_str()] = toml_edit::value(value);
            }
        }
        for (key, value) in fields.iter().filter(|(_, v)| v.is_object()) {
            document[key.as_str()] = toml_edit::Item::Table(toml_table(value));
        }
        document.to_string()
    }
}

fn toml_table(value: &serde_json::Value) -> toml_edit::Table {
    let mut table = toml_edit::Table::new();
    for (key, value) in value.as_object().into_iter().flatten() {
        if value.is_object() {
            table.insert(key, toml_edit::Item::Table(toml_table(value)));
        } else if let Some(value) = toml_value(value) {
            table.insert(key, toml_edit::value(value));
        }
    }
    table
}

/// A JSON scalar or array as TOML; `None` for null (TOML has no null: the key is left out).
fn toml_value(value: &serde_json::Value) -> Option<toml_edit::Value> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Array(items) => {
            items.iter().filter_map(toml_value).collect::<toml_edit::Array>().into()
        }
        serde_json::Value::Object(_) => toml_edit::Value::InlineTable(toml_table(value).into_inline_table()),
    })
}

/// `<dir>/<name>.toml`; without the directory, the copy built into the binary. A profile with
/// no file is refused, naming the file looked for.
fn layer(dir: &Path, name: &str) -> Result<TomlText, ConfigError> {
    let path = dir.join(format!("{name}.toml"));
    if dir.is_dir() {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "KUBEOP_PROFILE: no file {} for the profile `{name}`",
                path.display()
            )));
        }
        return Ok(TomlText::file(&path));
    }
    match EMBEDDED.iter().find(|(shipped, _)| *shipped == name) {
        Some((_, text)) => Ok(TomlText::shipped(name, text)),
        None => Err(ConfigError(format!(
            "KUBEOP_PROFILE: no file {} for the profile `{name}` (and it is not one built into the binary: {})",
            path.display(),
            EMBEDDED.iter().filter(|(n, _)| *n != "default").map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn describe(error: figment::Error) -> ConfigError {
    let error = error.into_iter().next().expect("a figment error holds at least one error");
    let path = error.path.join(".");
    let source = error.metadata.as_ref().map(|m| m.name.to_string()).unwrap_or_default();
    let place = if path.is_empty() { source } else { format!("{} ({path}, from {source})", env_name(&path)) };
    ConfigError(format!("{place}: {}", error.kind))
}

/// Where the manager listens. Accepts `host:port`, `ip:port` and Go's `:port` (all interfaces).
#[derive(Debug, Clone)]
pub struct ListenAddr {
    written: String,
    resolved: SocketAddr,
}

impl ListenAddr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let spelled = if raw.starts_with(':') { format!("0.0.0.0{raw}") } else { raw.to_owned() };
        let candidates: Vec<SocketAddr> = spelled
            .to_socket_addrs()
            .map_err(|e| format!("`{raw}` is not an address to listen on (host:port): {e}"))?
            .collect();
        // `localhost` resolves to ::1 and 127.0.0.1; IPv4 keeps `curl 127.0.0.1:…` working too.
        let resolved = candidates
            .iter()
            .find(|a| a.is_ipv4())
            .or(candidates.first())
            .copied()
            .ok_or_else(|| format!("`{raw}` resolves to no address"))?;
        Ok(Self { written: raw.to_owned(), resolved })
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.resolved
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ListenAddr::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl AdmissionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !ADMISSION_FAILURE_MODES.contains(&self.failure_mode.as_str()) {
            return Err(ConfigError::invalid("admission.failure_mode", "must be deny or allow"));
        }
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "admission.cert_file",
                "admission.cert_file and admission.key_file are set together (or neither: generated)",
            ));
        }
        for (key, value) in [
            ("admission.tls_secret", &self.tls_secret),
            ("admission.namespace", &self.namespace),
            ("admission.service", &self.service),
            ("admission.webhook_configuration", &self.webhook_configuration),
        ] {
            if value.is_empty() || value.len() > 253 {
                return Err(ConfigError::invalid(key, "must be 1 to 253 characters"));
            }
        }
        if !(64 * 1024..=64 * 1024 * 1024).contains(&self.max_review_bytes) {
            return Err(ConfigError::invalid("admission.max_review_bytes", "must be from 65536 to 67108864"));
        }
        Ok(())
    }
}

impl OperatorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !POD_SECURITY_LEVELS.contains(&self.pod_security_level.as_str()) {
            return Err(ConfigError::invalid(
                "operator.pod_security_level",
                "must be restricted, baseline or privileged",
            ));
        }
        for (key, value) in [
            ("operator.field_manager", &self.field_manager),
            ("operator.ingress_namespace", &self.ingress_namespace),
            ("operator.dns_namespace", &self.dns_namespace),
            ("operator.lease_name", &self.lease_name),
            ("operator.lease_namespace", &self.lease_namespace),
            ("operator.default_quota_cpu", &self.default_quota_cpu),
            ("operator.default_quota_memory", &self.default_quota_memory),
        ] {
            if value.is_empty() || value.len() > 128 {
                return Err(ConfigError::invalid(key, "must be 1 to 128 characters"));
            }
        }
        if self.retry_min_ms == 0 || self.retry_max_ms < self.retry_min_ms {
            return Err(ConfigError::invalid(
                "operator.retry_max_ms",
                "retry_min_ms must be at least 1 and retry_max_ms at least retry_min_ms",
            ));
        }
        if self.lease_grace_secs == 0 || self.lease_duration_secs <= self.lease_grace_secs {
            return Err(ConfigError::invalid(
                "operator.lease_duration_secs",
                "must be longer than operator.lease_grace_secs, which must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    /// A config directory holding the shipped files plus `extra` (name, text).
    fn config_dir(extra: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in EMBEDDED.iter().chain(extra) {
            std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
        }
        dir
    }

    fn load(dir: &Path, profile: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_from(dir, profile, None, env(vars))
    }

    #[test]
    fn shipped_default_toml_matches_the_compiled_defaults() {
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(TomlText::shipped("default", EMBEDDED[0].1))
            .extract_lossy()
            .unwrap();
        let expected = Config { profile: from_file.profile.clone(), ..Config::default() };
        assert_eq!(serde_json::to_value(&from_file).unwrap(), serde_json::to_value(expected).unwrap());
    }

    #[test]
    fn seed_variables_are_read_as_their_own_text() {
        let dir = config_dir(&[]);
        let config = load(
            dir.path(),
            "development",
            &[
                ("KUBEOP_RATE_CPU_MILLI", "0.01"),
                ("KUBEOP_RATE_MEM_MIB", "0.001"),
                ("KUBEOP_QUOTA_MAX_REQUESTS_CPU", "4"),
                ("KUBEOP_QUOTA_MAX_REQUESTS_MEMORY", "8Gi"),
                ("KUBEOP_IMAGE_ALLOWLIST", "docker.io,ghcr.io"),
                ("KUBEOP_EGRESS_BASELINE", "10.0.0.0/8,172.16.0.0/12"),
                ("KUBEOP_REQUIRE_AUTH", "false"),
                ("KUBEOP_DB__MAX_CONNECTIONS", "32"),
                ("KUBEOP_BILLING__PRECISION", "3"),
            ],
        )
        .unwrap();
        assert_eq!(config.billing.rate_cpu_milli, "0.01");
        assert_eq!(config.billing.rate_mem_mib, "0.001");
        assert_eq!(config.policy.quota_max_requests_cpu, "4");
        assert_eq!(config.policy.quota_max_requests_memory, "8Gi");
        assert_eq!(config.policy.image_allowlist, ["docker.io", "ghcr.io"]);
        assert_eq!(config.policy.egress_baseline, ["10.0.0.0/8", "172.16.0.0/12"]);
        assert!(!config.auth.require);
        assert_eq!(config.db.max_connections, 32);
        assert_eq!(config.billing.precision, 3);
        // Text that is not a decimal stays text, for its owner to refuse by name.
        let config = load(dir.path(), "development", &[("KUBEOP_RATE_CPU_MILLI", "1e-3")]).unwrap();
        assert_eq!(config.billing.rate_cpu_milli, "1e-3");
    }

    #[test]
    fn toml_numbers_are_kept_as_written() {
        let dir = config_dir(&[]);
        let file = dir.path().join("extra.toml");
        std::fs::write(
            &file,
            "[billing]\nrate_cpu_milli = 0.010\nrate_mem_mib = 1e-3\nprecision = 4\n\
             [policy]\nquota_max_requests_cpu = 4\n",
        )
        .unwrap();
        let config = Config::load_from(dir.path(), "development", Some(&file), env(&[])).unwrap();
        assert_eq!(config.billing.rate_cpu_milli, "0.010");
        assert_eq!(config.billing.rate_mem_mib, "1e-3");
        assert_eq!(config.billing.precision, 4);
        assert_eq!(config.policy.quota_max_requests_cpu, "4");
    }

    #[test]
    fn a_typed_setting_that_does_not_parse_names_its_variable() {
        let dir = config_dir(&[]);
        let error = load(dir.path(), "development", &[("KUBEOP_DB__MAX_CONNECTIONS", "many")]).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid configuration: KUBEOP_DB__MAX_CONNECTIONS"),
            "{error}"
        );
        let error = load(dir.path(), "development", &[("KUBEOP_REQUIRE_AUTH", "perhaps")]).unwrap_err();
        assert!(error.to_string().contains("KUBEOP_REQUIRE_AUTH"), "{error}");
    }

    #[test]
    fn any_profile_with_a_file_loads_and_strictness_is_its_choice() {
        let staging = "strict = true\n[log]\nformat = \"json\"\n";
        let qa = "[auth]\nrequire = false\n";
        let dir = config_dir(&[("staging", staging), ("qa", qa)]);
        let key = ("KUBEOP_JWT_SIGNING_KEY", "a2V5LWZvci10aGUtY29uZmlnLXRlc3RzLWEta2V5LWZvci10aGU=");

        // qa is not strict: auth may be off, keys are generated.
        let qa = load(dir.path(), "qa", &[]).unwrap();
        assert_eq!(qa.profile, "qa");
        assert!(!qa.strict && !qa.auth.require);

        // staging is as strict as production: auth on, a key, JSON logs.
        let error = load(dir.path(), "staging", &[("KUBEOP_REQUIRE_AUTH", "false"), key]).unwrap_err();
        assert!(error.to_string().contains("KUBEOP_REQUIRE_AUTH: the staging profile refuses"), "{error}");
        let error = load(dir.path(), "staging", &[]).unwrap_err();
        assert!(error.to_string().contains("KUBEOP_JWT_SIGNING_KEY"), "{error}");
        let error = load(dir.path(), "staging", &[key, ("KUBEOP_LOG__FORMAT", "pretty")]).unwrap_err();
        assert!(error.to_string().contains("KUBEOP_LOG__FORMAT"), "{error}");
        let staging = load(dir.path(), "staging", &[key]).unwrap();
        assert!(staging.strict && staging.auth.require);
        assert!(staging.kms_key().unwrap().is_none(), "a strict profile generates no keys");

        // The shipped production profile opts in.
        let production = load(dir.path(), "production", &[key]).unwrap();
        assert!(production.strict);
    }

    #[test]
    fn a_profile_without_a_file_names_the_file() {
        let dir = config_dir(&[]);
        let error = load(dir.path(), "staging", &[]).unwrap_err().to_string();
        let expected = dir.path().join("staging.toml");
        assert!(error.contains(&format!("no file {}", expected.display())), "{error}");
        assert!(load(dir.path(), "../etc", &[]).unwrap_err().to_string().contains("not a profile name"));
        // Without a config directory only the built-in profiles exist.
        let missing = dir.path().join("nowhere");
        assert!(
            load(
                &missing,
                "production",
                &[("KUBEOP_JWT_SIGNING_KEY", "a2V5LWZvci10aGUtY29uZmlnLXRlc3RzLWEta2V5LWZvci10aGU=")]
            )
            .is_ok()
        );
        let error = load(&missing, "staging", &[]).unwrap_err().to_string();
        assert!(error.contains("staging.toml") && error.contains("development, production"), "{error}");
    }

    #[test]
    fn printed_configuration_is_toml_without_secrets() {
        let dir = config_dir(&[]);
        let config = load(
            dir.path(),
            "development",
            &[
                ("KUBEOP_DB_URL", "postgres://kubeop:p@ssWORD@db:5432/kubeop?password=QueryPw"),
                ("KUBEOP_JWT_SIGNING_KEY", "a2V5LWZvci10aGUtY29uZmlnLXRlc3RzLWEta2V5LWZvci10aGU="),
            ],
        )
        .unwrap();
        let text = config.to_redacted_toml();
        for secret in ["ssWORD", "QueryPw", "a2V5LWZvci10aGUtY29uZmlnLXRlc3RzLWEta2V5LWZvci10aGU="] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        let parsed: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(parsed["profile"].as_str(), Some("development"));
        assert_eq!(parsed["db"]["max_connections"].as_integer(), Some(16));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(ListenAddr::parse(":18080").unwrap().socket_addr().to_string(), "0.0.0.0:18080");
        assert_eq!(
            ListenAddr::parse("localhost:18080").unwrap().socket_addr().to_string(),
            "127.0.0.1:18080"
        );
        assert_eq!(ListenAddr::parse("[::1]:80").unwrap().socket_addr().to_string(), "[::1]:80");
        for bad in ["18080", "localhost", "127.0.0.1:99999", "no such host:1"] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_follow_the_seed_then_the_section_rule() {
        assert_eq!(env_name("http.addr"), "KUBEOP_HTTP_ADDR");
        assert_eq!(env_name("auth.jwt_signing_key"), "KUBEOP_JWT_SIGNING_KEY");
        assert_eq!(env_name("db.max_connections"), "KUBEOP_DB__MAX_CONNECTIONS");
    }

    #[test]
    fn passwords_are_redacted_wherever_they_appear() {
        assert_eq!(redacted_url("postgres://u:pw@h:5432/db"), "postgres://u:<redacted>@h:5432/db");
        // The password itself contains `@`: the user info ends at the last one.
        assert_eq!(
            redacted_url("postgres://postgres:p@ssWORD@host/db"),
            "postgres://postgres:<redacted>@host/db"
        );
        assert_eq!(
            redacted_url("postgres://postgres@host/db?password=QueryPw&sslmode=require"),
            "postgres://postgres@host/db?password=<redacted>&sslmode=require"
        );
        assert_eq!(redacted_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted_url("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
        assert!(!redacted_url("postgres://u:se cret@[::1").contains("se cret"));
    }
}
