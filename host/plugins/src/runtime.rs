//! The sandbox every plugin call runs in: one process-wide wasmtime `Engine` (pooling
//! allocator, epoch interruption), a `Linker` that offers the `host` log and the whole WASI 0.2
//! surface that language runtimes import, with no authority behind it, and a fresh `Store` per
//! call with a deadline and a memory cap.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{host, image_policy, types};
use super::{FailureKind, MAX_MEMORY_MIB};

/// How often the epoch advances; deadlines are whole ticks.
pub const TICK: Duration = Duration::from_millis(5);

/// Lines a plugin may log per call, and how much of each line is kept.
const LOG_LINES_PER_CALL: u32 = 64;
const LOG_LINE_BYTES: usize = 4096;

/// Whether instances map their memory image copy-on-write (wasmtime's default) rather than
/// copying it in; see [`copy_memory_images`].
static COPY_ON_WRITE: AtomicBool = AtomicBool::new(true);
static ENGINE_BUILT: AtomicBool = AtomicBool::new(false);

/// For the benchmarks, which measure what mapping the image saves: every instance copies its
/// component's initial memory in. Takes effect only before the first plugin loads in the
/// process; `false` when it came too late.
pub fn copy_memory_images() -> bool {
    COPY_ON_WRITE.store(false, Ordering::SeqCst);
    !ENGINE_BUILT.load(Ordering::SeqCst)
}

/// Shared by every server in the process (tests start many): compiled components are tied to
/// their engine, and the pooling allocator reserves its address space once.
static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(1024)
        .total_memories(512)
        .total_tables(1024)
        .max_memory_size((MAX_MEMORY_MIB as usize) << 20)
        .max_core_instances_per_component(32)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        // Between calls, reset what a call dirtied in place instead of unmapping it: the
        // PAGEMAP_SCAN ioctl (Linux 6.7+) finds the dirty pages, so the cost follows what the call
        // touched. A Rust guest's stack ends at 1 MiB and its data and heap follow, so 2 MiB covers
        // a typical call; past it pages are returned to the kernel as before.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto)
        // Warm slots keep their resident pages: bound how many stay warm while unused.
        .max_unused_warm_slots(64);
    ENGINE_BUILT.store(true, Ordering::SeqCst);
    let mut config = Config::new();
    config
        // Instances start from the component's memory image, mapped copy-on-write: an
        // interpreter's snapshot (tens of MiB for CPython) costs what a call touches, not a copy.
        .memory_init_cow(COPY_ON_WRITE.load(Ordering::SeqCst))
        .wasm_component_model(true)
        // Calls are synchronous on blocking threads: no async machinery per call.
        .concurrency_support(false)
        .epoch_interruption(true)
        .max_wasm_stack(512 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).expect("the plugin engine configuration is valid");
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawning the epoch ticker");
    engine
});

pub fn engine() -> &'static Engine {
    &ENGINE
}

/// The imports every plugin may use, whatever its world: kubeop's `host` interface and every
/// WASI 0.2 interface, so that the runtimes of JavaScript and Python (and Rust's standard
/// library) link. None of them grants anything ([`store`]): no preopened directory, so every
/// file open fails as "not found"; every socket address and name lookup refused; no
/// environment variables or arguments; stdin at end of file and output discarded. Clocks and
/// randomness answer, which is harmless and what runtimes need at start-up. Anything else a
/// component imports (`wasi:http`, a later WASI) is not in the linker, so it does not load.
pub fn linker() -> Linker<CallState> {
    let mut linker = Linker::new(engine());
    image_policy::ImagePolicy::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
        .expect("the host interface links once");
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI 0.2 links once");
    linker
}

/// What stands behind an import the linker provides, for `kubeop plugin check`; `None` for an
/// import it does not provide (the component is refused).
pub fn grant(import: &str) -> Option<&'static str> {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    if name == "kubeop:plugin/host" || name == "kubeop:plugin/types" {
        return version.starts_with("0.1.").then_some("kubeop's own: the log, the types");
    }
    // WASI 0.2.x only: later minor versions add to 0.2, and the linker resolves to what it has.
    if !version.starts_with("0.2.") {
        return None;
    }
    Some(match name.split('/').next()? {
        "wasi:filesystem" => "no authority: no preopened directory, every open fails (not found)",
        "wasi:sockets" => "no authority: every address and every name lookup refused",
        "wasi:cli" => match name {
            "wasi:cli/environment" => "no authority: no variables, no arguments",
            "wasi:cli/stdin" => "no authority: at end of file",
            "wasi:cli/stdout" | "wasi:cli/stderr" => "no authority: output discarded",
            "wasi:cli/exit" => "ends the call, as a failure",
            _ => "no authority: no terminal",
        },
        "wasi:clocks" => "answers: the host's clocks (harmless; runtimes read them)",
        "wasi:random" => "answers: random bytes (harmless; runtimes seed with them)",
        "wasi:io" => "streams and polling of the above",
        _ => return None,
    })
}

