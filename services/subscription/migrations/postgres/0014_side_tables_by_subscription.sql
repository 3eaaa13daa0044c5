-- Every save of a subscription rewrites its rows in the listing side tables
-- (DELETE ... WHERE tenant_id AND subscription_id). Their keys lead with
-- the product, code or key, so that delete read every row of the tenant: a
-- renewal got slower as the tenant's subscriptions grew. Now it is one
-- index range.
CREATE INDEX subscription_products_by_subscription ON subscription_products (tenant_id, subscription_id);
CREATE INDEX subscription_coupons_by_subscription ON subscription_coupons (tenant_id, subscription_id);
CREATE INDEX subscription_metadata_by_subscription ON subscription_metadata (tenant_id, subscription_id);
