-- The admission review's part of the platform policy (allowed hosts and Service types, rules in
-- audit mode) as one JSON object, and candidate plugins: uploaded to be tried with
-- POST /v1/admission/review?plugin=<sha256> before one is rolled out.

ALTER TABLE platform_policy ADD COLUMN admission TEXT NOT NULL DEFAULT '{}';

CREATE TABLE plugin_candidates (
    sha256      TEXT PRIMARY KEY,
    slot        TEXT NOT NULL,
    component   BYTEA NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL,
    uploaded_by TEXT NOT NULL
);

CREATE INDEX plugin_candidates_by_slot ON plugin_candidates (slot, uploaded_at);
