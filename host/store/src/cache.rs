//! A short-lived, per-replica cache of tenants, projects and apps read by id: most API reads are
//! these, and a database round trip costs several times the rest of the request.
//!
//! Consistency: a replica forgets an entry when it changes or deletes the object itself, and an
//! entry read before such a change is never stored after it (generation check), so a replica
//! reads its own writes. Changes made by another replica show after at most the TTL
//! (`db.read_cache_ttl_ms`, 1 s by default; 0 turns the cache off).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kubeop_core::{App, Project, Tenant};

pub struct ReadCache {
    ttl: Duration,
    capacity: usize,
    /// Bumped by every invalidation: a value read before one must not be stored after it.
    generation: AtomicU64,
    pub(super) tenants: Entries<Tenant>,
    pub(super) projects: Entries<Project>,
    pub(super) apps: Entries<App>,
}

pub(super) struct Entries<V> {
    map: Mutex<HashMap<String, (Instant, V)>>,
}

impl ReadCache {
    pub fn new(ttl: Duration, capacity: usize) -> Option<Self> {
        (!ttl.is_zero() && capacity > 0).then(|| Self {
            ttl,
            capacity,
            generation: AtomicU64::new(0),
            tenants: Entries::default(),
            projects: Entries::default(),
            apps: Entries::default(),
        })
    }

    /// Taken before a database read; pass it to [`ReadCache::store`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn get<V: Clone>(&self, entries: &Entries<V>, id: &str) -> Option<V> {
        let map = entries.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|(stored, _)| stored.elapsed() < self.ttl).map(|(_, value)| value.clone())
    }

    /// Stores a value read at `generation`, unless something was invalidated since.
    pub(super) fn store<V>(&self, entries: &Entries<V>, generation: u64, id: &str, value: V) {
        let mut map = entries.map.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(id.to_owned(), (Instant::now(), value));
    }

    pub(super) fn forget<V>(&self, entries: &Entries<V>, id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Forgets every entry of a kind (a cascade removed an unknown number of them).
    pub(super) fn forget_all<V>(&self, entries: &Entries<V>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeop_core::{Name, TenantId};

    fn tenant() -> Tenant {
        Tenant {
            id: TenantId::generate(),
            name: Name::parse("acme").unwrap(),
            cluster_id: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn entries_expire_and_are_forgotten() {
        let cache = ReadCache::new(Duration::from_millis(50), 10).unwrap();
        let acme = tenant();
        let id = acme.id.to_string();
        cache.store(&cache.tenants, cache.generation(), &id, acme.clone());
        assert_eq!(cache.get(&cache.tenants, &id).map(|t| t.id), Some(acme.id.clone()));
        cache.forget(&cache.tenants, &id);
        assert!(cache.get(&cache.tenants, &id).is_none());
        cache.store(&cache.tenants, cache.generation(), &id, acme);
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&cache.tenants, &id).is_none(), "expired");
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_stored_after_it() {
        let cache = ReadCache::new(Duration::from_secs(10), 10).unwrap();
        let acme = tenant();
        let id = acme.id.to_string();
        let before = cache.generation();
        cache.forget(&cache.tenants, &id);
        cache.store(&cache.tenants, before, &id, acme);
        assert!(cache.get(&cache.tenants, &id).is_none());
    }

    #[test]
    fn zero_ttl_means_no_cache() {
        assert!(ReadCache::new(Duration::ZERO, 10).is_none());
    }
}
