//! `kubeop admission` as its own process (the release binary beside this benchmark), called as
//! the API server calls it: AdmissionReview v1 for a Deployment with three containers, POSTed
//! over HTTPS on HTTP/1.1 keep-alive connections (the API server talks HTTP/1.1 to admission
//! webhooks and opens several connections, kubernetes/kubernetes#82090), the certificate verified
//! against the webhook's CA for `kubeop-admission.kubeop-system.svc`. The cluster it reads
//! (namespaces, Ingresses, the `kubeop-policy` ConfigMap) is the HTTPS fake API server, served by
//! this process on a runtime of its own.
//!
//! Measured for the built-in admission plugin and, in the same run, for a no-op plugin (allows
//! everything, reads nothing) as the baseline: latency at a fixed offered rate (open loop,
//! counted from when each review was due so queueing is not hidden), the peak rate the
//! connections reach when they send as fast as they can (closed loop), the webhook's CPU time
//! per review and its peak resident memory. Every answer is checked: a 200 AdmissionReview
//! echoing the request's uid, allowed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kubeop_crds::labels;
use kubeop_fake_kube::FakeKube;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::procfs::{cpu_seconds, memory_kib};

#[derive(clap::Args)]
pub struct Options {
    /// Reviews per second offered in the open loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds measured at that rate (after one second of warm-up, not counted).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive HTTPS connections, as the API server's pool to one webhook replica.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds of the closed loop that finds the peak rate.
    #[arg(long, default_value_t = 3)]
    peak_seconds: u64,
    /// The webhook endpoint reviewed.
    #[arg(long, value_enum, default_value_t = Endpoint::Validate)]
    path: Endpoint,
    /// The `kubeop` binary (default: beside this benchmark).
    #[arg(long)]
    kubeop: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Validate => "/validate",
            Endpoint::Mutate => "/mutate",
        }
    }
}

/// The admission plugin the webhook runs.
#[derive(Clone, Copy)]
enum Plugin {
    BuiltIn,
    /// `allow_admission.wasm`: allows everything and reads nothing, so what is left is the
    /// webhook's own cost (TLS, HTTP, parsing, the plugin call's fixed part).
    NoOp,
}

impl Plugin {
    fn label(self) -> &'static str {
        match self {
            Plugin::BuiltIn => "built-in",
            Plugin::NoOp => "no-op (baseline)",
        }
    }

    /// Its `plugins.dir` under `root`: empty for the built-in, so both runs read a directory and
    /// the plugin is the only difference.
    fn directory(self, root: &Path, no_op: &Path) -> anyhow::Result<PathBuf> {
        let dir = root.join(match self {
            Plugin::BuiltIn => "plugins-none",
            Plugin::NoOp => "plugins-no-op",
        });
        std::fs::create_dir_all(&dir)?;
        if let Plugin::NoOp = self {
            std::fs::copy(no_op, dir.join("admission.wasm"))?;
        }
        Ok(dir)
    }
}

/// The name the API server verifies the serving certificate for.
const SERVICE_NAME: &str = "kubeop-admission.kubeop-system.svc";
/// The fixture's namespace, owned by acme's web project.
const PROJECT_NAMESPACE: &str = "kubeop-acme-web";
const TENANT_ID: &str = "t_01jd5x7k3q9m2n4p6r8s0t1acm";
const PROJECT_ID: &str = "p_01jd5x7k3q9m2n4p6r8s0t1v2w";
const WARM_UP: Duration = Duration::from_secs(1);
const STARTUP: Duration = Duration::from_secs(60);
/// The goal, from the issue: p99 at 1,000 reviews/s.
const GOAL_P99_MS: f64 = 5.0;
const GOAL_RATE: f64 = 1000.0;

pub fn run(options: Options) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = crate::server::binary(options.kubeop.as_deref())?;
    let no_op = guest("allow_admission.wasm")?;
    let dir = tempfile::tempdir()?;
    let cluster = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fake = FakeKube::new();
    let https = cluster.block_on(async {
        install(&fake).await?;
        fake.serve_https().await
    })?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig())?;
    let tls = ServingCertificate::generate(dir.path())?;
    // A current-thread runtime: the load takes at most one of the cores it shares with the webhook.
    let load = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut measured = Vec::new();
    for plugin in [Plugin::BuiltIn, Plugin::NoOp] {
        let plugins_dir = plugin.directory(dir.path(), &no_op)?;
        let webhook = WebhookProcess::spawn(&binary, dir.path(), &kubeconfig, &tls, &plugins_dir)?;
        let target = Arc::new(Target::new(webhook.addr, &tls, options.path)?);
        measured.push(load.block_on(measure(plugin, &webhook, target, &options))?);
    }
    drop(https);
    print(&measured, &options);
    Ok(())
}

