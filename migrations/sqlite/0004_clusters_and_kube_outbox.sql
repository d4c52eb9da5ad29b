-- Registered Kubernetes clusters, the tenants bound to them, and what the clusters still lack.
-- The same schema as migrations/postgres.

CREATE TABLE clusters (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    server     TEXT NOT NULL,
    kubeconfig BLOB NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT clusters_name_key UNIQUE (name)
);

ALTER TABLE tenants ADD COLUMN cluster_id TEXT REFERENCES clusters (id);

CREATE TABLE kube_outbox (
    kind            TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    cluster_id      TEXT,
    namespace       TEXT,
    revision        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (kind, object_id)
);
CREATE INDEX kube_outbox_next_attempt_ms_idx ON kube_outbox (next_attempt_ms);
