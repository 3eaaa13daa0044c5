-- The invoice of a last period's usage and in-arrears items (a
-- subscription canceled or paused at its period end): at most one per
-- subscription and period, whatever retries or replicas do.
CREATE UNIQUE INDEX invoices_close_period ON invoices (tenant_id, subscription_id, period_start, period_end)
    WHERE billing_reason = 'period_close';
