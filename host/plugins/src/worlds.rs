//! Per-world glue: how to call each slot's export, how big its answer is, and the self-check a
//! component must pass before it goes live.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::SlotKind;
use super::bindings::admission::AdmissionPre;
use super::bindings::image_policy::ImagePolicyPre;
use super::bindings::platform_admission::PlatformAdmissionPre;
use super::bindings::pricing::PricingPre;
use super::bindings::types::{
    AdmissionPolicy, AdmissionRequest, AdmissionResponse, AdmitRequest, Decision, HostClaim, ImageReference,
    ImageRequest, InvoiceLine, PlatformPolicy, PricingRequest, Rates, UsageHour,
};
use super::runtime::CallState;

/// A compiled component, checked to export its slot's world, ready to instantiate.
#[derive(Clone)]
pub enum Component {
    ImagePolicy(ImagePolicyPre<CallState>),
    Pricing(PricingPre<CallState>),
    /// The first admission world (0.1.0): the review without the platform's context.
    Admission(AdmissionPre<CallState>),
    /// The admission world with the platform's context (0.1.1), preferred when exported.
    PlatformAdmission(PlatformAdmissionPre<CallState>),
}

impl Component {
    /// Checks that `pre` exports what `kind`'s world requires.
    pub fn for_slot(kind: SlotKind, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            SlotKind::ImagePolicy => Component::ImagePolicy(ImagePolicyPre::new(pre)?),
            SlotKind::Pricing => Component::Pricing(PricingPre::new(pre)?),
            SlotKind::Admission => match PlatformAdmissionPre::new(pre.clone()) {
                Ok(pre) => Component::PlatformAdmission(pre),
                Err(platform) => match AdmissionPre::new(pre) {
                    Ok(pre) => Component::Admission(pre),
                    Err(_) => {
                        return Err(platform.context(
                            "it exports neither `admit` (world platform-admission) nor `review` (world admission)",
                        ));
                    }
                },
            },
        })
    }
}

/// One slot's call: request and response types, and what "a sane answer" means.
pub trait World {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const KIND: SlotKind;

    fn call(
        component: &Component,
        store: &mut Store<CallState>,
        request: &Self::Request,
    ) -> wasmtime::Result<Self::Response>;

    /// Bytes of text in the answer, checked against `plugins.max_output_bytes`.
    fn output_bytes(response: &Self::Response) -> usize;

    /// A representative request for the self-check.
    fn sample() -> Self::Request;

    /// Whether the self-check's answer is acceptable.
    fn accept_sample(_response: &Self::Response) -> Result<(), String> {
        Ok(())
    }
}

pub struct ImagePolicyWorld;
pub struct PricingWorld;
pub struct AdmissionWorld;

fn wrong_world(kind: SlotKind) -> wasmtime::Error {
    wasmtime::Error::msg(format!("internal: component is not for the {kind} slot"))
}

impl World for ImagePolicyWorld {
    type Request = ImageRequest;
    type Response = Decision;
    const KIND: SlotKind = SlotKind::ImagePolicy;

    fn call(
        component: &Component,
        store: &mut Store<CallState>,
        request: &ImageRequest,
    ) -> wasmtime::Result<Decision> {
        let Component::ImagePolicy(pre) = component else { return Err(wrong_world(Self::KIND)) };
        {
            let instance = pre.instantiate(&mut *store)?;
            store.data_mut().instantiated();
            instance.call_check_image(&mut *store, request)
        }
    }

    fn output_bytes(response: &Decision) -> usize {
        match response {
            Decision::Allow => 0,
            Decision::Deny(reason) => reason.len(),
        }
    }

    fn sample() -> ImageRequest {
        ImageRequest {
            image: "nginx:1.25".into(),
            reference: ImageReference {
                registry: "docker.io".into(),
                repository: "library/nginx".into(),
                tag: Some("1.25".into()),
                digest: None,
            },
            tenant_id: "t_01jd5x7k3q9m2n4p6r8s0t1v2w".into(),
            project_id: "p_01jd5x7k3q9m2n4p6r8s0t1v2w".into(),
            policy: PlatformPolicy {
                image_allowlist: vec!["docker.io".into(), "ghcr.io".into()],
                egress_baseline: vec!["10.0.0.0/8".into()],
                quota_max_requests_cpu: Some("4".into()),
                quota_max_requests_memory: Some("8Gi".into()),
            },
        }
    }
}

