//! Drift repair, retries after failures, a cluster without the CRDs, and the written objects
//! against Kubernetes' own schema.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubeop_fake_kube::FakeKube;
use kubeop_operator::{Metrics, Settings};
use serde_json::{Value, json};

use crate::helpers::*;

fn edit_by(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..PatchParams::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_to_owned_objects_are_repaired() {
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &["10.0.0.0/8"]))).await;
    let operator = Operator::start(&cluster).await;
    let app_name = tenant_project_and_app(&cluster).await;
    let ns = ACME_WEB.namespace;

    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let scale = json!({"spec": {"replicas": 5}});
    deployments.patch(&app_name, &edit_by("kubectl-edit"), &Patch::Merge(&scale)).await.unwrap();
    let network_policies: Api<NetworkPolicy> = Api::namespaced(cluster.client.clone(), ns);
    network_policies.delete("default-deny", &DeleteParams::default()).await.unwrap();
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    services.delete(&app_name, &DeleteParams::default()).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let relaxed = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}});
    namespaces.patch(ns, &edit_by("kubectl-label"), &Patch::Merge(&relaxed)).await.unwrap();

    cluster
        .wait_for(("apps/v1", "deployments", Some(ns), &app_name), "the App's replica count back", |d| {
            d["spec"]["replicas"] == 2
        })
        .await;
    cluster
        .wait_for(
            ("networking.k8s.io/v1", "networkpolicies", Some(ns), "default-deny"),
            "default-deny back",
            |p| p["spec"] == json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )
        .await;
    cluster.wait_for(("v1", "services", Some(ns), &app_name), "the Service back", |_| true).await;
    cluster
        .wait_for(("v1", "namespaces", None, ns), "Pod Security back to restricted", |n| {
            n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        })
        .await;
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_is_retried_until_the_project_is_ready() {
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &[]))).await;
    let operator = Operator::start(&cluster).await;
    cluster.apply(&tenant(&ACME_WEB)).await;
    cluster.apply(&manager_namespace(&ACME_WEB)).await;
    cluster
        .wait_for((CRD, "tenants", None, &object_name(ACME_WEB.tenant)), "the Tenant reconciled", |t| {
            ready(t) == Some("True")
        })
        .await;

    cluster.apply(&project(&ACME_WEB, "web")).await;
    cluster.fake.fail_next(6, 500);
    let project = cluster
        .wait_for((CRD, "projects", None, &object_name(ACME_WEB.project)), "the Project Ready", |p| {
            ready(p) == Some("True")
        })
        .await;
    assert_eq!(project["status"]["observedGeneration"], project["metadata"]["generation"]);
    let failed = cluster.fake.requests().iter().filter(|r| r.status == 500).count();
    assert_eq!(failed, 6, "every injected failure was met");
    let errors = operator.metric("kubeop_operator_reconcile_errors_total", &[("error", "kube_api")]);
    assert!(errors >= 1.0, "failures were reconcile errors, retried: {errors}");
    cluster
        .wait_for(("v1", "resourcequotas", Some(ACME_WEB.namespace), "kubeop-quota"), "the quota", |_| true)
        .await;
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crds_the_operator_says_so() {
    let fake = FakeKube::new();
    let registry = prometheus::Registry::new();
    let ready = Arc::new(AtomicBool::new(false));
    let result =
        kubeop_operator::run(fake.client(), Settings::default(), Metrics::new(&registry), ready, async {})
            .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("install kubeop's CustomResourceDefinitions"), "{error}");
}

/// `kubernetes-validate --strict` (Kubernetes 1.33) on every object the operator wrote, as the
/// fake stores them. Needs the tool in /tmp/kv (`python3 -m venv /tmp/kv && /tmp/kv/bin/pip
/// install -r tests/kube/requirements.txt`); run by hand with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kubernetes-validate in /tmp/kv; run by hand"]
async fn written_objects_pass_kubernetes_validate() {
    let validator = std::path::Path::new("/tmp/kv/bin/kubernetes-validate");
    if !validator.exists() {
        eprintln!("skipped: {} is not installed", validator.display());
        return;
    }
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &["10.0.0.0/8"]))).await;
    let operator = Operator::start(&cluster).await;
    let app_name = tenant_project_and_app(&cluster).await;
    let ns = ACME_WEB.namespace;
    eventually("an event", || {
        (!cluster.fake.objects("events.k8s.io/v1", "events", Some(ns)).is_empty()).then_some(())
    })
    .await;
    let mut objects: Vec<Value> = vec![
        cluster.object("v1", "namespaces", None, ns).unwrap(),
        cluster.object("v1", "resourcequotas", Some(ns), "kubeop-quota").unwrap(),
        cluster.object("v1", "limitranges", Some(ns), "kubeop-defaults").unwrap(),
        cluster.object("apps/v1", "deployments", Some(ns), &app_name).unwrap(),
        cluster.object("v1", "services", Some(ns), &app_name).unwrap(),
        cluster.object("networking.k8s.io/v1", "ingresses", Some(ns), &app_name).unwrap(),
    ];
    objects.extend(cluster.fake.objects("networking.k8s.io/v1", "networkpolicies", Some(ns)));
    objects.extend(cluster.fake.objects("events.k8s.io/v1", "events", Some(ns)).into_iter().take(1));
    let dir = std::env::temp_dir().join(format!("kubeop-operator-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = std::process::Command::new(validator);
    command.args(["--strict", "-k", "1.33.0"]);
    for (index, object) in objects.iter().enumerate() {
        let path = dir.join(format!("{index}-{}.json", object["kind"].as_str().unwrap()));
        std::fs::write(&path, serde_json::to_vec_pretty(object).unwrap()).unwrap();
        command.arg(path);
    }
    let output = command.output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report.matches("passed").count(), objects.len(), "{report}");
    operator.stop().await.unwrap();
}
