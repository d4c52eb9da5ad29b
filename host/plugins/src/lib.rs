//! The WebAssembly plugin host. Three slots — image policy, pricing, admission — each run one
//! component at a time. Components come built into the binary, from `plugins.dir`, or uploaded
//! through the admin API (stored in the database, so every replica runs the same one); every
//! source goes through the same preparation, which compiles, checks the world and runs a
//! self-check before the component goes live with an atomic swap.
//!
//! Every call gets a fresh instance, a deadline, a memory cap and an output cap, and runs on a
//! blocking thread under a concurrency limit: a plugin that loops, allocates without bound,
//! traps or floods its output fails only its own call.

mod bindings;
mod candidates;
mod compile;
mod metrics;
mod requests;
mod runtime;
mod sync;
mod uploads;
mod worlds;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;

pub use candidates::{Candidate, CandidateState, KEPT as KEPT_CANDIDATES};
pub use metrics::PluginMetrics;
pub use requests::{
    AdmissionCheck, AdmissionVerdict, HostClaim, ImageCheck, ImageVerdict, PricedLine, PricingRequest,
    UsageHour,
};
pub use uploads::{BoxFuture, NoUploads, Upload, UploadStore, UploadStoreError};

use kubeop_config::{ConfigError, PluginsConfig, SlotConfig};
use runtime::{CallLimits, CallState, LogSink};
pub use runtime::{Probe, copy_memory_images};
use worlds::{AdmissionWorld, Component, ImagePolicyWorld, PricingWorld, World};

/// The most memory a slot may be configured to give one call.
pub const MAX_MEMORY_MIB: u64 = 256;

/// The built-in plugins, compiled from `plugins/` by `build.rs`.
const BUILTIN_IMAGE_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/image_policy.wasm"));
const BUILTIN_PRICING: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pricing.wasm"));
const BUILTIN_ADMISSION: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admission.wasm"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotKind {
    ImagePolicy,
    Pricing,
    Admission,
}

impl SlotKind {
    pub const ALL: [SlotKind; 3] = [SlotKind::ImagePolicy, SlotKind::Pricing, SlotKind::Admission];

    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::ImagePolicy => "image-policy",
            SlotKind::Pricing => "pricing",
            SlotKind::Admission => "admission",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    pub fn builtin(self) -> &'static [u8] {
        match self {
            SlotKind::ImagePolicy => BUILTIN_IMAGE_POLICY,
            SlotKind::Pricing => BUILTIN_PRICING,
            SlotKind::Admission => BUILTIN_ADMISSION,
        }
    }

    /// The file in `plugins.dir` that replaces the built-in plugin.
    pub fn file_name(self) -> String {
        format!("{}.wasm", self.as_str())
    }
}

impl std::fmt::Display for SlotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the active component of a slot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin,
    /// A file in `plugins.dir`, with its modification time and length when it was read.
    File {
        path: PathBuf,
        stamp: Option<(SystemTime, u64)>,
    },
    Uploaded {
        uploaded_at: DateTime<Utc>,
        uploaded_by: String,
    },
    /// A candidate being tried, never active in a slot.
    Candidate,
}

impl Source {
    pub fn label(&self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::File { .. } => "file",
            Source::Uploaded { .. } => "uploaded",
            Source::Candidate => "candidate",
        }
    }
}

/// A component live in a slot, with the statistics of its calls.
pub struct Loaded {
    pub kind: SlotKind,
    pub sha256: String,
    pub size: usize,
    pub source: Source,
    pub loaded_at: DateTime<Utc>,
    component: Component,
    stats: CallStats,
}

#[derive(Default)]
struct CallStats {
    calls: AtomicU64,
    failures: AtomicU64,
    /// Call times in microseconds.
    micros: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

impl CallStats {
    fn record(&self, elapsed: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut micros = self.micros.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = micros.get_or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds")
        });
        let _ = histogram.record(elapsed.as_micros().max(1) as u64);
    }

    fn quantile_micros(&self, quantile: f64) -> Option<u64> {
        let micros = self.micros.lock().unwrap_or_else(|p| p.into_inner());
        micros.as_ref().map(|h| h.value_at_quantile(quantile))
    }
}

/// How a call failed, as counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Memory,
    StackOverflow,
    Trap,
    OutputTooLarge,
    Instantiate,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::StackOverflow => "stack_overflow",
            FailureKind::Trap => "trap",
            FailureKind::OutputTooLarge => "output_too_large",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

