//! What every reconcile shares: the client, the settings, the metrics, the event recorder, the
//! platform policy in force and the retry state, plus the API calls all three controllers make
//! the same way (apply, status, finalizer, events).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use kubeop_crds::platform::PolicyDocument;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::Settings;
use crate::error::{Error, Result};

/// Reporter name of the operator's Kubernetes Events.
const REPORTER: &str = "kubeop-operator";

/// The operator's Prometheus metrics, per controller (`tenant`, `project`, `app`).
#[derive(Clone)]
pub struct Metrics {
    reconciles: IntCounterVec,
    durations: HistogramVec,
    errors: IntCounterVec,
}

impl Metrics {
    /// Registers `kubeop_operator_reconciles_total{controller,result}`,
    /// `kubeop_operator_reconcile_duration_seconds{controller}` and
    /// `kubeop_operator_reconcile_errors_total{controller,error}` in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "kubeop_operator_reconciles_total",
                "Reconciles by controller and result (success, error)",
            ),
            &["controller", "result"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new("kubeop_operator_reconcile_duration_seconds", "Time spent in one reconcile")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["controller"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("kubeop_operator_reconcile_errors_total", "Failed reconciles by controller and error"),
            &["controller", "error"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(durations.clone()),
            Box::new(errors.clone()),
        ] {
            // A second operator in the same registry (tests, an embedded operator) still counts;
            // only the first one is exported.
            if let Err(error) = registry.register(metric) {
                tracing::warn!(%error, "operator metrics not registered");
            }
        }
        Metrics { reconciles, durations, errors }
    }
}

pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    metrics: Metrics,
    recorder: Recorder,
    /// `None` until the `kubeop-policy` ConfigMap (or its absence) has been read.
    policy: watch::Receiver<Option<PolicyDocument>>,
    /// Failed attempts in a row per object, for the backoff; reset by a success.
    attempts: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        metrics: Metrics,
        policy: watch::Receiver<Option<PolicyDocument>>,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), Reporter::from(REPORTER));
        Context { client, settings, metrics, recorder, policy, attempts: Mutex::default() }
    }

    /// The platform policy in force; waits for its first reading so that no namespace is ever
    /// written with a quota the policy does not allow.
    pub async fn policy(&self) -> Result<PolicyDocument> {
        let mut policy = self.policy.clone();
        // Fails only once the follower is gone, i.e. when stopping before the first reading.
        let current = policy.wait_for(Option::is_some).await.map_err(|_| Error::PolicyUnknown)?.clone();
        Ok(current.unwrap_or_default())
    }

    /// Runs one reconcile with its metrics, and resets the object's backoff when it succeeds.
    pub async fn measure<K>(
        &self,
        controller: &'static str,
        object: &K,
        reconcile: impl Future<Output = Result<Action>>,
    ) -> Result<Action>
    where
        K: Resource<DynamicType = ()>,
    {
        let timer = self.metrics.durations.with_label_values(&[controller]).start_timer();
        let result = reconcile.await;
        timer.observe_duration();
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.metrics.reconciles.with_label_values(&[controller, outcome]).inc();
        if result.is_ok() {
            self.forget(&ObjectRef::from_obj(object).erase());
        }
        result
    }

    /// The error policy every controller shares: count, log, warn on the object, and retry after
    /// a capped exponential backoff.
    pub fn retry<K>(&self, controller: &'static str, object: &K, error: &Error) -> Action
    where
        K: Resource<DynamicType = ()>,
    {
        self.metrics.errors.with_label_values(&[controller, error.metric_label()]).inc();
        let delay = self.next_delay(ObjectRef::from_obj(object).erase());
        tracing::warn!(controller, object = %ObjectRef::from_obj(object), %error, ?delay, "reconcile failed");
        self.publish(object.object_ref(&()), EventType::Warning, error.reason(), error.to_string());
        Action::requeue(delay)
    }

    fn next_delay(&self, key: ObjectRef<DynamicObject>) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let attempt = attempts.entry(key).or_insert(0);
        let delay = backoff(&self.settings, *attempt);
        *attempt = attempt.saturating_add(1);
        delay
    }

    pub fn forget(&self, key: &ObjectRef<DynamicObject>) {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.settings.field_manager).force()
    }

    /// Server-side apply of a typed object under the operator's field manager; forced, since
    /// the operator is the authority on every field it sets. Answers the object as stored.
    pub async fn apply<K>(&self, api: &Api<K>, object: &K) -> Result<K>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        api.patch(&name, &self.apply_params(), &Patch::Apply(object)).await.map_err(Error::kube(
            "apply",
            &K::kind(&()),
            qualified(object.meta().namespace.as_deref(), &name),
        ))
    }

    /// Deletes an object if it exists, in the background (dependents are garbage-collected).
    pub async fn delete<K>(&self, api: &Api<K>, namespace: Option<&str>, name: &str) -> Result<()>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        match api.delete(name, &kube::api::DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(Error::kube("delete", &K::kind(&()), qualified(namespace, name))(error)),
        }
    }

    /// Writes `status` through the `/status` subresource by server-side apply, unless the object
    /// already has it: a write that changes nothing would only wake the controller again.
    /// Answers whether it wrote.
    pub async fn write_status<K, S>(
        &self,
        api: &Api<K>,
        object: &K,
        current: Option<&S>,
        status: S,
    ) -> Result<bool>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
        S: Serialize + PartialEq,
    {
        if current == Some(&status) {
            return Ok(false);
        }
        let name = object.name_any();
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(&name, &self.apply_params(), &Patch::Apply(&body)).await.map(|_| true).map_err(
            Error::kube(
                "update the status of",
                &K::kind(&()),
                qualified(object.namespace().as_deref(), &name),
            ),
        )
    }

    /// Adds `finalizer` to `object` unless it is there or the object is being deleted; answers
    /// whether it added it.
    ///
    /// `kube::runtime::finalizer` adds its finalizer with a JSON patch that tests a missing
    /// `/metadata/finalizers` against null, which RFC 6902 (and so the project's fake API
    /// server) rejects though the real API server allows it. A merge patch carrying the
    /// resourceVersion does the same job with the same guarantee: it fails with a conflict
    /// instead of dropping someone else's concurrent finalizer.
    pub async fn add_finalizer<K>(&self, api: &Api<K>, object: &K, finalizer: &str) -> Result<bool>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    {
        let present = object.finalizers().iter().any(|f| f == finalizer);
        if present || object.meta().deletion_timestamp.is_some() {
            return Ok(false);
        }
        let mut finalizers = object.finalizers().to_vec();
        finalizers.push(finalizer.to_owned());
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": object.resource_version(), "finalizers": finalizers }
        });
        let name = object.name_any();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::kube(
            "add a finalizer to",
            &K::kind(&()),
            name,
        ))?;
        Ok(true)
    }

    /// Publishes a Kubernetes Event about an object, in the background: an event that cannot be
    /// written is not worth failing or slowing a reconcile for.
    pub fn publish(&self, regarding: ObjectReference, type_: EventType, reason: &str, note: String) {
        let recorder = self.recorder.clone();
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1024)),
            action: "Reconcile".into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &regarding).await {
                tracing::debug!(%error, "event not published");
            }
        });
    }
}

