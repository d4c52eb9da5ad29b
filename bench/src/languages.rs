//! Plugins written in Rust, JavaScript and Python, side by side in each slot: the component's
//! size and compile time, one call on a fresh instance, the memory it takes, what mapping its
//! memory image copy-on-write saves, and what `POST /v1/apps` and an invoice cost with each.
//!
//! Each (slot, component) is measured in a process of its own — this binary again, with the
//! hidden `--lang-child` — so that the resident memory is that component's alone, and so that
//! `copy_memory_images` can be switched on before the plugin engine exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::Method;
use kubeop_plugins::{SlotKind, Standalone};
use serde_json::{Value, json};

use crate::http;
use crate::load::{self, MakeRequest, Outcome};
use crate::procfs;
use crate::server::{self, Database, Running};

#[derive(clap::Args)]
// Not `Options`: http::Options, flattened beside it, has that group id.
#[group(id = "languages")]
pub struct Options {
    /// Plugins by language instead: Rust, JavaScript and Python per slot (size, compile, call
    /// cost, memory, copy-on-write images), then POST /v1/apps and invoices with each. `--only`
    /// takes a comma-separated list of parts (calls, apps, invoices), slots and languages.
    #[arg(long)]
    pub lang: bool,
    /// One measurement for --lang, in a process of its own: a slot and a component file (or
    /// `builtin`); prints one JSON line.
    #[arg(long, hide = true, num_args = 2, value_names = ["SLOT", "WASM"])]
    lang_child: Option<Vec<String>>,
    /// With --lang-child: every instance copies its memory image in instead of mapping it.
    #[arg(long, hide = true, requires = "lang_child")]
    copy_images: bool,
}

impl Options {
    pub fn wanted(&self) -> bool {
        self.lang || self.lang_child.is_some()
    }
}

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// Calls per measurement when `--calls` is not given: interpreters cost ~100× a Rust call.
const RUST_CALLS: usize = 20_000;
const INTERPRETER_CALLS: usize = 2_000;
/// End to end: runs per plugin, alternated, and the connections of the closed loop.
const ROUNDS: usize = 3;
const CONNECTIONS: usize = 4;
const INVOICES: usize = 300;

const ALLOWLIST: [&str; 3] = ["docker.io", "ghcr.io", "quay.io"];
const IMAGE: &str = "ghcr.io/acme/api:1.2";
/// 2026-01-01T00:00:00Z: the child's pricing request covers January, 744 hours.
const JANUARY: i64 = 1_767_225_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    Rust,
    JavaScript,
    Python,
}

impl Language {
    fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::JavaScript => "JavaScript",
            Language::Python => "Python",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "rust" => Some(Language::Rust),
            "js" | "javascript" => Some(Language::JavaScript),
            "py" | "python" => Some(Language::Python),
            _ => None,
        }
    }

    fn default_calls(self) -> usize {
        if self == Language::Rust { RUST_CALLS } else { INTERPRETER_CALLS }
    }
}

/// Where a component comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Built into kubeop.
    Builtin,
    /// A Rust guest, built with every other by host/plugins/build.rs.
    Cargo(&'static str),
    /// `plugins/<dir>`, built by its `build.sh`.
    Script(&'static str),
    /// No such plugin exists.
    Absent,
}

struct Entry {
    slot: SlotKind,
    language: Language,
    name: &'static str,
    origin: Origin,
}

impl Entry {
    const fn new(slot: SlotKind, language: Language, name: &'static str, origin: Origin) -> Self {
        Self { slot, language, name, origin }
    }
}

/// Every plugin measured, by slot; each slot's built-in is the Rust baseline.
const ENTRIES: [Entry; 12] = [
    Entry::new(SlotKind::ImagePolicy, Language::Rust, "built-in", Origin::Builtin),
    Entry::new(SlotKind::ImagePolicy, Language::Rust, "deny-latest", Origin::Cargo("deny_latest.wasm")),
    Entry::new(
        SlotKind::ImagePolicy,
        Language::JavaScript,
        "js-deny-latest",
        Origin::Script("examples/js-deny-latest"),
    ),
    Entry::new(
        SlotKind::ImagePolicy,
        Language::Python,
        "py-deny-latest",
        Origin::Script("testing/py-deny-latest"),
    ),
    Entry::new(SlotKind::Pricing, Language::Rust, "built-in", Origin::Builtin),
    Entry::new(SlotKind::Pricing, Language::Rust, "tiered-pricing", Origin::Cargo("tiered_pricing.wasm")),
    Entry::new(
        SlotKind::Pricing,
        Language::JavaScript,
        "js-tiered-pricing",
        Origin::Script("testing/js-tiered-pricing"),
    ),
    Entry::new(
        SlotKind::Pricing,
        Language::Python,
        "py-tiered-pricing",
        Origin::Script("examples/py-tiered-pricing"),
    ),
    Entry::new(SlotKind::Admission, Language::Rust, "built-in", Origin::Builtin),
    Entry::new(
        SlotKind::Admission,
        Language::Rust,
        "require-team-label",
        Origin::Cargo("require_team_label.wasm"),
    ),
    Entry::new(
        SlotKind::Admission,
        Language::JavaScript,
        "js-require-team-label",
        Origin::Script("testing/js-require-team-label"),
    ),
    Entry::new(SlotKind::Admission, Language::Python, "(none)", Origin::Absent),
];

fn entry(name: &str) -> &'static Entry {
    ENTRIES.iter().find(|entry| entry.name == name).expect("a known plugin")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Calls,
    Apps,
    Invoices,
}

