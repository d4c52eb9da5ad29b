//! The manager's REST API: one module per resource, each with its own `router()`, merged here
//! with the middleware every request passes through.

pub(crate) mod admission;
mod apps;
mod clusters;
mod cronjobs;
pub mod error;
mod extract;
mod install;
mod invoices;
mod kubeconfigs;
pub mod platform;
mod projects;
mod rates;
mod service;
pub use service::BuildInfo;
mod tenants;
mod tokens;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Authenticator;
use crate::metrics::{self, Metrics};
use error::{ApiError, ErrorBody};
use kubeop_core::{Cursor, Page};
use kubeop_plugins::Plugins;
use kubeop_store::Store;
use kubeop_store::kms::Kms;

/// What every handler can reach. Cloned for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Changes the state before the server shares it (benchmarks only).
    #[doc(hidden)]
    pub fn get_mut(&mut self) -> Option<&mut Shared> {
        Arc::get_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub auth: Arc<Authenticator>,
    pub metrics: Metrics,
    pub kms: Option<Kms>,
    /// The clusters tenants live on, and their clients.
    pub clusters: Arc<kubeop_kube::Clusters>,
    /// What the clusters report about projects and apps, watched in the background.
    pub statuses: Arc<kubeop_kube::Statuses>,
    /// The `[kube]` settings (kubeconfig lifetimes, the field manager).
    pub kube_settings: kubeop_config::KubeConfig,
    pub plugins: Plugins,
    /// The platform policy in force.
    pub policy: Arc<crate::policy::PolicyState>,
    pub billing: Arc<crate::billing::Settings>,
    pub limits: Limits,
    /// What `/version` reports.
    pub build: BuildInfo,
    /// What `/openapi.json` serves ([`served_openapi_json`]).
    pub openapi: Arc<str>,
    /// Only the benchmarks set this, to measure `POST /v1/apps` without the image-policy call.
    #[doc(hidden)]
    pub skip_image_policy: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_token_ttl: Duration,
    pub body_limit_bytes: usize,
    /// Body and handler together; 408 after.
    pub request_timeout: Duration,
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Set on list responses when another page follows; pass it back as `?after=`.
pub static NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kubeop manager API",
        description = "Tenants, projects and apps of a multi-tenant Kubernetes platform. \
            Errors are `{\"error\": \"…\"}`. Lists are newest first, take `?limit=` (default 100, \
            at most 1000) and `?after=`, and set `x-next-cursor` when another page follows."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "service", description = "Health, readiness, version, metrics"),
        (name = "tenants"), (name = "projects"), (name = "apps"),
        (name = "cronjobs", description = "Scheduled workloads in a project"),
        (name = "clusters", description = "Kubernetes clusters tenants live on (admin)"),
        (name = "kubeconfigs", description = "Kubeconfigs with short-lived, namespace-scoped tokens"),
        (name = "tokens", description = "Project-scoped JWTs"),
        (name = "platform", description = "Platform policy, WebAssembly plugins, and kubeop's own parts on a cluster"),
        (name = "usage", description = "Metered usage"),
        (name = "billing", description = "Rates and invoices"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// Every route with its OpenAPI description; the document is generated from the same code.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(service::router())
        .merge(tenants::router())
        .merge(projects::router())
        .merge(apps::router())
        .merge(cronjobs::router())
        .merge(tokens::router())
        .merge(platform::router())
        .merge(admission::router())
        .merge(install::router())
        .merge(usage::router())
        .merge(rates::router())
        .merge(invoices::router())
        .merge(clusters::router())
        .merge(kubeconfigs::router())
        .split_for_parts()
}

/// The OpenAPI document with the default limits (`kubeop openapi`).
pub fn openapi_json() -> String {
    routes().1.to_pretty_json().expect("the OpenAPI document serialises")
}

/// The document a server serves at `/openapi.json`: the configured limits in place of the
/// defaults the annotations carry, so a client generated from it refuses what this server does.
pub fn served_openapi_json(limits: &Limits, billing: &crate::billing::Settings) -> String {
    let mut document = serde_json::to_value(routes().1).expect("the OpenAPI document serialises");
    let schemas = &mut document["components"]["schemas"];
    schemas["Batch"]["maxItems"] = billing.max_points.into();
    schemas["Point"]["properties"]["cpu_milli"]["maximum"] = billing.max_point_cpu_milli.into();
    schemas["Point"]["properties"]["mem_mib"]["maximum"] = billing.max_point_mem_mib.into();
    schemas["MintProjectToken"]["properties"]["TTLMinutes"]["maximum"] =
        (limits.max_token_ttl.as_secs() / 60).into();
    serde_json::to_string_pretty(&document).expect("the OpenAPI document serialises")
}

/// The complete application: routes, fallbacks and middleware.
pub fn app(state: AppState) -> Router {
    let (routes, _) = routes();
    let body_limit = state.limits.body_limit_bytes;
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.limits.request_timeout, request_timeout))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeUlid))
                .layer(axum::middleware::from_fn(access_log))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(CatchPanicLayer::custom(|_panic| {
                    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
                })),
        )
}

/// One line per request, once it is answered: method, path, status, time taken and request
/// id. Whatever is logged while the request is served carries the same request id.
async fn access_log(request: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    let id: Arc<str> = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .into();
    // Below the info level the line is skipped, and nothing is formatted for it.
    if !tracing::enabled!(tracing::Level::INFO) {
        return crate::telemetry::REQUEST_ID.scope(id, next.run(request)).await;
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = std::time::Instant::now();
    let response = crate::telemetry::REQUEST_ID.scope(id.clone(), next.run(request)).await;
    let micros = started.elapsed().as_micros() as u64;
    crate::telemetry::access(&id, &method, &path, response.status().as_u16(), micros);
    response
}

/// Request ids are ULIDs unless the client sent its own `x-request-id`.
#[derive(Clone, Copy)]
struct MakeUlid;

impl MakeRequestId for MakeUlid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&ulid::Ulid::generate().to_string()).ok().map(RequestId::new)
    }
}

/// A request that is not answered in time (a client sending its body slowly, a handler stuck on
/// a dependency) gets 408 and its work is dropped.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(format!("the request took longer than {} ms", limit.as_millis()))
            .into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Something with an id, so a page can say where the next one starts.
pub(crate) trait Identified {
    fn id_str(&self) -> &str;
}

/// A list's `?projectID=`: parsed (400 naming it) and loaded (404), for its authorization rule
/// and its filter.
pub(crate) async fn project_filter(
    state: &AppState,
    raw: Option<&str>,
) -> error::Result<Option<kubeop_core::Project>> {
    let id = raw.map(kubeop_core::ProjectId::parse).transpose().map_err(error::invalid_field("projectID"))?;
    match id {
        Some(id) => Ok(Some(state.store.get_project(&id).await?)),
        None => Ok(None),
    }
}

/// A list response: the first `page.limit` rows as a JSON array, and `x-next-cursor` when the
/// store returned the extra row that shows another page follows.
pub(crate) fn paged<T: Identified + serde::Serialize>(mut rows: Vec<T>, page: &Page) -> Response {
    let more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    let mut response = axum::Json(&rows).into_response();
    if more && let Some(last) = rows.last() {
        let cursor = Cursor::after(last.id_str()).encode();
        response.headers_mut().insert(
            NEXT_CURSOR.clone(),
            HeaderValue::from_str(&cursor).expect("a base64url cursor is a valid header value"),
        );
    }
    response
}
