//! `/v1/jwt/project`: project-scoped tokens for CI jobs and project members.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiError, ApiErrors, BodyErrors, Result, invalid_field};
use super::extract::Json;
use crate::auth::{self, Caller};
use kubeop_core::ProjectId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mint_project_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MintProjectToken {
    #[serde(rename = "ProjectID", alias = "projectID", alias = "projectId", alias = "project_id")]
    #[schema(value_type = ProjectId)]
    project_id: String,
    /// Lifetime in minutes, from 1 to `auth.max_token_ttl_minutes` (default 10080, 7 days).
    #[serde(rename = "TTLMinutes", alias = "ttlMinutes", alias = "ttl_minutes")]
    #[schema(example = 60, minimum = 1, maximum = 10080)]
    ttl_minutes: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ProjectToken {
    /// An HS256 JWT with role `project` and scope `project:<id>`.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Mint a token scoped to one project (admin).
#[utoipa::path(post, path = "/v1/jwt/project", tag = "tokens", request_body = MintProjectToken,
    responses((status = 200, description = "The new token", body = ProjectToken), ApiErrors, BodyErrors))]
async fn mint_project_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<MintProjectToken>,
) -> Result<axum::Json<ProjectToken>> {
    auth::require_admin(&caller)?;
    let project = ProjectId::parse(&body.project_id).map_err(invalid_field("ProjectID"))?;
    let max = state.limits.max_token_ttl.as_secs() / 60;
    let minutes =
        u64::try_from(body.ttl_minutes).ok().filter(|m| (1..=max).contains(m)).ok_or_else(|| {
            ApiError::BadRequest(format!("TTLMinutes must be from 1 to {max}, not {}", body.ttl_minutes))
        })?;
    state.store.get_project(&project).await?;
    let minted = state.auth.mint(
        &Caller::Project { subject: format!("project:{project}"), project },
        Duration::from_secs(minutes * 60),
    );
    Ok(axum::Json(ProjectToken { token: minted.token, expires_at: minted.expires_at }))
}
