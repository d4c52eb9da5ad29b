//! Telling the other replicas what changed. On PostgreSQL each change is a `NOTIFY` on
//! `kubeop_changes`, which every replica `LISTEN`s to: caches, the policy and the plugins follow
//! within milliseconds. On SQLite there is no such channel; the TTL and the periodic sync bound
//! how long another process on the same file may lag.

use sqlx::postgres::PgListener;

use crate::{Pool, Store};

const CHANNEL: &str = "kubeop_changes";

/// Something another replica may hold a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Tenant(String),
    Project(String),
    App(String),
    /// A delete removed projects and apps in a cascade: forget them all.
    Cascade,
    Policy,
    Plugins,
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Tenant(id) | Change::Project(id) | Change::App(id) => id.clone(),
            Change::Cascade => "cascade".into(),
            Change::Policy => "policy".into(),
            Change::Plugins => "plugins".into(),
        }
    }

    pub fn decode(payload: &str) -> Option<Self> {
        Some(match payload {
            "cascade" => Change::Cascade,
            "policy" => Change::Policy,
            "plugins" => Change::Plugins,
            id if id.starts_with("t_") => Change::Tenant(id.to_owned()),
            id if id.starts_with("p_") => Change::Project(id.to_owned()),
            id if id.starts_with("a_") => Change::App(id.to_owned()),
            _ => return None,
        })
    }
}

impl Store {
    /// Applies a change to this replica's cache and tells the others.
    pub(crate) async fn changed(&self, changes: &[Change]) {
        for change in changes {
            self.forget_cached(change);
        }
        if let Pool::Postgres(pool) = &self.write {
            for change in changes {
                // Best effort: a lost notification is covered by the TTL and the periodic sync.
                if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(change.encode())
                    .execute(pool)
                    .await
                {
                    tracing::warn!(%error, ?change, "cannot notify the other replicas");
                }
            }
        }
    }

    /// Drops cached copies a change makes stale.
    pub fn forget_cached(&self, change: &Change) {
        match change {
            Change::Tenant(id) => self.invalidate(|c| &c.tenants, Some(id)),
            Change::Project(id) => self.invalidate(|c| &c.projects, Some(id)),
            Change::App(id) => self.invalidate(|c| &c.apps, Some(id)),
            Change::Cascade => {
                self.invalidate(|c| &c.projects, None);
                self.invalidate(|c| &c.apps, None);
            }
            Change::Policy | Change::Plugins => {}
        }
    }

    /// Forgets every cached object (after notifications may have been missed).
    pub fn forget_all_cached(&self) {
        self.invalidate(|c| &c.tenants, None);
        self.forget_cached(&Change::Cascade);
    }

    /// A subscription to other replicas' changes; `None` on SQLite.
    pub async fn listen(&self) -> Option<Result<PgListener, sqlx::Error>> {
        let Pool::Postgres(pool) = &self.write else { return None };
        Some(
            async {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                Ok(listener)
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip() {
        for change in [
            Change::Tenant("t_01jd5x7k3q9m2n4p6r8s0t1v2w".into()),
            Change::Project("p_01jd5x7k3q9m2n4p6r8s0t1v2w".into()),
            Change::App("a_01jd5x7k3q9m2n4p6r8s0t1v2w".into()),
            Change::Cascade,
            Change::Policy,
            Change::Plugins,
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("bogus"), None);
    }
}
