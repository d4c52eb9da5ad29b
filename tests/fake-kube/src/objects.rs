//! The verbs on stored objects: what the API server's registry does between decoding a request
//! and writing etcd (server-set metadata, status subresource, generation, finalizers, CRD
//! registration, namespace cascade).

use serde_json::{Value, json};

use crate::apply::{self, Scope, Writer};
use crate::error::{ApiError, Result};
use crate::resources::{ResourceType, resources_of_crd};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::{EventType, ObjKey, State, timestamp};

pub fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> ObjKey {
    ObjKey {
        group: rt.group.clone(),
        plural: rt.plural.clone(),
        namespace: namespace.unwrap_or_default().to_owned(),
        name: name.to_owned(),
    }
}

/// Objects keep the apiVersion they were written with; answers speak the version asked for.
pub fn present(rt: &ResourceType, object: &Value) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    object
}

fn text<'v>(object: &'v Value, pointer: &str) -> Option<&'v str> {
    object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn uuid() -> String {
    let hex = format!("{:032x}", ulid::Ulid::generate().0);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bits = ulid::Ulid::generate().random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u128) as usize] as char;
            bits /= ALPHABET.len() as u128;
            c
        })
        .collect()
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn desired_state(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(field);
        }
    }
    copy
}

/// The object without what every write changes anyway, to spot no-op writes.
fn content(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    copy
}

fn object_body(body: Value) -> Result<Value> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body of the request was not a JSON object"));
    }
    Ok(body)
}

pub fn get(state: &State, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value> {
    state
        .store
        .get(&key(rt, namespace, name))
        .map(|o| present(rt, o))
        .ok_or_else(|| ApiError::not_found(&rt.plural, name))
}

pub fn list(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Value {
    let items: Vec<Value> = state
        .store
        .list(&rt.group, &rt.plural, namespace)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| present(rt, o))
        .collect();
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": { "resourceVersion": state.store.current_rv().to_string() },
        "items": items,
    })
}

/// How a write's managedFields come about.
pub enum Ownership<'a> {
    /// A create/update/patch: the writer takes the fields it changed.
    Update(Writer<'a>),
    /// Server-side apply already computed them.
    Applied,
}

