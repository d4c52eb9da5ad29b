//! `?watch=true`: a stream of JSON lines, fed from the store's event history and broadcast.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::Shared;
use crate::error::{ApiError, Reason};
use crate::http::Body;
use crate::objects::present;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::{Event, EventType, Feed};

pub struct WatchRequest {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// None: start with the current objects as ADDED events.
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
}

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The line this watch sends for `event`, if any. As in Kubernetes, an object modified into
    /// the selection arrives as ADDED and one modified out of it as DELETED.
    fn line_for(&self, event: &Event) -> Option<Bytes> {
        let ours = event.key.group == self.rt.group
            && event.key.plural == self.rt.plural
            && self.namespace.as_ref().is_none_or(|ns| *ns == event.key.namespace);
        if !ours {
            return None;
        }
        let now = self.selects(&event.object);
        let before = event.previous.as_ref().is_some_and(|p| self.selects(p));
        let kind = match (event.kind, before, now) {
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (EventType::Modified, false, false) => return None,
            (kind, _, true) => kind,
            (_, _, false) => return None,
        };
        Some(line(kind.as_str(), present(&self.rt, &event.object)))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            json!({ "apiVersion": self.rt.api_version(), "kind": self.rt.kind, "metadata": metadata }),
        )
    }
}

/// Opens the watch: what to send first, the live feed after it, and the resourceVersion the
/// first lines bring the client to.
fn open(shared: &Shared, request: &WatchRequest) -> (Vec<Bytes>, Option<Feed>, u64) {
    let state = shared.lock();
    let store = &state.store;
    match request.resource_version.filter(|rv| *rv > 0 && !request.send_initial_events) {
        Some(rv) => match store.watch_from(rv) {
            Ok((replay, receiver)) => {
                let lines = replay.iter().filter_map(|e| request.line_for(e)).collect();
                (lines, Some(receiver), replay.last().map_or(rv, |e| e.rv))
            }
            Err(gone) => (vec![line("ERROR", gone.status())], None, rv),
        },
        None => {
            let rv = store.current_rv();
            let mut lines: Vec<Bytes> = store
                .list(&request.rt.group, &request.rt.plural, request.namespace.as_deref())
                .into_iter()
                .filter(|o| request.selects(o))
                .map(|o| line("ADDED", present(&request.rt, o)))
                .collect();
            if request.send_initial_events {
                lines.push(request.bookmark(rv, true));
            }
            (lines, Some(store.subscribe()), rv)
        }
    }
}

pub fn start(shared: Arc<Shared>, request: WatchRequest) -> Body {
    let (first, receiver, mut last_rv) = open(&shared, &request);
    let (sender, lines) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for bytes in first {
            if sender.send(bytes).await.is_err() {
                return;
            }
        }
        let Some(mut events) = receiver else { return };
        let mut down = shared.down.subscribe();
        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(BOOKMARK_EVERY);
        bookmarks.tick().await;
        loop {
            let next = tokio::select! {
                _ = &mut deadline => None,
                _ = sender.closed() => None,
                // The fake went down: end the stream so the client has to reconnect.
                changed = down.changed() => match changed {
                    Ok(()) if !*down.borrow() => continue,
                    _ => None,
                },
                _ = bookmarks.tick(), if request.bookmarks => Some(request.bookmark(last_rv, false)),
                received = events.recv() => match received {
                    Ok(event) => {
                        last_rv = event.rv;
                        match request.line_for(&event) {
                            Some(bytes) => Some(bytes),
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = ApiError::new(Reason::Expired, "the watch fell behind; list again");
                        let _ = sender.send(line("ERROR", gone.status())).await;
                        None
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                },
            };
            let Some(bytes) = next else { return };
            if sender.send(bytes).await.is_err() {
                return;
            }
        }
    });
    let frames = futures::stream::unfold(lines, |mut lines| async move {
        lines.recv().await.map(|bytes| (Ok::<_, std::io::Error>(Frame::data(bytes)), lines))
    });
    StreamBody::new(frames.boxed()).boxed_unsync()
}
