-- Usage events: one row per event id and tenant (a repeated id is counted
-- once, by the primary key), read per subscription and product by time.
CREATE TABLE usage_events (
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    product_id      TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    event_time      TEXT NOT NULL,
    properties      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX usage_events_by_subscription ON usage_events (tenant_id, subscription_id, product_id, event_time);
