-- A clock pass takes its due invoices in one statement; each keeps the time
-- it was due when taken (its finalization and collection are dated then).
ALTER TABLE invoices ADD COLUMN claimed_due TIMESTAMPTZ;
