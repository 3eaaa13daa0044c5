CREATE TABLE coupons (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    code             TEXT NOT NULL,
    name             TEXT NOT NULL,
    discount_type    TEXT NOT NULL,
    percent_off      NUMERIC,
    amounts_off      TEXT NOT NULL DEFAULT '{}',
    duration         TEXT NOT NULL,
    duration_periods INTEGER NOT NULL DEFAULT 0,
    offering_ids     TEXT NOT NULL DEFAULT '[]',
    product_ids      TEXT NOT NULL DEFAULT '[]',
    max_redemptions  INTEGER NOT NULL DEFAULT 0,
    redeem_by        TIMESTAMPTZ,
    status           TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX coupons_code ON coupons (tenant_id, code);
CREATE INDEX coupons_page ON coupons (tenant_id, created_at, id);
