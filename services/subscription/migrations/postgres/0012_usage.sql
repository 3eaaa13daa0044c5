-- Usage events: one row per event id and tenant (a repeated id is counted
-- once, by the primary key), read per subscription and product by time.
CREATE TABLE usage_events (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    event_id        TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    product_id      TEXT COLLATE "C" NOT NULL,
    quantity        NUMERIC NOT NULL,
    event_time      TIMESTAMPTZ NOT NULL,
    properties      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX usage_events_by_subscription ON usage_events (tenant_id, subscription_id, product_id, event_time);
