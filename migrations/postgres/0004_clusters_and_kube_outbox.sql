-- Registered Kubernetes clusters, the tenants bound to them, and what the clusters still lack.

CREATE TABLE clusters (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    -- The API server's URL, shown to admins; the credentials stay in the sealed kubeconfig.
    server     TEXT NOT NULL,
    -- The kubeconfig YAML sealed by the KMS, with the cluster id as associated data.
    kubeconfig BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT clusters_name_key UNIQUE (name)
);

-- NULL: the default cluster from the configuration. A cluster in use cannot be deleted.
ALTER TABLE tenants ADD COLUMN cluster_id TEXT REFERENCES clusters (id);

-- The outbox: one row per tenant, project or app whose resource a cluster does not yet match,
-- written in the same transaction as the change. The reconciler reads the object's current row
-- (absent: delete it from the cluster), applies it, and removes the mark only if no newer change
-- bumped `revision` meanwhile. Where to apply is captured at the change, so a delete still knows.
CREATE TABLE kube_outbox (
    kind            TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    -- NULL: the default cluster.
    cluster_id      TEXT,
    -- Projects: their namespace; apps: their project's.
    namespace       TEXT,
    revision        BIGINT NOT NULL,
    attempts        INTEGER NOT NULL,
    -- Unix milliseconds: compared as numbers on both engines.
    next_attempt_ms BIGINT NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (kind, object_id)
);
CREATE INDEX kube_outbox_next_attempt_ms_idx ON kube_outbox (next_attempt_ms);
