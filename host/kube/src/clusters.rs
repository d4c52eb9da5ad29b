//! Where each tenant's resources go: registered clusters (kubeconfig sealed in the database) and
//! the default cluster from the configuration. Clients are built once per cluster and kept.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;

use kubeop_config::DefaultCluster;
use kubeop_core::{ClusterId, Tenant};
use kubeop_store::Store;
use kubeop_store::kms::Kms;

use crate::error::{Call, KubeError, cluster_label};

/// A cluster kubeop can talk to: its client and the settings it was built from (server URL and
/// CA, which issued kubeconfigs repeat).
#[derive(Clone)]
pub struct Connected {
    /// `None`: the default cluster.
    pub id: Option<ClusterId>,
    pub client: kube::Client,
    pub config: Arc<kube::Config>,
}

impl Connected {
    pub fn label(&self) -> String {
        cluster_label(self.id.as_ref())
    }
}

pub struct Clusters {
    store: Store,
    kms: Option<Kms>,
    default: DefaultCluster,
    default_kubeconfig: PathBuf,
    timeout: Duration,
    clients: Mutex<HashMap<Option<ClusterId>, Connected>>,
}

/// What `GET /v1/clusters/{id}/status` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub reachable: bool,
    /// The API server's version (`v1.33.1`) when reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it is not reachable, or why the CRDs could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether all of kubeop's CustomResourceDefinitions are installed.
    pub crds_installed: bool,
    /// The CustomResourceDefinitions that are not.
    pub missing_crds: Vec<String>,
}

impl Clusters {
    pub fn new(store: Store, kms: Option<Kms>, settings: &kubeop_config::KubeConfig) -> Self {
        Self {
            store,
            kms,
            default: settings.default,
            default_kubeconfig: settings.kubeconfig.clone(),
            timeout: Duration::from_millis(settings.request_timeout_ms),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The cluster a tenant's resources go to, or 503's `NoCluster`.
    pub async fn for_tenant(&self, tenant: &Tenant) -> Result<Connected, KubeError> {
        if tenant.cluster_id.is_none() && self.default == DefaultCluster::None {
            return Err(KubeError::NoCluster(tenant.id.clone()));
        }
        self.connect(tenant.cluster_id.as_ref()).await
    }

    /// The cluster a platform call names (`?clusterID=`), or the default one: 404 for an
    /// unknown id, 503 when none is named and there is no default.
    pub async fn for_platform(&self, cluster: Option<&ClusterId>) -> Result<Connected, KubeError> {
        if cluster.is_none() && !self.has_default() {
            return Err(KubeError::NoDefaultCluster);
        }
        self.connect(cluster).await
    }

    /// Whether tenants without a cluster of their own have one.
    pub fn has_default(&self) -> bool {
        self.default != DefaultCluster::None
    }

    /// A client for a registered cluster or (`None`) the default one, built on first use.
    pub async fn connect(&self, cluster: Option<&ClusterId>) -> Result<Connected, KubeError> {
        let key = cluster.cloned();
        if let Some(connected) = self.clients.lock().expect("not poisoned").get(&key) {
            return Ok(connected.clone());
        }
        let label = cluster_label(cluster);
        let mut config = match cluster {
            Some(id) => {
                let sealed = self.store.cluster_kubeconfig(id).await?;
                let kms = self.kms.as_ref().ok_or_else(|| KubeError::Sealed(id.clone()))?;
                let yaml =
                    kms.open(&sealed, id.as_str().as_bytes()).map_err(|_| KubeError::Sealed(id.clone()))?;
                let yaml = String::from_utf8(yaml).map_err(|_| KubeError::Sealed(id.clone()))?;
                parse_kubeconfig(&yaml).await?.0
            }
            None => self.default_config(&label).await?,
        };
        config.connect_timeout = Some(self.timeout);
        config.read_timeout = Some(self.timeout);
        config.write_timeout = Some(self.timeout);
        let client = kube::Client::try_from(config.clone()).map_err(|e| KubeError::Unavailable {
            cluster: label,
            why: format!("cannot build a client: {e}"),
        })?;
        let connected = Connected { id: key.clone(), client, config: Arc::new(config) };
        self.clients.lock().expect("not poisoned").insert(key, connected.clone());
        Ok(connected)
    }

    /// Forgets a cluster's client (it was deleted).
    pub fn forget(&self, cluster: &ClusterId) {
        self.clients.lock().expect("not poisoned").remove(&Some(cluster.clone()));
    }

    async fn default_config(&self, label: &str) -> Result<kube::Config, KubeError> {
        let unavailable = |why: String| KubeError::Unavailable { cluster: label.to_owned(), why };
        match self.default {
            DefaultCluster::None => Err(unavailable("no default cluster is configured".into())),
            DefaultCluster::Incluster => {
                kube::Config::incluster().map_err(|e| unavailable(format!("not running in a cluster: {e}")))
            }
            DefaultCluster::Kubeconfig => {
                // KUBECONFIG, then ~/.kube/config, unless the configuration names a file.
                let kubeconfig = if self.default_kubeconfig.as_os_str().is_empty() {
                    Kubeconfig::read()
                } else {
                    Kubeconfig::read_from(&self.default_kubeconfig)
                }
                .map_err(|e| unavailable(format!("cannot read the kubeconfig: {e}")))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| unavailable(format!("unusable kubeconfig: {e}")))
            }
        }
    }

    /// Asks the cluster for its version and for kubeop's CRDs; never fails, it reports.
    pub async fn status(&self, cluster: Option<&ClusterId>) -> Result<ClusterStatus, KubeError> {
        let connected = match self.connect(cluster).await {
            Ok(connected) => connected,
            Err(KubeError::Unavailable { why, .. }) => return Ok(unreachable(why)),
            Err(other) => return Err(other),
        };
        let label = connected.label();
        let version = match connected.client.apiserver_version().await {
            Ok(info) => info.git_version,
            Err(error) => {
                let call = Call { cluster: &label, verb: "get", resource: "/version" };
                return Ok(unreachable(KubeError::from_kube(error, call).to_string()));
            }
        };
        let crds: Api<CustomResourceDefinition> = Api::all(connected.client.clone());
        let mut missing = Vec::new();
        let mut error = None;
        for crd in kubeop_crds::definitions() {
            let name = crd.metadata.name.unwrap_or_default();
            match crds.get_opt(&name).await {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(name),
                Err(e) => {
                    let call = Call { cluster: &label, verb: "get", resource: "customresourcedefinitions" };
                    error = Some(KubeError::from_kube(e, call).to_string());
                    missing.push(name);
                }
            }
        }
        Ok(ClusterStatus {
            reachable: true,
            version: Some(version),
            error,
            crds_installed: missing.is_empty(),
            missing_crds: missing,
        })
    }
}

/// Server-side applies `object` (forced: kubeop owns the fields it sets), mapping failures to
/// what the API answers; answers the object as the cluster now has it.
pub async fn apply<K>(
    connected: &Connected,
    api: Api<K>,
    object: &K,
    field_manager: &str,
) -> Result<K, KubeError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = kube::api::PatchParams::apply(field_manager).force();
    api.patch(&name, &params, &kube::api::Patch::Apply(object)).await.map_err(|e| {
        let resource = format!("{} {name}", K::plural(&Default::default()));
        KubeError::from_kube(e, Call { cluster: &connected.label(), verb: "patch", resource: &resource })
    })
}