/// A guest plugin built by `host/plugins`'s build script.
fn guest(file: &str) -> anyhow::Result<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-plugins/wasm32-wasip2/release").join(file);
    anyhow::ensure!(path.is_file(), "{} not found: build the workspace first", path.display());
    Ok(path)
}

/// The cluster as the manager and deploy/ leave it: kubeop-system with the platform policy, and
/// the project namespace the reviewed Deployment lives in, labelled with its tenant and project.
async fn install(fake: &FakeKube) -> anyhow::Result<()> {
    let client = fake.client();
    let create = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.create(&create, &namespace("kubeop-system", None)).await?;
    namespaces.create(&create, &namespace(PROJECT_NAMESPACE, Some((TENANT_ID, PROJECT_ID)))).await?;
    let policy = json!({
        "imageAllowlist": ["docker.io", "ghcr.io"],
        "egressBaseline": ["10.0.0.0/8"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"},
        "allowedHosts": ["*.example.com"],
        "auditRules": [],
    });
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("kubeop-policy".into()),
            namespace: Some("kubeop-system".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("policy.json".to_owned(), policy.to_string())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client, "kubeop-system").create(&create, &config_map).await?;
    Ok(())
}

fn namespace(name: &str, owner: Option<(&str, &str)>) -> Namespace {
    let labels = owner.map(|(tenant, project)| {
        BTreeMap::from([
            (labels::TENANT_ID.to_owned(), tenant.to_owned()),
            (labels::PROJECT_ID.to_owned(), project.to_owned()),
        ])
    });
    Namespace {
        metadata: ObjectMeta { name: Some(name.into()), labels, ..ObjectMeta::default() },
        ..Namespace::default()
    }
}

/// A CA and a serving certificate for the webhook's Service, as cert-manager would write them:
/// the webhook reads the files (admission.cert_file/key_file), the client trusts only the CA.
struct ServingCertificate {
    ca_pem: String,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl ServingCertificate {
    fn generate(dir: &Path) -> anyhow::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca_pem = ca_params.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![SERVICE_NAME.to_owned()])?.signed_by(&key, &issuer)?;
        let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok(Self { ca_pem, cert_file, key_file })
    }

    /// What the API server does with a caBundle: trust that CA and nothing else. HTTP/1.1 only,
    /// as the API server asks of admission webhooks.
    fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes())?)?;
        let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// `kubeop admission` running as its own process; stopped with SIGTERM when dropped.
struct WebhookProcess {
    child: Child,
    addr: SocketAddr,
}

impl WebhookProcess {
    /// Starts the webhook on a free port and waits until it says where it listens.
    fn spawn(
        binary: &Path,
        dir: &Path,
        kubeconfig: &Path,
        tls: &ServingCertificate,
        plugins_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .arg("admission")
            .current_dir(dir)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBEOP_ADMISSION__ADDR", "127.0.0.1:0")
            .env("KUBEOP_ADMISSION__CERT_FILE", &tls.cert_file)
            .env("KUBEOP_ADMISSION__KEY_FILE", &tls.key_file)
            .env("KUBEOP_PLUGINS__DIR", plugins_dir)
            .env("KUBEOP_LOG__FORMAT", "json")
            .env("KUBEOP_LOG__FILTER", "info")
            .stderr(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut seen = Vec::new();
        let addr = loop {
            let Some(line) = lines.next().transpose()? else {
                let _ = child.wait();
                anyhow::bail!("kubeop admission exited before listening:\n{}", seen.join("\n"));
            };
            let entry: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = entry["addr"].as_str() {
                break addr.parse()?;
            }
            seen.push(line);
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr })
    }