impl World for PricingWorld {
    type Request = PricingRequest;
    type Response = Result<Vec<InvoiceLine>, String>;
    const KIND: SlotKind = SlotKind::Pricing;

    fn call(
        component: &Component,
        store: &mut Store<CallState>,
        request: &PricingRequest,
    ) -> wasmtime::Result<Self::Response> {
        let Component::Pricing(pre) = component else { return Err(wrong_world(Self::KIND)) };
        {
            let instance = pre.instantiate(&mut *store)?;
            store.data_mut().instantiated();
            instance.call_price(&mut *store, request)
        }
    }

    fn output_bytes(response: &Self::Response) -> usize {
        match response {
            Ok(lines) => lines
                .iter()
                .map(|l| {
                    l.description.len()
                        + l.quantity.len()
                        + l.unit.len()
                        + l.unit_price.len()
                        + l.amount.len()
                })
                .sum(),
            Err(message) => message.len(),
        }
    }

    fn sample() -> PricingRequest {
        let hour = 1_767_225_600; // 2026-01-01T00:00:00Z
        PricingRequest {
            tenant_id: "t_01jd5x7k3q9m2n4p6r8s0t1v2w".into(),
            period_start: hour,
            period_end: hour + 31 * 24 * 3600,
            rates: Rates {
                cpu_milli_hour: "0.00004".into(),
                mem_mib_hour: "0.000005".into(),
                tier: None,
                discount_percent: "10".into(),
                currency: "EUR".into(),
                precision: 2,
            },
            usage: (0..3)
                .map(|h| UsageHour { hour: hour + h * 3600, cpu_milli: 250, mem_mib: 512 })
                .collect(),
        }
    }

    /// A pricing plugin must answer the sample with lines whose numbers are exact decimals.
    fn accept_sample(response: &Self::Response) -> Result<(), String> {
        let lines = response.as_ref().map_err(|e| format!("it refused a valid request: {e}"))?;
        for line in lines {
            for (field, value) in
                [("quantity", &line.quantity), ("unit_price", &line.unit_price), ("amount", &line.amount)]
            {
                value.parse::<rust_decimal::Decimal>().map_err(|_| {
                    format!("line `{}` has {field} `{value}`, not a decimal number", line.description)
                })?;
            }
        }
        Ok(())
    }
}

impl World for AdmissionWorld {
    type Request = AdmitRequest;
    type Response = AdmissionResponse;
    const KIND: SlotKind = SlotKind::Admission;

    fn call(
        component: &Component,
        store: &mut Store<CallState>,
        request: &AdmitRequest,
    ) -> wasmtime::Result<AdmissionResponse> {
        match component {
            Component::PlatformAdmission(pre) => {
                let instance = pre.instantiate(&mut *store)?;
                store.data_mut().instantiated();
                instance.call_admit(&mut *store, request)
            }
            // A 0.1.0 component sees what that world has: no admission policy, no host claims.
            Component::Admission(pre) => {
                let request = AdmissionRequest {
                    review: request.review.clone(),
                    tenant_id: request.tenant_id.clone(),
                    project_id: request.project_id.clone(),
                    policy: request.policy.clone(),
                };
                {
                    let instance = pre.instantiate(&mut *store)?;
                    store.data_mut().instantiated();
                    instance.call_review(&mut *store, &request)
                }
            }
            _ => Err(wrong_world(Self::KIND)),
        }
    }

    fn output_bytes(response: &AdmissionResponse) -> usize {
        response.message.as_ref().map_or(0, String::len)
            + response.warnings.iter().map(String::len).sum::<usize>()
            + response.patch.as_ref().map_or(0, String::len)
    }

    fn sample() -> AdmitRequest {
        let review = serde_json::json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "kubeop-acme-web",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kubeop-acme-web:deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "kubeop-acme-web"},
                "spec": {"containers": [{"name": "web", "image": "docker.io/library/nginx:1.25"}]}
            }
        });
        AdmitRequest {
            review: review.to_string(),
            tenant_id: Some("t_01jd5x7k3q9m2n4p6r8s0t1v2w".into()),
            project_id: Some("p_01jd5x7k3q9m2n4p6r8s0t1v2w".into()),
            policy: ImagePolicyWorld::sample().policy,
            admission: AdmissionPolicy {
                allowed_hosts: vec!["*.apps.example.com".into()],
                allowed_service_types: vec![],
                audit_rules: vec![],
            },
            host_claims: Vec::<HostClaim>::new(),
        }
    }
}