/// What `--only` keeps: each list empty means all of it.
#[derive(Default)]
struct Filter {
    parts: Vec<Part>,
    slots: Vec<SlotKind>,
    languages: Vec<Language>,
}

impl Filter {
    fn parse(only: Option<&str>) -> anyhow::Result<Self> {
        let mut filter = Filter::default();
        for token in only.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token {
                "calls" => filter.parts.push(Part::Calls),
                "apps" => filter.parts.push(Part::Apps),
                "invoices" => filter.parts.push(Part::Invoices),
                _ => match (SlotKind::parse(token), Language::parse(token)) {
                    (Some(slot), _) => filter.slots.push(slot),
                    (_, Some(language)) => filter.languages.push(language),
                    _ => anyhow::bail!(
                        "--only {token}: with --lang, give parts (calls, apps, invoices), slots \
                         (image-policy, pricing, admission) or languages (rust, js, py)"
                    ),
                },
            }
        }
        Ok(filter)
    }

    fn part(&self, part: Part) -> bool {
        self.parts.is_empty() || self.parts.contains(&part)
    }

    fn entry(&self, entry: &Entry) -> bool {
        (self.slots.is_empty() || self.slots.contains(&entry.slot))
            && (self.languages.is_empty() || self.languages.contains(&entry.language))
    }
}

pub fn run(
    options: &Options,
    calls: Option<usize>,
    only: Option<&str>,
    http: &http::Options,
) -> anyhow::Result<()> {
    if let Some(args) = &options.lang_child {
        return child(args, calls.unwrap_or(INTERPRETER_CALLS), options.copy_images);
    }
    let filter = Filter::parse(only)?;
    let mut components = Components::default();
    let mut goals = Goals::default();
    if filter.part(Part::Calls) {
        by_language(&filter, calls, &mut components, &mut goals)?;
    }
    if filter.part(Part::Apps) {
        goals.apps = Some(apps_latency(http, &mut components)?);
    }
    if filter.part(Part::Invoices) {
        goals.invoices = Some(invoice_latency(&mut components)?);
    }
    goals.print();
    Ok(())
}

// Components: found, or built once per run.

/// A component ready to measure.
struct Component {
    bytes: Vec<u8>,
    /// What the child is given: a file, or `builtin`.
    argument: String,
}

#[derive(Default)]
struct Components {
    resolved: HashMap<(SlotKind, &'static str), Result<Arc<Component>, String>>,
}

impl Components {
    /// The component of `entry`, built on first use; `Err` says why there is none.
    fn get(&mut self, entry: &Entry) -> Result<Arc<Component>, String> {
        self.resolved.entry((entry.slot, entry.name)).or_insert_with(|| resolve(entry).map(Arc::new)).clone()
    }
}

fn resolve(entry: &Entry) -> Result<Component, String> {
    match entry.origin {
        Origin::Builtin => Ok(Component { bytes: entry.slot.builtin().to_vec(), argument: "builtin".into() }),
        Origin::Cargo(file) => {
            let path = Path::new(REPO).join("target/wasm-plugins/wasm32-wasip2/release").join(file);
            read(&path).map_err(|_| format!("not built ({} is missing)", relative(&path)))
        }
        Origin::Script(dir) => {
            if !Path::new(REPO).join("plugins").join(dir).join("build.sh").is_file() {
                return Err(format!("not built (no plugins/{dir}/build.sh)"));
            }
            let path = build_script(dir)?;
            read(&path).map_err(|e| format!("not built ({}: {e})", relative(&path)))
        }
        Origin::Absent => {
            Err(format!("not built (there is no {} {} plugin)", entry.language.name(), entry.slot))
        }
    }
}

fn read(path: &Path) -> std::io::Result<Component> {
    Ok(Component { bytes: std::fs::read(path)?, argument: path.display().to_string() })
}

fn relative(path: &Path) -> String {
    path.strip_prefix(REPO).unwrap_or(path).display().to_string()
}

/// Builds `plugins/<dir>` with its `build.sh` in a copy under target/bench-languages/ (so that
/// node_modules and .venv stay out of plugins/, which host/plugins/build.rs watches), with
/// KUBEOP_WIT set. A component built from the same sources and WIT is reused.
fn build_script(dir: &str) -> Result<PathBuf, String> {
    let source = Path::new(REPO).join("plugins").join(dir);
    let root = Path::new(REPO).join("target/bench-languages");
    let work = root.join("work").join(dir);
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let output = root.join(format!("{name}.wasm"));
    let stamp = root.join(format!("{name}.sources"));
    let failed = |what: &str, e: &dyn std::fmt::Display| format!("build failed ({what}: {e})");

    let files = own_files(&source).map_err(|e| failed("reading the example", &e))?;
    let wit = Path::new(REPO).join("wit");
    let sources = sources_hash(&files, &own_files(&wit).map_err(|e| failed("reading wit/", &e))?);
    if output.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == sources) {
        eprintln!("plugins/{dir}: reusing {} (same sources)", relative(&output));
        return Ok(output);
    }