/// Registers a CRD's resources and reports it Established, as the apiextensions controller would.
fn establish_crd(state: &mut State, crd: &mut Value) -> Result<()> {
    let resources = resources_of_crd(crd)?;
    let name = text(crd, "/metadata/name").unwrap_or_default().to_owned();
    // Conditions keep the time they became true, as the apiextensions controller's do: a write
    // that changes nothing about them must not change the object.
    let established_at =
        crd.pointer("/status/conditions/0/lastTransitionTime").and_then(Value::as_str).map(str::to_owned);
    let now = established_at.unwrap_or_else(|| timestamp(state.now()));
    let mut accepted = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if let Some(first) = resources.first() {
        accepted["singular"] = json!(first.singular);
        accepted["listKind"] = json!(format!("{}List", first.kind));
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    crd["status"] = json!({
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
              "message": "no conflicts found", "lastTransitionTime": now },
            { "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
              "message": "the initial names have been accepted", "lastTransitionTime": now },
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
    state.registry.register_crd(&name, resources);
    Ok(())
}

/// Removes an object for good, with what goes away along with it.
fn remove(state: &mut State, rt: &ResourceType, key: &ObjKey) -> Option<Value> {
    let removed = state.store.remove(key)?;
    if rt.is_crd() {
        for resource in state.registry.unregister_crd(&key.name).into_iter().take(1) {
            for object in state.store.keys_of(&resource.group, &resource.plural) {
                state.store.remove(&object);
            }
        }
    }
    Some(present(rt, &removed))
}

/// POST: a new object with server-set metadata. `namespace` is the request path's.
pub fn create(
    state: &mut State,
    rt: &ResourceType,
    namespace: Option<&str>,
    body: Value,
    ownership: Ownership,
) -> Result<Value> {
    let mut object = object_body(body)?;
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    if text(&object, "/metadata/resourceVersion").is_some() && matches!(ownership, Ownership::Update(_)) {
        return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let name = match (text(&object, "/metadata/name"), text(&object, "/metadata/generateName")) {
        (Some(name), _) => name.to_owned(),
        (None, Some(prefix)) => format!("{prefix}{}", random_suffix()),
        (None, None) => {
            return Err(ApiError::invalid(
                &rt.kind,
                "",
                "metadata.name: Required value: name or generateName is required".into(),
            ));
        }
    };
    if name.contains('/') || name.contains('%') || name == "." || name == ".." {
        return Err(ApiError::invalid(
            &rt.kind,
            &name,
            format!("metadata.name: Invalid value: \"{name}\": may not contain '/' or '%'"),
        ));
    }
    let namespace = if rt.namespaced {
        let body_namespace = text(&object, "/metadata/namespace");
        if let (Some(path), Some(body)) = (namespace, body_namespace)
            && path != body
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let namespace = namespace.or(body_namespace).unwrap_or("default").to_owned();
        let namespace_key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.clone(),
        };
        if state.store.get(&namespace_key).is_none() {
            return Err(ApiError::not_found("namespaces", &namespace));
        }
        object["metadata"]["namespace"] = json!(namespace);
        Some(namespace)
    } else {
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.remove("namespace");
        }
        None
    };
    let key = key(rt, namespace.as_deref(), &name);
    if state.store.get(&key).is_some() {
        return Err(ApiError::already_exists(&rt.plural, &name));
    }
    if rt.status
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let now = timestamp(state.now());
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    metadata["uid"] = json!(uuid());
    metadata["creationTimestamp"] = json!(now);
    metadata["generation"] = json!(1);
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.remove("deletionTimestamp");
        metadata.remove("resourceVersion");
    }
    match ownership {
        Ownership::Update(writer) => apply::record_update(None, &mut object, &writer),
        Ownership::Applied => {}
    }
    if rt.is_crd() {
        establish_crd(state, &mut object)?;
    }
    if rt.is_namespace() {
        object["status"] = json!({ "phase": "Active" });
    }
    Ok(present(rt, &state.store.put(key, object, EventType::Added)))
}

/// Writes `new` over `old` (both full objects), keeping what clients may not change.
fn commit(
    state: &mut State,
    rt: &ResourceType,
    key: ObjKey,
    old: Value,
    mut new: Value,
    scope: Scope,
    ownership: Ownership,
) -> Result<Value> {
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "resourceVersion",
    ] {
        match old["metadata"].get(field) {
            Some(value) => new["metadata"][field] = value.clone(),
            None => {
                if let Some(metadata) = new["metadata"].as_object_mut() {
                    metadata.remove(field);
                }
            }
        }
    }
    if scope == (Scope::Main { status_subresource: true }) {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    if desired_state(&old) != desired_state(&new) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if let Ownership::Update(writer) = ownership {
        apply::record_update(Some(&old), &mut new, &writer);
    }
    if rt.is_crd() {
        establish_crd(state, &mut new)?;
    }
    if content(&old) == content(&new)
        && old["metadata"].get("managedFields") == new["metadata"].get("managedFields")
    {
        return Ok(present(rt, &old));
    }
    let finalizers = new.pointer("/metadata/finalizers").and_then(Value::as_array).map_or(0, Vec::len);
    if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers == 0 {
        // The last finalizer is gone: the pending deletion completes now.
        state.store.put(key.clone(), new, EventType::Modified);
        return remove(state, rt, &key).ok_or_else(|| ApiError::not_found(&rt.plural, &key.name));
    }
    Ok(present(rt, &state.store.put(key, new, EventType::Modified)))
}

fn existing(state: &State, rt: &ResourceType, key: &ObjKey) -> Result<Value> {
    state.store.get(key).cloned().ok_or_else(|| ApiError::not_found(&rt.plural, &key.name))
}

