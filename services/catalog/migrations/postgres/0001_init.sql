CREATE TABLE products (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    handle           TEXT,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    kind             TEXT NOT NULL,
    unit_name        TEXT NOT NULL DEFAULT '',
    tax_code         TEXT NOT NULL DEFAULT '',
    min_quantity     NUMERIC,
    max_quantity     NUMERIC,
    default_quantity NUMERIC,
    status           TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX products_handle ON products (tenant_id, handle);
CREATE INDEX products_page ON products (tenant_id, created_at, id);

CREATE TABLE offerings (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    handle      TEXT,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX offerings_handle ON offerings (tenant_id, handle);
CREATE INDEX offerings_page ON offerings (tenant_id, created_at, id);

CREATE TABLE offering_products (
    tenant_id   TEXT NOT NULL,
    offering_id TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, offering_id, product_id),
    FOREIGN KEY (tenant_id, offering_id) REFERENCES offerings (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
CREATE INDEX offering_products_product ON offering_products (tenant_id, product_id);

CREATE TABLE rates (
    tenant_id             TEXT NOT NULL,
    id                    TEXT NOT NULL,
    handle                TEXT,
    offering_id           TEXT NOT NULL,
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    currency              TEXT NOT NULL,
    period_unit           TEXT NOT NULL,
    period_count          INTEGER NOT NULL,
    timing                TEXT NOT NULL,
    trial_days            INTEGER NOT NULL,
    contract_term_periods INTEGER NOT NULL,
    auto_renew            BOOLEAN NOT NULL,
    notice_period_days    INTEGER NOT NULL,
    setup_fee             NUMERIC,
    prices                TEXT NOT NULL,
    status                TEXT NOT NULL,
    metadata              TEXT NOT NULL DEFAULT '{}',
    version               INTEGER NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, offering_id) REFERENCES offerings (tenant_id, id)
);
-- Old versions of a rate keep their handle once archived; only one active
-- rate holds a handle.
CREATE UNIQUE INDEX rates_handle ON rates (tenant_id, handle) WHERE status = 'active';
CREATE INDEX rates_page ON rates (tenant_id, created_at, id);
CREATE INDEX rates_offering ON rates (tenant_id, offering_id);

CREATE TABLE tenant_settings (
    tenant_id  TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