    /// User and system CPU time so far, in seconds (`/proc/<pid>/stat`).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The most resident memory it has used, in KiB (`VmHWM`).
    fn peak_rss_kib(&self) -> u64 {
        memory_kib(self.child.id()).map_or(0, |(_, peak)| peak)
    }
}

impl Drop for WebhookProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Where reviews go and what they must get back.
struct Target {
    addr: SocketAddr,
    tls: TlsConnector,
    path: &'static str,
    /// The fixture's JSON around its uid: each review gets a uid of its own, as from the API
    /// server, and the answer must echo it.
    body: (String, String),
}

impl Target {
    fn new(addr: SocketAddr, tls: &ServingCertificate, endpoint: Endpoint) -> anyhow::Result<Self> {
        let fixture = include_str!("../../host/webhook/tests/fixtures/deployment-create-allowed.json");
        let mut review: Value = serde_json::from_str(fixture)?;
        review["request"]["uid"] = json!("{uid}");
        let text = review.to_string();
        let (before, after) = text.split_once("{uid}").expect("the placeholder was just set");
        Ok(Self {
            addr,
            tls: TlsConnector::from(Arc::new(tls.client_config()?)),
            path: endpoint.path(),
            body: (before.to_owned(), after.to_owned()),
        })
    }

    fn uid(n: u64) -> String {
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    /// A keep-alive connection, TLS verified for the Service's name as the API server does.
    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = self.tls.connect(ServerName::try_from(SERVICE_NAME)?, tcp).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn get(&self, path: &str) -> anyhow::Result<u16> {
        let mut sender = self.connect().await?;
        let request = hyper::Request::get(path).header("host", SERVICE_NAME).body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        Ok(response.status().as_u16())
    }

    /// Review `n`: an error unless the answer is a 200 AdmissionReview for it, allowed.
    async fn review(&self, sender: &mut SendRequest<Full<Bytes>>, n: u64) -> anyhow::Result<()> {
        let uid = Self::uid(n);
        let body = format!("{}{uid}{}", self.body.0, self.body.1);
        let request = hyper::Request::post(self.path)
            .header("host", SERVICE_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status == 200, "answered {status}: {}", String::from_utf8_lossy(&answer));
        let answer: Value = serde_json::from_slice(&answer)?;
        let response = &answer["response"];
        anyhow::ensure!(
            answer["apiVersion"] == "admission.k8s.io/v1"
                && answer["kind"] == "AdmissionReview"
                && response["uid"] == uid.as_str()
                && response["allowed"] == true,
            "not an allowed AdmissionReview for {uid}: {answer}"
        );
        Ok(())
    }
}

/// One keep-alive connection that reconnects after a failure (the failure is counted, the next
/// review gets a fresh connection as the API server's pool would give it).
struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(target: Arc<Target>) -> anyhow::Result<Self> {
        let sender = Some(target.connect().await?);
        Ok(Self { target, sender })
    }

    async fn review(&mut self, n: u64) -> anyhow::Result<()> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(self.target.connect().await?),
        };
        let result = self.target.review(sender, n).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// What one plugin's run gave.
struct Measurement {
    plugin: Plugin,
    open: Outcome,
    peak: Outcome,
    /// CPU time per review in the open loop, in microseconds: the webhook's, and this
    /// process's (the load's and the fake's).
    open_cpu: (f64, f64),
    /// The same in the closed loop.
    peak_cpu: (f64, f64),
    peak_rss_kib: u64,
}

/// Reviews answered as expected, failures, and latency in microseconds.
struct Outcome {
    reviews: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latency: Histogram<u64>,
    /// How late the client's timer woke for reviews due on an idle connection (not counted as
    /// latency: it is this process's, not the webhook's).
    timer_lateness: Histogram<u64>,
}

impl Outcome {
    fn new() -> Self {
        Self {
            reviews: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency: histogram(),
            timer_lateness: histogram(),
        }
    }

