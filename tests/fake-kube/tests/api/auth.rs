use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kubeop_fake_kube::{FakeKube, Https};
use serde_json::json;

use crate::helpers::{client_from_kubeconfig, config_map, status_of};

const ROBOT: &str = "system:serviceaccount:team:robot";

fn token_request(seconds: i64) -> TokenRequest {
    serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": seconds } })).unwrap()
}

/// Namespaces team and other, ServiceAccount team/robot bound to `edit` in team.
async fn robot_setup(fake: &FakeKube) -> Api<ServiceAccount> {
    let client = fake.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["team", "other"] {
        let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        namespaces.create(&PostParams::default(), &ns).await.unwrap();
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let robot: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "robot" } })).unwrap();
    accounts.create(&PostParams::default(), &robot).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "robot-edit" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
        "subjects": [{ "kind": "ServiceAccount", "name": "robot", "namespace": "team" }]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client, "team").create(&PostParams::default(), &binding).await.unwrap();
    accounts
}

async fn robot_token(accounts: &Api<ServiceAccount>, seconds: i64) -> String {
    let issued = accounts
        .create_token_request("robot", &PostParams::default(), &token_request(seconds))
        .await
        .unwrap();
    let status = issued.status.expect("a token");
    assert!(!status.expiration_timestamp.0.to_string().is_empty());
    status.token
}

async fn robot_client(https: &Https, token: &str) -> kube::Client {
    client_from_kubeconfig(&https.kubeconfig("robot", token, "team")).await
}

#[tokio::test]
async fn https_serves_the_admin_kubeconfig_and_refuses_strangers() {
    let fake = FakeKube::new();
    let https = fake.serve_https().await.unwrap();
    assert!(https.url.starts_with("https://127.0.0.1:"));
    let admin = client_from_kubeconfig(&https.admin_kubeconfig()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(admin.clone());
    cms.create(&PostParams::default(), &config_map("over-tls", &[])).await.unwrap();
    assert_eq!(admin.apiserver_version().await.unwrap().git_version, "v1.33.0");
    let last = fake.requests().pop().unwrap();
    assert_eq!((last.user.as_str(), last.path.as_str()), ("admin", "/version"));

    let stranger = client_from_kubeconfig(&https.kubeconfig("x", "not-a-token", "default")).await;
    let (code, reason, _) =
        status_of(Api::<ConfigMap>::default_namespaced(stranger).list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    assert_eq!(fake.requests().pop().unwrap().user, "anonymous");

    fake.set_down(true);
    let error = cms.get("over-tls").await.unwrap_err();
    assert!(!matches!(error, kube::Error::Api(_)), "a connection failure, not a Status: {error:?}");
    fake.set_down(false);
    assert!(cms.get("over-tls").await.is_ok());
}

#[tokio::test]
async fn service_account_tokens_are_authorized_by_rbac_and_expire() {
    let fake = FakeKube::new();
    let https = fake.serve_https().await.unwrap();
    let accounts = robot_setup(&fake).await;

    let (code, _, message) =
        status_of(accounts.create_token_request("robot", &PostParams::default(), &token_request(599)).await);
    assert_eq!(code, 422, "{message}");
    let (code, _, _) =
        status_of(accounts.create_token_request("ghost", &PostParams::default(), &token_request(600)).await);
    assert_eq!(code, 404);

    let token = robot_token(&accounts, 600).await;
    let robot = robot_client(&https, &token).await;
    let own: Api<ServiceAccount> = Api::namespaced(robot.clone(), "team");
    assert_eq!(own.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let own_cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "team");
    own_cms.create(&PostParams::default(), &config_map("mine", &[])).await.unwrap();
    assert_eq!(fake.requests().pop().unwrap().user, ROBOT);

    let (code, reason, message) =
        status_of(Api::<Role>::namespaced(robot.clone(), "team").list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "edit does not reach RBAC: {message}");
    let (code, _, message) =
        status_of(Api::<ConfigMap>::namespaced(robot.clone(), "other").list(&ListParams::default()).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "configmaps is forbidden: User \"system:serviceaccount:team:robot\" cannot list resource \"configmaps\" \
         in API group \"\" in the namespace \"other\""
    );

    fake.advance_clock(Duration::from_secs(601));
    assert_eq!(status_of(own.list(&ListParams::default()).await).0, 401, "the token expired");

    let fresh = robot_client(&https, &robot_token(&accounts, 3600).await).await;
    let fresh_accounts: Api<ServiceAccount> = Api::namespaced(fresh, "team");
    assert!(fresh_accounts.get("robot").await.is_ok());
    accounts.delete("robot", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        status_of(fresh_accounts.list(&ListParams::default()).await).0,
        401,
        "deleting the account revokes"
    );
}

#[tokio::test]
async fn kubectl_get_raw_with_a_service_account_token() {
    let kubectl = std::path::Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        println!("skipped: /usr/bin/kubectl is not installed");
        return;
    }
    let fake = FakeKube::new();
    let https = fake.serve_https().await.unwrap();
    let accounts = robot_setup(&fake).await;
    let token = robot_token(&accounts, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("robot.yaml");
    std::fs::write(&kubeconfig, https.kubeconfig("robot", &token, "team")).unwrap();

    let get_raw = |path: &'static str| {
        tokio::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "--raw", path])
            .env("HOME", dir.path())
            .output()
    };
    let own = get_raw("/api/v1/namespaces/team/serviceaccounts").await.unwrap();
    assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
    let list: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(list["kind"], "ServiceAccountList");
    assert_eq!(list["items"][0]["metadata"]["name"], "robot");

    let other = get_raw("/api/v1/namespaces/other/serviceaccounts").await.unwrap();
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("Forbidden") || stderr.contains("forbidden"), "{stderr}");
}

#[tokio::test]
async fn dropping_https_stops_the_server() {
    let fake = FakeKube::new();
    let https = fake.serve_https().await.unwrap();
    let address = https.url.trim_start_matches("https://").to_owned();
    assert!(tokio::net::TcpStream::connect(&address).await.is_ok());
    drop(https);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(&address).await.is_err(), "nothing listens any more");
}