fn unreachable(why: String) -> ClusterStatus {
    ClusterStatus {
        reachable: false,
        version: None,
        error: Some(why),
        crds_installed: false,
        missing_crds: Vec::new(),
    }
}

/// Asks a cluster for its version, to refuse registering one nobody can reach (503).
pub async fn probe(mut config: kube::Config, label: &str, timeout_ms: u64) -> Result<(), KubeError> {
    let timeout = Some(Duration::from_millis(timeout_ms));
    (config.connect_timeout, config.read_timeout, config.write_timeout) = (timeout, timeout, timeout);
    let client = kube::Client::try_from(config)
        .map_err(|e| KubeError::InvalidKubeconfig(format!("kubeconfig is unusable: {e}")))?;
    client
        .apiserver_version()
        .await
        .map(drop)
        .map_err(|e| KubeError::from_kube(e, Call { cluster: label, verb: "get", resource: "/version" }))
}

/// Checks a kubeconfig given to register a cluster and builds its client settings; answers the
/// API server's URL. Only inline credentials are accepted: a kubeconfig that names files or runs
/// commands (`exec`, `auth-provider`, `tokenFile`, `client-certificate`, …) would make the
/// manager read its own files or run programs on behalf of whoever registers a cluster.
pub async fn parse_kubeconfig(yaml: &str) -> Result<(kube::Config, String), KubeError> {
    let invalid = |why: String| KubeError::InvalidKubeconfig(why);
    let kubeconfig =
        Kubeconfig::from_yaml(yaml).map_err(|e| invalid(format!("kubeconfig is not valid YAML: {e}")))?;
    let context_name = kubeconfig
        .current_context
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| invalid("kubeconfig has no current-context".into()))?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| {
            invalid(format!("kubeconfig's current-context `{context_name}` is not among its contexts"))
        })?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| {
            invalid(format!("kubeconfig's context `{context_name}` names no cluster it defines"))
        })?;
    let server =
        cluster.server.clone().filter(|s| s.starts_with("https://") || s.starts_with("http://")).ok_or_else(
            || invalid(format!("kubeconfig's cluster `{}` has no http(s) server URL", context.cluster)),
        )?;
    if cluster.certificate_authority.is_some() {
        return Err(invalid(
            "kubeconfig names a certificate-authority file; give certificate-authority-data".into(),
        ));
    }
    if cluster.proxy_url.is_some() {
        return Err(invalid("kubeconfig sets a proxy-url, which kubeop does not use".into()));
    }
    if let Some(user) = context.user.as_deref() {
        let auth = kubeconfig.auth_infos.iter().find(|a| a.name == user).and_then(|a| a.auth_info.as_ref());
        if let Some(auth) = auth {
            let refused = [
                ("exec", auth.exec.is_some()),
                ("auth-provider", auth.auth_provider.is_some()),
                ("tokenFile", auth.token_file.is_some()),
                ("client-certificate", auth.client_certificate.is_some()),
                ("client-key", auth.client_key.is_some()),
            ];
            if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
                return Err(invalid(format!(
                    "kubeconfig's user `{user}` uses `{field}`; only inline credentials (token, \
                     client-certificate-data and client-key-data) are accepted"
                )));
            }
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(format!("kubeconfig is unusable: {e}")))?;
    Ok((config, server))
}
