//! Who is calling, and what they may do. Tokens are HS256 JWTs with `role`, `scope`, `sub`,
//! `iat` and a required `exp`; every authorization rule of the API is a function in this module,
//! so handlers ask and never decide.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use kubeop_config::SigningKey;
use kubeop_core::{App, Project, ProjectId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Tenant,
    Project,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    /// `tenant:<id>` for the tenant role, `project:<id>` for the project role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub iat: i64,
    pub exp: i64,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin { subject: String },
    Tenant { subject: String, tenant: TenantId },
    Project { subject: String, project: ProjectId },
}

impl Caller {
    /// Who the caller is (the token's `sub`), for audit fields.
    pub fn subject(&self) -> &str {
        match self {
            Caller::Admin { subject } | Caller::Tenant { subject, .. } | Caller::Project { subject, .. } => {
                subject
            }
        }
    }

    fn from_claims(claims: Claims) -> Result<Self, AuthError> {
        let scope = claims.scope.as_deref().unwrap_or("");
        let bad_scope = || {
            AuthError(format!("invalid token: role {:?} needs a matching scope, not `{scope}`", claims.role))
        };
        Ok(match claims.role {
            Role::Admin => Caller::Admin { subject: claims.sub },
            Role::Tenant => {
                let id = scope.strip_prefix("tenant:").ok_or_else(bad_scope)?;
                Caller::Tenant { subject: claims.sub, tenant: TenantId::parse(id).map_err(|_| bad_scope())? }
            }
            Role::Project => {
                let id = scope.strip_prefix("project:").ok_or_else(bad_scope)?;
                Caller::Project {
                    subject: claims.sub,
                    project: ProjectId::parse(id).map_err(|_| bad_scope())?,
                }
            }
        })
    }

    fn role_and_scope(&self) -> (Role, Option<String>, &str) {
        match self {
            Caller::Admin { subject } => (Role::Admin, None, subject),
            Caller::Tenant { subject, tenant } => (Role::Tenant, Some(format!("tenant:{tenant}")), subject),
            Caller::Project { subject, project } => {
                (Role::Project, Some(format!("project:{project}")), subject)
            }
        }
    }

    /// Whether the caller acts for the owner of something in `tenant` (and `project`, if any):
    /// an admin always, a tenant-role caller within its tenant, a project-role caller within its
    /// project.
    fn owns(&self, tenant: &TenantId, project: Option<&ProjectId>) -> bool {
        match self {
            Caller::Admin { .. } => true,
            Caller::Tenant { tenant: own, .. } => own == tenant,
            Caller::Project { project: own, .. } => project == Some(own),
        }
    }
}

/// The token is missing or not acceptable: 401.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The caller is known but may not do this: 403.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

pub struct Authenticator {
    require: bool,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    max_lifetime: Duration,
}

/// Seconds a token's clock may differ from ours (`exp`, `nbf`, `iat`).
const LEEWAY_SECS: u64 = 5;