/// A failed call: its kind and a sentence for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    pub kind: FailureKind,
    pub message: String,
}

impl CallError {
    fn from_wasm(error: &wasmtime::Error, limits: CallLimits) -> Self {
        let kind = runtime::classify(error);
        let message = match kind {
            FailureKind::Timeout => {
                format!("the plugin ran past its {} ms deadline", limits.deadline.as_millis())
            }
            FailureKind::Memory => {
                format!("the plugin went over its {} MiB memory limit", limits.memory_bytes >> 20)
            }
            FailureKind::StackOverflow => "the plugin overflowed its stack".to_owned(),
            FailureKind::Trap => format!("the plugin trapped: {}", root_cause(error)),
            FailureKind::OutputTooLarge | FailureKind::Instantiate => {
                format!("the plugin could not be started: {}", root_cause(error))
            }
        };
        Self { kind, message }
    }
}

fn root_cause(error: &wasmtime::Error) -> String {
    error.chain().last().map_or_else(|| error.to_string(), ToString::to_string)
}

/// Why a component was refused; the previous one stays active.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("it is not a WebAssembly binary (no \\0asm header)")]
    NotWasm,
    #[error(
        "it is a core WebAssembly module, not a component: build it with \
         `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("it is not a valid component: {0}")]
    Invalid(String),
    #[error(
        "it needs an import kubeop does not provide (plugins may import kubeop:plugin/host and \
         WASI 0.2, which is linked with no authority): {0}"
    )]
    UnknownImport(String),
    #[error("it does not implement the {kind} world: {why}")]
    WrongWorld { kind: SlotKind, why: String },
    #[error("its self-check failed: {0}")]
    SelfCheck(String),
    #[error("the plugin check panicked")]
    Panicked,
}

/// What `GET /v1/platform/plugins` shows for a slot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginStatus {
    #[schema(example = "image-policy")]
    pub slot: &'static str,
    /// `builtin`, `file` (from `plugins.dir`) or `uploaded`.
    pub source: &'static str,
    /// The file the component was read from (source `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Who uploaded it (source `uploaded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<String>,
    pub sha256: String,
    pub size: usize,
    pub loaded_at: DateTime<Utc>,
    /// Calls since this component went live on this replica.
    pub calls: u64,
    pub failures: u64,
    /// Call time percentiles in microseconds, when there have been calls.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub deadline_ms: u64,
    pub memory_mib: u64,
}

struct Slot {
    kind: SlotKind,
    limits: CallLimits,
    /// The largest component this slot takes.
    max_upload: usize,
    active: ArcSwap<Loaded>,
}

/// The plugin host of one server. Cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    inner: Arc<Inner>,
}

struct Inner {
    linker: wasmtime::component::Linker<CallState>,
    slots: Vec<Slot>,
    permits: Arc<Semaphore>,
    cache_dir: Option<PathBuf>,
    dir: Option<PathBuf>,
    sync_interval: Duration,
    uploads: Arc<dyn UploadStore>,
    metrics: PluginMetrics,
    /// One sync or install at a time, and what failed to load (so it is not retried every tick).
    sync: tokio::sync::Mutex<sync::SyncState>,
    candidates: candidates::Candidates,
}

