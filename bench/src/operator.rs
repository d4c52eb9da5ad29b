//! `kubeop operator` as its own process against the HTTPS fake API server (in this process,
//! on a runtime of its own): Projects with one App each, created at once as the manager writes
//! them. Measured: the time until every Project and App is Ready, reconciles per second from the
//! operator's /metrics, and its resident memory at the end. The baseline in the same run is the
//! time the burst of creations itself took, so the figure reads as "all Ready ÷ just writing
//! them". The fake runs no Deployment controller: a loop here plays it, marking each Deployment
//! available once it exists (what makes an App Ready).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kubeop_crds::{App, AppSpec, Project, ProjectSpec, Tenant, TenantSpec, labels};
use kubeop_fake_kube::FakeKube;
use serde_json::json;

use crate::procfs::{cpu_seconds, memory_kib};

#[derive(clap::Args)]
pub struct Options {
    /// Projects created, with one App each.
    #[arg(long, default_value_t = 500)]
    projects: usize,
    /// Concurrent creations.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The `kubeop` binary (default: beside this benchmark).
    #[arg(long)]
    kubeop: Option<std::path::PathBuf>,
}

const WAIT: Duration = Duration::from_secs(120);

pub fn run(options: Options) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = crate::server::binary(options.kubeop.as_deref())?;
    let cluster = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let fake = FakeKube::new();
    let https = cluster.block_on(async {
        install(&fake).await?;
        fake.serve_https().await
    })?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig())?;
    let mut child = Command::new(&binary)
        .arg("operator")
        .current_dir(dir.path())
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBEOP_OPERATOR__METRICS_ADDR", "127.0.0.1:0")
        .env("KUBEOP_LOG__FORMAT", "json")
        .env("KUBEOP_LOG__FILTER", "info")
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let addr = loop {
        let line = lines.next().ok_or_else(|| anyhow::anyhow!("the operator exited before listening"))??;
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = entry["addr"].as_str() {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let pid = child.id();
    let outcome =
        cluster.block_on(measure(&fake, &addr, &options, || memory_kib(pid).map(|m| m.0).unwrap_or(0)));
    let memory = memory_kib(child.id());
    let (operator_cpu, own_cpu) =
        (cpu_seconds(&format!("/proc/{}/stat", child.id())), cpu_seconds("/proc/self/stat"));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let (created, all_ready, reconciles, idle) = outcome?;
    let (rss, peak) = memory?;
    println!(
        "Operator benchmark: {} Projects with one App each, `kubeop operator` as its own process, HTTPS fake \
         API server in this process, {} cores",
        options.projects,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<44} {:>10}", "measurement", "value");
    println!("{:<44} {:>10.2}", "creating them (baseline), s", created.as_secs_f64());
    println!("{:<44} {:>10.2}", "until every Project and App is Ready, s", all_ready.as_secs_f64());
    println!("{:<44} {:>10.2}", "all Ready ÷ creating them", all_ready.as_secs_f64() / created.as_secs_f64());
    println!("{:<44} {:>10.0}", "reconciles", reconciles);
    println!("{:<44} {:>10.0}", "reconciles per second", reconciles / all_ready.as_secs_f64());
    println!("{:<44} {:>10.1}", "operator resident memory when ready, idle, MiB", idle as f64 / 1024.0);
    println!("{:<44} {:>10.1}", "operator resident memory at the end, MiB", rss as f64 / 1024.0);
    println!("{:<44} {:>10.1}", "operator peak resident memory, MiB", peak as f64 / 1024.0);
    println!("{:<44} {:>10.1}", "operator CPU time, s", operator_cpu);
    println!("{:<44} {:>10.1}", "fake API server and this benchmark CPU time, s", own_cpu);
    println!("\nGoal: all Ready within 10 s on 2 cores (the fake shares them); memory under 64 MiB.");
    Ok(())
}

/// kubeop's CRDs, its namespace and a policy, as a bootstrap leaves a cluster.
async fn install(fake: &FakeKube) -> anyhow::Result<()> {
    let client = fake.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kubeop_crds::definitions() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let system = Namespace { metadata: named("kubeop-system", None), ..Namespace::default() };
    namespaces.create(&PostParams::default(), &system).await?;
    let policy = ConfigMap {
        metadata: named("kubeop-policy", Some("kubeop-system")),
        data: Some(BTreeMap::from([(
            "policy.json".to_owned(),
            r#"{"imageAllowlist":["docker.io"],"egressBaseline":["10.0.0.0/8"],"quotaMax":{"requestsCPU":"4","requestsMemory":"8Gi"}}"#.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client, "kubeop-system").create(&PostParams::default(), &policy).await?;
    Ok(())
}

fn named(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..ObjectMeta::default() }
}

fn id_labels(ids: &[(&str, String)]) -> Option<BTreeMap<String, String>> {
    let mut labels: BTreeMap<String, String> =
        ids.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    Some(labels)
}

/// Creates everything at once, then waits for every Project and App to be Ready; answers the
/// creation time, the time to all Ready (both from the first creation) and the reconciles done.
async fn measure(
    fake: &FakeKube,
    addr: &str,
    options: &Options,
    rss_kib: impl Fn() -> u64,
) -> anyhow::Result<(Duration, Duration, f64, u64)> {
    let client = fake.client();
    // Wait for the operator to lead and sync before the clock starts.
    let started = Instant::now();
    while reqwest_status(addr, "/readyz").await != 200 {
        anyhow::ensure!(started.elapsed() < WAIT, "the operator never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = rss_kib();
    let tenant_id = "t_01jbench0000000000000000".to_owned();
    let apply = PatchParams::apply("kubeop");
    let tenant = Tenant {
        metadata: ObjectMeta {
            name: Some("t-01jbench0000000000000000".into()),
            labels: id_labels(&[(labels::TENANT_ID, tenant_id.clone())]),
            ..ObjectMeta::default()
        },
        spec: TenantSpec { name: "bench".into() },
        status: None,
    };
    let deployments_done = tokio::spawn(play_deployment_controller(client.clone()));
    let start = Instant::now();
    Api::<Tenant>::all(client.clone())
        .patch("t-01jbench0000000000000000", &apply, &Patch::Apply(&tenant))
        .await?;
    let creations = futures::stream::iter(0..options.projects)
        .map(|i| {
            let (client, apply, tenant_id) = (client.clone(), apply.clone(), tenant_id.clone());
            async move {
                let project_id = format!("p_01jbench{i:016}");
                let app_id = format!("a_01jbench{i:016}");
                let namespace = format!("kubeop-bench-p{i}");
                let project = Project {
                    metadata: ObjectMeta {
                        name: Some(project_id.replace('_', "-")),
                        labels: id_labels(&[
                            (labels::TENANT_ID, tenant_id.clone()),
                            (labels::PROJECT_ID, project_id.clone()),
                        ]),
                        ..ObjectMeta::default()
                    },
                    spec: ProjectSpec {
                        tenant_ref: "t-01jbench0000000000000000".into(),
                        name: format!("p{i}"),
                        namespace: namespace.clone(),
                    },
                    status: None,
                };
                Api::<Project>::all(client.clone())
                    .patch(&project_id.replace('_', "-"), &apply, &Patch::Apply(&project))
                    .await?;
                let app = App {
                    metadata: ObjectMeta {
                        name: Some(app_id.replace('_', "-")),
                        namespace: Some(namespace.clone()),
                        labels: id_labels(&[
                            (labels::TENANT_ID, tenant_id),
                            (labels::PROJECT_ID, project_id.clone()),
                            (labels::APP_ID, app_id.clone()),
                        ]),
                        ..ObjectMeta::default()
                    },
                    spec: AppSpec {
                        name: "web".into(),
                        project_ref: project_id.replace('_', "-"),
                        image: "docker.io/library/nginx:1.25".into(),
                        host: Some(format!("p{i}.bench.example")),
                        replicas: None,
                        port: None,
                        env: Vec::new(),
                        resources: None,
                    },
                    status: None,
                };
                // The manager applies the namespace before the App (the App lives in it).
                let ns = Namespace {
                    metadata: ObjectMeta {
                        name: Some(namespace.clone()),
                        labels: id_labels(&[(labels::PROJECT_ID, project_id)]),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                Api::<Namespace>::all(client.clone()).patch(&namespace, &apply, &Patch::Apply(&ns)).await?;
                Api::<App>::namespaced(client, &namespace)
                    .patch(&app_id.replace('_', "-"), &apply, &Patch::Apply(&app))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(options.concurrency)
        .collect::<Vec<_>>()
        .await;
    for result in creations {
        result?;
    }
    let created = start.elapsed();
    // Ready as watched (the benchmark must not load the fake it measures by polling lists).
    let (projects, apps) = (Api::<Project>::all(client.clone()), Api::<App>::all(client.clone()));
    let wanted = options.projects;
    let all = async {
        let ready_projects =
            ready_count(projects, |p: &Project| p.status.as_ref().map(|s| &s.conditions), wanted);
        let ready_apps = ready_count(apps, |a: &App| a.status.as_ref().map(|s| &s.conditions), wanted);
        futures::join!(ready_projects, ready_apps)
    };
    tokio::time::timeout(WAIT.saturating_sub(start.elapsed()), all)
        .await
        .map_err(|_| anyhow::anyhow!("not all Ready within {WAIT:?}"))?;
    let all_ready = start.elapsed();
    deployments_done.abort();
    let metrics = reqwest_body(addr, "/metrics").await;
    let reconciles: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("kubeop_operator_reconciles_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    for line in metrics.lines().filter(|l| l.starts_with("kubeop_operator_reconcile_errors_total{")) {
        println!("  {line}");
    }
    Ok((created, all_ready, reconciles, idle))
}

fn is_ready(conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>) -> bool {
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until `wanted` objects of a kind report Ready=True, following a watch.
async fn ready_count<K>(
    api: Api<K>,
    conditions: impl Fn(&K) -> Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    wanted: usize,
) where
    K: kube::Resource
        + Clone
        + for<'de> k8s_openapi::serde::Deserialize<'de>
        + std::fmt::Debug
        + Send
        + 'static,
{
    use kube::runtime::{WatchStreamExt, watcher};
    let mut ready = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while let Some(Ok(object)) = events.next().await {
        let name = object.meta().name.clone().unwrap_or_default();
        if is_ready(conditions(&object)) {
            ready.insert(name);
        } else {
            ready.remove(&name);
        }
        if ready.len() >= wanted {
            return;
        }
    }
}

/// Marks each Deployment available once it exists or changes, as the Deployment controller
/// would once its pods run.
async fn play_deployment_controller(client: kube::Client) {
    use kube::runtime::{WatchStreamExt, watcher};
    let mut events = std::pin::pin!(
        watcher(Api::<Deployment>::all(client.clone()), watcher::Config::default()).applied_objects()
    );
    while let Some(Ok(deployment)) = events.next().await {
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let generation = deployment.metadata.generation;
        let status = deployment.status.as_ref();
        if status.and_then(|s| s.observed_generation) == generation
            && status.and_then(|s| s.available_replicas) == Some(replicas)
        {
            continue;
        }
        let (Some(name), Some(namespace)) = (deployment.metadata.name, deployment.metadata.namespace) else {
            continue;
        };
        let patch = json!({"status": {"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas, "conditions": [{"type": "Available", "status": "True",
            "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
            "lastTransitionTime": "2026-11-29T00:00:00Z", "lastUpdateTime": "2026-11-29T00:00:00Z"}]}});
        let namespaced: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
        let _ = namespaced.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await;
    }
}

async fn reqwest_status(addr: &str, path: &str) -> u16 {
    let url = format!("http://{addr}{path}");
    tokio::task::spawn_blocking(move || http_get(&url).map_or(0, |(status, _)| status)).await.unwrap_or(0)
}

async fn reqwest_body(addr: &str, path: &str) -> String {
    let url = format!("http://{addr}{path}");
    tokio::task::spawn_blocking(move || http_get(&url).map(|(_, body)| body).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// One plain HTTP/1.0 GET: the status and the body.
fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()))
}
