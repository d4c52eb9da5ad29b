//! `/v1/platform/{bootstrap,status,autoscale}`: kubeop's own parts on a cluster (admin only).
//! Each acts on `?clusterID=`'s registered cluster, or on the default one.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ApiErrors, BodyErrors, ClusterErrors, Result, invalid_field};
use super::extract::{Json, Query};
use crate::auth::{self, Caller};
use kubeop_core::{ClusterId, ImageRef};
use kubeop_kube::platform::{self, Applied, Autoscale, Install, PlatformStatus};
use kubeop_kube::{Connected, error::cluster_label};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bootstrap)).routes(routes!(get_status)).routes(routes!(autoscale))
}

/// The most replicas `POST /v1/platform/autoscale` sets for the operator (one leader works at a
/// time; more than this only costs memory).
const MAX_OPERATOR_REPLICAS: i64 = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ClusterParam {
    /// A registered cluster; absent: the default cluster.
    #[serde(rename = "clusterID")]
    #[param(value_type = Option<ClusterId>)]
    cluster_id: Option<String>,
}

impl ClusterParam {
    async fn connect(&self, state: &AppState) -> Result<Connected> {
        let id = self
            .cluster_id
            .as_deref()
            .map(ClusterId::parse)
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("clusterID: {e}")))?;
        Ok(state.clusters.for_platform(id.as_ref()).await?)
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    /// Also install metrics-server (for clusters without one; the autoscaler needs it).
    #[serde(rename = "InstallMetricsServer", alias = "installMetricsServer", default)]
    install_metrics_server: bool,
    /// A development install: the operator and admission Deployments run a stand-in image
    /// (`registry.k8s.io/pause`) and no webhook configurations are written, so a cluster
    /// without kubeop's image gets the platform's CRDs, namespace, RBAC, policy and Services
    /// and nothing blocks writes to it.
    #[serde(rename = "Mocks", alias = "mocks", default)]
    mocks: bool,
    /// The kubeop image to run; default `kube.image`.
    #[serde(rename = "Image", alias = "image", default)]
    #[schema(example = "ghcr.io/kubeop/kubeop:0.1.0")]
    image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`; default `kube.image_pull_policy`.
    #[serde(rename = "ImagePullPolicy", alias = "imagePullPolicy", default)]
    image_pull_policy: Option<String>,
    /// `Fail` or `Ignore`; default `kube.webhook_failure_policy`.
    #[serde(rename = "WebhookFailurePolicy", alias = "webhookFailurePolicy", default)]
    webhook_failure_policy: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BootstrapAnswer {
    /// The cluster's id, or `default`.
    cluster: String,
    /// Every object, in the order applied.
    applied: Vec<Applied>,
}

fn one_of(field: &'static str, value: Option<String>, default: &str, allowed: &[&str]) -> Result<String> {
    let value = value.unwrap_or_else(|| default.to_owned());
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!("{field}: `{value}` is not one of {}", allowed.join(", "))))
    }
}

/// Install or update kubeop's in-cluster parts (admin): the CRDs, namespace `kubeop-system`,
/// RBAC, the operator and admission Deployments, Services, PodDisruptionBudgets, webhook
/// configurations and the policy ConfigMap, embedded in this binary and applied in that order
/// with server-side apply. Idempotent: applying again reports every object `unchanged`.
#[utoipa::path(post, path = "/v1/platform/bootstrap", tag = "platform", params(ClusterParam),
    request_body = BootstrapBody,
    responses((status = 200, description = "What was applied", body = BootstrapAnswer), ApiErrors, BodyErrors, ClusterErrors))]
async fn bootstrap(
    State(state): State<AppState>,
    caller: Caller,
    Query(cluster): Query<ClusterParam>,
    Json(body): Json<BootstrapBody>,
) -> Result<axum::Json<BootstrapAnswer>> {
    auth::require_admin(&caller)?;
    let settings = &state.kube_settings;
    let image = match body.image {
        Some(image) => {
            ImageRef::parse(&image).map_err(invalid_field("Image"))?;
            image
        }
        None if settings.image.is_empty() => {
            concat!("ghcr.io/kubeop/kubeop:", env!("CARGO_PKG_VERSION")).into()
        }
        None => settings.image.clone(),
    };
    let install = Install {
        image,
        image_pull_policy: one_of(
            "ImagePullPolicy",
            body.image_pull_policy,
            &settings.image_pull_policy,
            &kubeop_config::PULL_POLICIES,
        )?,
        webhook_failure_policy: one_of(
            "WebhookFailurePolicy",
            body.webhook_failure_policy,
            &settings.webhook_failure_policy,
            &kubeop_config::FAILURE_POLICIES,
        )?,
        metrics_server: body.install_metrics_server,
        mocks: body.mocks,
        policy: state.policy.effective().policy.clone(),
    };
    let connected = cluster.connect(&state).await?;
    let objects = platform::objects(&install);
    let applied = platform::bootstrap(&connected, &objects, &settings.field_manager).await?;
    Ok(axum::Json(BootstrapAnswer { cluster: cluster_label(connected.id.as_ref()), applied }))
}

/// Whether the operator and the admission webhook run and the webhooks carry a CA bundle,
/// read from the cluster's Deployments and webhook configurations (admin); `problems` says why
/// each `false` is false.
#[utoipa::path(get, path = "/v1/platform/status", tag = "platform", params(ClusterParam),
    responses((status = 200, description = "What the cluster reports", body = PlatformStatus), ApiErrors, ClusterErrors))]
async fn get_status(
    State(state): State<AppState>,
    caller: Caller,
    Query(cluster): Query<ClusterParam>,
) -> Result<axum::Json<PlatformStatus>> {
    auth::require_admin(&caller)?;
    let connected = cluster.connect(&state).await?;
    Ok(axum::Json(platform::status(&connected).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AutoscaleBody {
    /// `false` removes the autoscaler (the other fields are then ignored).
    #[serde(rename = "Enabled", alias = "enabled")]
    enabled: bool,
    /// Fewest operator replicas, at least 1.
    #[serde(rename = "Min", alias = "min", default)]
    #[schema(minimum = 1, maximum = 100, example = 1)]
    min: Option<i64>,
    /// Most operator replicas, at least `Min`, at most 100.
    #[serde(rename = "Max", alias = "max", default)]
    #[schema(minimum = 1, maximum = 100, example = 3)]
    max: Option<i64>,
    /// Average CPU utilisation to keep, in percent of the requests (1–100).
    #[serde(rename = "TargetCPU", alias = "targetCPU", alias = "targetCpu", default)]
    #[schema(minimum = 1, maximum = 100, example = 70)]
    target_cpu: Option<i64>,
}

impl AutoscaleBody {
    fn parse(&self) -> Result<Option<Autoscale>> {
        if !self.enabled {
            return Ok(None);
        }
        let field = |name: &str, value: Option<i64>, low: i64, high: i64| -> Result<i32> {
            let value =
                value.ok_or_else(|| ApiError::BadRequest(format!("{name}: required when Enabled")))?;
            if !(low..=high).contains(&value) {
                return Err(ApiError::BadRequest(format!("{name}: {value} is not between {low} and {high}")));
            }
            Ok(i32::try_from(value).expect("within the checked range"))
        };
        let min = field("Min", self.min, 1, MAX_OPERATOR_REPLICAS)?;
        let max = field("Max", self.max, i64::from(min), MAX_OPERATOR_REPLICAS)?;
        let target_cpu = field("TargetCPU", self.target_cpu, 1, 100)?;
        Ok(Some(Autoscale { min, max, target_cpu }))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct AutoscaleAnswer {
    /// The cluster's id, or `default`.
    cluster: String,
    #[serde(rename = "Enabled")]
    enabled: bool,
    #[serde(rename = "Min", skip_serializing_if = "Option::is_none")]
    min: Option<i32>,
    #[serde(rename = "Max", skip_serializing_if = "Option::is_none")]
    max: Option<i32>,
    #[serde(rename = "TargetCPU", skip_serializing_if = "Option::is_none")]
    target_cpu: Option<i32>,
}

/// Scale the operator with CPU (admin): an autoscaling/v2 HorizontalPodAutoscaler for the
/// `kubeop-operator` Deployment, removed when `Enabled` is false; it may come before bootstrap
/// (it then waits for the Deployment). Utilisation needs a metrics API in the cluster
/// (`InstallMetricsServer`).
#[utoipa::path(post, path = "/v1/platform/autoscale", tag = "platform", params(ClusterParam),
    request_body = AutoscaleBody,
    responses((status = 200, description = "The autoscaling in force", body = AutoscaleAnswer), ApiErrors, BodyErrors, ClusterErrors))]
async fn autoscale(
    State(state): State<AppState>,
    caller: Caller,
    Query(cluster): Query<ClusterParam>,
    Json(body): Json<AutoscaleBody>,
) -> Result<axum::Json<AutoscaleAnswer>> {
    auth::require_admin(&caller)?;
    let wanted = body.parse()?;
    let connected = cluster.connect(&state).await?;
    platform::autoscale(&connected, wanted, &state.kube_settings.field_manager).await?;
    Ok(axum::Json(AutoscaleAnswer {
        cluster: cluster_label(connected.id.as_ref()),
        enabled: wanted.is_some(),
        min: wanted.map(|a| a.min),
        max: wanted.map(|a| a.max),
        target_cpu: wanted.map(|a| a.target_cpu),
    }))
}