impl Authenticator {
    /// Tokens are checked against `key`; one whose lifetime (`exp` − `iat`, or `exp` − now
    /// without `iat`) exceeds `max_lifetime` is refused, however it was signed.
    pub fn new(key: &SigningKey, require: bool, max_lifetime: Duration) -> Self {
        // Only HS256 is accepted: `alg: none` and every other algorithm fail before any claim is read.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            require,
            encoding: EncodingKey::from_secret(key.expose()).expect("an HMAC key of any length"),
            decoding: DecodingKey::from_secret(key.expose()).expect("an HMAC key of any length"),
            validation,
            max_lifetime,
        }
    }

    /// The longest-lived token this authenticator accepts.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Resolves the `Authorization` header to a caller. With auth off everyone is an admin.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if !self.require {
            return Ok(Caller::Admin { subject: "anonymous".into() });
        }
        let header = authorization.ok_or_else(|| AuthError("missing bearer token".into()))?;
        // The scheme is case-insensitive (RFC 7235 §2.1).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| AuthError("the Authorization header must be `Bearer <token>`".into()))?;
        check_algorithm(token)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                AuthError(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".into(),
                    ErrorKind::ImmatureSignature => {
                        "invalid token: not valid yet (`nbf` is in the future)".into()
                    }
                    ErrorKind::InvalidSignature => "invalid token: bad signature".into(),
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        "invalid token: only HS256 is accepted".into()
                    }
                    ErrorKind::MissingRequiredClaim(claim) => format!("invalid token: no `{claim}` claim"),
                    // The claims did not deserialise: a missing `exp` or `role`, or a wrong type.
                    ErrorKind::Json(e) => format!("invalid token claims: {e}"),
                    _ => "invalid token".into(),
                })
            })?
            .claims;
        self.check_times(&claims)?;
        if claims.sub.chars().any(char::is_control) {
            return Err(AuthError("invalid token: claim `sub` contains a control character".into()));
        }
        Caller::from_claims(claims)
    }

    /// What the library does not check: an `iat` in the future, and a lifetime past the maximum.
    fn check_times(&self, claims: &Claims) -> Result<(), AuthError> {
        let now = Utc::now().timestamp();
        let leeway = LEEWAY_SECS as i64;
        if claims.iat > now + leeway {
            return Err(AuthError("invalid token: issued in the future (`iat`)".into()));
        }
        let issued = if claims.iat > 0 { claims.iat } else { now };
        let lifetime = claims.exp.saturating_sub(issued);
        if lifetime > self.max_lifetime.as_secs() as i64 + leeway {
            return Err(AuthError(format!(
                "invalid token: it lives {}, longer than the {} this server accepts (auth.max_token_lifetime_minutes)",
                humane(lifetime),
                humane(self.max_lifetime.as_secs() as i64)
            )));
        }
        Ok(())
    }

    /// Signs a token for `caller` that expires after `ttl`.
    pub fn mint(&self, caller: &Caller, ttl: Duration) -> Minted {
        let now = Utc::now();
        let expires_at = now + ttl;
        let (role, scope, subject) = caller.role_and_scope();
        let claims = Claims {
            role,
            scope,
            sub: subject.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        Minted { token, expires_at }
    }
}

/// Refuses a token whose header names another algorithm than HS256, saying which, before the
/// library is asked (it knows no `none`, and would only say the name is unknown).
fn check_algorithm(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct JoseHeader {
        alg: String,
    }
    let malformed = || AuthError("invalid token: not a JWT".into());
    let encoded = token.split('.').next().ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| malformed())?;
    let header: JoseHeader = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if header.alg != "HS256" {
        return Err(AuthError(format!(
            "invalid token: the algorithm `{}` is not allowed (only HS256 is accepted)",
            header.alg.chars().take(16).collect::<String>()
        )));
    }
    Ok(())
}

/// `86400` → `1d`, `3600` → `1h`, for messages.
fn humane(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 86_400 => format!("{:.1}d", s as f64 / 86_400.0),
        s => format!("{s}s"),
    }
}

fn admins_only() -> Denied {
    Denied("only admins may do this".into())
}

pub fn require_admin(caller: &Caller) -> Result<(), Denied> {
    match caller {
        Caller::Admin { .. } => Ok(()),
        _ => Err(admins_only()),
    }
}

/// Admin, or the tenant itself.
pub fn may_read_tenant(caller: &Caller, tenant: &TenantId) -> Result<(), Denied> {
    match caller {
        Caller::Project { .. } => Err(Denied("project tokens may not read tenants".into())),
        _ if caller.owns(tenant, None) => Ok(()),
        _ => Err(Denied(format!("this token may not access tenant {tenant}"))),
    }
}

/// Admin, or a tenant-role caller for the target tenant.
pub fn may_create_project(caller: &Caller, tenant: &TenantId) -> Result<(), Denied> {
    may_read_tenant(caller, tenant)
}

/// Admin lists everything; a tenant-role caller must filter by its own tenant.
pub fn may_list_projects(caller: &Caller, tenant: Option<&TenantId>) -> Result<(), Denied> {
    match (caller, tenant) {
        (Caller::Admin { .. }, _) => Ok(()),
        (Caller::Tenant { .. }, Some(tenant)) => may_read_tenant(caller, tenant),
        (Caller::Tenant { tenant: own, .. }, None) => {
            Err(Denied(format!("tenant tokens must filter by their own tenant: ?tenantID={own}")))
        }
        (Caller::Project { .. }, _) => Err(Denied("project tokens may not list projects".into())),
    }
}