    std::fs::create_dir_all(&work).map_err(|e| failed("creating its work directory", &e))?;
    for file in &files {
        let name = file.file_name().expect("a file name");
        std::fs::copy(file, work.join(name)).map_err(|e| failed("copying it", &e))?;
    }
    let _ = std::fs::remove_file(&output);
    eprintln!("plugins/{dir}: building…");
    let started = Instant::now();
    let built = Command::new("sh")
        .arg(work.join("build.sh"))
        .arg(&output)
        .env("KUBEOP_WIT", &wit)
        .output()
        .map_err(|e| failed("running sh", &e))?;
    if !built.status.success() || !output.is_file() {
        let stderr = String::from_utf8_lossy(&built.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        eprintln!("plugins/{dir}: build.sh failed ({}):\n{stderr}", built.status);
        return Err(format!("build failed: {}", lines[lines.len().saturating_sub(3)..].join(" / ")));
    }
    eprintln!("plugins/{dir}: built in {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::write(&stamp, sources);
    Ok(output)
}

/// The files directly in `dir`, by name, leaving out built components.
fn own_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && !entry.file_name().to_string_lossy().ends_with(".wasm") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn sources_hash(files: &[PathBuf], wit: &[PathBuf]) -> String {
    let mut all = Vec::new();
    for file in files.iter().chain(wit) {
        all.extend_from_slice(file.file_name().unwrap_or_default().as_encoded_bytes());
        all.push(0);
        let contents = std::fs::read(file).unwrap_or_default();
        all.extend_from_slice(&(contents.len() as u64).to_le_bytes());
        all.extend_from_slice(&contents);
    }
    kubeop_plugins::sha256_hex(&all)
}

// Requests: the WIT records as JSON, snake_case fields.

fn policy_json() -> Value {
    json!({"image_allowlist": ALLOWLIST, "egress_baseline": ["10.0.0.0/8"],
           "quota_max_requests_cpu": "4", "quota_max_requests_memory": "8Gi"})
}

/// A pinned image from an allowed registry: every image policy allows it.
fn image_request() -> Value {
    json!({
        "image": IMAGE,
        "reference": {"registry": "ghcr.io", "repository": "acme/api", "tag": "1.2", "digest": null},
        "tenant_id": "t_01jd5x7k3q9m2n4p6r8s0t1v2w", "project_id": "p_01jd5x7k3q9m2n4p6r8s0t1v2w",
        "policy": policy_json(),
    })
}

/// A month of hourly usage (744 hours), the same usage as the invoices below.
fn pricing_request() -> Value {
    let usage: Vec<Value> = (0..744)
        .map(|h| json!({"hour": JANUARY + 3600 * h, "cpu_milli": 250 + h % 97, "mem_mib": 512 + h % 31}))
        .collect();
    json!({
        "tenant_id": "t_01jd5x7k3q9m2n4p6r8s0t1v2w", "period_start": JANUARY, "period_end": JANUARY + 744 * 3600,
        "rates": {"cpu_milli_hour": "0.00004", "mem_mib_hour": "0.000005", "tier": null,
                  "discount_percent": "10", "currency": "EUR", "precision": 2},
        "usage": usage,
    })
}

/// A Deployment created with a team label, an allowed image and resource requests: every
/// admission plugin allows it after reading all of it.
fn admission_request() -> Value {
    let labels = json!({"app": "web", "team": "payments"});
    let review = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": "kubeop-acme-web",
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kubeop-acme-web:deployer"},
        "object": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "kubeop-acme-web", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "docker.io/library/nginx:1.25",
                        "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                    }]},
                },
            },
        },
    });
    json!({
        "review": review.to_string(),
        "tenant_id": "t_01jd5x7k3q9m2n4p6r8s0t1v2w", "project_id": "p_01jd5x7k3q9m2n4p6r8s0t1v2w",
        "policy": policy_json(),
        "admission": {"allowed_hosts": ["*.apps.example.com"], "allowed_service_types": [], "audit_rules": []},
        "host_claims": [],
    })
}

