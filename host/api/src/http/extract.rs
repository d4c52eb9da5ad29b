//! Extractors that fail with the API's own error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kubeop_core::{Invalid, Page, ResourceId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::auth::Caller;

/// A JSON object body. Like `axum::Json`, but a malformed body answers `{"error": …}` like
/// everything else, and only an object is accepted: serde would read a struct from an array
/// (`["acme"]` as `{"name": "acme"}`), which no client means.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            None => return Err(ApiError::BadRequest("the body is empty; expected a JSON object".into())),
            Some(_) => return Err(ApiError::BadRequest("the body must be a JSON object".into())),
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

/// For a struct field that holds a struct: read it only from a JSON object, as [`Json`] does the
/// body (`#[serde(deserialize_with = "object")]`).
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
    T::deserialize(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
}

/// `application/json`, or any `application/*+json`, with or without parameters.
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that could not be read: over the size limit (413), or cut off.
fn body_error(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("request body too large".into())
    } else {
        ApiError::BadRequest(format!("the body could not be read: {}", rejection.body_text()))
    }
}

/// `axum::extract::Query` with the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header =
            parts.headers.get(AUTHORIZATION).map(|value| value.to_str()).transpose().map_err(|_| {
                ApiError::Unauthorized("the Authorization header is not readable text".into())
            })?;
        Ok(state.auth.authenticate(header)?)
    }
}

/// A resource id from the URL path. One that does not parse names no resource, so it answers
/// 404 exactly as an unknown id does.
pub struct PathId<T>(pub T);

impl<T: ResourceId + Send, S: Send + Sync> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound(format!("no {} id in the path", T::KIND)))?;
        T::parse(&raw).map(PathId).map_err(|_| ApiError::NotFound(format!("{} {raw} not found", T::KIND)))
    }
}

/// `?limit=` and `?after=`: which page of a list. Read as text so that a bad value gets our
/// message, and turned into a [`Page`] once the caller is authorized.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Page size, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `x-next-cursor` of the previous page.
    after: Option<String>,
}

impl PageParams {
    pub fn page(&self) -> Result<Page, Invalid> {
        Page::parse(self.limit.as_deref(), self.after.as_deref())
    }
}

/// Reads a body that a handler takes itself, once it has checked the caller: at most `limit`
/// bytes, `too_large` naming the limit when there are more.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
    too_large: impl FnOnce() -> String,
) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if std::error::Error::source(&error)
            .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>())
        {
            ApiError::PayloadTooLarge(too_large())
        } else {
            ApiError::BadRequest(format!("the body could not be read: {error}"))
        }
    })
}