/// Admin, the owning tenant, or a project-role caller for this project.
pub fn may_read_project(caller: &Caller, project: &Project) -> Result<(), Denied> {
    if caller.owns(&project.tenant_id, Some(&project.id)) {
        Ok(())
    } else {
        Err(Denied(format!("this token may not access project {}", project.id)))
    }
}

/// Admin, a project-role caller for the project, or the tenant owning it.
pub fn may_create_app(caller: &Caller, project: &Project) -> Result<(), Denied> {
    may_read_project(caller, project)
}

/// Admin lists everything; others must filter by a project they may read.
pub fn may_list_apps(caller: &Caller, project: Option<&Project>) -> Result<(), Denied> {
    match (caller, project) {
        (Caller::Admin { .. }, _) => Ok(()),
        (_, Some(project)) => may_read_project(caller, project),
        (Caller::Project { project: own, .. }, None) => {
            Err(Denied(format!("project tokens must filter by their own project: ?projectID={own}")))
        }
        (_, None) => Err(Denied("tenant tokens must filter by one of their projects: ?projectID=".into())),
    }
}

/// Admin, a project-role caller for the app's project, or the tenant owning it.
pub fn may_read_app(caller: &Caller, app: &App) -> Result<(), Denied> {
    if caller.owns(&app.tenant_id, Some(&app.project_id)) {
        Ok(())
    } else {
        Err(Denied(format!("this token may not access app {}", app.id)))
    }
}

/// CronJobs belong to their project: admin, the owning tenant, or a project-role caller for
/// that project may create, read, run and delete them.
pub fn may_manage_cronjobs(caller: &Caller, project: &Project) -> Result<(), Denied> {
    may_read_project(caller, project)
}

/// As apps: admin lists everything; others must filter by a project they may read.
pub fn may_list_cronjobs(caller: &Caller, project: Option<&Project>) -> Result<(), Denied> {
    may_list_apps(caller, project)
}

/// Admin, or a tenant-role caller sending only its own tenant's usage.
pub fn may_ingest_usage<'a>(
    caller: &Caller,
    mut tenants: impl Iterator<Item = &'a TenantId>,
) -> Result<(), Denied> {
    match caller {
        Caller::Admin { .. } => Ok(()),
        Caller::Tenant { tenant: own, .. } => match tenants.find(|t| *t != own) {
            None => Ok(()),
            Some(other) => {
                Err(Denied(format!("this token may send usage only for tenant {own}, not {other}")))
            }
        },
        Caller::Project { .. } => Err(Denied("project tokens may not send usage".into())),
    }
}

