//! Routing one request: health, authentication, discovery, injected failures, RBAC, then the
//! verb on a resource. Every request is written to the request log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::Shared;
use crate::apply::{Scope, Writer};
use crate::error::{ApiError, Reason, Result};
use crate::objects::{self, Ownership, PatchKind, Write};
use crate::rbac::{self, Attributes};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::{Recorded, State, timestamp};
use crate::tokens::{self, User};
use crate::watch::{self, WatchRequest};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request with its body read, as both transports hand it over.
pub struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Bytes,
}

fn header_text(headers: &http::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl Incoming {
    pub fn from_parts(parts: &http::request::Parts, body: Bytes) -> Incoming {
        Incoming {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: header_text(&parts.headers, header::CONTENT_TYPE),
            accept: header_text(&parts.headers, header::ACCEPT),
            body,
        }
    }
}

/// Who the transport says is calling.
pub enum Credential {
    /// The in-process client.
    Admin,
    /// The `Authorization: Bearer` token of an HTTPS request, if any.
    Bearer(Option<String>),
}

impl Credential {
    pub fn from_headers(headers: &http::HeaderMap) -> Credential {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Credential::Bearer(token)
    }
}

type Params = HashMap<String, String>;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn error_response(error: ApiError) -> Response<Body> {
    json_response(error.code, &error.status())
}

pub async fn handle(shared: Arc<Shared>, incoming: Incoming, credential: Credential) -> Response<Body> {
    let params: Params = form_urlencoded::parse(incoming.query.as_bytes()).into_owned().collect();
    let (user, response) = respond(&shared, &incoming, &params, credential);
    shared.lock().requests.push(Recorded {
        method: incoming.method.to_string(),
        path: incoming.path,
        query: incoming.query,
        user,
        status: response.status().as_u16(),
        content_type: incoming.content_type,
        field_manager: params.get("fieldManager").cloned(),
    });
    response
}

fn respond(
    shared: &Arc<Shared>,
    incoming: &Incoming,
    params: &Params,
    credential: Credential,
) -> (String, Response<Body>) {
    let path = incoming.path.trim_end_matches('/');
    if ["/healthz", "/readyz", "/livez"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/"))) {
        let mut response = Response::new(full("ok"));
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
        return ("anonymous".into(), response);
    }
    let user = match credential {
        Credential::Admin => Some(User::admin()),
        Credential::Bearer(Some(token)) if token == shared.admin_token => Some(User::admin()),
        Credential::Bearer(Some(token)) => tokens::authenticate(&shared.lock(), &token),
        Credential::Bearer(None) => None,
    };
    let Some(user) = user else {
        return ("anonymous".into(), error_response(ApiError::unauthorized()));
    };
    let response = route(shared, incoming, params, &user).unwrap_or_else(error_response);
    (user.name, response)
}

fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound, "the server could not find the requested resource")
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn route(shared: &Arc<Shared>, incoming: &Incoming, params: &Params, user: &User) -> Result<Response<Body>> {
    let segments: Vec<&str> = incoming.path.split('/').filter(|s| !s.is_empty()).collect();
    let discovery = |document: Option<Value>| document.map(|d| json_response(200, &d)).ok_or_else(not_found);
    let is_get = incoming.method == Method::GET;
    let aggregated = incoming.accept.as_deref().is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    match segments[..] {
        ["version"] if is_get => Ok(json_response(200, &version())),
        ["api" | "apis"] if is_get && aggregated => {
            let document = shared.lock().registry.aggregated_discovery(segments[0] == "api");
            let mut response = json_response(200, &document);
            response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(AGGREGATED));
            Ok(response)
        }
        ["api"] if is_get => Ok(json_response(200, &shared.lock().registry.api_versions())),
        ["apis"] if is_get => Ok(json_response(200, &shared.lock().registry.api_group_list())),
        ["api", version] if is_get => discovery(shared.lock().registry.resource_list("", version)),
        ["apis", group] if is_get => {
            let groups = shared.lock().registry.api_group_list();
            let found =
                groups["groups"].as_array().and_then(|g| g.iter().find(|g| g["name"] == group)).cloned();
            discovery(found.map(|mut g| {
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                g
            }))
        }
        ["apis", group, version] if is_get => discovery(shared.lock().registry.resource_list(group, version)),
        ["api", version, ref rest @ ..] if !rest.is_empty() => {
            resource_request(shared, incoming, params, user, "", version, rest)
        }
        ["apis", group, version, ref rest @ ..] if !rest.is_empty() => {
            resource_request(shared, incoming, params, user, group, version, rest)
        }
        _ => Err(not_found()),
    }
}

/// `namespaces/{ns}/{plural}[/{name}[/{sub}]]` or `{plural}[/{name}[/{sub}]]`.
struct Target<'a> {
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_target<'a>(rest: &[&'a str]) -> Result<Target<'a>> {
    // `namespaces/{name}/status` is the Namespace's own subresource, not a resource inside it.
    let namespaced = rest.len() >= 3 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize");
    let (namespace, rest) = if namespaced { (Some(rest[1]), &rest[2..]) } else { (None, rest) };
    match *rest {
        [plural] => Ok(Target { namespace, plural, name: None, subresource: None }),
        [plural, name] => Ok(Target { namespace, plural, name: Some(name), subresource: None }),
        [plural, name, sub] => Ok(Target { namespace, plural, name: Some(name), subresource: Some(sub) }),
        _ => Err(not_found()),
    }
}

fn decode(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body could not be decoded: {e}")))
}