fn check_name(body: &Value, name: &str) -> Result<()> {
    match text(body, "/metadata/name") {
        Some(given) if given != name => Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// A write to one named object: main resource or `/status`.
pub struct Write<'a> {
    pub rt: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub scope: Scope,
    pub manager: &'a str,
}

impl Write<'_> {
    fn key(&self) -> ObjKey {
        key(self.rt, self.namespace, self.name)
    }

    fn writer<'w>(&'w self, api_version: &'w str, time: &'w str) -> Writer<'w> {
        Writer { manager: self.manager, api_version, time, scope: self.scope }
    }

    /// `/status` writes change `.status` and nothing else.
    fn scoped_change(&self, old: &Value, new: Value) -> Value {
        match self.scope {
            Scope::Main { .. } => new,
            Scope::Status => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(status) => merged["status"] = status.clone(),
                    None => {
                        if let Some(map) = merged.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                merged
            }
        }
    }

    fn commit(&self, state: &mut State, old: Value, new: Value) -> Result<Value> {
        let (api_version, time) = (self.rt.api_version(), timestamp(state.now()));
        let new = self.scoped_change(&old, new);
        let writer = self.writer(&api_version, &time);
        commit(state, self.rt, self.key(), old, new, self.scope, Ownership::Update(writer))
    }

    /// PUT
    pub fn replace(&self, state: &mut State, body: Value) -> Result<Value> {
        let body = object_body(body)?;
        check_name(&body, self.name)?;
        let old = existing(state, self.rt, &self.key())?;
        let given = text(&body, "/metadata/resourceVersion");
        if given.is_some_and(|rv| Some(rv) != text(&old, "/metadata/resourceVersion")) {
            return Err(ApiError::stale(&self.rt.plural, self.name));
        }
        self.commit(state, old, body)
    }

    /// PATCH with a merge patch (RFC 7386) or a JSON patch (RFC 6902).
    pub fn patch(&self, state: &mut State, kind: PatchKind, body: &[u8]) -> Result<Value> {
        let old = existing(state, self.rt, &self.key())?;
        let mut patched = old.clone();
        let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(format!("error decoding patch: {e}"));
        match kind {
            PatchKind::Merge => {
                let patch: Value = serde_json::from_slice(body).map_err(|e| bad(&e))?;
                json_patch::merge(&mut patched, &patch);
            }
            PatchKind::Json => {
                let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| bad(&e))?;
                json_patch::patch(&mut patched, &patch).map_err(|e| {
                    ApiError::invalid(
                        &self.rt.kind,
                        self.name,
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
        // A patch that sets metadata.resourceVersion is a precondition, as in real Kubernetes.
        if text(&patched, "/metadata/resourceVersion") != text(&old, "/metadata/resourceVersion") {
            return Err(ApiError::stale(&self.rt.plural, self.name));
        }
        self.commit(state, old, patched)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply, creating when missing.
    pub fn apply(&self, state: &mut State, body: &[u8], force: bool) -> Result<Value> {
        let text_body =
            std::str::from_utf8(body).map_err(|_| ApiError::bad_request("apply body is not UTF-8"))?;
        let applied: Value = match serde_json::from_str(text_body) {
            Ok(value) => value,
            Err(_) => serde_saphyr::from_str(text_body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        };
        let applied = object_body(applied)?;
        check_name(&applied, self.name)?;
        if text(&applied, "/kind") != Some(self.rt.kind.as_str()) || text(&applied, "/apiVersion").is_none() {
            return Err(ApiError::bad_request(format!(
                "apply needs apiVersion and kind {} in the body",
                self.rt.kind
            )));
        }
        let (api_version, time) = (self.rt.api_version(), timestamp(state.now()));
        let writer = self.writer(&api_version, &time);
        let conflict = |conflicts: Vec<apply::ApplyConflict>| {
            let count = conflicts.len();
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| {
                    format!("conflict with \"{}\" using {api_version}: {}", c.manager, apply::dotted(&c.path))
                })
                .collect();
            let plural = if count == 1 { "" } else { "s" };
            ApiError::conflict(
                &self.rt.plural,
                self.name,
                format!("Apply failed with {count} conflict{plural}: {}", lines.join("; ")),
            )
        };
        match state.store.get(&self.key()).cloned() {
            Some(old) => {
                let new = apply::apply(&old, &applied, &writer, force).map_err(conflict)?;
                commit(state, self.rt, self.key(), old, new, self.scope, Ownership::Applied)
            }
            None if self.scope == Scope::Status => Err(ApiError::not_found(&self.rt.plural, self.name)),
            None => {
                let mut base = json!({ "metadata": { "name": self.name } });
                if let Some(namespace) = self.namespace {
                    base["metadata"]["namespace"] = json!(namespace);
                }
                let new = apply::apply(&base, &applied, &writer, force).map_err(conflict)?;
                create(state, self.rt, self.namespace, new, Ownership::Applied)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
}

/// DeleteOptions `preconditions`: the delete only goes ahead for that uid / resourceVersion.
pub fn check_preconditions(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    options: &Value,
) -> Result<()> {
    let object = existing(state, rt, &key(rt, namespace, name))?;
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let Some(wanted) = text(options, &format!("/preconditions/{field}")) else { continue };
        let actual = text(&object, &format!("/metadata/{field}")).unwrap_or_default();
        if wanted != actual {
            return Err(ApiError::conflict(
                &rt.plural,
                name,
                format!(
                    "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

/// DELETE: finalizers hold the object with a deletionTimestamp; namespaces take their objects
/// along.
pub fn delete(state: &mut State, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value> {
    let key = key(rt, namespace, name);
    let mut object = existing(state, rt, &key)?;
    let now = timestamp(state.now());
    if rt.is_namespace() {
        for inner in state.store.keys_in_namespace(name) {
            state.store.remove(&inner);
        }
        let mut removed = remove(state, rt, &key).ok_or_else(|| ApiError::not_found(&rt.plural, name))?;
        removed["metadata"]["deletionTimestamp"] = json!(now);
        removed["status"] = json!({ "phase": "Terminating" });
        return Ok(removed);
    }
    let finalizers = object.pointer("/metadata/finalizers").and_then(Value::as_array).map_or(0, Vec::len);
    if finalizers > 0 {
        if object.pointer("/metadata/deletionTimestamp").is_none() {
            object["metadata"]["deletionTimestamp"] = json!(now);
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            object = state.store.put(key, object, EventType::Modified);
        }
        return Ok(present(rt, &object));
    }
    remove(state, rt, &key).ok_or_else(|| ApiError::not_found(&rt.plural, name))
}

/// DELETE on a collection: every matching object, answered as a list of what was deleted.
pub fn delete_collection(
    state: &mut State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Result<Value> {
    let names: Vec<(String, String)> = state
        .store
        .list(&rt.group, &rt.plural, namespace)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| {
            let field = |p| text(o, p).unwrap_or_default().to_owned();
            (field("/metadata/namespace"), field("/metadata/name"))
        })
        .collect();
    let mut deleted = Vec::new();
    for (ns, name) in names {
        let ns = (!ns.is_empty()).then_some(ns.as_str());
        deleted.push(delete(state, rt, ns, &name)?);
    }
    Ok(json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": { "resourceVersion": state.store.current_rv().to_string() },
        "items": deleted,
    }))
}

/// The namespaces and default RBAC objects of a fresh cluster.
pub fn seed(state: &mut State) {
    let mut seeds: Vec<(&str, &str, Value)> = ["default", "kube-system", "kube-public"]
        .into_iter()
        .map(|name| ("", "namespaces", json!({ "metadata": { "name": name } })))
        .collect();
    seeds.extend(
        crate::rbac::built_in_objects()
            .into_iter()
            .map(|(plural, o)| ("rbac.authorization.k8s.io", plural, o)),
    );
    for (group, plural, object) in seeds {
        let Some(rt) = state.registry.any_version(group, plural).cloned() else { continue };
        let time = timestamp(state.now());
        let writer = Writer {
            manager: "kube-apiserver",
            api_version: "v1",
            time: &time,
            scope: Scope::Main { status_subresource: rt.status },
        };
        if let Err(error) = create(state, &rt, None, object, Ownership::Update(writer)) {
            tracing::error!(%error, "seeding the fake cluster");
        }
    }
}
