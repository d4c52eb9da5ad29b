//! Field ownership: `metadata.managedFields` and server-side apply.
//!
//! Simplification of the real structured-merge-diff: a field is a path of map keys to a leaf,
//! and lists are atomic leaves (no `k:`/`v:` list keys). That is enough for appliers to own,
//! share, release and fight over fields the way controllers and kubectl see it.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

pub type Path = Vec<String>;
pub type Fields = BTreeSet<Path>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` only when the resource has no status subresource.
    Main { status_subresource: bool },
    /// The `/status` subresource.
    Status,
}

impl Scope {
    pub fn subresource(self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }
}

/// Metadata fields that users own; the rest of metadata is the server's.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The part of `object` a write in `scope` controls.
pub fn scoped(object: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    let Some(fields) = object.as_object() else { return Value::Object(out) };
    for (key, value) in fields {
        let keep = match (key.as_str(), scope) {
            ("apiVersion" | "kind", _) => false,
            ("metadata", _) => {
                let metadata: Map<String, Value> = value
                    .as_object()
                    .map(|m| m.iter().filter(|(k, _)| OWNED_METADATA.contains(&k.as_str())))
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !metadata.is_empty() {
                    out.insert(key.clone(), Value::Object(metadata));
                }
                false
            }
            ("status", Scope::Status) => true,
            ("status", Scope::Main { status_subresource }) => !status_subresource,
            (_, Scope::Status) => false,
            (_, Scope::Main { .. }) => true,
        };
        if keep && !value.is_null() {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// Paths to every leaf: scalars and lists; maps are walked, empty maps own nothing.
pub fn leaves(value: &Value) -> Fields {
    fn walk(value: &Value, path: &mut Path, out: &mut Fields) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = Fields::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

pub fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Removes the field and then any map it leaves empty below the top level.
fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let Some(Value::Object(parent)) = parents.iter().try_fold(&mut *value, |v, k| v.get_mut(k)) else {
        return;
    };
    parent.remove(last);
    if parent.is_empty() && parents.len() >= 2 {
        remove_at(value, parents);
    }
}

/// Applied values win; maps merge key by key; nulls are ignored.
pub fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    continue;
                }
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub manager: String,
    /// "Apply" or "Update"
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: Fields,
}

fn encode(fields: &Fields) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[String]) {
        let Some((first, rest)) = path.split_first() else { return };
        if let Value::Object(child) = node.entry(format!("f:{first}")).or_insert_with(|| json!({})) {
            insert(child, rest);
        }
    }
    let mut root = Map::new();
    for path in fields {
        insert(&mut root, path);
    }
    Value::Object(root)
}

fn decode(node: &Value) -> Fields {
    fn walk(node: &Value, path: &mut Path, out: &mut Fields) {
        let children: Vec<(&String, &Value)> = node
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (key, child) in children {
            path.push(key[2..].to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = Fields::new();
    walk(node, &mut Vec::new(), &mut out);
    out
}

pub fn read_managers(object: &Value) -> Vec<Manager> {
    let entries = object.pointer("/metadata/managedFields").and_then(Value::as_array);
    let text = |e: &Value, f: &str| e.get(f).and_then(Value::as_str).unwrap_or_default().to_owned();
    entries
        .into_iter()
        .flatten()
        .map(|e| Manager {
            manager: text(e, "manager"),
            operation: text(e, "operation"),
            subresource: text(e, "subresource"),
            api_version: text(e, "apiVersion"),
            time: text(e, "time"),
            fields: e.get("fieldsV1").map(decode).unwrap_or_default(),
        })
        .collect()
}

pub fn write_managers(object: &mut Value, managers: &[Manager]) {
    let entries: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut entry = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&m.fields),
            });
            if !m.subresource.is_empty() {
                entry["subresource"] = json!(m.subresource);
            }
            entry
        })
        .collect();
    if entries.is_empty() {
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = Value::Array(entries);
    }
}

/// Who is writing, for the managedFields entry.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub scope: Scope,
}

fn entry<'m>(managers: &'m mut Vec<Manager>, writer: &Writer, operation: &str) -> &'m mut Manager {
    let subresource = writer.scope.subresource();
    let position = managers.iter().position(|m| {
        m.manager == writer.manager && m.operation == operation && m.subresource == subresource
    });
    let index = position.unwrap_or_else(|| {
        managers.push(Manager {
            manager: writer.manager.to_owned(),
            operation: operation.to_owned(),
            subresource: subresource.to_owned(),
            api_version: String::new(),
            time: String::new(),
            fields: Fields::new(),
        });
        managers.len() - 1
    });
    let manager = &mut managers[index];
    manager.api_version = writer.api_version.to_owned();
    manager.time = writer.time.to_owned();
    manager
}

/// A non-apply write: the writer takes every field it changed, from whoever had it.
pub fn record_update(old: Option<&Value>, new: &mut Value, writer: &Writer) {
    let empty = json!({});
    let before = scoped(old.unwrap_or(&empty), writer.scope);
    let after = scoped(new, writer.scope);
    let mut touched: Fields =
        leaves(&after).into_iter().filter(|p| value_at(&before, p) != value_at(&after, p)).collect();
    touched.extend(leaves(&before).into_iter().filter(|p| value_at(&after, p).is_none()));
    let mut managers = old.map(read_managers).unwrap_or_default();
    if touched.is_empty() {
        write_managers(new, &managers);
        return;
    }
    for manager in &mut managers {
        manager.fields.retain(|q| !touched.iter().any(|p| overlaps(p, q)));
    }
    let gained: Fields = touched.into_iter().filter(|p| value_at(&after, p).is_some()).collect();
    entry(&mut managers, writer, "Update").fields.extend(gained);
    write_managers(new, &managers);
}

/// A field that another manager set to a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyConflict {
    pub manager: String,
    pub path: Path,
}

/// Server-side apply of `applied` onto `current` (an empty object when creating). Returns the
/// new object with its managedFields, or the conflicts when `force` is off.
pub fn apply(
    current: &Value,
    applied: &Value,
    writer: &Writer,
    force: bool,
) -> Result<Value, Vec<ApplyConflict>> {
    let config = scoped(applied, writer.scope);
    let wanted = leaves(&config);
    let mut managers = read_managers(current);
    let is_me = |m: &Manager| m.manager == writer.manager;

    let mut conflicts = Vec::new();
    for manager in managers.iter().filter(|m| !is_me(m)) {
        for owned in &manager.fields {
            let contested = wanted.iter().any(|p| overlaps(p, owned));
            if contested && value_at(current, owned) != value_at(&config, owned) {
                conflicts.push(ApplyConflict { manager: manager.manager.clone(), path: owned.clone() });
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        for manager in managers.iter_mut().filter(|m| !is_me(m)) {
            manager.fields.retain(|q| !conflicts.iter().any(|c| &c.path == q));
        }
    }

    let mut object = current.clone();
    let subresource = writer.scope.subresource();
    let previously: Fields = managers
        .iter()
        .filter(|m| is_me(m) && m.operation == "Apply" && m.subresource == subresource)
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for released in previously.difference(&wanted) {
        let shared = managers
            .iter()
            .filter(|m| !(is_me(m) && m.operation == "Apply"))
            .any(|m| m.fields.iter().any(|q| overlaps(q, released)));
        if !shared {
            remove_at(&mut object, released);
        }
    }
    deep_merge(&mut object, &config);
    let before = managers
        .iter()
        .find(|m| is_me(m) && m.operation == "Apply" && m.subresource == subresource)
        .map(|m| (m.fields.clone(), m.api_version.clone(), m.time.clone()));
    let entry = entry(&mut managers, writer, "Apply");
    // As Kubernetes: an apply that changes nothing, not even what the manager owns, is a no-op,
    // and keeps its entry's timestamp (so the object, and its resourceVersion, stay as they were).
    if let Some((fields, api_version, time)) = before
        && fields == wanted
        && api_version == entry.api_version
        && without_managers(&object) == without_managers(current)
    {
        entry.time = time;
    }
    entry.fields = wanted;
    write_managers(&mut object, &managers);
    Ok(object)
}

fn without_managers(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main { status_subresource: true };

    fn writer(manager: &str) -> Writer<'_> {
        Writer { manager, api_version: "v1", time: "2025-01-01T00:00:00Z", scope: MAIN }
    }

    fn config(data: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": data })
    }

    #[test]
    fn managed_fields_round_trip_through_fields_v1() {
        let fields: Fields =
            [vec!["data".to_owned(), "a".to_owned()], vec!["metadata".into(), "labels".into()]]
                .into_iter()
                .collect();
        let encoded = encode(&fields);
        assert_eq!(encoded, json!({ "f:data": { "f:a": {} }, "f:metadata": { "f:labels": {} } }));
        assert_eq!(decode(&encoded), fields);
    }

    #[test]
    fn reapply_releases_omitted_fields_unless_shared() {
        let base = json!({ "metadata": { "name": "c" } });
        let first = apply(&base, &config(json!({ "a": "1", "b": "2" })), &writer("m1"), false).unwrap();
        let shared = apply(&first, &config(json!({ "b": "2" })), &writer("m2"), false).unwrap();
        let second = apply(&shared, &config(json!({ "a": "1" })), &writer("m1"), false).unwrap();
        assert_eq!(second["data"], json!({ "a": "1", "b": "2" }), "m2 still owns b");
        let third = apply(&second, &config(json!({})), &writer("m2"), false).unwrap();
        assert_eq!(third["data"], json!({ "a": "1" }));
    }

    #[test]
    fn conflicting_values_need_force() {
        let base = json!({ "metadata": { "name": "c" } });
        let first = apply(&base, &config(json!({ "a": "1" })), &writer("m1"), false).unwrap();
        let conflicts = apply(&first, &config(json!({ "a": "2" })), &writer("m2"), false).unwrap_err();
        assert_eq!(
            conflicts,
            vec![ApplyConflict { manager: "m1".into(), path: vec!["data".into(), "a".into()] }]
        );
        let forced = apply(&first, &config(json!({ "a": "2" })), &writer("m2"), true).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let owners: Vec<String> = read_managers(&forced).into_iter().map(|m| m.manager).collect();
        assert_eq!(owners, vec!["m2"]);
    }

    #[test]
    fn updates_take_changed_fields_from_appliers() {
        let base = json!({ "metadata": { "name": "c" } });
        let mut applied = apply(&base, &config(json!({ "a": "1", "b": "1" })), &writer("m1"), false).unwrap();
        let old = applied.clone();
        applied["data"]["a"] = json!("edited");
        record_update(Some(&old), &mut applied, &writer("kubectl-edit"));
        let managers = read_managers(&applied);
        assert_eq!(managers[0].fields, [vec!["data".to_owned(), "b".to_owned()]].into_iter().collect());
        assert_eq!(managers[1].manager, "kubectl-edit");
        assert_eq!(managers[1].operation, "Update");
    }
}