impl Plugins {
    /// Loads the built-in plugins, then whatever the upload store and `plugins.dir` hold.
    pub async fn start(
        config: &PluginsConfig,
        cache_dir: Option<PathBuf>,
        uploads: Arc<dyn UploadStore>,
        metrics: PluginMetrics,
    ) -> anyhow::Result<Self> {
        check_config(config)?;
        let limits = |slot: &SlotConfig| CallLimits {
            deadline: Duration::from_millis(slot.deadline_ms.unwrap_or(config.deadline_ms)),
            memory_bytes: (slot.memory_mib.unwrap_or(config.memory_mib) as usize) << 20,
            max_output: slot.max_output_bytes.unwrap_or(config.max_output_bytes),
        };
        let linker = runtime::linker();
        let mut slots = Vec::new();
        for (kind, slot_config) in [
            (SlotKind::ImagePolicy, &config.image_policy),
            (SlotKind::Pricing, &config.pricing),
            (SlotKind::Admission, &config.admission),
        ] {
            let limits = limits(slot_config);
            let (linker, cache) = (linker.clone(), cache_dir.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                prepare(&linker, cache.as_deref(), kind, limits, kind.builtin(), Source::Builtin)
            })
            .await?
            .map_err(|e| anyhow::anyhow!("the built-in {kind} plugin does not load: {e}"))?;
            let max_upload = slot_config.max_upload_bytes.unwrap_or(config.max_upload_bytes);
            slots.push(Slot { kind, limits, max_upload, active: ArcSwap::from_pointee(loaded) });
        }
        let dir = (!config.dir.as_os_str().is_empty()).then(|| config.dir.clone());
        let plugins = Self {
            inner: Arc::new(Inner {
                linker,
                slots,
                permits: Arc::new(Semaphore::new(config.max_concurrent_calls)),
                cache_dir,
                dir,
                sync_interval: Duration::from_millis(config.sync_interval_ms),
                uploads,
                metrics,
                sync: tokio::sync::Mutex::new(sync::SyncState::default()),
                candidates: candidates::Candidates::new(),
            }),
        };
        plugins.sync().await;
        Ok(plugins)
    }

    fn slot(&self, kind: SlotKind) -> &Slot {
        self.inner.slots.iter().find(|slot| slot.kind == kind).expect("every kind has a slot")
    }

    /// Runs one call of `W`'s slot on a fresh instance.
    async fn call<W: World>(&self, request: W::Request) -> Result<W::Response, CallError> {
        self.call_on::<W>(self.slot(W::KIND).active.load_full(), request).await
    }

    /// Runs one call of `loaded` (the slot's active component or a candidate) with the slot's
    /// limits.
    async fn call_on<W: World>(
        &self,
        loaded: Arc<Loaded>,
        request: W::Request,
    ) -> Result<W::Response, CallError> {
        let slot = self.slot(W::KIND);
        let permit = self.inner.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let limits = slot.limits;
        let started = Instant::now();
        let running = loaded.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            invoke::<W>(&running, limits, &request)
        })
        .await
        .unwrap_or_else(|_| {
            Err(CallError { kind: FailureKind::Trap, message: "the plugin call panicked in the host".into() })
        });
        let elapsed = started.elapsed();
        loaded.stats.record(elapsed, outcome.is_err());
        self.inner.metrics.call(W::KIND.as_str(), elapsed, outcome.as_ref().err().map(|e| e.kind.as_str()));
        if let Err(error) = &outcome {
            tracing::warn!(
                slot = W::KIND.as_str(),
                plugin = &loaded.sha256[..12],
                kind = error.kind.as_str(),
                "{error}"
            );
        }
        outcome
    }

    /// What every slot runs, with its call statistics on this replica.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.inner.slots.iter().map(|slot| status(slot, &slot.active.load())).collect()
    }

    /// The largest component `kind`'s slot takes (`plugins.<slot>.max_upload_bytes`, else
    /// `plugins.max_upload_bytes`).
    pub fn max_upload_bytes(&self, kind: SlotKind) -> usize {
        self.slot(kind).max_upload
    }

    pub fn status_of(&self, kind: SlotKind) -> PluginStatus {
        let slot = self.slot(kind);
        status(slot, &slot.active.load())
    }

    /// Asks the image-policy plugin about an image.
    pub async fn check_image(&self, check: &ImageCheck) -> Result<ImageVerdict, CallError> {
        Ok(self.call::<ImagePolicyWorld>(check.0.clone()).await?.into())
    }

    /// Asks the pricing plugin for the invoice lines of a stretch of usage; `Ok(Err(reason))`
    /// when the plugin refuses the request.
    pub async fn price(&self, request: PricingRequest) -> Result<Result<Vec<PricedLine>, String>, CallError> {
        let answer = self.call::<PricingWorld>(request.into()).await?;
        Ok(answer.map(|lines| lines.into_iter().map(PricedLine::from).collect()))
    }

    /// Asks the admission plugin, or `candidate` when given, to review an AdmissionReview.
    pub async fn admit(
        &self,
        check: &AdmissionCheck,
        candidate: Option<&Candidate>,
    ) -> Result<AdmissionVerdict, CallError> {
        let request = check.0.clone();
        let response = match candidate {
            Some(candidate) => self.call_on::<AdmissionWorld>(candidate.0.clone(), request).await?,
            None => self.call::<AdmissionWorld>(request).await?,
        };
        Ok(response.into())
    }

    /// Checks an uploaded component and, when it passes, stores it and makes it live. A
    /// refused component leaves the active one in place.
    pub async fn install(
        &self,
        kind: SlotKind,
        bytes: Vec<u8>,
        uploaded_by: &str,
    ) -> Result<PluginStatus, InstallError> {
        let mut state = self.inner.sync.lock().await;
        let uploaded_at = Utc::now();
        let source = Source::Uploaded { uploaded_at, uploaded_by: uploaded_by.to_owned() };
        let loaded =
            self.prepare_blocking(kind, bytes.clone(), source).await.map_err(InstallError::Refused)?;
        let upload =
            Upload { kind, sha256: loaded.sha256.clone(), uploaded_at, uploaded_by: uploaded_by.to_owned() };
        self.inner.uploads.put(&upload, &bytes).await.map_err(InstallError::Store)?;
        state.forget(kind);
        self.activate(loaded);
        Ok(self.status_of(kind))
    }

    /// Drops the uploaded component of a slot: it falls back to `plugins.dir` or the built-in.
    pub async fn remove(&self, kind: SlotKind) -> Result<PluginStatus, UploadStoreError> {
        self.inner.uploads.delete(kind).await?;
        self.sync().await;
        Ok(self.status_of(kind))
    }

    async fn prepare_blocking(
        &self,
        kind: SlotKind,
        bytes: Vec<u8>,
        source: Source,
    ) -> Result<Loaded, LoadError> {
        let inner = self.inner.clone();
        let limits = self.slot(kind).limits;
        tokio::task::spawn_blocking(move || {
            prepare(&inner.linker, inner.cache_dir.as_deref(), kind, limits, &bytes, source)
        })
        .await
        .map_err(|_| LoadError::Panicked)?
    }

    fn activate(&self, loaded: Loaded) {
        let kind = loaded.kind;
        tracing::info!(slot = kind.as_str(), sha256 = %loaded.sha256, source = loaded.source.label(), "plugin active");
        self.inner.metrics.load(kind.as_str(), "loaded");
        self.slot(kind).active.store(Arc::new(loaded));
    }
}