fn request(slot: SlotKind) -> Value {
    match slot {
        SlotKind::ImagePolicy => image_request(),
        SlotKind::Pricing => pricing_request(),
        SlotKind::Admission => admission_request(),
    }
}

/// Whether `answer` is the one every plugin of `slot` gives to [`request`].
fn expected(slot: SlotKind, answer: &Value) -> bool {
    match slot {
        SlotKind::ImagePolicy => answer == "Allow",
        SlotKind::Pricing => answer["Ok"].as_array().is_some_and(|lines| !lines.is_empty()),
        SlotKind::Admission => answer["allowed"] == true,
    }
}

// One measurement, in a child process.

/// What a child measured, as it prints it.
struct Figures {
    instantiate_p50_ns: f64,
    call_p50_ns: f64,
    call_p99_ns: f64,
    peak_linear_bytes: f64,
    /// Resident memory after the calls, in KiB.
    rss_kib: f64,
    /// Peak resident memory during the calls (reset after the load), in KiB; the whole
    /// process's when the reset is not available.
    hwm_calls_kib: f64,
    /// Peak resident memory of the whole process, the compile included.
    hwm_kib: f64,
    /// The process before the component was loaded.
    rss_start_kib: f64,
}

impl Figures {
    fn from_json(value: &Value) -> anyhow::Result<Self> {
        let field = |name: &str| {
            value[name].as_f64().ok_or_else(|| anyhow::anyhow!("the child's figures lack {name}: {value}"))
        };
        Ok(Self {
            instantiate_p50_ns: field("instantiate_p50_ns")?,
            call_p50_ns: field("call_p50_ns")?,
            call_p99_ns: field("call_p99_ns")?,
            peak_linear_bytes: field("peak_linear_bytes")?,
            rss_kib: field("rss_kib")?,
            hwm_calls_kib: field("hwm_calls_kib")?,
            hwm_kib: field("hwm_kib")?,
            rss_start_kib: field("rss_start_kib")?,
        })
    }
}

/// `--lang-child <slot> <wasm>`: loads the component, calls it `calls` times on fresh
/// instances and prints one JSON line of figures.
fn child(args: &[String], calls: usize, copy_images: bool) -> anyhow::Result<()> {
    if copy_images {
        // First thing: the engine reads the switch when the first plugin loads.
        assert!(kubeop_plugins::copy_memory_images(), "copy_memory_images came after the engine was built");
    }
    let [slot, wasm] = args else { anyhow::bail!("--lang-child takes a slot and a component") };
    let slot = SlotKind::parse(slot).ok_or_else(|| anyhow::anyhow!("no slot {slot}"))?;
    let bytes = if wasm == "builtin" { slot.builtin().to_vec() } else { std::fs::read(wasm)? };
    let pid = std::process::id();
    let (rss_start_kib, _) = procfs::memory_kib(pid)?;

    let plugin =
        Standalone::load(slot, &bytes).map_err(|e| anyhow::anyhow!("the component is refused: {e}"))?;
    let request = request(slot);
    let (answer, _) = plugin.probe_json(request.clone()).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(expected(slot, &answer), "unexpected answer from the {slot} plugin: {answer}");
    for _ in 0..(calls / 10).clamp(10, 200) {
        plugin.probe_json(request.clone()).map_err(anyhow::Error::msg)?;
    }

    // Peak memory from here on is the calls': the compile's freed heap goes back to the kernel,
    // and writing 5 to clear_refs resets VmHWM to the current VmRSS.
    let (_, hwm_load_kib) = procfs::memory_kib(pid)?;
    release_freed_heap();
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let mut call = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut instantiate = call.clone();
    let mut peak_linear = 0;
    for _ in 0..calls {
        let (_, probe) = plugin.probe_json(request.clone()).map_err(anyhow::Error::msg)?;
        call.record(probe.total.as_nanos().max(1) as u64)?;
        instantiate.record(probe.instantiate.as_nanos().max(1) as u64)?;
        peak_linear = peak_linear.max(probe.peak_memory_bytes);
    }
    let (rss_kib, hwm_kib) = procfs::memory_kib(pid)?;
    println!(
        "{}",
        json!({
            "instantiate_p50_ns": instantiate.value_at_quantile(0.5),
            "call_p50_ns": call.value_at_quantile(0.5),
            "call_p99_ns": call.value_at_quantile(0.99),
            "peak_linear_bytes": peak_linear,
            "rss_kib": rss_kib,
            "hwm_calls_kib": hwm_kib,
            "hwm_kib": if reset { hwm_kib.max(hwm_load_kib) } else { hwm_kib },
            "rss_start_kib": rss_start_kib,
        })
    );
    Ok(())
}

