//! What a Tenant, a Project and an App become, how the policy reaches them, and what deleting
//! them removes.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubeop_crds::{App, Project, Tenant};
use serde_json::{Value, json};

use crate::helpers::*;

fn names(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_and_an_app_become_an_isolated_namespace_and_a_workload() {
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &["10.0.0.0/8", "172.16.0.0/12"]))).await;
    let operator = Operator::start(&cluster).await;
    let app_name = tenant_project_and_app(&cluster).await;
    let ns = ACME_WEB.namespace;

    // The namespace: whose it is, and Pod Security Admission at "restricted".
    let namespace = cluster.object("v1", "namespaces", None, ns).unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["paas.kubeop.io/tenant-id"], "t_01jacme");
    assert_eq!(labels["paas.kubeop.io/project-id"], "p_01jweb");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubeop");
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(labels[format!("pod-security.kubernetes.io/{mode}")], "restricted", "{mode}");
        assert_eq!(labels[format!("pod-security.kubernetes.io/{mode}-version")], "latest", "{mode}");
    }

    // The quota is the policy's quotaMax, limits twice that; the limit range fills in defaults.
    let quota = cluster.object("v1", "resourcequotas", Some(ns), "kubeop-quota").unwrap();
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8", "limits.memory": "16Gi"})
    );
    let limits = cluster.object("v1", "limitranges", Some(ns), "kubeop-defaults").unwrap();
    assert_eq!(
        limits["spec"]["limits"],
        json!([{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}])
    );

    // Deny by default; allow the namespace itself, the ingress controller, the egress CIDRs and DNS.
    let policies = cluster.fake.objects("networking.k8s.io/v1", "networkpolicies", Some(ns));
    let expected = [
        "allow-dns",
        "allow-egress-baseline",
        "allow-ingress-controller",
        "allow-same-namespace",
        "default-deny",
    ];
    assert_eq!(names(&policies), expected.iter().map(|n| n.to_string()).collect());
    let policy =
        |name: &str| policies.iter().find(|p| p["metadata"]["name"] == name).unwrap()["spec"].clone();
    assert_eq!(policy("default-deny"), json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
    assert_eq!(
        policy("allow-egress-baseline")["egress"],
        json!([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "172.16.0.0/12"}}]}])
    );
    assert_eq!(
        policy("allow-ingress-controller")["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"],
        json!({"kubernetes.io/metadata.name": "ingress-nginx"})
    );
    assert_eq!(
        policy("allow-dns")["egress"][0]["ports"],
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
    );

    // The workload: the App's replicas, image, env and port under the security baseline.
    let app = cluster.object(CRD, "apps", Some(ns), &app_name).unwrap();
    let deployment = cluster.object("apps/v1", "deployments", Some(ns), &app_name).unwrap();
    let owner = &deployment["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("App"), &app["metadata"]["uid"], &json!(true))
    );
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["selector"]["matchLabels"], json!({"paas.kubeop.io/app-id": "a_01jshop"}));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "shop");
    assert_eq!(container["image"], "docker.io/library/nginx:1.27");
    assert_eq!(container["env"], json!([{"name": "MODE", "value": "production"}]));
    assert_eq!(container["ports"], json!([{"name": "http", "containerPort": 3000, "protocol": "TCP"}]));
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(security["seccompProfile"], json!({"type": "RuntimeDefault"}));

    let service = cluster.object("v1", "services", Some(ns), &app_name).unwrap();
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["selector"], json!({"paas.kubeop.io/app-id": "a_01jshop"}));
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 3000, "protocol": "TCP"}])
    );
    let ingress = cluster.object("networking.k8s.io/v1", "ingresses", Some(ns), &app_name).unwrap();
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "shop.example.com");
    assert_eq!(
        rule["http"]["paths"],
        json!([{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": app_name, "port": {"number": 80}}}}])
    );
    for object in [&service, &ingress] {
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], app["metadata"]["uid"]);
    }

    // Statuses: the Project is Ready for its generation and keeps a finalizer.
    let project = cluster.object(CRD, "projects", None, &object_name(ACME_WEB.project)).unwrap();
    let ready_condition = condition(&project, "Ready").unwrap();
    assert_eq!(
        (&ready_condition["status"], &ready_condition["reason"]),
        (&json!("True"), &json!("Reconciled"))
    );
    assert_eq!(project["status"]["observedGeneration"], project["metadata"]["generation"]);
    assert_eq!(ready_condition["observedGeneration"], project["metadata"]["generation"]);
    assert_eq!(project["status"]["namespace"], ns);
    assert_eq!(project["metadata"]["finalizers"], json!(["paas.kubeop.io/cleanup"]));

    // The fake runs no Deployment controller: the App waits for its replicas...
    let app = cluster
        .wait_for((CRD, "apps", Some(ns), &app_name), "the App's status", |a| {
            a["status"]["observedGeneration"] == a["metadata"]["generation"]
        })
        .await;
    assert_eq!(ready(&app), Some("False"));
    assert_eq!(condition(&app, "Ready").unwrap()["reason"], "Progressing");

    // Every object was written by server-side apply under the operator's field manager.
    let writes: Vec<_> = cluster
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains(ns) && !r.path.contains("/events"))
        .filter(|r| r.field_manager.as_deref() != Some("kubeop"))
        .collect();
    assert!(!writes.is_empty());
    for write in &writes {
        assert_eq!(write.field_manager.as_deref(), Some("kubeop-operator"), "{write:?}");
        assert_eq!(write.content_type.as_deref(), Some("application/apply-patch+yaml"), "{write:?}");
    }

    // ...until the test plays that controller and reports them available.
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let available = json!({"status": {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability."}],
    }});
    deployments.patch_status(&app_name, &PatchParams::default(), &Patch::Merge(&available)).await.unwrap();
    let app = cluster
        .wait_for((CRD, "apps", Some(ns), &app_name), "the App to be Ready", |a| ready(a) == Some("True"))
        .await;
    assert_eq!(app["status"]["readyReplicas"], 2);
    assert_eq!(condition(&app, "Ready").unwrap()["reason"], "MinimumReplicasAvailable");
    assert_eq!(condition(&app, "Available").unwrap()["status"], "True");

    // The tenant counts its project.
    let tenant = cluster
        .wait_for((CRD, "tenants", None, &object_name(ACME_WEB.tenant)), "the Tenant's count", |t| {
            t["status"]["projects"] == 1
        })
        .await;
    assert_eq!(tenant["status"]["ready"], true);
    assert_eq!(ready(&tenant), Some("True"));

    // Events say what happened, on the objects (cluster-scoped ones in `default`).
    let reconciled = |namespace: &str, kind: &str| {
        cluster
            .fake
            .objects("events.k8s.io/v1", "events", Some(namespace))
            .iter()
            .any(|e| e["reason"] == "Reconciled" && e["type"] == "Normal" && e["regarding"]["kind"] == kind)
            .then_some(())
    };
    eventually("a Reconciled event for the Project", || reconciled("default", "Project")).await;
    eventually("a Reconciled event for the App", || reconciled(ns, "App")).await;

    assert!(
        operator
            .metric("kubeop_operator_reconciles_total", &[("controller", "project"), ("result", "success")])
            >= 1.0
    );
    assert!(
        operator.metric("kubeop_operator_reconciles_total", &[("controller", "app"), ("result", "success")])
            >= 1.0
    );
    assert!(
        operator.metric("kubeop_operator_reconcile_duration_seconds_count", &[("controller", "tenant")])
            >= 1.0
    );
    operator.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_every_namespace() {
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &["10.0.0.0/8"]))).await;
    let operator = Operator::start(&cluster).await;
    tenant_project_and_app(&cluster).await;
    let ns = ACME_WEB.namespace;

    cluster.set_policy(&policy("6", "12Gi", &[])).await;
    cluster
        .wait_for(("v1", "resourcequotas", Some(ns), "kubeop-quota"), "the new quotaMax", |q| {
            q["spec"]["hard"]
                == json!({"requests.cpu": "6", "requests.memory": "12Gi", "limits.cpu": "12", "limits.memory": "24Gi"})
        })
        .await;
    // No egress CIDR left: the policy allowing them goes.
    cluster.wait_gone(("networking.k8s.io/v1", "networkpolicies", Some(ns), "allow-egress-baseline")).await;

    cluster.set_policy(&policy("6", "12Gi", &["192.168.0.0/16"])).await;
    cluster
        .wait_for(
            ("networking.k8s.io/v1", "networkpolicies", Some(ns), "allow-egress-baseline"),
            "the new CIDR",
            |p| p["spec"]["egress"] == json!([{"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]}]),
        )
        .await;
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_the_quota_takes_the_defaults() {
    let cluster = Cluster::new(None).await;
    let operator = Operator::start(&cluster).await;
    tenant_project_and_app(&cluster).await;
    let quota = cluster.object("v1", "resourcequotas", Some(ACME_WEB.namespace), "kubeop-quota").unwrap();
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "2", "requests.memory": "4Gi", "limits.cpu": "4", "limits.memory": "8Gi"})
    );
    let policies = cluster.fake.objects("networking.k8s.io/v1", "networkpolicies", Some(ACME_WEB.namespace));
    assert!(!names(&policies).contains("allow-egress-baseline"));
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_waits_for_its_project() {
    let cluster = Cluster::new(None).await;
    let operator = Operator::start(&cluster).await;
    cluster.apply(&tenant(&ACME_WEB)).await;
    cluster.apply(&manager_namespace(&ACME_WEB)).await;
    let app = cluster.apply_in(&app(&ACME_WEB, "a_01jshop", "shop", None)).await;
    let name = kube::ResourceExt::name_any(&app);
    let waiting = cluster
        .wait_for((CRD, "apps", Some(ACME_WEB.namespace), &name), "ProjectMissing", |a| {
            ready(a) == Some("False")
        })
        .await;
    assert_eq!(condition(&waiting, "Ready").unwrap()["reason"], "ProjectMissing");
    assert!(cluster.object("apps/v1", "deployments", Some(ACME_WEB.namespace), &name).is_none());

    // The Project appearing sets the App going, without waiting out its backoff.
    cluster.apply(&project(&ACME_WEB, "web")).await;
    cluster
        .wait_for(("apps/v1", "deployments", Some(ACME_WEB.namespace), &name), "the Deployment", |_| true)
        .await;
    let app = cluster
        .wait_for((CRD, "apps", Some(ACME_WEB.namespace), &name), "the App past ProjectMissing", |a| {
            condition(a, "Ready").is_some_and(|c| c["reason"] == "Progressing")
        })
        .await;
    assert!(app["spec"].get("host").is_none());
    assert!(
        cluster.object("networking.k8s.io/v1", "ingresses", Some(ACME_WEB.namespace), &name).is_none(),
        "no host, no Ingress"
    );
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_app_a_project_and_a_tenant_removes_what_they_owned() {
    let cluster = Cluster::new(Some(&policy("4", "8Gi", &[]))).await;
    let operator = Operator::start(&cluster).await;
    let app_name = tenant_project_and_app(&cluster).await;
    let ns = ACME_WEB.namespace;
    let owned = [("apps/v1", "deployments"), ("v1", "services"), ("networking.k8s.io/v1", "ingresses")];

    // Removing the host removes the Ingress.
    let apps: Api<App> = Api::namespaced(cluster.client.clone(), ns);
    let no_host = json!({"spec": {"host": null}});
    apps.patch(&app_name, &PatchParams::default(), &Patch::Merge(&no_host)).await.unwrap();
    cluster.wait_gone(("networking.k8s.io/v1", "ingresses", Some(ns), &app_name)).await;
    apps.patch(
        &app_name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"host": "shop.example.com"}})),
    )
    .await
    .unwrap();
    cluster
        .wait_for(("networking.k8s.io/v1", "ingresses", Some(ns), &app_name), "the Ingress again", |_| true)
        .await;

    // Deleting the App: Kubernetes' garbage collector deletes what names it as owner. The fake
    // has no garbage collector, so the test does its part and checks the operator's: every
    // object owned by the App, and nothing recreated once the App is gone.
    let uid = cluster.object(CRD, "apps", Some(ns), &app_name).unwrap()["metadata"]["uid"].clone();
    apps.delete(&app_name, &DeleteParams::default()).await.unwrap();
    cluster.wait_gone((CRD, "apps", Some(ns), &app_name)).await;
    for (api_version, plural) in owned {
        let object = cluster.object(api_version, plural, Some(ns), &app_name).unwrap();
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], uid, "{plural}");
    }
    let background = DeleteParams::background();
    Api::<Deployment>::namespaced(cluster.client.clone(), ns).delete(&app_name, &background).await.unwrap();
    Api::<Service>::namespaced(cluster.client.clone(), ns).delete(&app_name, &background).await.unwrap();
    Api::<Ingress>::namespaced(cluster.client.clone(), ns).delete(&app_name, &background).await.unwrap();
    // Another app made afterwards is reconciled: the operator is busy, yet the first one's
    // objects stay gone.
    let other = cluster.apply_in(&app(&ACME_WEB, "a_01jcart", "cart", None)).await;
    let other = kube::ResourceExt::name_any(&other);
    cluster
        .wait_for(("apps/v1", "deployments", Some(ns), &other), "the other app's Deployment", |_| true)
        .await;
    for (api_version, plural) in owned {
        assert!(cluster.object(api_version, plural, Some(ns), &app_name).is_none(), "{plural} recreated");
    }

    // Deleting the Project: the finalizer deletes the namespace (and all in it), then lets go.
    let projects: Api<Project> = Api::all(cluster.client.clone());
    projects.delete(&object_name(ACME_WEB.project), &DeleteParams::default()).await.unwrap();
    cluster.wait_gone((CRD, "projects", None, &object_name(ACME_WEB.project))).await;
    assert!(cluster.object("v1", "namespaces", None, ns).is_none(), "the namespace went first");
    assert!(cluster.object("apps/v1", "deployments", Some(ns), &other).is_none());
    cluster
        .wait_for((CRD, "tenants", None, &object_name(ACME_WEB.tenant)), "no projects counted", |t| {
            t["status"]["projects"] == 0
        })
        .await;

    // Deleting the Tenant deletes its remaining Projects, and so their namespaces.
    let second = Ids { tenant: ACME_WEB.tenant, project: "p_01jdocs", namespace: "kubeop-acme-docs" };
    cluster.apply(&manager_namespace(&second)).await;
    cluster.apply(&project(&second, "docs")).await;
    cluster
        .wait_for((CRD, "projects", None, &object_name(second.project)), "the second Project Ready", |p| {
            ready(p) == Some("True")
        })
        .await;
    let tenants: Api<Tenant> = Api::all(cluster.client.clone());
    tenants.delete(&object_name(ACME_WEB.tenant), &DeleteParams::default()).await.unwrap();
    cluster.wait_gone((CRD, "tenants", None, &object_name(ACME_WEB.tenant))).await;
    cluster.wait_gone((CRD, "projects", None, &object_name(second.project))).await;
    cluster.wait_gone(("v1", "namespaces", None, second.namespace)).await;
    operator.stop().await.unwrap();
}
