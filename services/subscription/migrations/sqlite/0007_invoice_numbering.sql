-- Finalized invoices waiting for their number (given after the transaction
-- that finalized them commits, a batch per tenant at a time).
CREATE INDEX invoices_unnumbered ON invoices (tenant_id, created_at, id) WHERE number = '' AND status <> 'draft';
