//! Configuration, layered with figment: compiled defaults → `config/default.toml` →
//! `config/<profile>.toml` (`KUBEOP_PROFILE`, default `development`) → `--config FILE` → the
//! environment. The seed's variable names (`KUBEOP_HTTP_ADDR`, …) map onto their keys; every other
//! key is `KUBEOP_<SECTION>__<KEY>`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{PlatformPolicy, Quantity, QuotaMax};

/// The files as shipped, used when there is no `config/` directory beside the process (an
/// installed binary run from anywhere behaves exactly like a checkout).
const EMBEDDED: &[(&str, &str)] = &[
    ("default", include_str!("../../config/default.toml")),
    ("development", include_str!("../../config/development.toml")),
    ("production", include_str!("../../config/production.toml")),
];

/// The seed's variable names and the keys they set. Any other key is `KUBEOP_<SECTION>__<KEY>`.
const SEED_VARIABLES: &[(&str, &str)] = &[
    ("KUBEOP_HTTP_ADDR", "http.addr"),
    ("KUBEOP_DB_URL", "db.url"),
    ("KUBEOP_REQUIRE_AUTH", "auth.require"),
    ("KUBEOP_JWT_SIGNING_KEY", "auth.jwt_signing_key"),
    ("KUBEOP_KMS_MASTER_KEY", "kms.master_key"),
    ("KUBEOP_IMAGE_ALLOWLIST", "policy.image_allowlist"),
    ("KUBEOP_EGRESS_BASELINE", "policy.egress_baseline"),
    ("KUBEOP_QUOTA_MAX_REQUESTS_CPU", "policy.quota_max_requests_cpu"),
    ("KUBEOP_QUOTA_MAX_REQUESTS_MEMORY", "policy.quota_max_requests_memory"),
    ("KUBEOP_RATE_CPU_MILLI", "billing.rate_cpu_milli"),
    ("KUBEOP_RATE_MEM_MIB", "billing.rate_mem_mib"),
];

/// The shortest HS256 signing key accepted: as long as the hash output (RFC 7518 §3.2).
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// AES-256 needs exactly this much key.
pub const KMS_KEY_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Production,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Chosen by `KUBEOP_PROFILE`, never by a file.
    #[serde(skip)]
    pub profile: Profile,
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub db: DbConfig,
    pub auth: AuthConfig,
    pub kms: KmsConfig,
    pub log: LogConfig,
    pub policy: PolicyConfig,
    pub plugins: PluginsConfig,
    pub billing: BillingConfig,
}

/// Usage metering and invoices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Price of one milli-CPU for one hour, for tenants without rates of their own.
    #[serde(deserialize_with = "decimal_text")]
    pub rate_cpu_milli: String,
    /// Price of one MiB of memory for one hour, for tenants without rates of their own.
    #[serde(deserialize_with = "decimal_text")]
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
    /// Days an `Idempotency-Key` is remembered (at least 35).
    pub idempotency_days: u32,
}

/// A decimal given as text or, from TOML or the environment, as a number: kept as its text so
/// that nothing passes through a float.
fn decimal_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Text(text) => Ok(text),
        Raw::Integer(n) => Ok(n.to_string()),
        // A TOML float literal has already lost its exact digits: refuse it rather than guess.
        Raw::Float(f) => Err(serde::de::Error::custom(format!(
            "write the rate {f} as a string, e.g. \"{f}\", so it stays exact"
        ))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: ListenAddr,
    pub body_limit_bytes: usize,
    pub shutdown_grace_secs: u64,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    #[serde(default, deserialize_with = "optional_kms_key", skip_serializing_if = "Option::is_none")]
    pub master_key: Option<KmsKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
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
}