/// The limits in `config` that this host can honour; an unusable one names its variable.
pub fn check_config(config: &PluginsConfig) -> Result<(), ConfigError> {
    let slots = [
        ("image_policy", &config.image_policy),
        ("pricing", &config.pricing),
        ("admission", &config.admission),
    ];
    let mut nonzero = vec![
        ("plugins.deadline_ms".to_owned(), Some(config.deadline_ms)),
        ("plugins.memory_mib".to_owned(), Some(config.memory_mib)),
        ("plugins.max_concurrent_calls".to_owned(), Some(config.max_concurrent_calls as u64)),
        ("plugins.sync_interval_ms".to_owned(), Some(config.sync_interval_ms)),
    ];
    let mut memory = vec![("plugins.memory_mib".to_owned(), Some(config.memory_mib))];
    for (name, slot) in slots {
        nonzero.push((format!("plugins.{name}.deadline_ms"), slot.deadline_ms));
        nonzero.push((format!("plugins.{name}.memory_mib"), slot.memory_mib));
        nonzero.push((format!("plugins.{name}.max_output_bytes"), slot.max_output_bytes.map(|b| b as u64)));
        nonzero.push((format!("plugins.{name}.max_upload_bytes"), slot.max_upload_bytes.map(|b| b as u64)));
        memory.push((format!("plugins.{name}.memory_mib"), slot.memory_mib));
    }
    if let Some((key, _)) = nonzero.iter().find(|(_, value)| *value == Some(0)) {
        return Err(ConfigError::invalid(key, "must be at least 1"));
    }
    if let Some((key, _)) = memory.iter().find(|(_, mib)| mib.is_some_and(|mib| mib > MAX_MEMORY_MIB)) {
        return Err(ConfigError::invalid(key, format!("at most {MAX_MEMORY_MIB} MiB")));
    }
    Ok(())
}

/// Why an upload was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Refused(LoadError),
    /// The upload store failed; nothing changed.
    #[error("{0}")]
    Store(UploadStoreError),
}

