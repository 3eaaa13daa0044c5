CREATE TABLE gateway_customers (
    tenant_id                 TEXT NOT NULL,
    id                        TEXT NOT NULL,
    provider                  TEXT NOT NULL,
    provider_customer_id      TEXT NOT NULL,
    account_id                TEXT NOT NULL DEFAULT '',
    email                     TEXT NOT NULL DEFAULT '',
    name                      TEXT NOT NULL DEFAULT '',
    reference                 TEXT NOT NULL DEFAULT '',
    default_payment_method_id TEXT,
    idempotency_key           TEXT,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX gateway_customers_idempotency ON gateway_customers (tenant_id, idempotency_key);

CREATE TABLE payment_methods (
    tenant_id                  TEXT NOT NULL,
    id                         TEXT NOT NULL,
    customer_id                TEXT NOT NULL,
    provider                   TEXT NOT NULL,
    provider_payment_method_id TEXT NOT NULL,
    name                       TEXT NOT NULL DEFAULT '',
    brand                      TEXT NOT NULL DEFAULT '',
    last4                      TEXT NOT NULL DEFAULT '',
    exp_month                  INTEGER NOT NULL DEFAULT 0,
    exp_year                   INTEGER NOT NULL DEFAULT 0,
    created_at                 TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES gateway_customers (tenant_id, id)
);
CREATE UNIQUE INDEX payment_methods_provider ON payment_methods (tenant_id, customer_id, provider_payment_method_id);

CREATE TABLE payments (
    tenant_id           TEXT NOT NULL,
    id                  TEXT NOT NULL,
    customer_id         TEXT NOT NULL,
    payment_method_id   TEXT NOT NULL,
    currency            TEXT NOT NULL,
    amount              TEXT NOT NULL,
    amount_refunded     TEXT NOT NULL,
    status              TEXT NOT NULL,
    invoice_id          TEXT NOT NULL DEFAULT '',
    description         TEXT NOT NULL DEFAULT '',
    provider            TEXT NOT NULL,
    provider_payment_id TEXT NOT NULL DEFAULT '',
    decline_code        TEXT NOT NULL DEFAULT '',
    failure_message     TEXT NOT NULL DEFAULT '',
    action_url          TEXT NOT NULL DEFAULT '',
    attempt_count       INTEGER NOT NULL,
    metadata            TEXT NOT NULL DEFAULT '{}',
    idempotency_key     TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES gateway_customers (tenant_id, id)
);
CREATE UNIQUE INDEX payments_idempotency ON payments (tenant_id, idempotency_key);
CREATE INDEX payments_page ON payments (tenant_id, created_at, id);
CREATE INDEX payments_invoice ON payments (tenant_id, invoice_id);