/// Hands the heap that the compile freed back to the kernel: glibc keeps it in its arenas
/// (hundreds of MiB after an interpreter's compile), which would bury what the component holds.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        malloc_trim(0);
    }
}

/// Runs one child and reads its figures.
fn measure_in_child(
    slot: SlotKind,
    component: &Component,
    calls: usize,
    copy: bool,
) -> anyhow::Result<Figures> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args([
        "plugins",
        "--lang-child",
        slot.as_str(),
        &component.argument,
        "--calls",
        &calls.to_string(),
    ]);
    if copy {
        command.arg("--copy-images");
    }
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the measurement failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let line = stdout.lines().rev().find(|line| line.starts_with('{')).unwrap_or_default();
    Figures::from_json(&serde_json::from_str(line)?)
}

// The table by language.

struct Measured {
    size: usize,
    compile: Duration,
    calls: usize,
    /// Memory images mapped copy-on-write (the default), and copied in.
    mapped: Figures,
    copied: Figures,
}

fn by_language(
    filter: &Filter,
    calls: Option<usize>,
    components: &mut Components,
    goals: &mut Goals,
) -> anyhow::Result<()> {
    let mut rows: Vec<(&Entry, Result<Measured, String>)> = Vec::new();
    for entry in ENTRIES.iter().filter(|entry| filter.entry(entry)) {
        let measured = components.get(entry).and_then(|component| {
            let calls = calls.unwrap_or(entry.language.default_calls());
            eprintln!("measuring {} {} ({calls} calls, twice)…", entry.slot, entry.name);
            measure(entry.slot, &component, calls).map_err(|e| format!("{e:#}"))
        });
        rows.push((entry, measured));
    }

    let counts = match calls {
        Some(calls) => format!("{calls} calls a row"),
        None => format!("{RUST_CALLS} calls a row in Rust, {INTERPRETER_CALLS} in JavaScript and Python"),
    };
    println!(
        "== plugins by language: one call on a fresh instance, each row in a process of its own ({counts})"
    );
    println!(
        "{:<12} {:<10} {:<21} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "slot",
        "language",
        "component",
        "size",
        "compile",
        "inst p50",
        "call p50",
        "call p99",
        "linear",
        "VmRSS",
        "VmHWM",
        "HWM+load"
    );
    for (entry, measured) in &rows {
        let head = format!("{:<12} {:<10} {:<21}", entry.slot.as_str(), entry.language.name(), entry.name);
        match measured {
            Err(why) => println!("{head} {why}"),
            Ok(m) => println!(
                "{head} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                bytes(m.size as f64),
                format!("{:.2} s", m.compile.as_secs_f64()),
                nanos(m.mapped.instantiate_p50_ns),
                nanos(m.mapped.call_p50_ns),
                nanos(m.mapped.call_p99_ns),
                bytes(m.mapped.peak_linear_bytes),
                kib(m.mapped.rss_kib),
                kib(m.mapped.hwm_calls_kib),
                kib(m.mapped.hwm_kib),
            ),
        }
    }
    if let Some((_, Ok(idle))) = rows.iter().find(|(entry, _)| entry.origin.is_builtin()) {
        println!(
            "compile: from scratch, as on upload; inst: empty store to instance; call: instantiation and the call\n\
             (the request's JSON conversion left out); linear: the most linear memory an instance held; VmRSS\n\
             after the calls, VmHWM during them, HWM+load also over the compile: of the child process, which\n\
             holds {} before it loads the component.",
            kib(idle.mapped.rss_start_kib)
        );
    }

    println!("\n== copy-on-write memory images (the default) against copying each instance's memory in");
    println!(
        "{:<12} {:<10} {:<21} {:>27} {:>27} {:>27}",
        "slot",
        "language",
        "component",
        "inst p50 mapped → copied",
        "call p50 mapped → copied",
        "VmHWM mapped → copied"
    );
    for (entry, measured) in &rows {
        let Ok(m) = measured else { continue };
        let both = |mapped: String, copied: String, ratio: f64| format!("{mapped} → {copied} ({ratio:.1}×)");
        println!(
            "{:<12} {:<10} {:<21} {:>27} {:>27} {:>27}",
            entry.slot.as_str(),
            entry.language.name(),
            entry.name,
            both(
                nanos(m.mapped.instantiate_p50_ns),
                nanos(m.copied.instantiate_p50_ns),
                m.copied.instantiate_p50_ns / m.mapped.instantiate_p50_ns
            ),
            both(
                nanos(m.mapped.call_p50_ns),
                nanos(m.copied.call_p50_ns),
                m.copied.call_p50_ns / m.mapped.call_p50_ns
            ),
            both(
                kib(m.mapped.hwm_calls_kib),
                kib(m.copied.hwm_calls_kib),
                m.copied.hwm_calls_kib / m.mapped.hwm_calls_kib
            ),
        );
    }
    println!("(× is copied ÷ mapped; VmHWM is the peak during the calls)\n");

    for (entry, measured) in rows {
        let Ok(m) = measured else { continue };
        match (entry.slot, entry.language, entry.origin) {
            (SlotKind::ImagePolicy, Language::Rust, Origin::Builtin) => {
                goals.rust_builtin = Some((m.mapped.call_p50_ns, m.mapped.call_p99_ns, m.calls));
            }
            (SlotKind::ImagePolicy, Language::JavaScript, _) => {
                goals.javascript_p99_ns = Some(m.mapped.call_p99_ns)
            }
            _ => {}
        }
    }
    Ok(())
}

