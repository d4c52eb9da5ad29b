//! Project credentials: a ServiceAccount `kubeop-project` in the namespace, bound to the
//! ClusterRole `edit` in that namespace only, and a short-lived token from the TokenRequest API,
//! wrapped in a kubeconfig that points at the cluster's real server with its real CA.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use kubeop_core::Project;
use kubeop_crds::labels;

use crate::clusters::{Connected, apply};
use crate::error::{Call, KubeError};
use crate::resources;

/// The ServiceAccount every project's kubeconfig speaks as.
pub const SERVICE_ACCOUNT: &str = "kubeop-project";
/// Its RoleBinding to the ClusterRole `edit`, in the namespace only.
pub const ROLE_BINDING: &str = "kubeop-project-edit";

/// A kubeconfig and when its token stops working.
#[derive(Debug, Clone)]
pub struct Issued {
    pub kubeconfig: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues a kubeconfig for a project, creating its namespace, ServiceAccount and RoleBinding
/// first if they are missing (server-side apply: idempotent, and works before the operator is
/// installed).
pub async fn for_project(
    connected: &Connected,
    project: &Project,
    ttl: Duration,
    field_manager: &str,
) -> Result<Issued, KubeError> {
    let client = &connected.client;
    apply(connected, Api::<Namespace>::all(client.clone()), &resources::namespace(project), field_manager)
        .await?;
    issue(connected, project.namespace.as_str(), ttl, field_manager).await
}

/// Issues a kubeconfig for an existing namespace (404 when it does not exist).
pub async fn for_namespace(
    connected: &Connected,
    namespace: &str,
    ttl: Duration,
    field_manager: &str,
) -> Result<Issued, KubeError> {
    let namespaces: Api<Namespace> = Api::all(connected.client.clone());
    let call = Call { cluster: &connected.label(), verb: "get", resource: "namespaces" };
    match namespaces.get_opt(namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(KubeError::NotFound(format!("namespace {namespace} not found"))),
        Err(e) => return Err(KubeError::from_kube(e, call)),
    }
    issue(connected, namespace, ttl, field_manager).await
}

async fn issue(
    connected: &Connected,
    namespace: &str,
    ttl: Duration,
    field_manager: &str,
) -> Result<Issued, KubeError> {
    let client = &connected.client;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    apply(connected, accounts.clone(), &service_account(namespace), field_manager).await?;
    apply(
        connected,
        Api::<RoleBinding>::namespaced(client.clone(), namespace),
        &role_binding(namespace),
        field_manager,
    )
    .await?;
    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(ttl.as_secs() as i64),
            bound_object_ref: None,
        },
        status: None,
    };
    let call = Call { cluster: &connected.label(), verb: "create", resource: "serviceaccounts/token" };
    let answered = accounts
        .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .map_err(|e| KubeError::from_kube(e, call))?;
    let status = answered.status.ok_or_else(|| KubeError::Unavailable {
        cluster: connected.label(),
        why: "the TokenRequest answer carried no token".into(),
    })?;
    Ok(Issued {
        kubeconfig: kubeconfig(connected, namespace, &status.token),
        expires_at: DateTime::from_timestamp_millis(status.expiration_timestamp.0.as_millisecond())
            .unwrap_or_default(),
    })
}

fn service_account(namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: managed(SERVICE_ACCOUNT, namespace),
        // The token comes from TokenRequest; nothing mounts one into pods.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

fn role_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: managed(ROLE_BINDING, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SERVICE_ACCOUNT.into(),
            namespace: Some(namespace.to_owned()),
            api_group: None,
        }]),
    }
}

fn managed(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some([(labels::MANAGED_BY.to_owned(), labels::MANAGER.to_owned())].into()),
        ..ObjectMeta::default()
    }
}

/// The kubeconfig: the cluster's server and CA as kubeop reaches them, the token, and the
/// namespace as the context's default.
fn kubeconfig(connected: &Connected, namespace: &str, token: &str) -> String {
    let config = &connected.config;
    let cluster_name = format!("kubeop-{}", connected.label());
    let user = format!("{SERVICE_ACCOUNT}@{namespace}");
    let ca =
        config.root_cert.as_ref().filter(|certs| !certs.is_empty()).map(|certs| BASE64.encode(pem(certs)));
    let kubeconfig = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: cluster_name.clone(),
            cluster: Some(Cluster {
                server: Some(config.cluster_url.to_string().trim_end_matches('/').to_owned()),
                certificate_authority_data: ca,
                insecure_skip_tls_verify: config.accept_invalid_certs.then_some(true),
                tls_server_name: config.tls_server_name.clone(),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo { token: Some(token.to_owned().into()), ..AuthInfo::default() }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: namespace.to_owned(),
            context: Some(Context {
                cluster: cluster_name,
                user: Some(user),
                namespace: Some(namespace.to_owned()),
                extensions: None,
                other: Default::default(),
            }),
            other: Default::default(),
        }],
        current_context: Some(namespace.to_owned()),
        ..Kubeconfig::default()
    };
    serde_saphyr::to_string(&kubeconfig).expect("a kubeconfig serialises")
}

/// DER certificates as one PEM bundle.
fn pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = BASE64.encode(der);
        for line in encoded.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
