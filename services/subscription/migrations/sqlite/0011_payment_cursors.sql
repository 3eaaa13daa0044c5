-- How far the subscription service has read each tenant's payment events
-- at the gateway (payments that were left pending are settled from them).
CREATE TABLE payment_cursors (
    tenant_id     TEXT PRIMARY KEY,
    last_sequence INTEGER NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX invoices_awaiting_payment ON invoices (tenant_id) WHERE status = 'open' AND collection_paused = 'payment_pending';
