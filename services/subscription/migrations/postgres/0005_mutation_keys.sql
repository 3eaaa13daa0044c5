-- Idempotency keys of changes to existing subscriptions (activate, and the
-- lifecycle changes to come): unique per tenant, written in the change's
-- transaction, so a retried change returns what the first one did.
CREATE TABLE subscription_mutations (
    tenant_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    action          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
