-- CronJobs: a scheduled workload in a project, written to the project's namespace as a
-- batch/v1 CronJob by the reconciler (outbox kind `cronjob`). The platform policy reaches each
-- cluster's `kubeop-policy` ConfigMap through the same outbox (kind `policy`, no table).

CREATE TABLE cronjobs (
    id                            TEXT PRIMARY KEY,
    project_id                    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                          TEXT NOT NULL,
    -- As Kubernetes stores it; validated (the cron syntax Kubernetes accepts) before it is written.
    schedule                      TEXT NOT NULL,
    image                         TEXT NOT NULL,
    -- JSON arrays of strings, and a JSON object of environment variables.
    command                       TEXT NOT NULL,
    args                          TEXT NOT NULL,
    env                           TEXT NOT NULL,
    suspend                       BOOLEAN NOT NULL,
    concurrency_policy            TEXT NOT NULL,
    successful_jobs_history_limit INTEGER NOT NULL,
    failed_jobs_history_limit     INTEGER NOT NULL,
    starting_deadline_seconds     BIGINT,
    created_at                    TIMESTAMPTZ NOT NULL,
    CONSTRAINT cronjobs_project_id_name_key UNIQUE (project_id, name)
);
