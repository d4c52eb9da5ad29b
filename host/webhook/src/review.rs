//! One admission review: the AdmissionReview the API server sent, the platform's context for it
//! (who owns the namespace, the policy, who already serves the hosts it names), the admission
//! plugin's decision, and the AdmissionReview answered. The webhook and the manager's
//! `POST /v1/admission/review` both go through here.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::Deserialize;
use serde_json::value::RawValue;

use kubeop_core::PlatformPolicy;
use kubeop_plugins::{AdmissionCheck, AdmissionVerdict, Candidate, HostClaim, Plugins};

/// Which webhook asked: validation answers allowed or denied, mutation answers the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// What a review gets when the plugin fails (traps, runs past its deadline, goes over its
/// memory): `Deny` by default, so a broken policy never lets everything through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    Deny,
    Allow,
}

impl FailureMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "deny" => Some(Self::Deny),
            "allow" => Some(Self::Allow),
            _ => None,
        }
    }
}

/// An AdmissionReview as received: kube's typed request, and the request's JSON text exactly as
/// sent (what the plugin reads).
#[derive(Debug)]
pub struct Review {
    pub request: AdmissionRequest<DynamicObject>,
    raw_request: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<&'a str>,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
}

impl Review {
    /// Parses an AdmissionReview v1; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let envelope: Envelope<'_> =
            serde_json::from_slice(body).map_err(|e| format!("the body is not an AdmissionReview: {e}"))?;
        if let Some(version) = envelope.api_version
            && version != "admission.k8s.io/v1"
        {
            return Err(format!("AdmissionReview {version} is not supported; send admission.k8s.io/v1"));
        }
        let raw = envelope.request.ok_or("the AdmissionReview has no request")?;
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(|e| format!("the AdmissionReview is malformed: {e}"))?;
        let request: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| "the AdmissionReview has no request".to_owned())?;
        Ok(Self { request, raw_request: raw.get().to_owned() })
    }

    /// The namespace the object is in (none for cluster-scoped objects).
    pub fn namespace(&self) -> Option<&str> {
        self.request.namespace.as_deref().filter(|ns| !ns.is_empty())
    }

    /// The hosts an Ingress or HTTPRoute being created or updated names; empty otherwise.
    pub fn hosts(&self) -> Vec<String> {
        if matches!(self.request.operation, Operation::Delete | Operation::Connect)
            || self.request.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
        {
            return Vec::new();
        }
        let Some(object) = &self.request.object else { return Vec::new() };
        let kind = &self.request.kind;
        route_hosts(&kind.group, &kind.kind, &object.data)
    }

    /// The plugin's question for this review in `context`.
    pub fn check(&self, context: Context, policy: &PlatformPolicy) -> AdmissionCheck {
        AdmissionCheck::new(
            self.raw_request.clone(),
            context.tenant.as_deref(),
            context.project.as_deref(),
            policy,
            context.claims,
        )
    }

    /// `Kind/name` of the object, to leave its own claims out.
    pub fn object_ref(&self) -> String {
        format!("{}/{}", self.request.kind.kind, self.request.name)
    }
}

/// The hosts an Ingress (`spec.rules[].host`, `spec.tls[].hosts[]`) or a Gateway API HTTPRoute
/// (`spec.hostnames[]`) serves, lower case, each once.
pub fn route_hosts(group: &str, kind: &str, object: &serde_json::Value) -> Vec<String> {
    let spec = &object["spec"];
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|v| v.as_str()).map(str::to_owned).collect()
    };
    let mut hosts: Vec<String> = match (group, kind) {
        ("networking.k8s.io", "Ingress") => {
            let rules = spec["rules"].as_array().into_iter().flatten();
            let tls = spec["tls"].as_array().into_iter().flatten();
            rules
                .filter_map(|rule| rule["host"].as_str().map(str::to_owned))
                .chain(tls.flat_map(|tls| strings(&tls["hosts"])))
                .collect()
        }
        ("gateway.networking.k8s.io", "HTTPRoute") => strings(&spec["hostnames"]),
        _ => Vec::new(),
    };
    for host in &mut hosts {
        *host = host.trim_end_matches('.').to_ascii_lowercase();
    }
    hosts.retain(|host| !host.is_empty());
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Whether two hosts (either may be a `*.` wildcard for one label) can name the same site.
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let covers = |wildcard: &str, host: &str| {
        wildcard.strip_prefix("*.").is_some_and(|suffix| {
            !host.starts_with("*.") && host.split_once('.').is_some_and(|(_, rest)| rest == suffix)
        })
    };
    covers(a, b) || covers(b, a)
}

/// Who owns the namespace and who already serves the hosts: what the plugin is told besides the
/// review.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub claims: Vec<HostClaim>,
}

/// How a review ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// The plugin failed; the failure mode decided.
    PluginFailed,
    /// The AdmissionReview could not be read.
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::PluginFailed => "plugin_failed",
            Outcome::Invalid => "invalid",
        }
    }
}