/// The delay before retry number `attempt + 1`: `retry_min`, doubled per failure, capped.
fn backoff(settings: &Settings, attempt: u32) -> Duration {
    settings.retry_min.saturating_mul(2u32.saturating_pow(attempt)).min(settings.retry_max)
}

/// A `Ready` condition; see [`condition`].
pub fn ready_condition(
    previous: &[Condition],
    ready: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    condition(previous, "Ready", status, reason, message, generation, None)
}

/// A condition whose transition time is `since` when known, else kept from the previous
/// condition of that type while its status is unchanged (the time says since when it has been
/// so), else now. A stable time also keeps an unchanged status from being written again.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    since: Option<Time>,
) -> Condition {
    let since = since
        .or_else(|| {
            previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
        })
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

/// Event notes are limited to 1 kB by the API server.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = Settings::default();
        let delays: Vec<u128> = (0..10).map(|attempt| backoff(&settings, attempt).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
        assert_eq!(backoff(&settings, u32::MAX), settings.retry_max, "no overflow after many failures");
    }

    #[test]
    fn ready_condition_keeps_its_transition_time_while_unchanged() {
        let first = ready_condition(&[], true, "Reconciled", "ok".into(), Some(1));
        let again = ready_condition(std::slice::from_ref(&first), true, "Reconciled", "ok".into(), Some(2));
        assert_eq!(again.last_transition_time, first.last_transition_time);
        assert_eq!(again.observed_generation, Some(2));
        let failed = ready_condition(&[again], false, "ApplyFailed", "no".into(), Some(2));
        assert_eq!(failed.status, "False");
    }
}