impl PolicyConfig {
    /// The policy these settings describe; an invalid entry names its variable.
    pub fn parse(&self) -> Result<PlatformPolicy, ConfigError> {
        fn named(key: &'static str) -> impl Fn(crate::domain::Invalid) -> ConfigError {
            move |invalid| ConfigError(format!("{}: {}", env_name(&format!("policy.{key}")), invalid.0))
        }
        let optional = |raw: &str| (!raw.trim().is_empty()).then(|| raw.trim().to_owned());
        Ok(PlatformPolicy {
            image_allowlist: PlatformPolicy::parse_registries(&self.image_allowlist)
                .map_err(named("image_allowlist"))?,
            egress_baseline: PlatformPolicy::parse_cidrs(&self.egress_baseline)
                .map_err(named("egress_baseline"))?,
            quota_max: QuotaMax {
                requests_cpu: optional(&self.quota_max_requests_cpu)
                    .map(|q| Quantity::parse(&q))
                    .transpose()
                    .map_err(named("quota_max_requests_cpu"))?,
                requests_memory: optional(&self.quota_max_requests_memory)
                    .map(|q| Quantity::parse(&q))
                    .transpose()
                    .map_err(named("quota_max_requests_memory"))?,
            },
        })
    }
}

impl BillingConfig {
    /// The rates for tenants without their own; an invalid one names its variable.
    pub fn default_rates(&self) -> Result<crate::domain::Rates, ConfigError> {
        let rate = |key: &str, raw: &str| {
            crate::domain::Rate::parse(raw).map_err(|e| ConfigError(format!("{}: {}", env_name(key), e.0)))
        };
        Ok(crate::domain::Rates {
            cpu_milli: rate("billing.rate_cpu_milli", &self.rate_cpu_milli)?,
            mem_mib: rate("billing.rate_mem_mib", &self.rate_mem_mib)?,
            tier: None,
            discount_percent: crate::domain::Percent::ZERO,
        })
    }
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
            profile: Profile::Development,
            data_dir: PathBuf::from(".kubeop"),
            http: HttpConfig {
                addr: ListenAddr::parse("localhost:18080").expect("a literal address"),
                body_limit_bytes: 1024 * 1024,
                shutdown_grace_secs: 20,
            },
            db: DbConfig {
                url: String::new(),
                max_connections: 16,
                acquire_timeout_secs: 5,
                read_cache_ttl_ms: 1000,
                read_cache_capacity: 100_000,
            },
            auth: AuthConfig { require: true, jwt_signing_key: None, max_token_ttl_minutes: 10_080 },
            kms: KmsConfig { master_key: None },
            log: LogConfig { format: LogFormat::Pretty, filter: "info".into() },
            policy: PolicyConfig::default(),
            billing: BillingConfig {
                rate_cpu_milli: "0".into(),
                rate_mem_mib: "0".into(),
                currency: "USD".into(),
                precision: 2,
                max_age_days: 35,
                max_future_secs: 300,
                max_batch_points: 10_000,
                idempotency_days: 35,
            },
            plugins: PluginsConfig {
                dir: PathBuf::new(),
                deadline_ms: 50,
                memory_mib: 32,
                max_output_bytes: 64 * 1024,
                max_concurrent_calls: 16,
                max_upload_bytes: 16 * 1024 * 1024,
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

impl Config {
    /// Reads every layer. `dir` holds `default.toml` and the profile files; when it does not exist
    /// the shipped copies are used.
    pub fn load(dir: &Path, file: Option<&Path>) -> Result<Self, ConfigError> {
        let profile = match std::env::var("KUBEOP_PROFILE").as_deref() {
            Err(_) | Ok("") | Ok("development") => Profile::Development,
            Ok("production") => Profile::Production,
            Ok(other) => {
                return Err(ConfigError(format!(
                    "KUBEOP_PROFILE: `{other}` is not a profile (development or production)"
                )));
            }
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(layer(dir, "default"))
            .merge(layer(dir, profile.as_str()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!("--config: no file at {}", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment.merge(environment()).extract().map_err(describe)?;
        config.profile = profile;
        config.check()?;
        Ok(config)
    }

    /// Rules that involve more than one key.
    fn check(&self) -> Result<(), ConfigError> {
        if self.profile == Profile::Production {
            if !self.auth.require {
                return Err(ConfigError(
                    "KUBEOP_REQUIRE_AUTH: the production profile refuses to run with auth off".into(),
                ));
            }
            if self.auth.jwt_signing_key.is_none() {
                return Err(ConfigError(format!(
                    "KUBEOP_JWT_SIGNING_KEY: the production profile needs a signing key \
                     (base64 of at least {MIN_SIGNING_KEY_BYTES} random bytes)"
                )));
            }
        }
        if self.auth.max_token_ttl_minutes == 0 {
            return Err(ConfigError(format!(
                "{}: must be at least 1",
                env_name("auth.max_token_ttl_minutes")
            )));
        }
        self.policy.parse()?;
        self.billing.default_rates()?;
        let billing = &self.billing;
        if billing.precision > 28 {
            return Err(ConfigError(format!("{}: at most 28", env_name("billing.precision"))));
        }
        if billing.currency.len() != 3 || !billing.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ConfigError(format!(
                "{}: `{}` is not an ISO 4217 code such as USD or EUR",
                env_name("billing.currency"),
                billing.currency
            )));
        }
        if billing.idempotency_days < 35 {
            return Err(ConfigError(format!("{}: at least 35 (days)", env_name("billing.idempotency_days"))));
        }
        if billing.max_batch_points == 0 || billing.max_age_days == 0 {
            let key = if billing.max_batch_points == 0 {
                "billing.max_batch_points"
            } else {
                "billing.max_age_days"
            };
            return Err(ConfigError(format!("{}: must be at least 1", env_name(key))));
        }
        let plugins = &self.plugins;
        for (key, value) in [
            ("plugins.deadline_ms", plugins.deadline_ms),
            ("plugins.memory_mib", plugins.memory_mib),
            ("plugins.max_concurrent_calls", plugins.max_concurrent_calls as u64),
            ("plugins.sync_interval_ms", plugins.sync_interval_ms),
            ("plugins.image_policy.deadline_ms", plugins.image_policy.deadline_ms.unwrap_or(1)),
            ("plugins.image_policy.memory_mib", plugins.image_policy.memory_mib.unwrap_or(1)),
            ("plugins.pricing.deadline_ms", plugins.pricing.deadline_ms.unwrap_or(1)),
            ("plugins.pricing.memory_mib", plugins.pricing.memory_mib.unwrap_or(1)),
            ("plugins.admission.deadline_ms", plugins.admission.deadline_ms.unwrap_or(1)),
            ("plugins.admission.memory_mib", plugins.admission.memory_mib.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{}: must be at least 1", env_name(key))));
            }
        }
        for (key, value) in [
            ("plugins.memory_mib", Some(plugins.memory_mib)),
            ("plugins.image_policy.memory_mib", plugins.image_policy.memory_mib),
            ("plugins.pricing.memory_mib", plugins.pricing.memory_mib),
            ("plugins.admission.memory_mib", plugins.admission.memory_mib),
        ] {
            if value.is_some_and(|mib| mib > crate::plugins::MAX_MEMORY_MIB) {
                return Err(ConfigError(format!(
                    "{}: at most {} MiB",
                    env_name(key),
                    crate::plugins::MAX_MEMORY_MIB
                )));
            }
        }
        if self.db.max_connections == 0 {
            return Err(ConfigError(format!("{}: must be at least 1", env_name("db.max_connections"))));
        }
        Ok(())
    }

    /// The database to open: the configured URL, or an SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.db.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("kubeop.db").display())
        } else {
            self.db.url.clone()
        }
    }

    /// The token signing key. In development an unset key is generated once into `data_dir` and
    /// reused, so tokens survive restarts; production refuses to start without one (see `check`).
    pub fn signing_key(&self) -> anyhow::Result<SigningKey> {
        match &self.auth.jwt_signing_key {
            Some(key) => Ok(key.clone()),
            None => Ok(SigningKey::from_bytes(self.development_key("jwt-signing.key")?)),
        }
    }

    /// The KMS master key; generated like the signing key in development, `None` in production
    /// when unset (the server runs, but is not ready).
    pub fn kms_key(&self) -> anyhow::Result<Option<KmsKey>> {
        match (&self.kms.master_key, self.profile) {
            (Some(key), _) => Ok(Some(key.clone())),
            (None, Profile::Development) => {
                Ok(Some(KmsKey::from_bytes(self.development_key("kms-master.key")?)))
            }
            (None, Profile::Production) => Ok(None),
        }
    }

    fn development_key(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context;
        use std::io::Write;

        anyhow::ensure!(
            self.profile == Profile::Development,
            "{file}: keys are generated only in the development profile"
        );
        let path = self.data_dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return BASE64.decode(text.trim()).with_context(|| format!("{} is not base64", path.display()));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        let key = crate::kms::random_key();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut out) => {
                out.write_all(BASE64.encode(&key).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a development key");
                Ok(key)
            }
            // Another process generated it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.development_key(file),
            Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        #[derive(Serialize)]
        struct Shown<'a> {
            profile: Profile,
            #[serde(flatten)]
            config: &'a Config,
        }
        toml::to_string_pretty(&Shown { profile: self.profile, config: self })
            .expect("the configuration serialises to TOML")
    }
}

fn layer(dir: &Path, name: &str) -> figment::providers::Data<Toml> {
    let path = dir.join(format!("{name}.toml"));
    if dir.is_dir() {
        Toml::file(path)
    } else {
        let shipped = EMBEDDED.iter().find(|(n, _)| *n == name).map_or("", |(_, text)| text);
        Toml::string(shipped)
    }
}

fn environment() -> Env {
    Env::prefixed("KUBEOP_").filter_map(|key| {
        let full = format!("KUBEOP_{}", key.as_str().to_ascii_uppercase());
        if let Some((_, path)) = SEED_VARIABLES.iter().find(|(name, _)| *name == full) {
            return Some((*path).into());
        }
        // Only `SECTION__KEY` names are configuration; other KUBEOP_ variables (the profile, the
        // tests' database URL) are not ours to read here.
        key.as_str().contains("__").then(|| key.as_str().to_ascii_lowercase().replace("__", ".").into())
    })
}

/// The environment variable that sets a key.
pub fn env_name(path: &str) -> String {
    SEED_VARIABLES
        .iter()
        .find(|(_, key)| *key == path)
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| format!("KUBEOP_{}", path.replace('.', "__").to_ascii_uppercase()))
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

/// Decodes a base64 key, checking its length; an empty value means "unset".
fn decode_key(
    raw: &str,
    what: &str,
    accept: impl Fn(usize) -> bool,
    expect: &str,
) -> Result<Option<Vec<u8>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let bytes = BASE64.decode(raw.trim()).map_err(|_| format!("the {what} is not valid base64"))?;
    if !accept(bytes.len()) {
        return Err(format!("the {what} is {} bytes long; it must be {expect}", bytes.len()));
    }
    Ok(Some(bytes))
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident, $optional:ident, $what:literal, $accept:expr, $expect:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(std::sync::Arc<SecretBox<[u8]>>);

