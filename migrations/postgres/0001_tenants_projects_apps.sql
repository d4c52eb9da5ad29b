-- Tenants own projects; a project is one Kubernetes namespace and owns apps.
-- Unique constraints carry PostgreSQL's default names (<table>_<columns>_key); the SQLite schema
-- produces the same names from its error messages, so both engines report conflicts alike.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT tenants_name_key UNIQUE (name)
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    -- Fixed at creation: a Kubernetes namespace cannot be renamed.
    namespace  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT projects_tenant_id_name_key UNIQUE (tenant_id, name),
    CONSTRAINT projects_namespace_key UNIQUE (namespace)
);
CREATE INDEX projects_tenant_id_id_idx ON projects (tenant_id, id);

CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    image      TEXT NOT NULL,
    host       TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT apps_project_id_name_key UNIQUE (project_id, name),
    -- One app per public host name: a second claim on a host would hijack its traffic.
    CONSTRAINT apps_host_key UNIQUE (host)
);
CREATE INDEX apps_project_id_id_idx ON apps (project_id, id);
