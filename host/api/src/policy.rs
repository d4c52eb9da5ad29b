//! The platform policy in force, kept in memory: the stored one, or the configuration's until
//! one is stored. Every app create reads it, so it must not cost a database round trip; a PUT
//! replaces it at once on its replica, and the others follow the change notification (or, at
//! the latest, the periodic sync).

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use kubeop_config::{ConfigError, PolicyConfig};
use kubeop_core::{AdmissionPolicy, PlatformPolicy, Quantity, QuotaMax};
use kubeop_store::{Store, StoreError};

/// The policy and where it comes from.
#[derive(Debug, Clone)]
pub struct Effective {
    pub policy: PlatformPolicy,
    /// When and by whom it was stored; `None` while the configuration's is in force.
    pub stored: Option<(DateTime<Utc>, String)>,
}

pub struct PolicyState {
    configured: PlatformPolicy,
    current: ArcSwap<Effective>,
}

impl PolicyState {
    pub async fn load(configured: PlatformPolicy, store: &Store) -> Result<Self, StoreError> {
        let state = Self {
            current: ArcSwap::from_pointee(Effective { policy: configured.clone(), stored: None }),
            configured,
        };
        state.reload(store).await?;
        Ok(state)
    }

    pub fn effective(&self) -> Arc<Effective> {
        self.current.load_full()
    }

    /// Reads the stored policy again.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let effective = match store.platform_policy().await? {
            Some(stored) => {
                Effective { policy: stored.policy, stored: Some((stored.updated_at, stored.updated_by)) }
            }
            None => Effective { policy: self.configured.clone(), stored: None },
        };
        self.current.store(Arc::new(effective));
        Ok(())
    }
}

/// The policy the configuration describes (in force until one is stored); an invalid entry
/// names its variable.
pub fn from_config(config: &PolicyConfig) -> Result<PlatformPolicy, ConfigError> {
    fn named(key: &'static str) -> impl Fn(kubeop_core::Invalid) -> ConfigError {
        move |invalid| ConfigError::invalid(key, invalid)
    }
    let quantity = |key: &'static str, raw: &str| {
        let raw = raw.trim();
        (!raw.is_empty()).then(|| Quantity::parse(raw)).transpose().map_err(named(key))
    };
    Ok(PlatformPolicy {
        image_allowlist: PlatformPolicy::parse_registries(&config.image_allowlist)
            .map_err(named("policy.image_allowlist"))?,
        egress_baseline: PlatformPolicy::parse_cidrs(&config.egress_baseline)
            .map_err(named("policy.egress_baseline"))?,
        quota_max: QuotaMax {
            requests_cpu: quantity("policy.quota_max_requests_cpu", &config.quota_max_requests_cpu)?,
            requests_memory: quantity("policy.quota_max_requests_memory", &config.quota_max_requests_memory)?,
        },
        admission: AdmissionPolicy::parse(
            &config.allowed_hosts,
            &config.allowed_service_types,
            &config.audit_rules,
        )
        .map_err(|(field, invalid)| {
            let key = match field {
                "allowedHosts" => "policy.allowed_hosts",
                "allowedServiceTypes" => "policy.allowed_service_types",
                _ => "policy.audit_rules",
            };
            ConfigError::invalid(key, invalid)
        })?,
    })
}
