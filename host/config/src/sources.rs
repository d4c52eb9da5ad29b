//! Where settings come from, each read as text. An environment variable is always text, and a
//! TOML number is kept as the digits it was written with: figment's own providers would guess a
//! type (`0.01` a float, `4` an integer) and a decimal would pass through a float. Numbers and
//! booleans that a setting needs are read from that text when the configuration is extracted
//! (figment's lossy extraction); rates, quantities and names stay exactly as written.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Tag, Value};
use figment::{Error, Metadata, Profile, Provider};

/// The seed's variable names and the keys they set. Any other key is `KUBEOP_<SECTION>__<KEY>`.
pub(crate) const SEED_VARIABLES: &[(&str, &str)] = &[
    ("KUBEOP_HTTP_ADDR", "http.addr"),
    ("KUBEOP_DB_URL", "db.url"),
    ("KUBEOP_REQUIRE_AUTH", "auth.require"),
    ("KUBEOP_JWT_SIGNING_KEY", "auth.jwt_signing_key"),
    ("KUBEOP_KMS_MASTER_KEY", "kms.master_key"),
    ("KUBEOP_IMAGE_ALLOWLIST", "policy.image_allowlist"),
    ("KUBEOP_EGRESS_BASELINE", "policy.egress_baseline"),
    ("KUBEOP_QUOTA_MAX_REQUESTS_CPU", "policy.quota_max_requests_cpu"),
    ("KUBEOP_QUOTA_MAX_REQUESTS_MEMORY", "policy.quota_max_requests_memory"),
    ("KUBEOP_RATE_CPU_MILLI", "billing.rate_cpu_milli"),
    ("KUBEOP_RATE_MEM_MIB", "billing.rate_mem_mib"),
];

/// `KUBEOP_*` variables, each value its own text.
pub(crate) struct Environment {
    vars: Vec<(String, String)>,
}

impl Environment {
    pub fn from_process() -> Self {
        // A value that is not UTF-8 cannot be any setting; it is skipped like an unknown name.
        Self::new(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    pub fn new(vars: Vec<(String, String)>) -> Self {
        Self { vars }
    }

    /// The key a variable sets, if it is configuration at all.
    fn key(name: &str) -> Option<String> {
        if let Some((_, key)) = SEED_VARIABLES.iter().find(|(seed, _)| *seed == name) {
            return Some((*key).to_owned());
        }
        // Only `SECTION__KEY` names are configuration; other KUBEOP_ variables (the profile, the
        // tests' database URL) are not ours to read here.
        let rest = name.strip_prefix("KUBEOP_")?;
        rest.contains("__").then(|| rest.to_ascii_lowercase().replace("__", "."))
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (name, value) in &self.vars {
            if let Some(key) = Self::key(name) {
                insert(&mut dict, &key, Value::String(Tag::Default, value.clone()));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// A TOML file (or the copy of one built into the binary), numbers kept as written.
pub(crate) struct TomlText {
    name: String,
    path: Option<PathBuf>,
    text: Result<String, String>,
}

impl TomlText {
    pub fn file(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        Self { name: path.display().to_string(), path: Some(path.to_owned()), text }
    }

    pub fn shipped(name: &str, text: &str) -> Self {
        Self { name: format!("built-in {name}.toml"), path: None, text: Ok(text.to_owned()) }
    }
}

impl Provider for TomlText {
    fn metadata(&self) -> Metadata {
        match &self.path {
            Some(path) => Metadata::from("TOML file", path.as_path()),
            None => Metadata::named(self.name.clone()),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let text = self.text.as_ref().map_err(|e| Error::from(e.clone()))?;
        let document: toml_edit::DocumentMut =
            text.parse().map_err(|e: toml_edit::TomlError| Error::from(format!("{}: {e}", self.name)))?;
        let Value::Dict(_, dict) = table(document.as_table()) else { unreachable!("a table is a dict") };
        Ok(Profile::Default.collect(dict))
    }
}

fn table(table: &toml_edit::Table) -> Value {
    table.iter().map(|(key, item)| (key.to_owned(), toml_item(item))).collect::<Dict>().into()
}

fn toml_item(item: &toml_edit::Item) -> Value {
    match item {
        toml_edit::Item::Value(value) => toml_value(value),
        toml_edit::Item::Table(t) => table(t),
        toml_edit::Item::ArrayOfTables(tables) => {
            Value::Array(Tag::Default, tables.iter().map(table).collect())
        }
        toml_edit::Item::None => Value::from(""),
    }
}

fn toml_value(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    // The literal as written in the file: `0.01` stays `0.01`, `1e-3` stays `1e-3` (and is
    // refused where a plain decimal is required).
    let written = |repr: Option<&toml_edit::Repr>, fallback: String| {
        repr.and_then(|r| r.as_raw().as_str()).map(str::to_owned).unwrap_or(fallback)
    };
    match value {
        V::String(s) => Value::from(s.value().as_str()),
        V::Integer(n) => Value::from(written(n.as_repr(), n.value().to_string())),
        V::Float(f) => Value::from(written(f.as_repr(), f.value().to_string())),
        V::Boolean(b) => Value::from(*b.value()),
        V::Datetime(d) => Value::from(d.value().to_string()),
        V::Array(items) => Value::Array(Tag::Default, items.iter().map(toml_value).collect()),
        V::InlineTable(t) => t.iter().map(|(k, v)| (k.to_owned(), toml_value(v))).collect::<Dict>().into(),
    }
}

/// Puts `value` at the dotted `key`, making the tables on the way.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_owned()).or_insert_with(|| Dict::new().into());
            if !matches!(entry, Value::Dict(..)) {
                *entry = Dict::new().into();
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// The environment variable that sets a key.
pub fn env_name(path: &str) -> String {
    SEED_VARIABLES
        .iter()
        .find(|(_, key)| *key == path)
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| format!("KUBEOP_{}", path.replace('.', "__").to_ascii_uppercase()))
}