fn flag(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn selectors(params: &Params) -> Result<(LabelSelector, FieldSelector)> {
    let label = params.get("labelSelector").map(String::as_str).unwrap_or_default();
    let field = params.get("fieldSelector").map(String::as_str).unwrap_or_default();
    Ok((LabelSelector::parse(label)?, FieldSelector::parse(field)?))
}

fn resource_request(
    shared: &Arc<Shared>,
    incoming: &Incoming,
    params: &Params,
    user: &User,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response<Body>> {
    let mut state = shared.lock();
    if state.fail_next.0 > 0 {
        state.fail_next.0 -= 1;
        return Err(ApiError::with_code(state.fail_next.1, "injected failure (FakeKube::fail_next)"));
    }
    let target = parse_target(rest)?;
    let rt = state.registry.lookup(group, version, target.plural).cloned().ok_or_else(not_found)?;
    if target.namespace.is_some() && !rt.namespaced {
        return Err(not_found());
    }
    let subresource_known = match target.subresource {
        None => true,
        Some("status") => rt.status,
        Some("token") => rt.is_service_account() && incoming.method == Method::POST,
        Some(_) => false,
    };
    if !subresource_known || (rt.namespaced && target.namespace.is_none() && incoming.method != Method::GET) {
        return Err(not_found());
    }
    // kubectl's typed writes (`kubectl create configmap`) send protobuf, which needs the Go
    // types to decode; say so plainly instead of failing to parse.
    let media_type =
        incoming.content_type.as_deref().unwrap_or_default().split(';').next().unwrap_or_default().trim();
    if media_type == "application/vnd.kubernetes.protobuf" {
        return Err(ApiError::new(
            Reason::UnsupportedMediaType,
            "fake-kube only speaks JSON: the body was application/vnd.kubernetes.protobuf",
        ));
    }
    let watching = flag(params, "watch");
    let verb = match (&incoming.method, target.name) {
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, None) => "create",
        (&Method::POST, Some(_)) if target.subresource == Some("token") => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => {
            return Err(ApiError::new(
                Reason::MethodNotAllowed,
                format!("the server does not allow this method on the requested resource ({})", rt.plural),
            ));
        }
    };
    // The apiserver files a request on a Namespace under that namespace.
    let rbac_namespace = if rt.is_namespace() { target.name } else { target.namespace };
    let attributes = Attributes {
        verb,
        group,
        resource: &rt.plural,
        subresource: target.subresource,
        namespace: rbac_namespace,
        name: target.name,
    };
    rbac::authorize(&state.store, user, &attributes)?;

    let namespace = target.namespace;
    let (labels, fields) = selectors(params)?;
    let scope = match target.subresource {
        Some("status") => Scope::Status,
        _ => Scope::Main { status_subresource: rt.status },
    };
    if verb == "watch" {
        // The stream takes the lock itself, for as long as it runs.
        drop(state);
        return watch_response(shared, params, rt, namespace, labels, fields);
    }
    let mut scratch;
    let state: &mut State = if params.get("dryRun").is_some_and(|d| d == "All") {
        // A dry run does everything on a throwaway copy: same answers, nothing kept.
        scratch = state.scratch();
        &mut scratch
    } else {
        &mut state
    };
    let manager = params.get("fieldManager").cloned().unwrap_or_else(|| user.name.clone());
    let ok = |value: Value| Ok(json_response(200, &value));
    let Some(name) = target.name else {
        return match verb {
            "list" => ok(objects::list(state, &rt, namespace, &labels, &fields)),
            "create" => {
                let body = decode(&incoming.body)?;
                let (api_version, time) = (rt.api_version(), timestamp(state.now()));
                let writer = Writer { manager: &manager, api_version: &api_version, time: &time, scope };
                let created = objects::create(state, &rt, namespace, body, Ownership::Update(writer))?;
                Ok(json_response(201, &created))
            }
            _ => ok(objects::delete_collection(state, &rt, namespace, &labels, &fields)?),
        };
    };
    let write = Write { rt: &rt, namespace, name, scope, manager: &manager };
    match verb {
        "get" => ok(objects::get(state, &rt, namespace, name)?),
        "create" => {
            let request = decode(&incoming.body)?;
            let token = tokens::create_token(state, namespace.unwrap_or_default(), name, &request)?;
            Ok(json_response(201, &token))
        }
        "update" => ok(write.replace(state, decode(&incoming.body)?)?),
        "patch" => match media_type {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                ok(write.patch(state, PatchKind::Merge, &incoming.body)?)
            }
            "application/json-patch+json" => ok(write.patch(state, PatchKind::Json, &incoming.body)?),
            "application/apply-patch+yaml" => {
                if !params.contains_key("fieldManager") {
                    return Err(ApiError::bad_request("fieldManager is required for apply requests"));
                }
                ok(write.apply(state, &incoming.body, flag(params, "force"))?)
            }
            other => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            )),
        },
        _ => {
            if !incoming.body.is_empty() {
                let options = decode(&incoming.body)?;
                objects::check_preconditions(state, &rt, namespace, name, &options)?;
            }
            ok(objects::delete(state, &rt, namespace, name)?)
        }
    }
}

fn watch_response(
    shared: &Arc<Shared>,
    params: &Params,
    rt: ResourceType,
    namespace: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Result<Response<Body>> {
    let resource_version = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = params.get("timeoutSeconds").and_then(|s| s.parse().ok()).unwrap_or(1800);
    let request = WatchRequest {
        rt,
        namespace: namespace.map(str::to_owned),
        labels,
        fields,
        resource_version,
        send_initial_events: flag(params, "sendInitialEvents"),
        bookmarks: flag(params, "allowWatchBookmarks"),
        timeout: Duration::from_secs(timeout),
    };
    let mut response = Response::new(watch::start(shared.clone(), request));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(response)
}
