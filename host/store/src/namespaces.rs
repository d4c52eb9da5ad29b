//! Who a namespace reads as belonging to. A project's namespace is `kubeop-<tenant>-<project>`,
//! and names may contain hyphens, so `kubeop-acme-corp-web` begins with both `kubeop-acme-` and
//! `kubeop-acme-corp-`. It reads as the tenant with the longest name it begins with: here
//! `acme-corp`, if that tenant exists. The rule, checked inside the transactions that create
//! projects and create or rename tenants (and rolled back with them): **every namespace reads as
//! its own tenant's, or as no tenant's.** So tenant `acme` cannot take `corp-web` while tenant
//! `acme-corp` exists, no tenant may be named (or renamed to) `acme-corp` while `acme` holds
//! `kubeop-acme-corp-web`, and a tenant cannot be renamed so that its namespaces read as
//! another's. Tenants `a` and `a-b` coexist: `kubeop-a-b-c` is `a-b`'s.

use crate::StoreError;

/// Serializes the writes this rule reads across (PostgreSQL; SQLite has one writer anyway).
pub(crate) const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(7023156150391357440)";

/// A namespace whose longest matching tenant is not its owner, with that tenant's name; among
/// the projects `$1` (a project id), of `$2` (a tenant id), or beginning with `$3`.
pub(crate) const MISREAD_SQL: &str = "SELECT p.namespace, t.name FROM projects p JOIN tenants t \
     ON substr(p.namespace, 1, length(t.name) + 8) = 'kubeop-' || t.name || '-' \
     WHERE t.id <> p.tenant_id \
     AND (p.id = $1 OR p.tenant_id = $2 OR substr(p.namespace, 1, length($3)) = $3) \
     AND NOT EXISTS (SELECT 1 FROM tenants longer WHERE length(longer.name) > length(t.name) \
     AND substr(p.namespace, 1, length(longer.name) + 8) = 'kubeop-' || longer.name || '-') \
     LIMIT 1";

/// The projects whose namespace would read as a new tenant's: those beginning with `$prefix`
/// (`kubeop-<name>-`) that no existing tenant with a longer name than `$name` claims. None may
/// exist when a tenant is created, so the insert is guarded by `NOT EXISTS` of this, one
/// statement where a check after the insert needed a transaction of four.
macro_rules! would_read_as_new {
    ($prefix:literal, $name:literal) => {
        concat!(
            "SELECT p.namespace FROM projects p WHERE substr(p.namespace, 1, length(",
            $prefix,
            ")) = ",
            $prefix,
            " AND NOT EXISTS (SELECT 1 FROM tenants longer WHERE length(longer.name) > length(",
            $name,
            ") AND substr(p.namespace, 1, length(longer.name) + 8) = 'kubeop-' || longer.name || '-')"
        )
    };
}
pub(crate) use would_read_as_new;

/// The prefix every namespace of a tenant named `name` begins with.
pub(crate) fn prefix(name: &kubeop_core::Name) -> String {
    format!("kubeop-{name}-")
}

pub(crate) fn misread(namespace: &str, reads_as: &str) -> StoreError {
    StoreError::Conflict(format!(
        "namespace `{namespace}` would read as tenant `{reads_as}`'s (the longest tenant name it \
         begins with) but belongs to another tenant; choose another name"
    ))
}

/// Refuses the write of the enclosing transaction when a namespace would read as a tenant
/// other than its own. A macro so that it runs on either engine's transaction.
macro_rules! refuse_misread {
    ($conn:expr, project = $project:expr, tenant = $tenant:expr, prefix = $prefix:expr) => {{
        let misread: Option<(String, String)> = sqlx::query_as($crate::namespaces::MISREAD_SQL)
            .bind($project)
            .bind($tenant)
            .bind($prefix)
            .fetch_optional($conn)
            .await?;
        if let Some((namespace, reads_as)) = misread {
            return Err($crate::namespaces::misread(&namespace, &reads_as));
        }
    }};
}
pub(crate) use refuse_misread;
