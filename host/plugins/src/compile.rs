//! From bytes to a compiled component, with two caches keyed by content hash: in memory for
//! the process (tests start many servers), on disk across restarts.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use wasmtime::component::Component;

use super::{LoadError, runtime, sha256_hex};

pub struct Compiled {
    pub sha256: String,
    pub component: Component,
}

static COMPILED: LazyLock<Mutex<HashMap<String, Component>>> = LazyLock::new(Default::default);

/// The preamble of a WebAssembly binary: magic, then version and layer.
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];

pub fn compile(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Compiled, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(LoadError::CoreModule);
    }
    let sha256 = sha256_hex(bytes);
    let cached = cache_dir.map(|dir| dir.join(format!("{sha256}-{:016x}.cwasm", engine_hash())));
    let in_memory = COMPILED.lock().unwrap_or_else(|p| p.into_inner()).get(&sha256).cloned();
    if let Some(component) = in_memory {
        // Another server in this process compiled it; this one's restarts still want it on disk.
        if let Some(path) = cached.as_ref().filter(|path| !path.is_file()) {
            write_cache(path, &component);
        }
        return Ok(Compiled { sha256, component });
    }
    let engine = runtime::engine();
    let from_disk = cached.as_deref().filter(|path| path.is_file()).and_then(|path| {
        // SAFETY: the file was written by `Component::serialize` of an engine with the same
        // compatibility hash (it is in the name), into kubeop's own data directory.
        unsafe { Component::deserialize_file(engine, path) }
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable plugin cache entry"))
            .ok()
    });
    let component = match from_disk {
        Some(component) => component,
        None => {
            let component =
                Component::new(engine, bytes).map_err(|e| LoadError::Invalid(super::root_cause(&e)))?;
            if let Some(path) = &cached {
                write_cache(path, &component);
            }
            component
        }
    };
    COMPILED.lock().unwrap_or_else(|p| p.into_inner()).insert(sha256.clone(), component.clone());
    Ok(Compiled { sha256, component })
}

/// Writes atomically (temporary file, then rename) so a crash never leaves half an entry.
fn write_cache(path: &PathBuf, component: &Component) {
    let write = || -> anyhow::Result<()> {
        let serialized = component.serialize()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, serialized)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    };
    if let Err(error) = write() {
        tracing::warn!(path = %path.display(), %error, "could not cache a compiled plugin");
    }
}

fn engine_hash() -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    runtime::engine().precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}
