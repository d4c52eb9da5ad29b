-- Metered usage in hourly buckets per tenant, the Idempotency-Keys of ingest requests, and
-- per-tenant rates with their history. Times are Unix seconds (UTC); prices are exact decimals
-- kept as text, as the API and the pricing plugins exchange them.

CREATE TABLE usage_hourly (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Start of the hour.
    hour      BIGINT NOT NULL,
    -- typeof: SQLite turns an integer sum that overflows 64 bits into a float; refuse it.
    cpu_milli BIGINT NOT NULL CHECK (typeof(cpu_milli) = 'integer' AND cpu_milli >= 0),
    mem_mib   BIGINT NOT NULL CHECK (typeof(mem_mib) = 'integer' AND mem_mib >= 0),
    PRIMARY KEY (tenant_id, hour)
);
CREATE INDEX usage_hourly_hour_idx ON usage_hourly (hour);

CREATE TABLE usage_idempotency (
    -- The caller's tenant, or "admin".
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    -- SHA-256 of the request's points, to tell a retry from a different request.
    request_hash TEXT NOT NULL,
    -- The answer the first request got, replayed to retries.
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX usage_idempotency_created_at_idx ON usage_idempotency (created_at);

CREATE TABLE tenant_rates (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    effective_from   BIGINT NOT NULL,
    cpu_milli        TEXT NOT NULL,
    mem_mib          TEXT NOT NULL,
    tier             TEXT,
    discount_percent TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, effective_from)
);
