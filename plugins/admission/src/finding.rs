//! What a rule found, where in the object, and how it is shown to the user:
//! `[<rule>] <path>: <reason>`.

use std::fmt;

/// The rules, by the id the README lists and `admission.audit-rules` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    ImageRegistry,
    ImageTag,
    Privileged,
    PrivilegeEscalation,
    HostNamespaces,
    HostPath,
    EgressBaseline,
    QuotaMax,
    AppNamespace,
    ProjectTenant,
    AllowedHosts,
    HostCollision,
    ServiceType,
}

impl Rule {
    pub const fn id(self) -> &'static str {
        match self {
            Rule::ImageRegistry => "image-registry",
            Rule::ImageTag => "image-tag",
            Rule::Privileged => "privileged",
            Rule::PrivilegeEscalation => "privilege-escalation",
            Rule::HostNamespaces => "host-namespaces",
            Rule::HostPath => "host-path",
            Rule::EgressBaseline => "egress-baseline",
            Rule::QuotaMax => "quota-max",
            Rule::AppNamespace => "app-namespace",
            Rule::ProjectTenant => "project-tenant",
            Rule::AllowedHosts => "allowed-hosts",
            Rule::HostCollision => "host-collision",
            Rule::ServiceType => "service-type",
        }
    }

    /// Rules whose findings are advice, never a denial.
    pub const fn warns_only(self) -> bool {
        matches!(self, Rule::ImageTag)
    }
}

/// A place in the reviewed object, written the way `kubectl explain` reads:
/// `spec.template.spec.containers[1].image`, with map keys that contain a dot in brackets
/// (`spec.hard[requests.cpu]`) so that each step stays one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The object itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// A field of an object, or a key of a map.
    pub fn field(&self, name: &str) -> Self {
        let mut path = self.0.clone();
        if name.contains('.') {
            path.push_str(&format!("[{name}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
        }
        FieldPath(path)
    }

    /// Nested fields, outermost first.
    pub fn fields(&self, names: &[&str]) -> Self {
        names.iter().fold(self.clone(), |path, name| path.field(name))
    }

    /// An item of a list.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub path: FieldPath,
    pub reason: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule.id(), self.path, self.reason)
    }
}

/// What the rules found in one review, in the order they found it.
#[derive(Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    pub fn add(&mut self, rule: Rule, path: FieldPath, reason: impl Into<String>) {
        self.0.push(Finding { rule, path, reason: reason.into() });
    }

    pub fn into_vec(self) -> Vec<Finding> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_kubectl_explain() {
        let spec = FieldPath::root().fields(&["spec", "template", "spec"]);
        assert_eq!(
            spec.field("containers").index(1).field("image").to_string(),
            "spec.template.spec.containers[1].image"
        );
        assert_eq!(
            FieldPath::root().fields(&["spec", "hard", "requests.cpu"]).to_string(),
            "spec.hard[requests.cpu]"
        );
        assert_eq!(
            FieldPath::root().fields(&["metadata", "labels", "paas.kubeop.io/tenant-id"]).to_string(),
            "metadata.labels[paas.kubeop.io/tenant-id]"
        );
    }

    #[test]
    fn a_finding_shows_its_rule_path_and_reason() {
        let finding = Finding {
            rule: Rule::HostPath,
            path: FieldPath::root().fields(&["spec", "volumes"]).index(2).field("hostPath"),
            reason: "hostPath volume \"root\" is not allowed".into(),
        };
        assert_eq!(
            finding.to_string(),
            "[host-path] spec.volumes[2].hostPath: hostPath volume \"root\" is not allowed"
        );
    }
}
