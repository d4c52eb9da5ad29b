//! Two replicas on one cluster: one leads and acts, the other stands by, never both; when the
//! leader stops it hands the lease over and the standby takes over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kubeop_operator::leader::{self, Election, State};
use kubeop_operator::{Metrics, Settings};
use tokio::sync::oneshot;

use crate::helpers::*;

struct Replica {
    state: Arc<State>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn replica(cluster: &Cluster, identity: &str) -> Replica {
    let election = Election {
        lease_name: "kubeop-operator".into(),
        lease_namespace: "kubeop-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(1),
    };
    let settings = Settings { retry_min: Duration::from_millis(100), ..Settings::default() };
    let state = Arc::new(State::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(leader::run(
        cluster.client.clone(),
        settings,
        Metrics::new(&prometheus::Registry::new()),
        Some(election),
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Replica { state, stop, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_acts_at_a_time_and_hands_over_when_it_stops() {
    let cluster = Cluster::new(None).await;
    let (first, second) = (replica(&cluster, "replica-a"), replica(&cluster, "replica-b"));
    let leading = |r: &Replica| r.state.leading.load(Ordering::SeqCst);

    // Watch both for the whole test: never two leaders.
    let watched = [first.state.clone(), second.state.clone()];
    let (stop_watching, mut watching) = oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut samples = 0u64;
        loop {
            let leaders = watched.iter().filter(|s| s.leading.load(Ordering::SeqCst)).count();
            assert!(leaders <= 1, "two replicas lead at once");
            samples += 1;
            tokio::select! {
                _ = &mut watching => return samples,
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    });

    eventually("one replica leads", || (leading(&first) || leading(&second)).then_some(())).await;
    let (leader, standby) = if leading(&first) { (first, second) } else { (second, first) };
    assert!(standby.state.ready(), "a standby is ready (it serves its purpose by waiting)");
    eventually("the leader's caches sync", || leader.state.ready().then_some(())).await;
    // Only the leader acts: the project becomes Ready.
    cluster.apply(&tenant(&ACME_WEB)).await;
    cluster.apply(&manager_namespace(&ACME_WEB)).await;
    cluster.apply(&project(&ACME_WEB, "web")).await;
    cluster
        .wait_for((CRD, "projects", None, &object_name(ACME_WEB.project)), "the leader reconciles", |p| {
            ready(p) == Some("True")
        })
        .await;
    let holder = || {
        cluster
            .object("coordination.k8s.io/v1", "leases", Some("kubeop-system"), "kubeop-operator")
            .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
    };
    let first_holder = holder().expect("the lease has a holder");

    // The leader stops: it releases the lease, the standby takes over well before it would
    // have expired, and acts.
    let _ = leader.stop.send(());
    leader.task.await.unwrap().unwrap();
    let released = Instant::now();
    eventually("the standby takes over", || leading(&standby).then_some(())).await;
    assert!(released.elapsed() < Duration::from_secs(3), "took {:?}", released.elapsed());
    assert_ne!(holder(), Some(first_holder));
    // A change made now is the new leader's to reconcile.
    cluster.apply(&project(&ACME_WEB, "web-2")).await;
    cluster
        .wait_for((CRD, "projects", None, &object_name(ACME_WEB.project)), "the new leader acts", |p| {
            p["metadata"]["generation"] == p["status"]["observedGeneration"]
        })
        .await;

    let _ = stop_watching.send(());
    assert!(watcher.await.unwrap() > 100, "the watch sampled the whole test");
    let _ = standby.stop.send(());
    standby.task.await.unwrap().unwrap();
}
