//! Keys and other secrets in the configuration: parsed from base64, never printed, and (unless
//! the profile is strict) generated once into `data_dir` when unset.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Config;

/// The shortest HS256 signing key accepted: as long as the hash output (RFC 7518 §3.2).
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// AES-256 needs exactly this much key.
pub const KMS_KEY_BYTES: usize = 32;

impl Config {
    /// The token signing key. Unless the profile is strict, an unset key is generated once into
    /// `data_dir` and reused, so tokens survive restarts; a strict profile refuses to start
    /// without one (see `check`).
    pub fn signing_key(&self) -> anyhow::Result<SigningKey> {
        match &self.auth.jwt_signing_key {
            Some(key) => Ok(key.clone()),
            None => Ok(SigningKey::from_bytes(self.development_key("jwt-signing.key")?)),
        }
    }

    /// The KMS master key; generated like the signing key unless the profile is strict, where
    /// it is `None` when unset (the server runs, but is not ready).
    pub fn kms_key(&self) -> anyhow::Result<Option<KmsKey>> {
        match &self.kms.master_key {
            Some(key) => Ok(Some(key.clone())),
            None if self.strict => Ok(None),
            None => Ok(Some(KmsKey::from_bytes(self.development_key("kms-master.key")?))),
        }
    }

    fn development_key(&self, file: &str) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context;
        use std::io::Write;

        anyhow::ensure!(!self.strict, "{file}: a strict profile ({}) never generates keys", self.profile);
        let path = self.data_dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return BASE64.decode(text.trim()).with_context(|| format!("{} is not base64", path.display()));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        let key = random_key();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut out) => {
                out.write_all(BASE64.encode(&key).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a development key");
                Ok(key)
            }
            // Another process generated it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.development_key(file),
            Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
}

/// 32 random bytes from the operating system, for generated keys.
pub fn random_key() -> Vec<u8> {
    let mut key = vec![0; 32];
    getrandom::fill(&mut key).expect("the operating system provides randomness");
    key
}

/// Decodes a base64 key, checking its length; an empty value means "unset".
fn decode_key(
    raw: &str,
    what: &str,
    accept: impl Fn(usize) -> bool,
    expect: &str,
) -> Result<Option<Vec<u8>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let bytes = BASE64.decode(raw.trim()).map_err(|_| format!("the {what} is not valid base64"))?;
    if !accept(bytes.len()) {
        return Err(format!("the {what} is {} bytes long; it must be {expect}", bytes.len()));
    }
    Ok(Some(bytes))
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident, $optional:ident, $what:literal, $accept:expr, $expect:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(std::sync::Arc<SecretBox<[u8]>>);

        impl $name {
            pub fn from_bytes(bytes: Vec<u8>) -> Self {
                Self(std::sync::Arc::new(SecretBox::new(bytes.into_boxed_slice())))
            }

            /// Parses the base64 form; `Ok(None)` for an empty value.
            pub fn decode(raw: &str) -> Result<Option<Self>, String> {
                Ok(decode_key(raw, $what, $accept, $expect)?.map(Self::from_bytes))
            }

            pub fn expose(&self) -> &[u8] {
                self.0.expose_secret()
            }

            pub fn to_base64(&self) -> String {
                BASE64.encode(self.expose())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str("<redacted>")
            }
        }

        /// Deserialises an optional key, where an empty string (`VAR=`) also means unset.
        pub(crate) fn $optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<$name>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                None => Ok(None),
                Some(raw) => $name::decode(&raw).map_err(serde::de::Error::custom),
            }
        }
    };
}

secret_key!(
    /// The HS256 key that signs and verifies API tokens.
    SigningKey, optional_signing_key, "signing key", |n| n >= MIN_SIGNING_KEY_BYTES, "at least 32 bytes"
);
secret_key!(
    /// The AES-256 master key that encrypts secrets at rest.
    KmsKey, optional_kms_key, "KMS master key", |n| n == KMS_KEY_BYTES, "exactly 32 bytes"
);

/// A list of KMS keys: a TOML array or, from the environment, comma-separated base64.
pub(crate) fn kms_key_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<KmsKey>, D::Error> {
    crate::comma_list(deserializer)?
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| match KmsKey::decode(raw) {
            Ok(key) => key.map(Ok),
            Err(why) => Some(Err(serde::de::Error::custom(format!("key {index}: {why}")))),
        })
        .collect()
}

pub(crate) fn redact_password<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redacted_url(url))
}

/// A database URL fit to print: the password of the user info and every query parameter that
/// can carry a secret (`password=`, `sslpassword=`, …) replaced by `<redacted>`. A URL that does
/// not parse is not printed at all beyond its scheme.
pub fn redacted_url(raw: &str) -> String {
    const REDACTED: &str = "<redacted>";
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw.split_once("://").map_or("", |(scheme, _)| scheme);
        return format!("{scheme}://{REDACTED} (not a valid URL)");
    };
    if url.password().is_some() {
        let _ = url.set_password(Some(REDACTED));
    }
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        ["pass", "pwd", "secret", "token", "key"].iter().any(|word| name.contains(word))
    };
    if url.query_pairs().any(|(name, _)| secret(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) { REDACTED.to_owned() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `<` and `>` are percent-encoded in a URL; show the marker as written.
    url.to_string().replace("%3Credacted%3E", REDACTED)
}
