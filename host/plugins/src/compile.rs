//! From bytes to a compiled component, with two caches keyed by content hash: in memory for
//! the process (tests start many servers), on disk across restarts.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use wasmtime::component::Component;

use super::{LoadError, runtime, sha256_hex};

pub struct Compiled {
    pub sha256: String,
    pub component: Component,
}

/// Compiled components of this process by sha256, least recently used first.
static COMPILED: LazyLock<Mutex<Vec<(String, Component)>>> = LazyLock::new(Default::default);
/// Compiled components kept in memory (each holds its machine code; an interpreter's is tens of
/// MiB). Past it, the least recently used is dropped; the disk cache still has it.
const KEPT_IN_MEMORY: usize = 32;
/// Per hash being compiled, a lock held for the compile, so concurrent asks compile it once.
static COMPILING: LazyLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);

/// The preamble of a WebAssembly binary: magic, then version and layer.
const MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];

/// The compiled component of `bytes`: from memory, from `cache_dir`, or compiled (once per hash
/// however many ask at the same time) and written there. Blocking; compiling a large component
/// takes seconds, so callers are background tasks or uploads, never a plugin call.
pub fn compile(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Compiled, LoadError> {
    check_header(bytes)?;
    let sha256 = sha256_hex(bytes);
    let cached = cache_dir.map(|dir| dir.join(format!("{sha256}-{:016x}.cwasm", engine_hash())));
    if let Some(component) = in_memory(&sha256) {
        // Another server in this process compiled it; this one's restarts still want it on disk.
        if let Some(path) = cached.as_ref().filter(|path| !path.is_file()) {
            write_cache(path, &component);
        }
        return Ok(Compiled { sha256, component });
    }
    let turn = COMPILING.lock().unwrap_or_else(|p| p.into_inner()).entry(sha256.clone()).or_default().clone();
    let _turn = turn.lock().unwrap_or_else(|p| p.into_inner());
    // Whoever held the turn before us may have compiled it.
    if let Some(component) = in_memory(&sha256) {
        return Ok(Compiled { sha256, component });
    }
    let compiled = from_disk_or_compile(bytes, cached.as_deref());
    if let Ok(component) = &compiled {
        let mut kept = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT_IN_MEMORY {
            kept.remove(0);
        }
        kept.push((sha256.clone(), component.clone()));
    }
    // Kept first: whoever asks from now on finds it in memory.
    COMPILING.lock().unwrap_or_else(|p| p.into_inner()).remove(&sha256);
    Ok(Compiled { sha256, component: compiled? })
}

/// Compiles `bytes` past every cache: for measuring the compile.
pub fn compile_uncached(bytes: &[u8]) -> Result<Component, LoadError> {
    check_header(bytes)?;
    Component::new(runtime::engine(), bytes).map_err(|e| LoadError::Invalid(super::root_cause(&e)))
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// The component compiled earlier in this process, marked as just used.
fn in_memory(sha256: &str) -> Option<Component> {
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    let index = compiled.iter().position(|(known, _)| known == sha256)?;
    let entry = compiled.remove(index);
    let component = entry.1.clone();
    compiled.push(entry);
    Some(component)
}

fn from_disk_or_compile(bytes: &[u8], cached: Option<&Path>) -> Result<Component, LoadError> {
    let engine = runtime::engine();
    let from_disk = cached.filter(|path| path.is_file()).and_then(|path| {
        // SAFETY: the file was written by `Component::serialize` of an engine with the same
        // compatibility hash (it is in the name), into kubeop's own data directory.
        unsafe { Component::deserialize_file(engine, path) }
            .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable plugin cache entry"))
            .ok()
    });
    if let Some(component) = from_disk {
        return Ok(component);
    }
    let component = compile_uncached(bytes)?;
    if let Some(path) = cached {
        write_cache(path, &component);
    }
    Ok(component)
}

/// Writes atomically (temporary file, then rename) so a crash never leaves half an entry.
fn write_cache(path: &Path, component: &Component) {
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
