-- The lifecycle of a contract after it is made: every change reads and
-- bumps `version` (a change that lost a race to another changes nothing),
-- pauses and cancellations keep their times and reasons, an END_OF_TERM
-- change waits in `scheduled_change` (JSON) for the period end.
ALTER TABLE subscriptions ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN paused_at TEXT;
ALTER TABLE subscriptions ADD COLUMN resume_at TEXT;
ALTER TABLE subscriptions ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN cancel_comment TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN scheduled_change TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_billing_at TEXT;

-- A retried change answers with the invoice the first one made.
ALTER TABLE subscription_mutations ADD COLUMN invoice_id TEXT NOT NULL DEFAULT '';

-- Invoices consume the account's credit before anything is charged.
ALTER TABLE invoices ADD COLUMN credit_applied TEXT NOT NULL DEFAULT 0;

-- An account's credit: the balance per currency, and every movement of it.
-- A movement's source (the change, cancellation or invoice that made it) is
-- unique, so however often a call is retried its credit moves once.
CREATE TABLE credit_balances (
    tenant_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    currency   TEXT NOT NULL,
    balance    TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, account_id, currency)
);
CREATE TABLE credit_entries (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    currency        TEXT NOT NULL,
    -- Positive: credit granted; negative: credit consumed by an invoice.
    amount          TEXT NOT NULL,
    source          TEXT NOT NULL,
    subscription_id TEXT NOT NULL DEFAULT '',
    invoice_id      TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source)
);
CREATE INDEX credit_entries_account ON credit_entries (tenant_id, account_id, created_at);

-- Coupon redemptions, counted per coupon (max_redemptions) and kept per
-- subscription: a subscription holds a code once.
CREATE TABLE coupon_redemptions (
    tenant_id       TEXT NOT NULL,
    code            TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subscription_id, code)
);
CREATE INDEX coupon_redemptions_code ON coupon_redemptions (tenant_id, code);
CREATE INDEX coupon_redemptions_account ON coupon_redemptions (tenant_id, account_id, code);
-- Redemptions so far per coupon; raised only while under the coupon's
-- max_redemptions, in the transaction that redeems, so concurrent sign-ups
-- never redeem a coupon past its limit.
CREATE TABLE coupon_counters (
    tenant_id TEXT NOT NULL,
    code      TEXT NOT NULL,
    redeemed  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

-- Invoices made on their own (one-off charges) are unique per tenant and
-- idempotency key, so a retried request makes one invoice.
ALTER TABLE invoices ADD COLUMN idempotency_key TEXT;
ALTER TABLE invoices ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX invoices_idempotency ON invoices (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- One-off charges waiting for a subscription's next invoice (the billing
-- clock moves them onto it: invoice_id is set then).
CREATE TABLE pending_charges (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    product_id      TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    unit_amount     TEXT NOT NULL,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    invoice_id      TEXT,
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX pending_charges_open ON pending_charges (tenant_id, subscription_id) WHERE invoice_id IS NULL;
CREATE UNIQUE INDEX pending_charges_idempotency ON pending_charges (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A draft has no number until it is finalized: numbers are unique among
-- the numbered invoices of a tenant.
DROP INDEX invoices_number;
CREATE UNIQUE INDEX invoices_number ON invoices (tenant_id, number) WHERE number <> '';
