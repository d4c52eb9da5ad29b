//! A fake Kubernetes API server for tests: the real `kube::Client` talks to it in-process or over
//! HTTPS, and tests inspect its objects and request log. Test support only: never a dependency
//! of the kubeop binary.
//!
//! It keeps objects as JSON, so any resource in its table or registered by a CRD works: CRUD,
//! merge/JSON patch, server-side apply with managedFields, label and field selectors, watches
//! with resumable history and bookmarks, ServiceAccount tokens, RBAC, namespace cascade and
//! discovery.

mod apply;
mod error;
mod http;
mod objects;
mod rbac;
mod resources;
mod selectors;
mod state;
mod tls;
mod tokens;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};

pub use state::Recorded;

use crate::http::{Credential, Incoming};
use crate::state::State;

/// State shared by the handle, the in-process client and the HTTPS server.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// `set_down`: a watch channel so open watches and connections notice at once.
    down: tokio::sync::watch::Sender<bool>,
    admin_token: String,
}

impl Shared {
    /// A panicking test must not poison the fake for the assertions that follow.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake cluster. Cheap to clone; clones share the cluster.
#[derive(Clone)]
pub struct FakeKube {
    shared: Arc<Shared>,
}

impl Default for FakeKube {
    fn default() -> Self {
        FakeKube::new()
    }
}

impl FakeKube {
    /// An empty cluster: namespaces default, kube-system and kube-public, and the default
    /// ClusterRoles cluster-admin, admin, edit and view.
    pub fn new() -> FakeKube {
        FakeKube::with_history(state::HISTORY)
    }

    /// The same, keeping only the last `events` watch events (how far a watch can fall behind
    /// or resume from before it must list again).
    pub fn with_history(events: usize) -> FakeKube {
        let mut state = State::new(events);
        objects::seed(&mut state);
        state.requests.clear();
        let shared = Shared {
            state: Mutex::new(state),
            down: tokio::sync::watch::channel(false).0,
            admin_token: format!("fake-admin-token.{}", ulid::Ulid::generate()),
        };
        FakeKube { shared: Arc::new(shared) }
    }

    /// A client acting as the cluster admin, served in-process (no sockets). Call it inside a
    /// Tokio runtime: kube spawns its request buffer there.
    pub fn client(&self) -> kube::Client {
        let shared = self.shared.clone();
        let service = tower::service_fn(move |request: ::http::Request<kube::client::Body>| {
            let shared = shared.clone();
            async move {
                if *shared.down.borrow() {
                    // An I/O error, so kube reports the cluster as unreachable.
                    let refused =
                        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "fake-kube is down");
                    return Err(refused);
                }
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
                Ok(http::handle(shared, Incoming::from_parts(&parts, body), Credential::Admin).await)
            }
        });
        kube::Client::new(service, "default")
    }

    /// Serves HTTPS on 127.0.0.1 with a free port.
    pub async fn serve_https(&self) -> anyhow::Result<Https> {
        self.serve_https_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves HTTPS on `addr` (port 0 picks a free one) until the returned `Https` is dropped.
    pub async fn serve_https_on(&self, addr: SocketAddr) -> anyhow::Result<Https> {
        let certificates = tls::generate()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let port = listener.local_addr()?.port();
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(tls::serve(listener, self.shared.clone(), certificates.server, stopped));
        Ok(Https {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: certificates.ca_pem,
            admin_token: self.shared.admin_token.clone(),
            _stop: stop,
        })
    }

    /// Every API request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// While down, the in-process client gets connection errors, HTTPS connections are dropped
    /// and open watches end.
    pub fn set_down(&self, down: bool) {
        self.shared.down.send_replace(down);
    }

    /// The next `n` API requests (not discovery, not health) fail with a `Status` of `code`.
    pub fn fail_next(&self, n: usize, code: u16) {
        self.shared.lock().fail_next = (n, code);
    }

    /// Moves the fake's clock (token expiry, timestamps) forward.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut state = self.shared.lock();
        state.clock_offset = state.clock_offset.checked_add(&by).unwrap_or(chrono::Duration::MAX);
    }

    /// One stored object, as a GET of `api_version` would return it.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.shared.lock();
        let rt = lookup(&state, api_version, plural)?;
        objects::get(&state, &rt, namespace, name).ok()
    }

    /// Stored objects of a resource in one namespace, or in all of them with `None`.
    pub fn objects(&self, api_version: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.shared.lock();
        let Some(rt) = lookup(&state, api_version, plural) else { return Vec::new() };
        state
            .store
            .list(&rt.group, &rt.plural, namespace)
            .into_iter()
            .map(|o| objects::present(&rt, o))
            .collect()
    }
}

fn lookup(state: &State, api_version: &str, plural: &str) -> Option<resources::ResourceType> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    state.registry.lookup(group, version, plural).cloned()
}

/// A running HTTPS endpoint; the server stops when this is dropped.
pub struct Https {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The CA that signed the serving certificate.
    pub ca_pem: String,
    /// Bearer token of the cluster admin.
    pub admin_token: String,
    _stop: tokio::sync::watch::Sender<()>,
}

impl Https {
    /// Kubeconfig YAML for the admin: context "fake", namespace default.
    pub fn admin_kubeconfig(&self) -> String {
        self.kubeconfig("admin", &self.admin_token, "default")
    }

    /// Kubeconfig YAML for any bearer token (e.g. a ServiceAccount's), context "fake".
    pub fn kubeconfig(&self, user: &str, token: &str, namespace: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "fake", "cluster": { "server": self.url, "certificate-authority-data": ca } }],
            "users": [{ "name": user, "user": { "token": token } }],
            "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": user, "namespace": namespace } }],
            "current-context": "fake",
        });
        serde_saphyr::to_string(&config).expect("a JSON value of strings always serializes to YAML")
    }
}
