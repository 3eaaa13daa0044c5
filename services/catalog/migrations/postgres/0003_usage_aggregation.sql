-- How a metered product aggregates its usage events (NULL: not metered;
-- metered products made before this migration sum their usage).
ALTER TABLE products ADD COLUMN aggregation TEXT;
ALTER TABLE products ADD COLUMN aggregation_property TEXT NOT NULL DEFAULT '';
UPDATE products SET aggregation = 'sum' WHERE kind = 'metered';