    fn count(&mut self, result: anyhow::Result<()>) {
        match result {
            Ok(()) => self.reviews += 1,
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    fn merge(&mut self, other: Outcome) -> anyhow::Result<()> {
        self.reviews += other.reviews;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.add(&other.latency)?;
        self.timer_lateness.add(&other.timer_lateness)?;
        Ok(())
    }

    fn per_second(&self) -> f64 {
        self.reviews as f64 / self.elapsed.as_secs_f64()
    }

    fn millis(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Readiness, then the open loop at the offered rate, then the closed loop, with the webhook's
/// CPU time read around the open loop.
async fn measure(
    plugin: Plugin,
    webhook: &WebhookProcess,
    target: Arc<Target>,
    options: &Options,
) -> anyhow::Result<Measurement> {
    wait_ready(&target).await?;
    let cpu = CpuClock::start(webhook);
    let open = open_loop(&target, options).await?;
    // Over every review sent, the warm-up's too, as the CPU time includes them.
    let open_cpu = cpu.per_review(webhook, reviews_due(options));
    let cpu = CpuClock::start(webhook);
    let peak = closed_loop(&target, options).await?;
    let peak_cpu = cpu.per_review(webhook, peak.reviews + peak.errors);
    Ok(Measurement { plugin, open, peak, open_cpu, peak_cpu, peak_rss_kib: webhook.peak_rss_kib() })
}

/// CPU time of the webhook and of this process (load and fake) since `start`.
struct CpuClock {
    webhook: f64,
    own: f64,
}

impl CpuClock {
    fn start(webhook: &WebhookProcess) -> Self {
        Self { webhook: webhook.cpu_seconds(), own: cpu_seconds("/proc/self/stat") }
    }

    /// Microseconds per review: the webhook's, this process's.
    fn per_review(&self, webhook: &WebhookProcess, reviews: u64) -> (f64, f64) {
        let per = |seconds: f64| seconds * 1e6 / reviews.max(1) as f64;
        (per(webhook.cpu_seconds() - self.webhook), per(cpu_seconds("/proc/self/stat") - self.own))
    }
}

/// Until `/readyz` answers 200: the webhook has read the namespaces, Ingresses and policy.
async fn wait_ready(target: &Target) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match target.get("/readyz").await {
            Ok(200) => return Ok(()),
            outcome if started.elapsed() > STARTUP => {
                anyhow::bail!("kubeop admission not ready after {STARTUP:?}: {outcome:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `options.rate` reviews a second whatever the answers take, for a warm-up second and then
/// `options.seconds`. Review `n` is due at `start + n / rate`; a connection takes the next due
/// review once it is free, so when every connection is busy reviews wait, as in the API server's
/// pool, and that wait counts: latency runs from when the review was due. A review due while its
/// connection sat idle is timed from when it was sent, so the client timer's lateness (tokio's
/// timer has millisecond ticks) is not charged to the webhook; it is reported on its own.
async fn open_loop(target: &Arc<Target>, options: &Options) -> anyhow::Result<Outcome> {
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let measured_from = WARM_UP.as_secs_f64() * options.rate;
    let total = reviews_due(options);
    let connections = open_connections(target, options.connections).await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return outcome;
                    }
                    let due = start + interval.mul_f64(n as f64);
                    let sent = if Instant::now() < due {
                        tokio::time::sleep_until(due.into()).await;
                        let woke = Instant::now();
                        if n as f64 >= measured_from {
                            let _ = outcome.timer_lateness.record(micros(woke - due));
                        }
                        woke
                    } else {
                        due
                    };
                    let result = connection.review(n).await;
                    if (n as f64) < measured_from {
                        continue;
                    }
                    let _ = outcome.latency.record(micros(sent.elapsed()));
                    outcome.count(result);
                }
            })
        })
        .collect();
    let mut outcome = Outcome::new();
    for worker in workers {
        outcome.merge(worker.await?)?;
    }
    outcome.elapsed = start.elapsed().saturating_sub(WARM_UP);
    Ok(outcome)
}

/// `count` keep-alive connections to the webhook, handshakes done.
async fn open_connections(target: &Arc<Target>, count: usize) -> anyhow::Result<Vec<Connection>> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(Connection::open(target.clone()).await?);
    }
    Ok(connections)
}

/// Reviews the open loop sends, warm-up included.
fn reviews_due(options: &Options) -> u64 {
    ((WARM_UP.as_secs_f64() + options.seconds as f64) * options.rate) as u64
}

