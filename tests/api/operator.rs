//! The operator with the manager: the seed's calls become an isolated namespace and a running
//! workload, with the operator inside `kubeop serve` (`--operator`); and the operator acting
//! with nothing but the RBAC `deploy/` grants its ServiceAccount.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, expect_json};
use crate::kube::{CRD, cluster, eventually, name_of, register, service_account_client, validate_strictly};
use kubeop_fake_kube::FakeKube;

/// What the Deployment controller would report once the pods run.
async fn report_running(fake: &FakeKube, namespace: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(fake.client(), namespace);
    let deployment = api.get(name).await.unwrap();
    let generation = deployment.metadata.generation;
    let status = json!({"status": {"observedGeneration": generation, "replicas": 1, "readyReplicas": 1,
        "availableReplicas": 1, "updatedReplicas": 1, "conditions": [{"type": "Available", "status": "True",
        "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
        "lastTransitionTime": "2026-11-29T00:00:00Z", "lastUpdateTime": "2026-11-29T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
}

both_engines!(the_seeds_calls_become_a_namespace_and_a_workload);

async fn the_seeds_calls_become_a_namespace_and_a_workload(engine: Engine) {
    let (fake, https) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    std::fs::write(&kubeconfig, https.admin_kubeconfig()).unwrap();
    let app = TestApp::spawn_with(engine, |config| {
        config.kube.default = kubeop_config::DefaultCluster::Kubeconfig;
        config.kube.kubeconfig = kubeconfig.clone();
        config.operator.embedded = true;
        config.operator.lease_duration_secs = 3;
        config.operator.lease_grace_secs = 1;
    })
    .await;
    let policy = json!({"imageAllowlist": ["docker.io", "ghcr.io"], "egressBaseline": ["10.0.0.0/8", "172.16.0.0/12"],
        "quotaMax": {"requestsCPU": "4", "requestsMemory": "8Gi"}});
    assert_eq!(app.put("/v1/platform/policy", &policy).await.status(), StatusCode::NO_CONTENT);
    let tenant = app.create_tenant("acme").await;
    let project = app.create_project(&tenant, "web").await;
    let body = json!({"projectID": project, "name": "web", "image": "docker.io/library/nginx:1.25", "host": "web.local"});
    let app_id = expect_json(app.post("/v1/apps", &body).await, StatusCode::OK).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let namespace = "kubeop-acme-web";
    let deployment_name = name_of(&app_id);
    eventually("the operator makes the namespace's objects and the workload", || {
        fake.object("networking.k8s.io/v1", "ingresses", Some(namespace), &deployment_name).is_some()
            && fake
                .object("v1", "resourcequotas", Some(namespace), "kubeop-quota")
                .is_some_and(|quota| quota["spec"]["hard"]["requests.cpu"] == "4")
            // Applied after the quota: on a busy machine the ingress and quota can be there first.
            && ["default-deny", "allow-egress-baseline"].iter().all(|name| {
                fake.object("networking.k8s.io/v1", "networkpolicies", Some(namespace), name).is_some()
            })
    })
    .await;
    let ns = fake.object("v1", "namespaces", None, namespace).unwrap();
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(ns["metadata"]["labels"]["paas.kubeop.io/project-id"], project.as_str());
    let quota = fake.object("v1", "resourcequotas", Some(namespace), "kubeop-quota").unwrap();
    assert_eq!(quota["spec"]["hard"]["requests.memory"], "8Gi");
    let deployment = fake.object("apps/v1", "deployments", Some(namespace), &deployment_name).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "docker.io/library/nginx:1.25");
    assert_eq!(container["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let ingress =
        fake.object("networking.k8s.io/v1", "ingresses", Some(namespace), &deployment_name).unwrap();
    assert_eq!(ingress["spec"]["rules"][0]["host"], "web.local");
    let policies = fake.objects("networking.k8s.io/v1", "networkpolicies", Some(namespace));
    let names: Vec<&str> = policies.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"default-deny") && names.contains(&"allow-egress-baseline"), "{names:?}");

    // The pods run: the App reports Ready, and the manager shows it.
    report_running(&fake, namespace, &deployment_name).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = expect_json(app.get(&format!("/v1/apps/{app_id}")).await, StatusCode::OK).await;
        let project_state =
            expect_json(app.get(&format!("/v1/projects/{project}")).await, StatusCode::OK).await;
        if got["status"]["state"] == "ready" && project_state["status"]["state"] == "ready" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {got} {project_state}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut written: Vec<Value> = vec![ns, quota, deployment, ingress];
    written.extend(policies);
    written.push(fake.object("v1", "services", Some(namespace), &deployment_name).unwrap());
    written.push(fake.object("v1", "limitranges", Some(namespace), "kubeop-defaults").unwrap());
    validate_strictly(&written).await;

    // Deleting the project through the API removes the namespace and everything in it.
    assert_eq!(app.delete(&format!("/v1/projects/{project}")).await.status(), StatusCode::NO_CONTENT);
    eventually("the namespace goes with its project", || {
        fake.object("v1", "namespaces", None, namespace).is_none()
    })
    .await;
    eventually("and the Project resource", || {
        fake.object(CRD, "projects", None, &name_of(&project)).is_none()
    })
    .await;
}

/// The operator with its ServiceAccount's token, after a bootstrap wrote `deploy/`'s RBAC: a
/// Project and an App become Ready, and the fake API server (which enforces RBAC for everyone
/// but its admin) refused it nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_rbac_is_all_the_operator_needs() {
    let (fake, https) = cluster().await;
    let app = TestApp::spawn(Engine::Sqlite).await;
    let cluster = expect_json(register(&app, "fake", &https.admin_kubeconfig()).await, StatusCode::OK).await;
    let query = format!("?clusterID={}", cluster["id"].as_str().unwrap());
    expect_json(
        app.post(&format!("/v1/platform/bootstrap{query}"), &json!({"Mocks": true})).await,
        StatusCode::OK,
    )
    .await;
    let client = service_account_client(&fake, &https, "kubeop-operator").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ready = Arc::new(AtomicBool::new(false));
    let operator = tokio::spawn(kubeop_operator::run(
        client,
        kubeop_operator::Settings::default(),
        kubeop_operator::Metrics::new(&prometheus::Registry::new()),
        ready,
        async move {
            let _ = stopped.await;
        },
    ));

    // The manager writes a tenant, project and app (through its own admin credentials).
    let body = json!({"name": "acme", "clusterID": cluster["id"]});
    let tenant = expect_json(app.post("/v1/tenants", &body).await, StatusCode::OK).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = app.create_project(&tenant, "web").await;
    let app_id = app.create_app(&project, "site", "site.example.com").await;
    eventually("the operator, with only its RBAC, makes everything", || {
        fake.object("networking.k8s.io/v1", "ingresses", Some("kubeop-acme-web"), &name_of(&app_id)).is_some()
            && fake.object(CRD, "projects", None, &name_of(&project)).is_some_and(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            && fake.object(CRD, "tenants", None, &name_of(&tenant)).is_some_and(|t| t["status"].is_object())
    })
    .await;
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.user == "system:serviceaccount:kubeop-system:kubeop-operator" && r.status == 403)
        .collect();
    assert!(refused.is_empty(), "the operator was refused: {refused:?}");
    assert!(
        fake.requests().iter().any(|r| r.user == "system:serviceaccount:kubeop-system:kubeop-operator"),
        "the operator's requests are its ServiceAccount's"
    );
    let _ = stop.send(());
    operator.await.unwrap().unwrap();
}
