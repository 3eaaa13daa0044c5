-- What each FIXED_AMOUNT coupon had left for an invoice's metered usage
-- lines when the invoice was made (JSON [[code, amount], ...]; '' for
-- their whole amounts), so usage counted again at finalization gets the
-- same share. Invoices made before take none.
ALTER TABLE invoices ADD COLUMN usage_coupon_left TEXT NOT NULL DEFAULT '[]';
