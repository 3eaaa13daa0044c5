CREATE TABLE accounts (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    custom_id       TEXT,
    account_name    TEXT NOT NULL,
    currency        TEXT NOT NULL DEFAULT '',
    time_zone       TEXT NOT NULL DEFAULT '',
    billing_address TEXT NOT NULL DEFAULT '{}',
    tags            TEXT NOT NULL DEFAULT '[]',
    notes           TEXT NOT NULL DEFAULT '',
    metadata        TEXT NOT NULL DEFAULT '{}',
    tax_exempt      BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX accounts_custom_id ON accounts (tenant_id, custom_id);
CREATE UNIQUE INDEX accounts_idempotency ON accounts (tenant_id, idempotency_key);
CREATE INDEX accounts_page ON accounts (tenant_id, created_at, id);

CREATE TABLE contacts (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name  TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    email      TEXT NOT NULL DEFAULT '',
    phone      TEXT NOT NULL DEFAULT '',
    address    TEXT NOT NULL DEFAULT '{}',
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX contacts_account ON contacts (tenant_id, account_id);
CREATE INDEX contacts_email ON contacts (tenant_id, email);

CREATE TABLE bill_groups (
    tenant_id                             TEXT NOT NULL,
    id                                    TEXT NOT NULL,
    account_id                            TEXT NOT NULL,
    name                                  TEXT NOT NULL DEFAULT '',
    auto_email_invoice                    BOOLEAN NOT NULL,
    collect_invoice_balance_automatically BOOLEAN NOT NULL,
    payment_method_id                     TEXT NOT NULL DEFAULT '',
    gateway_customer_id                   TEXT NOT NULL DEFAULT '',
    billing_day                           INTEGER NOT NULL DEFAULT 0,
    collection_method                     TEXT NOT NULL,
    currency                              TEXT NOT NULL DEFAULT '',
    contact_id                            TEXT NOT NULL DEFAULT '',
    idempotency_key                       TEXT,
    request_hash                          TEXT NOT NULL DEFAULT '',
    created_at                            TIMESTAMPTZ NOT NULL,
    updated_at                            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE UNIQUE INDEX bill_groups_idempotency ON bill_groups (tenant_id, idempotency_key);
CREATE INDEX bill_groups_account ON bill_groups (tenant_id, account_id);

CREATE TABLE subscriptions (
    tenant_id            TEXT NOT NULL,
    id                   TEXT NOT NULL,
    custom_id            TEXT,
    account_id           TEXT NOT NULL,
    bill_group_id        TEXT NOT NULL,
    offering_id          TEXT NOT NULL,
    rate_id              TEXT NOT NULL,
    state                TEXT NOT NULL,
    items                TEXT NOT NULL,
    coupon_codes         TEXT NOT NULL DEFAULT '[]',
    currency             TEXT NOT NULL,
    recurring_amount     NUMERIC NOT NULL,
    start_date           TEXT NOT NULL,
    metadata             TEXT NOT NULL DEFAULT '{}',
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end   TIMESTAMPTZ NOT NULL,
    trial_start          TIMESTAMPTZ,
    trial_end            TIMESTAMPTZ,
    next_billing_at      TIMESTAMPTZ,
    activated_at         TIMESTAMPTZ,
    canceled_at          TIMESTAMPTZ,
    expires_at           TIMESTAMPTZ,
    quote_id             TEXT NOT NULL DEFAULT '',
    idempotency_key      TEXT,
    request_hash         TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, bill_group_id) REFERENCES bill_groups (tenant_id, id)
);
CREATE UNIQUE INDEX subscriptions_idempotency ON subscriptions (tenant_id, idempotency_key);
CREATE UNIQUE INDEX subscriptions_custom_id ON subscriptions (tenant_id, custom_id);
CREATE INDEX subscriptions_page ON subscriptions (tenant_id, created_at, id);

CREATE TABLE invoice_counters (
    tenant_id TEXT PRIMARY KEY,
    last      BIGINT NOT NULL
);

CREATE TABLE invoices (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    number             TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    bill_group_id      TEXT NOT NULL,
    subscription_id    TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL,
    currency           TEXT NOT NULL,
    amount_without_tax NUMERIC NOT NULL,
    discount           NUMERIC NOT NULL,
    tax                NUMERIC NOT NULL,
    amount             NUMERIC NOT NULL,
    amount_paid        NUMERIC NOT NULL,
    period_start       TIMESTAMPTZ,
    period_end         TIMESTAMPTZ,
    issued_at          TIMESTAMPTZ,
    due_at             TIMESTAMPTZ,
    paid_at            TIMESTAMPTZ,
    payment_ids        TEXT NOT NULL DEFAULT '[]',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE UNIQUE INDEX invoices_number ON invoices (tenant_id, number);
CREATE INDEX invoices_subscription ON invoices (tenant_id, subscription_id);
CREATE INDEX invoices_page ON invoices (tenant_id, created_at, id);

CREATE TABLE invoice_lines (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    invoice_id         TEXT NOT NULL,
    position           INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    subscription_id    TEXT NOT NULL DEFAULT '',
    offering_id        TEXT NOT NULL DEFAULT '',
    rate_id            TEXT NOT NULL DEFAULT '',
    product_id         TEXT NOT NULL DEFAULT '',
    period_start       TIMESTAMPTZ,
    period_end         TIMESTAMPTZ,
    quantity           NUMERIC NOT NULL,
    unit_amount        TEXT NOT NULL DEFAULT '',
    proration_fraction TEXT NOT NULL DEFAULT '1',
    tiers              TEXT NOT NULL DEFAULT '[]',
    amount_without_tax NUMERIC NOT NULL,
    discount           NUMERIC NOT NULL,
    tax                NUMERIC NOT NULL,
    tax_rate           TEXT NOT NULL DEFAULT '',
    amount             NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX invoice_lines_invoice ON invoice_lines (tenant_id, invoice_id, position);

CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    data_json   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (tenant_id, id);
CREATE INDEX events_tenant ON events (tenant_id, seq);