impl Origin {
    fn is_builtin(self) -> bool {
        matches!(self, Origin::Builtin)
    }
}

fn measure(slot: SlotKind, component: &Component, calls: usize) -> anyhow::Result<Measured> {
    let compile = kubeop_plugins::compile_time(&component.bytes)
        .map_err(|e| anyhow::anyhow!("the component does not compile: {e}"))?;
    let mapped = measure_in_child(slot, component, calls, false)?;
    let copied = measure_in_child(slot, component, calls, true)?;
    Ok(Measured { size: component.bytes.len(), compile, calls, mapped, copied })
}

// End to end.

/// The latency of one run, or the medians of several (errors summed).
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    /// Requests per second, for a closed loop.
    per_second: Option<f64>,
    errors: u64,
}

impl Latency {
    fn of(outcome: &Outcome) -> Self {
        Self {
            p50_ms: outcome.millis(0.5),
            p99_ms: outcome.millis(0.99),
            per_second: Some(outcome.per_second()),
            errors: outcome.errors,
        }
    }

    fn median(runs: &[Latency]) -> Self {
        let median = |pick: &dyn Fn(&Latency) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Self {
            p50_ms: median(&|run| run.p50_ms),
            p99_ms: median(&|run| run.p99_ms),
            per_second: runs[0].per_second.map(|_| median(&|run| run.per_second.unwrap_or(0.0))),
            errors: runs.iter().map(|run| run.errors).sum(),
        }
    }
}

/// Each plugin's medians, or why it was not measured.
type Comparison = Vec<(&'static Entry, Result<Latency, String>)>;

/// Uploads `component` into `slot`'s slot and checks that it is the one now active.
async fn upload(addr: std::net::SocketAddr, slot: SlotKind, component: &Component) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::put(format!("/v1/platform/plugins/{slot}"))
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {}", server::admin_token()))
        .header("content-type", "application/wasm")
        .body(Full::new(bytes::Bytes::from(component.bytes.clone())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "the upload answered {status}: {}", String::from_utf8_lossy(&body));
    let installed: Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        installed["sha256"] == kubeop_plugins::sha256_hex(&component.bytes).as_str(),
        "the {slot} slot runs {} after the upload",
        installed["sha256"]
    );
    Ok(())
}

