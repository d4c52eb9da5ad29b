//! The one error type of the API. Every failure answers `{"error": "<message>"}` with the seed's
//! status codes; server-side failures are logged in full and answered without detail.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::{AuthError, Denied};
use kubeop_core::Invalid;
use kubeop_kube::KubeError;
use kubeop_store::StoreError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// Not ready on this replica yet (a plugin being compiled): 503 with `Retry-After`.
    #[error("{message}")]
    TryLater { message: String, after: std::time::Duration },
    /// A cluster refused kubeop itself (its credentials lack a permission).
    #[error("{0}")]
    BadGateway(String),
    /// Logged with its cause; the client sees only "internal server error".
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(example = "tenant t_01jd5x7k3q9m2n4p6r8s0t1v2w not found")]
    pub error: String,
}

/// The error answers every endpoint may give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ApiErrors {
    #[response(
        status = 400,
        description = "Invalid input: malformed JSON, a wrong type, an unknown field or an invalid value"
    )]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "Missing or invalid bearer token (when auth is required)")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "The token's role or scope does not allow this")]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "No such resource")]
    NotFound(ErrorBody),
    #[response(status = 408, description = "The request took longer than `http.request_timeout_secs`")]
    RequestTimeout(ErrorBody),
    #[response(status = 409, description = "Conflicts with an existing resource (a duplicate name or host)")]
    Conflict(ErrorBody),
    #[response(status = 500, description = "Server error; details are only in the server log")]
    Internal(ErrorBody),
    #[response(status = 503, description = "A dependency (the database) is unavailable")]
    Unavailable(ErrorBody),
}

/// The further error answers of an endpoint that talks to a Kubernetes cluster.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ClusterErrors {
    #[response(
        status = 502,
        description = "The cluster refused kubeop's own credentials; the message names the verb and resource"
    )]
    BadGateway(ErrorBody),
    #[response(
        status = 503,
        description = "No cluster is configured for the tenant, or the cluster is unreachable or timing out"
    )]
    Unavailable(ErrorBody),
}

/// The further error answers of an endpoint that reads a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    #[response(
        status = 413,
        description = "Request body over the limit (`http.body_limit_bytes`, 1 MiB by default)"
    )]
    PayloadTooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not sent with `Content-Type: application/json`")]
    UnsupportedMediaType(ErrorBody),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::TryLater { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable(why) => tracing::warn!(%why, "service unavailable"),
            ApiError::BadGateway(why) => tracing::warn!(%why, "cluster refused kubeop"),
            _ => {}
        }
        let mut response = (status, Json(ErrorBody { error: self.to_string() })).into_response();
        if let ApiError::TryLater { after, .. } = &self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, after.as_secs().max(1).into());
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Maps an invalid value to a 400 that names the field it came from.
pub fn invalid_field<E: std::fmt::Display>(name: &'static str) -> impl Fn(E) -> ApiError {
    move |invalid| ApiError::BadRequest(format!("{name}: {invalid}"))
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::BadRequest(invalid.0)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::Unauthorized(error.0)
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError::Forbidden(denied.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(message) => ApiError::NotFound(message),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Invalid(invalid) => ApiError::BadRequest(invalid.0),
            StoreError::Unavailable(cause) => {
                tracing::error!(error = ?cause, "database unavailable");
                ApiError::Unavailable("database unavailable".into())
            }
            StoreError::Database(cause) => ApiError::Internal(cause.into()),
        }
    }
}

impl From<KubeError> for ApiError {
    fn from(error: KubeError) -> Self {
        match error {
            KubeError::InvalidKubeconfig(message) => ApiError::BadRequest(message),
            KubeError::NotFound(message) => ApiError::NotFound(message),
            KubeError::Conflict(message) => ApiError::Conflict(message),
            KubeError::Store(error) => error.into(),
            KubeError::Forbidden { .. } | KubeError::Refused { .. } => {
                ApiError::BadGateway(error.to_string())
            }
            KubeError::NoCluster(_)
            | KubeError::NoDefaultCluster
            | KubeError::Unavailable { .. }
            | KubeError::Sealed(_) => ApiError::Unavailable(error.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected a body with Content-Type: application/json".into())
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest(format!("malformed JSON: {}", source_text(&e.body_text())))
            }
            JsonRejection::JsonDataError(e) => {
                ApiError::BadRequest(format!("invalid body: {}", source_text(&e.body_text())))
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("request body too large".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let QueryRejection::FailedToDeserializeQueryString(e) = &rejection else {
            return ApiError::BadRequest(rejection.body_text());
        };
        ApiError::BadRequest(format!("invalid query: {}", source_text(&e.body_text())))
    }
}

/// serde's own words ("unknown field `foo`, expected …" with the path to it), without axum's
/// preamble ("Failed to deserialize the JSON body into the target type: ").
fn source_text(body_text: &str) -> String {
    body_text.split_once(": ").map_or(body_text, |(_, rest)| rest).to_owned()
}
