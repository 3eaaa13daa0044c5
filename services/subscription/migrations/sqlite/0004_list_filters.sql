-- What ListSubscriptions filters on, indexed: products, coupon codes and
-- metadata entries of every subscription in side tables (written with the
-- subscription), and the columns a filter or sort names.
CREATE TABLE subscription_products (
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    product_id      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, product_id, subscription_id)
);
CREATE TABLE subscription_coupons (
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    code            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, code, subscription_id)
);
CREATE TABLE subscription_metadata (
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key, value, subscription_id)
);
INSERT OR IGNORE INTO subscription_products (tenant_id, subscription_id, product_id)
    SELECT s.tenant_id, s.id, json_extract(i.value, '$.product_id') FROM subscriptions s, json_each(s.items) i;
INSERT OR IGNORE INTO subscription_coupons (tenant_id, subscription_id, code)
    SELECT s.tenant_id, s.id, c.value FROM subscriptions s, json_each(s.coupon_codes) c;
INSERT INTO subscription_metadata (tenant_id, subscription_id, key, value)
    SELECT s.tenant_id, s.id, m.key, m.value FROM subscriptions s, json_each(s.metadata) m;
CREATE INDEX subscriptions_state ON subscriptions (tenant_id, state, created_at, id);
CREATE INDEX subscriptions_account ON subscriptions (tenant_id, account_id, created_at, id);
CREATE INDEX subscriptions_offering ON subscriptions (tenant_id, offering_id, created_at, id);
CREATE INDEX subscriptions_rate ON subscriptions (tenant_id, rate_id, created_at, id);
CREATE INDEX subscriptions_updated ON subscriptions (tenant_id, updated_at, id);
CREATE INDEX subscriptions_next_billing ON subscriptions (tenant_id, next_billing_at, id);
CREATE INDEX invoices_account ON invoices (tenant_id, account_id, created_at, id);
