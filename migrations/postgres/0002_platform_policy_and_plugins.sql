-- The platform policy set through the API (one row), and plugins uploaded through the API:
-- every replica reads both, so they apply everywhere.

CREATE TABLE platform_policy (
    id                        INTEGER PRIMARY KEY CHECK (id = 1),
    -- JSON arrays of strings.
    image_allowlist           TEXT NOT NULL,
    egress_baseline           TEXT NOT NULL,
    quota_max_requests_cpu    TEXT,
    quota_max_requests_memory TEXT,
    updated_at                TIMESTAMPTZ NOT NULL,
    updated_by                TEXT NOT NULL
);

CREATE TABLE plugins (
    slot        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    component   BYTEA NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL,
    uploaded_by TEXT NOT NULL
);