/// Limits of one call, set per slot.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    /// Bytes of text the answer may hold.
    pub max_output: usize,
}

/// Everything a call's `Store` holds.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    log: LogSink,
    started: Instant,
    /// How long instantiation took, once it is done.
    instantiate: Option<Duration>,
}

impl CallState {
    /// Marks the instance as created (each world's call, between instantiating and calling).
    pub fn instantiated(&mut self) {
        self.instantiate = Some(self.started.elapsed());
    }

    /// What the call cost so far: instantiation time and the most linear memory it held.
    pub fn probe(&self) -> Probe {
        Probe {
            instantiate: self.instantiate.unwrap_or_default(),
            total: self.started.elapsed(),
            peak_memory_bytes: self.limiter.peak,
        }
    }
}

/// The cost of one call on a fresh instance, for the benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// From the empty store to the instance, ready to call.
    pub instantiate: Duration,
    /// Instantiation and the call.
    pub total: Duration,
    /// The largest total of linear memory the instance held (its initial memories included).
    pub peak_memory_bytes: usize,
}

/// Who is logging, for the lines a plugin writes.
#[derive(Debug, Clone)]
pub struct LogSink {
    pub slot: &'static str,
    pub plugin: String,
    lines: u32,
}

impl LogSink {
    pub fn new(slot: &'static str, sha256: &str) -> Self {
        Self { slot, plugin: sha256.chars().take(12).collect(), lines: 0 }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        self.log.lines += 1;
        if self.log.lines > LOG_LINES_PER_CALL {
            return;
        }
        let mut end = message.len().min(LOG_LINE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message[..end];
        let (slot, plugin) = (self.log.slot, self.log.plugin.as_str());
        match level {
            host::Level::Trace => tracing::trace!(slot, plugin, "{text}"),
            host::Level::Debug => tracing::debug!(slot, plugin, "{text}"),
            host::Level::Info => tracing::info!(slot, plugin, "{text}"),
            host::Level::Warn => tracing::warn!(slot, plugin, "{text}"),
            host::Level::Error => tracing::error!(slot, plugin, "{text}"),
        }
    }
}

impl types::Host for CallState {}

/// Caps a call's linear memory and tables. Going over the memory cap traps at once with
/// [`MemoryLimit`], so the failure is reported as memory, not as whatever the guest's allocator
/// does when an allocation fails.
struct Limiter {
    memory_bytes: usize,
    /// Linear memory held by the instance's memories now, and the most it held.
    linear: usize,
    peak: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("the plugin asked for {desired} bytes of memory; its limit is {limit}")]
pub struct MemoryLimit {
    desired: usize,
    limit: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryLimit { desired, limit: self.memory_bytes }.into());
        }
        // Also asked when a memory is created (from 0), so this counts initial memories too.
        self.linear += desired.saturating_sub(current);
        self.peak = self.peak.max(self.linear);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A fresh store for one call: no WASI authority, the memory cap, and the deadline armed.
pub fn store(limits: CallLimits, log: LogSink) -> Store<CallState> {
    let state = CallState {
        wasi: no_authority(),
        table: ResourceTable::new(),
        limiter: Limiter { memory_bytes: limits.memory_bytes, linear: 0, peak: 0 },
        log,
        started: Instant::now(),
        instantiate: None,
    };
    let mut store = Store::new(engine(), state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(deadline_ticks(limits.deadline));
    store.epoch_deadline_trap();
    store
}

/// WASI with nothing behind it: no preopens, no environment or arguments, every socket address
/// and every name lookup refused (wasmtime's defaults, spelled out so that a change of default
/// cannot widen the sandbox).
fn no_authority() -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder.socket_addr_check(|_, _| Box::pin(async { false })).allow_ip_name_lookup(false);
    builder.build()
}

/// Ticks until the deadline, rounded up, plus the partial tick already under way.
fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = TICK.as_nanos();
    (deadline.as_nanos().div_ceil(tick) + 1) as u64
}

/// What went wrong in a call, from the error wasmtime returned.
pub fn classify(error: &wasmtime::Error) -> FailureKind {
    if error.downcast_ref::<MemoryLimit>().is_some() {
        return FailureKind::Memory;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FailureKind::Timeout,
        Some(Trap::StackOverflow) => FailureKind::StackOverflow,
        Some(_) => FailureKind::Trap,
        None => FailureKind::Instantiate,
    }
}