fn status(slot: &Slot, loaded: &Loaded) -> PluginStatus {
    let (path, uploaded_by) = match &loaded.source {
        Source::File { path, .. } => (Some(path.display().to_string()), None),
        Source::Uploaded { uploaded_by, .. } => (None, Some(uploaded_by.clone())),
        Source::Builtin | Source::Candidate => (None, None),
    };
    PluginStatus {
        slot: slot.kind.as_str(),
        source: loaded.source.label(),
        path,
        uploaded_by,
        sha256: loaded.sha256.clone(),
        size: loaded.size,
        loaded_at: loaded.loaded_at,
        calls: loaded.stats.calls.load(Ordering::Relaxed),
        failures: loaded.stats.failures.load(Ordering::Relaxed),
        p50_us: loaded.stats.quantile_micros(0.5),
        p99_us: loaded.stats.quantile_micros(0.99),
        deadline_ms: slot.limits.deadline.as_millis() as u64,
        memory_mib: (slot.limits.memory_bytes >> 20) as u64,
    }
}

/// One call on a fresh store and instance, with the output cap checked.
fn invoke<W: World>(
    loaded: &Loaded,
    limits: CallLimits,
    request: &W::Request,
) -> Result<W::Response, CallError> {
    invoke_probed::<W>(loaded, limits, request).map(|(response, _)| response)
}

/// [`invoke`], with what the call cost.
fn invoke_probed<W: World>(
    loaded: &Loaded,
    limits: CallLimits,
    request: &W::Request,
) -> Result<(W::Response, Probe), CallError> {
    let mut store = runtime::store(limits, LogSink::new(W::KIND.as_str(), &loaded.sha256));
    let response =
        W::call(&loaded.component, &mut store, request).map_err(|e| CallError::from_wasm(&e, limits))?;
    let probe = store.data().probe();
    let bytes = W::output_bytes(&response);
    if bytes > limits.max_output {
        return Err(CallError {
            kind: FailureKind::OutputTooLarge,
            message: format!(
                "the plugin returned {bytes} bytes of output; the limit is {}",
                limits.max_output
            ),
        });
    }
    Ok((response, probe))
}

/// Compiles `bytes`, checks them against `kind`'s world and runs the self-check. Blocking.
fn prepare(
    linker: &wasmtime::component::Linker<CallState>,
    cache_dir: Option<&std::path::Path>,
    kind: SlotKind,
    limits: CallLimits,
    bytes: &[u8],
    source: Source,
) -> Result<Loaded, LoadError> {
    let compiled = compile::compile(bytes, cache_dir)?;
    // The memory image every instance maps: built now, not inside the first call's deadline
    // (for an interpreter's snapshot it is tens of MiB).
    compiled.component.initialize_copy_on_write_image().map_err(|e| LoadError::Invalid(root_cause(&e)))?;
    let pre = linker
        .instantiate_pre(&compiled.component)
        .map_err(|e| LoadError::UnknownImport(format!("{e:#}")))?;
    let component =
        Component::for_slot(kind, pre).map_err(|e| LoadError::WrongWorld { kind, why: root_cause(&e) })?;
    let loaded = Loaded {
        kind,
        sha256: compiled.sha256,
        size: bytes.len(),
        source,
        loaded_at: Utc::now(),
        component,
        stats: CallStats::default(),
    };
    let checked = match kind {
        SlotKind::ImagePolicy => self_check::<ImagePolicyWorld>(&loaded, limits),
        SlotKind::Pricing => self_check::<PricingWorld>(&loaded, limits),
        SlotKind::Admission => self_check::<AdmissionWorld>(&loaded, limits),
    };
    checked.map_err(LoadError::SelfCheck)?;
    Ok(loaded)
}

fn self_check<W: World>(loaded: &Loaded, limits: CallLimits) -> Result<(), String> {
    // The deadline is wall time: a call stalled by a busy machine gets a second try, while a
    // plugin that is simply too slow fails both.
    let response = match invoke::<W>(loaded, limits, &W::sample()) {
        Err(error) if error.kind == FailureKind::Timeout => invoke::<W>(loaded, limits, &W::sample()),
        answered => answered,
    }
    .map_err(|e| e.message)?;
    W::accept_sample(&response)
}

/// The limits of the default configuration, for plugins run outside a server.
fn default_limits() -> CallLimits {
    let defaults = kubeop_config::Config::default().plugins;
    CallLimits {
        deadline: Duration::from_millis(defaults.deadline_ms),
        memory_bytes: (defaults.memory_mib as usize) << 20,
        max_output: defaults.max_output_bytes,
    }
}

