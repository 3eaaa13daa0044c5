-- The billing clock: a renewal's invoice is unique per subscription and
-- period (exactly once, whatever retries or replicas do), the clock's
-- leases and parked subscriptions live on the subscription row, invoices
-- say why they were made and when the clock next acts on them, and a
-- tenant in test mode has its own time.
ALTER TABLE subscriptions ADD COLUMN parked_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN lease_until TEXT;
CREATE INDEX subscriptions_due ON subscriptions (next_billing_at) WHERE next_billing_at IS NOT NULL AND parked_reason = '';

ALTER TABLE invoices ADD COLUMN billing_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE invoices ADD COLUMN next_action_at TEXT;
CREATE UNIQUE INDEX invoices_cycle_period ON invoices (tenant_id, subscription_id, period_start, period_end)
    WHERE billing_reason = 'subscription_cycle';
CREATE INDEX invoices_next_action ON invoices (next_action_at) WHERE next_action_at IS NOT NULL;

CREATE TABLE test_clocks (
    tenant_id  TEXT PRIMARY KEY,
    clock_time TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
