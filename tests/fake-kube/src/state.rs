//! The cluster's memory: objects, the global resourceVersion, the bounded event history watches
//! resume from, and the fake's own knobs (clock offset, injected failures, request log).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{ApiError, Reason, Result};
use crate::resources::Registry;
use crate::tokens::Tokens;

/// Objects are stored per group and plural (not version), so every served version of a CRD
/// sees the same objects. Cluster-scoped objects have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub key: ObjKey,
    pub kind: EventType,
    pub object: Value,
    /// The object before a MODIFIED, so selector watches can tell an object leaving the selection.
    pub previous: Option<Value>,
}

/// How many events a watch can resume across, and how far a connected watch may fall behind
/// before it is closed and must list again (as a real API server closes slow watchers); older
/// resourceVersions answer 410 Gone. `FakeKube::with_history` sets another.
pub const HISTORY: usize = 1000;

/// Live events for one watch.
pub type Feed = broadcast::Receiver<Arc<Event>>;

pub struct Store {
    objects: BTreeMap<ObjKey, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    /// The newest resourceVersion no longer in `history`.
    compacted: u64,
    events: broadcast::Sender<Arc<Event>>,
    /// At most this many events in `history`.
    capacity: usize,
}

pub fn set_rv(object: &mut Value, rv: u64) {
    object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
}

impl Store {
    fn new(capacity: usize) -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            compacted: 0,
            events: broadcast::channel(capacity.max(1)).0,
            capacity: capacity.max(1),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, in one namespace or (None) all of them, ordered by namespace/name.
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
            .collect()
    }

    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        self.objects.keys().filter(|k| k.namespace == namespace).cloned().collect()
    }

    pub fn keys_of(&self, group: &str, plural: &str) -> Vec<ObjKey> {
        self.objects.keys().filter(|k| k.group == group && k.plural == plural).cloned().collect()
    }

    fn record(&mut self, key: ObjKey, kind: EventType, object: Value, previous: Option<Value>) {
        let event = Arc::new(Event { rv: self.rv, key, kind, object, previous });
        if self.history.len() >= self.capacity
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.rv;
        }
        self.history.push_back(event.clone());
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Stores `object` under a fresh resourceVersion and tells watchers.
    pub fn put(&mut self, key: ObjKey, mut object: Value, kind: EventType) -> Value {
        self.rv += 1;
        set_rv(&mut object, self.rv);
        let previous = self.objects.insert(key.clone(), object.clone());
        self.record(key, kind, object.clone(), previous);
        object
    }

    /// Removes an object; the DELETED event carries the deletion's resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        set_rv(&mut object, self.rv);
        self.record(key.clone(), EventType::Deleted, object.clone(), None);
        Some(object)
    }

    /// Events after `rv` plus a receiver for later ones, taken under the same lock so that no
    /// event falls between them.
    pub fn watch_from(&self, rv: u64) -> Result<(Vec<Arc<Event>>, Feed)> {
        if rv < self.compacted {
            return Err(ApiError::new(
                Reason::Expired,
                format!("too old resource version: {rv} ({})", self.compacted + 1),
            ));
        }
        let replay = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }

    /// A copy for a dry run: the same objects and resourceVersion, nobody listening.
    fn scratch(&self) -> Store {
        Store {
            objects: self.objects.clone(),
            rv: self.rv,
            history: VecDeque::new(),
            compacted: self.rv,
            events: broadcast::channel(1).0,
            capacity: 1,
        }
    }

    pub fn subscribe(&self) -> Feed {
        self.events.subscribe()
    }
}

/// One API request as the fake saw it, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    /// "admin", "system:serviceaccount:NS:NAME" or "anonymous".
    pub user: String,
    pub status: u16,
    /// The request's Content-Type (tells merge patch from apply).
    pub content_type: Option<String>,
    /// `?fieldManager=` of the request.
    pub field_manager: Option<String>,
}

/// Everything behind the fake's one lock.
pub struct State {
    pub store: Store,
    pub registry: Registry,
    pub tokens: Tokens,
    pub requests: Vec<Recorded>,
    pub clock_offset: chrono::Duration,
    /// (remaining, code) for `fail_next`.
    pub fail_next: (usize, u16),
}

impl State {
    pub fn new(history: usize) -> State {
        State {
            store: Store::new(history),
            registry: Registry::new(),
            tokens: Tokens::default(),
            requests: Vec::new(),
            clock_offset: chrono::Duration::zero(),
            fail_next: (0, 500),
        }
    }

    /// A throwaway copy for `dryRun=All`.
    pub fn scratch(&self) -> State {
        State {
            store: self.store.scratch(),
            registry: self.registry.clone(),
            tokens: Tokens::default(),
            requests: Vec::new(),
            clock_offset: self.clock_offset,
            fail_next: (0, 500),
        }
    }

    /// The fake's "now": real time moved by `advance_clock`.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }
}

/// RFC 3339 with seconds, as Kubernetes writes `metav1.Time`.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
