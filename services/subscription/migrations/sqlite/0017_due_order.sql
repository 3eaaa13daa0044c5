-- The billing clock takes due subscriptions and due invoices in the order
-- (due time, tenant, id). Keyed by the due time alone, the index left the
-- rest of that order to a sort of every row due at the same instant, and
-- a billing run's rows are (every subscription billed at midnight of the
-- 1st is due at one instant): each pass of a million-subscription run
-- sorted a million rows to take its 200. Keyed by the whole order, a pass
-- reads its 200 and stops.
DROP INDEX subscriptions_due;
CREATE INDEX subscriptions_due ON subscriptions (next_billing_at, tenant_id, id)
    WHERE next_billing_at IS NOT NULL AND parked_reason = '';
DROP INDEX invoices_next_action;
CREATE INDEX invoices_next_action ON invoices (next_action_at, tenant_id, id) WHERE next_action_at IS NOT NULL;