        impl $name {
            pub fn from_bytes(bytes: Vec<u8>) -> Self {
                Self(std::sync::Arc::new(SecretBox::new(bytes.into_boxed_slice())))
            }

            /// Parses the base64 form; `Ok(None)` for an empty value.
            pub fn decode(raw: &str) -> Result<Option<Self>, String> {
                Ok(decode_key(raw, $what, $accept, $expect)?.map(Self::from_bytes))
            }

            pub fn expose(&self) -> &[u8] {
                self.0.expose_secret()
            }

            pub fn to_base64(&self) -> String {
                BASE64.encode(self.expose())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str("<redacted>")
            }
        }

        /// Deserialises an optional key, where an empty string (`VAR=`) also means unset.
        fn $optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<$name>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                None => Ok(None),
                Some(raw) => $name::decode(&raw).map_err(serde::de::Error::custom),
            }
        }
    };
}

secret_key!(
    /// The HS256 key that signs and verifies API tokens.
    SigningKey, optional_signing_key, "signing key", |n| n >= MIN_SIGNING_KEY_BYTES, "at least 32 bytes"
);
secret_key!(
    /// The AES-256 master key that encrypts secrets at rest.
    KmsKey, optional_kms_key, "KMS master key", |n| n == KMS_KEY_BYTES, "exactly 32 bytes"
);

fn redact_password<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redacted_url(url))
}

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_toml_matches_the_compiled_defaults() {
        let from_file: Config = Figment::from(Toml::string(EMBEDDED[0].1)).extract().unwrap();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
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
    fn passwords_are_redacted() {
        assert_eq!(redacted_url("postgres://u:pw@h:5432/db"), "postgres://u:<redacted>@h:5432/db");
        assert_eq!(redacted_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted_url("sqlite://x.db"), "sqlite://x.db");
    }
}