/// What stands behind an import: see [`runtime::grant`].
pub fn grant(import: &str) -> Option<&'static str> {
    runtime::grant(import)
}

/// What `kubeop plugin check` reports about a component file.
#[derive(Debug)]
pub struct Inspection {
    pub size: usize,
    pub sha256: String,
    pub compile_time: Duration,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Each slot the component fits, with its self-check result.
    pub fits: Vec<(SlotKind, Result<(), String>)>,
}

/// Examines a component without a server: its interface and, for each world it implements, the
/// self-check. Uses the default limits.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, LoadError> {
    let started = Instant::now();
    let compiled = compile::compile(bytes, None)?;
    let compile_time = started.elapsed();
    let engine = runtime::engine();
    let ty = compiled.component.component_type();
    let imports = ty.imports(engine).map(|(name, _)| name.to_owned()).collect();
    let exports = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
    let limits = default_limits();
    let linker = runtime::linker();
    let mut fits = Vec::new();
    for kind in SlotKind::ALL {
        match prepare(&linker, None, kind, limits, bytes, Source::Builtin) {
            Ok(_) => fits.push((kind, Ok(()))),
            Err(LoadError::SelfCheck(why)) => fits.push((kind, Err(why))),
            Err(_) => {}
        }
    }
    Ok(Inspection { size: bytes.len(), sha256: compiled.sha256, compile_time, imports, exports, fits })
}

/// A component loaded outside any server, with the default limits: for `kubeop plugin run` and
/// the benchmarks. It passed the same checks as a component in a slot.
pub struct Standalone {
    loaded: Loaded,
    limits: CallLimits,
}

impl Standalone {
    pub fn load(kind: SlotKind, bytes: &[u8]) -> Result<Self, LoadError> {
        let limits = default_limits();
        let loaded = prepare(&runtime::linker(), None, kind, limits, bytes, Source::Builtin)?;
        Ok(Self { loaded, limits })
    }

    /// One call on a fresh instance, on this thread.
    fn call<W: World>(&self, request: &W::Request) -> Result<W::Response, CallError> {
        invoke::<W>(&self.loaded, self.limits, request)
    }

    /// The admission call on this thread (the component must be an admission plugin).
    pub fn admit(&self, check: &AdmissionCheck) -> Result<AdmissionVerdict, CallError> {
        Ok(self.call::<AdmissionWorld>(&check.0)?.into())
    }

    /// The image-policy call on this thread (the component must be an image policy).
    pub fn check_image(&self, check: &ImageCheck) -> Result<ImageVerdict, CallError> {
        Ok(self.call::<ImagePolicyWorld>(&check.0)?.into())
    }

    /// One call with the request and answer as JSON (the WIT records, snake_case fields).
    pub fn call_json(&self, request: serde_json::Value) -> Result<serde_json::Value, String> {
        self.probe_json(request).map(|(answer, _)| answer)
    }

    /// [`Standalone::call_json`], with what the call cost.
    pub fn probe_json(&self, request: serde_json::Value) -> Result<(serde_json::Value, Probe), String> {
        fn one<W: World>(
            plugin: &Standalone,
            request: serde_json::Value,
        ) -> Result<(serde_json::Value, Probe), String>
        where
            W::Request: serde::de::DeserializeOwned,
            W::Response: Serialize,
        {
            let request: W::Request = serde_json::from_value(request)
                .map_err(|e| format!("the request does not fit the {} world: {e}", W::KIND))?;
            let (response, probe) =
                invoke_probed::<W>(&plugin.loaded, plugin.limits, &request).map_err(|e| e.message)?;
            Ok((serde_json::to_value(response).map_err(|e| e.to_string())?, probe))
        }
        match self.loaded.kind {
            SlotKind::ImagePolicy => one::<ImagePolicyWorld>(self, request),
            SlotKind::Pricing => one::<PricingWorld>(self, request),
            SlotKind::Admission => one::<AdmissionWorld>(self, request),
        }
    }
}

/// Compiles `bytes` from scratch, past every cache, and says how long it took: for the
/// benchmarks.
pub fn compile_time(bytes: &[u8]) -> Result<Duration, LoadError> {
    let started = Instant::now();
    compile::compile_uncached(bytes)?;
    Ok(started.elapsed())
}

/// Hashes for the identity of a component (uploads, cache keys, status).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
