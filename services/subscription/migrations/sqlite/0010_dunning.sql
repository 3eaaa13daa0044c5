-- Dunning: how many times an invoice's payment failed, since when, and why
-- the billing clock stopped collecting it (a hard decline), so retries
-- follow the tenant's schedule across restarts.
ALTER TABLE invoices ADD COLUMN attempt_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN first_failed_at TEXT;
ALTER TABLE invoices ADD COLUMN collection_paused TEXT NOT NULL DEFAULT '';
CREATE INDEX invoices_open_by_bill_group ON invoices (tenant_id, bill_group_id) WHERE status = 'open';