/// Every connection sends its next review as soon as the last is answered, for
/// `options.peak_seconds`: the most this webhook answers with this many connections (on a
/// machine whose cores it shares with this load).
async fn closed_loop(target: &Arc<Target>, options: &Options) -> anyhow::Result<Outcome> {
    let connections = open_connections(target, options.connections).await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(options.peak_seconds);
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome::new();
                while Instant::now() < deadline {
                    // Far from the open loop's uids, so no two reviews share one.
                    let n = (1 << 40) + next.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let result = connection.review(n).await;
                    let _ = outcome.latency.record(micros(sent.elapsed()));
                    outcome.count(result);
                }
                outcome
            })
        })
        .collect();
    let mut outcome = Outcome::new();
    for worker in workers {
        outcome.merge(worker.await?)?;
    }
    outcome.elapsed = start.elapsed();
    Ok(outcome)
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).max(1)
}

fn print(measured: &[Measurement], options: &Options) {
    println!(
        "Admission benchmark: AdmissionReview v1 (Deployment, three containers) to {} over HTTPS \
         (HTTP/1.1, {} keep-alive connections, certificate verified for {SERVICE_NAME}); `kubeop \
         admission` as its own process, fake API server and load in this one; {} cores",
        options.path.path(),
        options.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "\nOpen loop, {} s after 1 s of warm-up, latency from when each review was due:",
        options.seconds
    );
    println!(
        "{:<18} {:>9} {:>10} {:>8} {:>8} {:>9} {:>8} {:>7}",
        "plugin", "offered/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    for m in measured {
        let open = &m.open;
        println!(
            "{:<18} {:>9.0} {:>10.0} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7}",
            m.plugin.label(),
            options.rate,
            open.per_second(),
            open.millis(0.50),
            open.millis(0.99),
            open.millis(0.999),
            open.latency.max() as f64 / 1000.0,
            open.errors
        );
    }
    println!("\n{:<52} {:>10} {:>16}", "measurement", "built-in", "no-op (baseline)");
    let row = |name: &str, value: &dyn Fn(&Measurement) -> String| {
        println!("{:<52} {:>10} {:>16}", name, value(&measured[0]), value(&measured[1]));
    };
    row(&format!("peak reviews/s, closed loop ({} connections)", options.connections), &|m| {
        format!("{:.0}", m.peak.per_second())
    });
    row("p50 / p99 at the peak, ms", &|m| format!("{:.2}/{:.2}", m.peak.millis(0.5), m.peak.millis(0.99)));
    row("errors at the peak", &|m| m.peak.errors.to_string());
    row("CPU per review at the offered rate, µs: webhook/bench", &|m| {
        format!("{:.0}/{:.0}", m.open_cpu.0, m.open_cpu.1)
    });
    row("CPU per review at the peak, µs: webhook/bench", &|m| {
        format!("{:.0}/{:.0}", m.peak_cpu.0, m.peak_cpu.1)
    });
    row("webhook peak resident memory (VmHWM), MiB", &|m| format!("{:.1}", m.peak_rss_kib as f64 / 1024.0));
    row("client timer lateness p99 (not counted), ms", &|m| {
        format!("{:.2}", m.open.timer_lateness.value_at_quantile(0.99) as f64 / 1000.0)
    });
    for m in measured {
        for (loop_name, outcome) in [("open", &m.open), ("closed", &m.peak)] {
            if let Some(error) = &outcome.first_error {
                println!("first error, {}, {loop_name} loop: {error}", m.plugin.label());
            }
        }
    }
    let (built_in, baseline) = (&measured[0].open, &measured[1].open);
    println!("\nbuilt-in p99 ÷ no-op p99: {:.2}", built_in.millis(0.99) / baseline.millis(0.99));
    let passed = built_in.errors == 0
        && built_in.per_second() >= 0.99 * options.rate
        && built_in.millis(0.99) <= GOAL_P99_MS;
    // Passing at a higher rate meets it too; failing at a higher rate says nothing about 1,000/s.
    let verdict = match (passed, options.rate) {
        (true, rate) if rate >= GOAL_RATE => "met",
        (false, rate) if rate == GOAL_RATE => "NOT met",
        _ => "not judged at this rate",
    };
    println!(
        "Goal: p99 ≤ {GOAL_P99_MS} ms at {GOAL_RATE:.0} reviews/s with the built-in plugin, no errors: {verdict} \
         (p99 {:.2} ms at {:.0}/s offered, {:.0}/s achieved)",
        built_in.millis(0.99),
        options.rate,
        built_in.per_second()
    );
}