/// The named plugins that exist, in order, and a row for each that does not.
fn available(
    names: &[&str],
    components: &mut Components,
) -> (Vec<(&'static Entry, Arc<Component>)>, Comparison) {
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for name in names {
        let entry = entry(name);
        match components.get(entry) {
            Ok(component) => found.push((entry, component)),
            Err(why) => missing.push((entry, Err(why))),
        }
    }
    (found, missing)
}

fn apps_latency(http: &http::Options, components: &mut Components) -> anyhow::Result<Comparison> {
    let (plugins, mut comparison) = available(&["deny-latest", "js-deny-latest"], components);
    println!(
        "== POST /v1/apps on SQLite, closed loop over {CONNECTIONS} connections, {} s per run: Rust against \
         JavaScript deny-latest in the image-policy slot, alternated, medians of {ROUNDS} runs each",
        http.seconds
    );
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut runs: Vec<Vec<Latency>> = plugins.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS * plugins.len() {
        let (entry, component) = &plugins[round % plugins.len()];
        eprintln!("POST /v1/apps with {}, run {} of {ROUNDS}…", entry.name, round / plugins.len() + 1);
        let database = Database::create("sqlite", "")?;
        let (mut config, data_dir) = server::config(&database)?;
        config.policy.image_allowlist = ALLOWLIST.map(String::from).to_vec();
        let server = Running::start(config, data_dir, |server| server)?;
        let outcome = client.block_on(async {
            upload(server.addr, SlotKind::ImagePolicy, component).await?;
            let token = Some(server::admin_token());
            let tenant =
                load::create(server.addr, token.clone(), "/v1/tenants", r#"{"name":"bench"}"#.into()).await?;
            let project = load::create(
                server.addr,
                token.clone(),
                "/v1/projects",
                format!(r#"{{"tenantID":"{tenant}","name":"web"}}"#),
            )
            .await?;
            let warm = Duration::from_secs(1);
            load::closed_loop(server.addr, token.clone(), CONNECTIONS, warm, create_apps(&project, "warm"))
                .await?;
            let measured = Duration::from_secs(http.seconds);
            load::closed_loop(server.addr, token, CONNECTIONS, measured, create_apps(&project, "run")).await
        })?;
        runs[round % plugins.len()].push(Latency::of(&outcome));
    }
    for ((entry, _), runs) in plugins.iter().zip(&runs) {
        comparison.push((entry, Ok(Latency::median(runs))));
    }
    comparison.sort_by_key(|(entry, _)| entry.language as u8);
    print_comparison(&comparison);
    Ok(comparison)
}

fn create_apps(project: &str, phase: &'static str) -> MakeRequest {
    let project = project.to_owned();
    Arc::new(move |connection, n| {
        let body =
            format!(r#"{{"projectID":"{project}","name":"a-{phase}-{connection}-{n}","image":"{IMAGE}"}}"#);
        (Method::POST, "/v1/apps".to_owned(), Some(body))
    })
}

fn invoice_latency(components: &mut Components) -> anyhow::Result<Comparison> {
    let (plugins, mut comparison) = available(&["tiered-pricing", "py-tiered-pricing"], components);
    println!(
        "== one invoice over a month of hourly usage (744 hours) on SQLite, {INVOICES} in a row per run: Rust \
         against Python tiered pricing in the pricing slot, alternated, medians of {ROUNDS} runs each"
    );
    let database = Database::create("sqlite", "")?;
    let (mut config, data_dir) = server::config(&database)?;
    // Usage from a past month is accepted.
    config.billing.max_age_days = 400;
    let server = Running::start(config, data_dir, |server| server)?;
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let runs = client.block_on(async {
        let token = Some(server::admin_token());
        let tenant = load::create(server.addr, token.clone(), "/v1/tenants", r#"{"name":"acme"}"#.into()).await?;
        let (start, label) = crate::billing::last_31_day_month();
        let points: Vec<String> = (0..744)
            .map(|h| {
                let ts = (start + chrono::Duration::hours(h)).to_rfc3339();
                format!(
                    r#"{{"ts":"{ts}","tenant_id":"{tenant}","cpu_milli":{},"mem_mib":{}}}"#,
                    250 + h % 97,
                    512 + h % 31
                )
            })
            .collect();
        let rates = r#"{"cpu_milli":"0.00004","mem_mib":"0.000005","discount_percent":"10","effective_from":"2020-01-01T00:00:00Z"}"#;
        let path = format!("/v1/tenants/{tenant}/rates");
        let (status, _) = load::send_once(server.addr, token.clone(), Method::PUT, &path, Some(rates.into())).await?;
        anyhow::ensure!(status.is_success(), "rates: {status}");
        load::create(server.addr, token.clone(), "/v1/usage/ingest", format!("[{}]", points.join(","))).await.ok();
        let path = format!("/v1/invoices/{tenant}?period={label}");

        let mut runs: Vec<Vec<Latency>> = plugins.iter().map(|_| Vec::new()).collect();
        for round in 0..ROUNDS * plugins.len() {
            let (entry, component) = &plugins[round % plugins.len()];
            eprintln!("invoices with {}, run {} of {ROUNDS}…", entry.name, round / plugins.len() + 1);
            upload(server.addr, SlotKind::Pricing, component).await?;
            let (status, body) = load::send_once(server.addr, token.clone(), Method::GET, &path, None).await?;
            anyhow::ensure!(status.is_success(), "invoice: {status} {}", String::from_utf8_lossy(&body));
            let invoice: Value = serde_json::from_slice(&body)?;
            anyhow::ensure!(
                invoice["usage"].as_array().map(Vec::len) == Some(744),
                "the month has 744 hours of usage"
            );
            let mut connection = load::Connection::open(server.addr, token.clone()).await?;
            for _ in 0..20 {
                connection.send(Method::GET, &path, None).await?;
            }
            let mut micros = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut errors = 0;
            for _ in 0..INVOICES {
                let started = Instant::now();
                let status = connection.send(Method::GET, &path, None).await?;
                errors += u64::from(!status.is_success());
                micros.record(started.elapsed().as_micros().max(1) as u64)?;
            }
            let ms = |q: f64| micros.value_at_quantile(q) as f64 / 1000.0;
            runs[round % plugins.len()].push(Latency { p50_ms: ms(0.5), p99_ms: ms(0.99), per_second: None, errors });
        }
        anyhow::Ok(runs)
    })?;
    for ((entry, _), runs) in plugins.iter().zip(&runs) {
        comparison.push((entry, Ok(Latency::median(runs))));
    }
    comparison.sort_by_key(|(entry, _)| entry.language as u8);
    print_comparison(&comparison);
    Ok(comparison)
}

fn print_comparison(comparison: &Comparison) {
    println!("{:<10} {:<21} {:>9} {:>9} {:>9}", "language", "plugin", "p50", "p99", "req/s");
    for (entry, latency) in comparison {
        let head = format!("{:<10} {:<21}", entry.language.name(), entry.name);
        match latency {
            Err(why) => println!("{head} {why}"),
            Ok(l) => println!(
                "{head} {:>9} {:>9} {:>9}{}",
                format!("{:.2} ms", l.p50_ms),
                format!("{:.2} ms", l.p99_ms),
                l.per_second.map_or("-".into(), |r| format!("{r:.0}")),
                if l.errors > 0 { format!("  ({} errors)", l.errors) } else { String::new() }
            ),
        }
    }
    println!();
}

// Goals.

#[derive(Default)]
struct Goals {
    /// The built-in image policy: call p50 and p99 in ns, and the calls they come from.
    rust_builtin: Option<(f64, f64, usize)>,
    javascript_p99_ns: Option<f64>,
    apps: Option<Comparison>,
    invoices: Option<Comparison>,
}

impl Goals {
    fn print(&self) {
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        println!("== goals");
        if let Some((p50, p99, calls)) = self.rust_builtin {
            println!(
                "Rust built-in image policy, no regression from ~9 µs p50, ~11–13 µs p99: p50 {} ({:.2}×), p99 {} \
                 ({:.2}× of 13 µs), {calls} calls",
                nanos(p50),
                p50 / 9_000.0,
                nanos(p99),
                p99 / 13_000.0
            );
        }
        if let Some(p99) = self.javascript_p99_ns {
            println!(
                "JavaScript image-policy call p99 ≤ 1 ms: {} — {}",
                nanos(p99),
                verdict(p99 <= 1_000_000.0)
            );
        }
        if let Some(Ok(python)) = find(&self.invoices, Language::Python) {
            println!(
                "Python invoice p99 ≤ 20 ms: {:.2} ms — {}",
                python.p99_ms,
                verdict(python.p99_ms <= 20.0)
            );
            if let Some(Ok(rust)) = find(&self.invoices, Language::Rust) {
                println!(
                    "  (Rust tiered pricing: {:.2} ms; Python costs {:.2} ms more at p99)",
                    rust.p99_ms,
                    python.p99_ms - rust.p99_ms
                );
            }
        }
        if let (Some(Ok(rust)), Some(Ok(javascript))) =
            (find(&self.apps, Language::Rust), find(&self.apps, Language::JavaScript))
        {
            println!(
                "POST /v1/apps with JavaScript against Rust deny-latest: p50 {:+.2} ms, p99 {:+.2} ms (no goal set)",
                javascript.p50_ms - rust.p50_ms,
                javascript.p99_ms - rust.p99_ms
            );
        }
    }
}

/// The medians of `language`'s plugin in `comparison`.
fn find(comparison: &Option<Comparison>, language: Language) -> Option<&Result<Latency, String>> {
    comparison.as_ref()?.iter().find(|(entry, _)| entry.language == language).map(|(_, latency)| latency)
}

// Units.

fn nanos(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn bytes(bytes: f64) -> String {
    if bytes < 1024.0 * 1024.0 {
        format!("{:.0} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / 1048576.0)
    }
}

fn kib(kib: f64) -> String {
    bytes(kib * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_takes_parts_slots_and_languages() {
        let filter = Filter::parse(Some("calls, pricing,js")).unwrap();
        assert_eq!(filter.parts, [Part::Calls]);
        assert_eq!(filter.slots, [SlotKind::Pricing]);
        assert_eq!(filter.languages, [Language::JavaScript]);
        assert!(filter.entry(entry("js-tiered-pricing")));
        assert!(!filter.entry(entry("py-tiered-pricing")));
        assert!(!filter.part(Part::Apps));
        assert!(Filter::parse(Some("swap")).is_err());
    }
}
