//! The platform policy as the manager publishes it: the `policy.json` key of the
//! `kubeop-policy` ConfigMap in `kubeop-system`. Followed by a watch; reconciles read the current
//! document from a `tokio::sync::watch` channel, and every change re-reconciles every Project so a
//! new `quotaMax` or `egressBaseline` reaches every namespace.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kubeop_crds::platform::{POLICY_CONFIG_MAP, POLICY_KEY, PolicyDocument, SYSTEM_NAMESPACE};
use tokio::sync::watch;

/// `None` until the first reading.
pub type Sender = watch::Sender<Option<PolicyDocument>>;
pub type Receiver = watch::Receiver<Option<PolicyDocument>>;

pub fn channel() -> (Sender, Receiver) {
    watch::channel(None)
}

/// Follows the ConfigMap until the watch ends (it retries on its own; only a shutdown ends it).
pub async fn follow(client: kube::Client, sender: Sender) {
    let api: Api<ConfigMap> = Api::namespaced(client, SYSTEM_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={POLICY_CONFIG_MAP}"));
    // A relist starts with Init and ends with InitDone; the ConfigMap seen in between (if any)
    // is the policy, and no ConfigMap at all means the empty policy.
    let mut relisted: Option<PolicyDocument> = None;
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => relisted = None,
            Ok(watcher::Event::InitApply(config_map)) => relisted = Some(document(&config_map)),
            Ok(watcher::Event::InitDone) => publish(&sender, relisted.take().unwrap_or_default()),
            Ok(watcher::Event::Apply(config_map)) => publish(&sender, document(&config_map)),
            Ok(watcher::Event::Delete(_)) => publish(&sender, PolicyDocument::default()),
            Err(error) => tracing::warn!(%error, "watching the policy ConfigMap"),
        }
    }
}

fn publish(sender: &Sender, policy: PolicyDocument) {
    sender.send_if_modified(|current| {
        if current.as_ref() == Some(&policy) {
            return false;
        }
        tracing::info!(?policy, "platform policy in force");
        *current = Some(policy);
        true
    });
}

/// The document a ConfigMap holds; a missing key or malformed JSON is the empty policy, which
/// is what a cluster without the ConfigMap gets too.
pub fn document(config_map: &ConfigMap) -> PolicyDocument {
    let Some(json) = config_map.data.as_ref().and_then(|data| data.get(POLICY_KEY)) else {
        tracing::warn!("the {POLICY_CONFIG_MAP} ConfigMap has no {POLICY_KEY}: using the empty policy");
        return PolicyDocument::default();
    };
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::warn!(%error, "the {POLICY_CONFIG_MAP} ConfigMap's {POLICY_KEY} is malformed: using the empty policy");
        PolicyDocument::default()
    })
}

/// One item per change of the policy after its first reading (reconciles before that wait for
/// it, so it is no change to them), for `Controller::reconcile_all_on`. Changes in quick
/// succession coalesce into one.
pub fn changes(receiver: Receiver) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((receiver, true), |(mut receiver, first)| async move {
        if first {
            // Marks the first reading as seen.
            receiver.wait_for(Option::is_some).await.ok()?;
        }
        receiver.changed().await.ok()?;
        Some(((), (receiver, false)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kubeop_crds::platform::QuotaMaxDocument;

    use super::*;

    fn config_map(json: Option<&str>) -> ConfigMap {
        ConfigMap {
            data: json.map(|json| BTreeMap::from([(POLICY_KEY.to_owned(), json.to_owned())])),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn the_document_is_read_from_its_key() {
        let json = r#"{"imageAllowlist":[],"egressBaseline":["10.0.0.0/8"],"quotaMax":{"requestsCPU":"4"}}"#;
        let policy = document(&config_map(Some(json)));
        assert_eq!(policy.egress_baseline, ["10.0.0.0/8"]);
        assert_eq!(
            policy.quota_max,
            QuotaMaxDocument { requests_cpu: Some("4".into()), requests_memory: None }
        );
    }

    #[test]
    fn a_missing_key_or_malformed_json_is_the_empty_policy() {
        assert_eq!(document(&config_map(None)), PolicyDocument::default());
        assert_eq!(document(&config_map(Some("{not json"))), PolicyDocument::default());
    }

    #[tokio::test]
    async fn changes_skip_the_first_reading_and_coalesce() {
        let (sender, receiver) = channel();
        let mut changes = Box::pin(changes(receiver));
        publish(&sender, PolicyDocument::default());
        assert!(futures::poll!(changes.next()).is_pending(), "the first reading is no change");
        let egress =
            PolicyDocument { egress_baseline: vec!["10.0.0.0/8".into()], ..PolicyDocument::default() };
        publish(&sender, egress.clone());
        publish(&sender, egress);
        assert_eq!(changes.next().await, Some(()));
        drop(sender);
        assert_eq!(changes.next().await, None, "one change, once, then the end");
    }
}
