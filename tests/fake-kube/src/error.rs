//! Errors as the API server reports them: a `metav1.Status` body, so kube surfaces them as
//! `kube::Error::Api` with the code and reason a real cluster would give.

use serde_json::{Value, json};

/// The machine-readable `reason` of a failure `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    AlreadyExists,
    Conflict,
    Forbidden,
    Unauthorized,
    Invalid,
    BadRequest,
    Gone,
    Expired,
    MethodNotAllowed,
    UnsupportedMediaType,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Forbidden => "Forbidden",
            Reason::Unauthorized => "Unauthorized",
            Reason::Invalid => "Invalid",
            Reason::BadRequest => "BadRequest",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::InternalError => "InternalError",
        }
    }

    fn code(self) -> u16 {
        match self {
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Forbidden => 403,
            Reason::Unauthorized => 401,
            Reason::Invalid => 422,
            Reason::BadRequest => 400,
            Reason::Gone | Reason::Expired => 410,
            Reason::MethodNotAllowed => 405,
            Reason::UnsupportedMediaType => 415,
            Reason::TooManyRequests => 429,
            Reason::ServiceUnavailable => 503,
            Reason::InternalError => 500,
        }
    }

    /// The reason the API server gives for a bare status code (used by `fail_next`).
    fn for_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            409 => Reason::Conflict,
            410 => Reason::Gone,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            503 => Reason::ServiceUnavailable,
            _ => Reason::InternalError,
        }
    }
}

/// A failed API call; rendered as a `Status` body with `code` as the HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    /// `details.name` and `details.kind`, as real Kubernetes sets them for object errors.
    pub details: Option<(String, String)>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError { code: reason.code(), reason, message: message.into(), details: None }
    }

    fn about(mut self, resource: &str, name: &str) -> ApiError {
        self.details = Some((name.to_owned(), resource.to_owned()));
        self
    }

    pub fn with_code(code: u16, message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(Reason::for_code(code), message);
        error.code = code;
        error
    }

    pub fn not_found(resource: &str, name: &str) -> ApiError {
        ApiError::new(Reason::NotFound, format!("{resource} \"{name}\" not found")).about(resource, name)
    }

    pub fn already_exists(resource: &str, name: &str) -> ApiError {
        ApiError::new(Reason::AlreadyExists, format!("{resource} \"{name}\" already exists"))
            .about(resource, name)
    }

    pub fn stale(resource: &str, name: &str) -> ApiError {
        ApiError::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .about(resource, name)
    }

    pub fn conflict(resource: &str, name: &str, message: String) -> ApiError {
        ApiError::new(Reason::Conflict, message).about(resource, name)
    }

    pub fn invalid(kind: &str, name: &str, message: String) -> ApiError {
        ApiError::new(Reason::Invalid, format!("{kind} \"{name}\" is invalid: {message}")).about(kind, name)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(Reason::BadRequest, message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(Reason::Unauthorized, "Unauthorized")
    }

    pub fn forbidden(message: String) -> ApiError {
        ApiError::new(Reason::Forbidden, message)
    }

    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if let Some((name, kind)) = &self.details {
            status["details"] = json!({ "name": name, "kind": kind });
        }
        status
    }
}
