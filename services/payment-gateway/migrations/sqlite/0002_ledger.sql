-- Refund reservations, 3-D Secure return URLs and reconciliation on payments.
ALTER TABLE payments ADD COLUMN refund_reserved TEXT NOT NULL DEFAULT '0';
ALTER TABLE payments ADD COLUMN return_url TEXT NOT NULL DEFAULT '';
-- When the reconciler should next ask the provider (NULL: settled).
ALTER TABLE payments ADD COLUMN next_check_at TEXT;
CREATE INDEX payments_reconcile ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX payments_provider_payment ON payments (tenant_id, provider_payment_id) WHERE provider_payment_id <> '';
CREATE INDEX payments_customer ON payments (tenant_id, customer_id, created_at, id);

-- Removed payment methods stay for the payments that used them.
ALTER TABLE payment_methods ADD COLUMN removed_at TEXT;

-- Every call to the provider for a payment.
CREATE TABLE payment_attempts (
    tenant_id           TEXT NOT NULL,
    payment_id          TEXT NOT NULL,
    number              INTEGER NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    outcome             TEXT NOT NULL,
    provider_payment_id TEXT NOT NULL DEFAULT '',
    decline_code        TEXT NOT NULL DEFAULT '',
    message             TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, payment_id, number),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);

CREATE TABLE refunds (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    payment_id         TEXT NOT NULL,
    currency           TEXT NOT NULL,
    amount             TEXT NOT NULL,
    reason             TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL,
    provider_refund_id TEXT NOT NULL DEFAULT '',
    failure_message    TEXT NOT NULL DEFAULT '',
    idempotency_key    TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    next_check_at      TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);
CREATE UNIQUE INDEX refunds_idempotency ON refunds (tenant_id, idempotency_key);
CREATE INDEX refunds_payment ON refunds (tenant_id, payment_id);
CREATE INDEX refunds_reconcile ON refunds (next_check_at) WHERE next_check_at IS NOT NULL;

-- The outbox: written in the transaction of the change it reports. A
-- sequence is given when events are first listed, in commit order.
CREATE TABLE payment_events (
    serial     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    sequence   BIGINT,
    type       TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    payment    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX payment_events_sequence ON payment_events (tenant_id, sequence) WHERE sequence IS NOT NULL;
CREATE INDEX payment_events_unsequenced ON payment_events (tenant_id, serial) WHERE sequence IS NULL;
CREATE TABLE payment_event_counters (
    tenant_id     TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);

-- Provider events already handled (deliveries are retried).
CREATE TABLE provider_webhook_events (
    tenant_id   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    payment_id  TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, provider, event_id)
);

-- The sandbox provider's own books (a real provider keeps these itself).
CREATE TABLE sandbox_charges (
    idempotency_key            TEXT PRIMARY KEY,
    provider_payment_id        TEXT NOT NULL UNIQUE,
    provider_payment_method_id TEXT NOT NULL,
    amount_minor               BIGINT NOT NULL,
    currency                   TEXT NOT NULL,
    status                     TEXT NOT NULL,
    decline_code               TEXT NOT NULL DEFAULT '',
    message                    TEXT NOT NULL DEFAULT '',
    refunded_minor             BIGINT NOT NULL DEFAULT 0,
    created_at                 TEXT NOT NULL
);
CREATE TABLE sandbox_refunds (
    idempotency_key     TEXT PRIMARY KEY,
    provider_refund_id  TEXT NOT NULL,
    provider_payment_id TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL,
    created_at          TEXT NOT NULL
);