/// Admin, or the tenant itself: its invoices and rates.
pub fn may_read_billing(caller: &Caller, tenant: &TenantId) -> Result<(), Denied> {
    may_read_tenant(caller, tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeop_core::{AppId, Name, Namespace};

    const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

    fn key() -> SigningKey {
        SigningKey::from_bytes(vec![7; 32])
    }

    fn signed(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&[7; 32]).unwrap(),
        )
        .unwrap()
    }

    fn refusal(auth: &Authenticator, header: &str) -> String {
        auth.authenticate(Some(header)).unwrap_err().0
    }

    #[test]
    fn time_claims_are_checked() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        let now = Utc::now().timestamp();
        let day = 86_400;
        let token = |claims: serde_json::Value| format!("Bearer {}", signed(&claims));
        let future_nbf = token(serde_json::json!({"role": "admin", "nbf": now + day, "exp": now + 2 * day}));
        assert!(refusal(&auth, &future_nbf).contains("nbf"));
        let future_iat =
            token(serde_json::json!({"role": "admin", "iat": now + 365 * day, "exp": now + 366 * day}));
        assert!(refusal(&auth, &future_iat).contains("iat"));
        let forever = token(serde_json::json!({"role": "admin", "iat": now, "exp": 31_556_889_832_403_i64}));
        assert!(refusal(&auth, &forever).contains("longer than the 30d"), "{}", refusal(&auth, &forever));
        let no_iat_forever = token(serde_json::json!({"role": "admin", "exp": now + 31 * day}));
        assert!(refusal(&auth, &no_iat_forever).contains("longer than"));
        // Within every limit, and a clock a few seconds off, is fine.
        let fine = token(
            serde_json::json!({"role": "admin", "iat": now + 3, "nbf": now + 3, "exp": now + 30 * day}),
        );
        assert!(auth.authenticate(Some(&fine)).is_ok());
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_alg_none_is_named() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        let token = auth.mint(&Caller::Admin { subject: "ops".into() }, Duration::from_secs(60)).token;
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert!(auth.authenticate(Some(&format!("{scheme} {token}"))).is_ok(), "{scheme}");
        }
        // {"alg":"none","typ":"JWT"} . {"role":"admin","exp":9999999999} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9.";
        let why = refusal(&auth, &format!("Bearer {unsigned}"));
        assert!(why.contains("`none` is not allowed"), "{why}");
        assert!(refusal(&auth, "Bearer not-a-token").contains("not a JWT"));
    }

    #[test]
    fn a_subject_with_a_control_character_is_refused() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        let now = Utc::now().timestamp();
        let token = signed(&serde_json::json!({"role": "admin", "sub": "ops\u{0}x", "exp": now + 60}));
        assert!(refusal(&auth, &format!("Bearer {token}")).contains("`sub`"));
    }

    fn project(tenant: &TenantId) -> Project {
        let name = Name::parse("web").unwrap();
        Project {
            id: ProjectId::generate(),
            tenant_id: tenant.clone(),
            namespace: Namespace::for_project(&Name::parse("acme").unwrap(), &name).unwrap(),
            name,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn minted_tokens_authenticate_as_the_same_caller() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        let callers = [
            Caller::Admin { subject: "ops".into() },
            Caller::Tenant { subject: "t".into(), tenant: TenantId::generate() },
            Caller::Project { subject: "p".into(), project: ProjectId::generate() },
        ];
        for caller in callers {
            let minted = auth.mint(&caller, Duration::from_secs(60));
            let header = format!("Bearer {}", minted.token);
            assert_eq!(auth.authenticate(Some(&header)).unwrap(), caller);
        }
    }

    #[test]
    fn refuses_missing_foreign_expired_and_unsigned_tokens() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        let other = Authenticator::new(&SigningKey::from_bytes(vec![8; 32]), true, LIFETIME);
        let admin = Caller::Admin { subject: "ops".into() };
        assert!(auth.authenticate(None).unwrap_err().0.contains("missing"));
        let foreign = other.mint(&admin, Duration::from_secs(60)).token;
        assert!(auth.authenticate(Some(&format!("Bearer {foreign}"))).unwrap_err().0.contains("signature"));
        let claims = Claims {
            role: Role::Admin,
            scope: None,
            sub: "x".into(),
            iat: 0,
            exp: Utc::now().timestamp() - 3600,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7; 32]).unwrap(),
        )
        .unwrap();
        assert!(auth.authenticate(Some(&format!("Bearer {expired}"))).unwrap_err().0.contains("expired"));
        // {"alg":"none","typ":"JWT"} . {"role":"admin","exp":9999999999} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(auth.authenticate(Some(&format!("Bearer {unsigned}"))).is_err());
        let no_exp = serde_json::json!({"role": "admin", "sub": "x"});
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &no_exp,
            &EncodingKey::from_secret(&[7; 32]).unwrap(),
        )
        .unwrap();
        assert!(auth.authenticate(Some(&format!("Bearer {no_exp}"))).unwrap_err().0.contains("exp"));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims_valid(),
            &EncodingKey::from_secret(&[7; 32]).unwrap(),
        )
        .unwrap();
        assert!(auth.authenticate(Some(&format!("Bearer {hs512}"))).unwrap_err().0.contains("HS256"));
        assert!(auth.authenticate(Some("Basic abc")).is_err());
    }

    fn claims_valid() -> Claims {
        Claims { role: Role::Admin, scope: None, sub: "x".into(), iat: 0, exp: Utc::now().timestamp() + 60 }
    }

    #[test]
    fn a_role_without_its_scope_is_refused() {
        let auth = Authenticator::new(&key(), true, LIFETIME);
        for (role, scope) in
            [(Role::Tenant, None), (Role::Tenant, Some("project:p_x")), (Role::Project, Some("tenant:t_x"))]
        {
            let claims = Claims { role, scope: scope.map(Into::into), ..claims_valid() };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&[7; 32]).unwrap(),
            )
            .unwrap();
            assert!(auth.authenticate(Some(&format!("Bearer {token}"))).unwrap_err().0.contains("scope"));
        }
    }

    #[test]
    fn auth_off_makes_everyone_an_admin() {
        let auth = Authenticator::new(&key(), false, LIFETIME);
        assert!(matches!(auth.authenticate(None).unwrap(), Caller::Admin { .. }));
    }

    /// The rule matrix: admin, tenant own/other, project own/other, for every rule.
    #[test]
    fn rule_matrix() {
        let tenant = TenantId::generate();
        let own_project = project(&tenant);
        let other_project = project(&TenantId::generate());
        let app = App {
            id: AppId::generate(),
            project_id: own_project.id.clone(),
            tenant_id: tenant.clone(),
            name: Name::parse("web").unwrap(),
            image: "nginx".into(),
            host: None,
            created_at: Utc::now(),
        };
        let admin = Caller::Admin { subject: "a".into() };
        let tenant_own = Caller::Tenant { subject: "t".into(), tenant: tenant.clone() };
        let tenant_other = Caller::Tenant { subject: "t".into(), tenant: TenantId::generate() };
        let project_own = Caller::Project { subject: "p".into(), project: own_project.id.clone() };
        let project_other = Caller::Project { subject: "p".into(), project: other_project.id.clone() };

        type Rule<'a> = (&'a str, Box<dyn Fn(&Caller) -> bool + 'a>);
        let rules: Vec<(Rule, [bool; 5])> = vec![
            (("admin only", Box::new(|c| require_admin(c).is_ok())), [true, false, false, false, false]),
            (
                ("read tenant", Box::new(|c| may_read_tenant(c, &tenant).is_ok())),
                [true, true, false, false, false],
            ),
            (
                ("create project", Box::new(|c| may_create_project(c, &tenant).is_ok())),
                [true, true, false, false, false],
            ),
            (
                ("list projects of tenant", Box::new(|c| may_list_projects(c, Some(&tenant)).is_ok())),
                [true, true, false, false, false],
            ),
            (
                ("list all projects", Box::new(|c| may_list_projects(c, None).is_ok())),
                [true, false, false, false, false],
            ),
            (
                ("read project", Box::new(|c| may_read_project(c, &own_project).is_ok())),
                [true, true, false, true, false],
            ),
            (
                ("create app", Box::new(|c| may_create_app(c, &own_project).is_ok())),
                [true, true, false, true, false],
            ),
            (
                ("list apps of project", Box::new(|c| may_list_apps(c, Some(&own_project)).is_ok())),
                [true, true, false, true, false],
            ),
            (
                ("list all apps", Box::new(|c| may_list_apps(c, None).is_ok())),
                [true, false, false, false, false],
            ),
            (("read app", Box::new(|c| may_read_app(c, &app).is_ok())), [true, true, false, true, false]),
            (
                ("ingest own usage", Box::new(|c| may_ingest_usage(c, [&tenant].into_iter()).is_ok())),
                [true, true, false, false, false],
            ),
            (
                ("read billing", Box::new(|c| may_read_billing(c, &tenant).is_ok())),
                [true, true, false, false, false],
            ),
        ];
        let callers = [&admin, &tenant_own, &tenant_other, &project_own, &project_other];
        for ((name, rule), expected) in &rules {
            let got: Vec<bool> = callers.iter().map(|c| rule(c)).collect();
            assert_eq!(got, expected, "{name}: admin, tenant own, tenant other, project own, project other");
        }
    }
}