/// Asks the plugin (or a candidate) about `review` and answers the AdmissionResponse for
/// `endpoint`.
pub async fn decide(
    review: &Review,
    context: Context,
    policy: &PlatformPolicy,
    plugins: &Plugins,
    candidate: Option<&Candidate>,
    endpoint: Endpoint,
    failure: FailureMode,
) -> (AdmissionResponse, Outcome) {
    let check = review.check(context, policy);
    let answer = AdmissionResponse::from(&review.request);
    match plugins.admit(&check, candidate).await {
        Ok(verdict) => answer_verdict(answer, verdict, endpoint),
        Err(error) => failed(review, &error.to_string(), failure),
    }
}

/// The answer when the plugin could not decide (`why`), by the failure mode.
pub fn failed(review: &Review, why: &str, failure: FailureMode) -> (AdmissionResponse, Outcome) {
    let answer = AdmissionResponse::from(&review.request);
    let message = format!("kubeop admission: the admission plugin failed ({why})");
    match failure {
        FailureMode::Deny => {
            (answer.deny(format!("{message}; denied (admission failure mode deny)")), Outcome::PluginFailed)
        }
        FailureMode::Allow => {
            let mut answer = answer;
            answer.warnings = Some(vec![format!("{message}; allowed (admission failure mode allow)")]);
            (answer, Outcome::PluginFailed)
        }
    }
}

fn answer_verdict(
    mut answer: AdmissionResponse,
    verdict: AdmissionVerdict,
    endpoint: Endpoint,
) -> (AdmissionResponse, Outcome) {
    match endpoint {
        Endpoint::Validate => {
            if !verdict.warnings.is_empty() {
                answer.warnings = Some(verdict.warnings);
            }
            if verdict.allowed {
                (answer, Outcome::Allowed)
            } else {
                let message = verdict.message.unwrap_or_else(|| "denied by the admission plugin".into());
                (answer.deny(message), Outcome::Denied)
            }
        }
        // Mutation only patches; the validating webhook (called after it) decides, so the user
        // sees each denial and warning once.
        Endpoint::Mutate => {
            let Some(patch) = verdict.patch else { return (answer, Outcome::Allowed) };
            match serde_json::from_str::<json_patch::Patch>(&patch) {
                Ok(patch) if patch.0.is_empty() => (answer, Outcome::Allowed),
                Ok(patch) => match answer.clone().with_patch(patch) {
                    Ok(patched) => (patched, Outcome::Allowed),
                    Err(error) => (answer.deny(format!("kubeop admission: {error}")), Outcome::PluginFailed),
                },
                Err(error) => (
                    answer.deny(format!(
                        "kubeop admission: the admission plugin returned a patch that is not a JSON Patch: {error}"
                    )),
                    Outcome::PluginFailed,
                ),
            }
        }
    }
}

/// The answer to a body that is not an AdmissionReview (kube's "invalid" response).
pub fn invalid(reason: String) -> AdmissionReview<DynamicObject> {
    AdmissionResponse::invalid(reason).into_review()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_of_ingresses_and_routes() {
        let ingress = json!({"spec": {
            "rules": [{"host": "Shop.Example.com"}, {"http": {}}, {"host": "a.example.com"}],
            "tls": [{"hosts": ["shop.example.com", "*.example.com"]}],
        }});
        assert_eq!(
            route_hosts("networking.k8s.io", "Ingress", &ingress),
            ["*.example.com", "a.example.com", "shop.example.com"]
        );
        let route = json!({"spec": {"hostnames": ["web.example.com"]}});
        assert_eq!(route_hosts("gateway.networking.k8s.io", "HTTPRoute", &route), ["web.example.com"]);
        assert!(route_hosts("example.com", "Ingress", &ingress).is_empty());
    }

    #[test]
    fn overlap_follows_one_label_wildcards() {
        assert!(hosts_overlap("a.example.com", "a.example.com"));
        assert!(hosts_overlap("*.example.com", "a.example.com"));
        assert!(hosts_overlap("a.example.com", "*.example.com"));
        assert!(hosts_overlap("*.example.com", "*.example.com"));
        assert!(!hosts_overlap("*.example.com", "a.b.example.com"));
        assert!(!hosts_overlap("*.example.com", "example.com"));
        assert!(!hosts_overlap("*.a.example.com", "*.example.com"));
        assert!(!hosts_overlap("a.example.com", "b.example.com"));
    }

    #[test]
    fn only_admission_v1_is_read() {
        let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#;
        assert!(Review::parse(v1beta1).unwrap_err().contains("v1beta1"));
        assert!(Review::parse(b"{not json").unwrap_err().contains("not an AdmissionReview"));
        let empty = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(Review::parse(empty).unwrap_err().contains("no request"));
    }
}
