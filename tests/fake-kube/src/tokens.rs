//! Who is calling: the admin, a ServiceAccount holding a token from the TokenRequest API, or
//! nobody. Tokens are opaque strings checked against the fake's clock and the live
//! ServiceAccount, so deleting the account revokes them as bound tokens are in a real cluster.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::state::{ObjKey, State, timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// The admin bypasses RBAC, as a member of system:masters does.
    pub admin: bool,
}

impl User {
    pub fn admin() -> User {
        User { name: "admin".into(), groups: vec!["system:masters".into()], admin: true }
    }

    fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            admin: false,
        }
    }
}

#[derive(Debug)]
struct IssuedToken {
    namespace: String,
    name: String,
    /// The account the token was issued for: a re-created account with the same name does not
    /// inherit it.
    uid: String,
    expires: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, IssuedToken>,
}

fn service_account_key(namespace: &str, name: &str) -> ObjKey {
    ObjKey {
        group: String::new(),
        plural: "serviceaccounts".into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn uid_of(object: &Value) -> &str {
    object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default()
}

/// The user a bearer token stands for, if it is still valid.
pub fn authenticate(state: &State, token: &str) -> Option<User> {
    let issued = state.tokens.issued.get(token)?;
    if state.now() >= issued.expires {
        return None;
    }
    let account = state.store.get(&service_account_key(&issued.namespace, &issued.name))?;
    (uid_of(account) == issued.uid).then(|| User::service_account(&issued.namespace, &issued.name))
}

/// Real Kubernetes refuses bound tokens shorter than ten minutes.
const MIN_EXPIRATION_SECONDS: i64 = 600;
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`
pub fn create_token(state: &mut State, namespace: &str, name: &str, request: &Value) -> Result<Value> {
    let account = state
        .store
        .get(&service_account_key(namespace, name))
        .ok_or_else(|| ApiError::not_found("serviceaccounts", name))?;
    let uid = uid_of(account).to_owned();
    let seconds = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(ApiError::invalid(
            "TokenRequest",
            name,
            format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    let expires = state.now() + chrono::Duration::seconds(seconds);
    let token = format!("fake-sa-token.{}", ulid::Ulid::generate());
    state
        .tokens
        .issued
        .insert(token.clone(), IssuedToken { namespace: namespace.into(), name: name.into(), uid, expires });
    let audiences = request
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(json!(["https://kubernetes.default.svc.cluster.local"]));
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "name": name, "namespace": namespace, "creationTimestamp": timestamp(state.now()) },
        "spec": { "audiences": audiences, "expirationSeconds": seconds },
        "status": { "token": token, "expirationTimestamp": timestamp(expires) },
    }))
}
