-- A service's ids, states, statuses, codes and keys are ASCII and only
-- ever compared for equality or for a stable order: they compare byte by
-- byte (COLLATE "C"). Under the database's own collation (en_US, or even
-- C.UTF-8 on PostgreSQL 15) every index comparison of them is a locale
-- comparison, several times the cost, on every lookup and every index
-- insert. Orders by id alone follow byte order afterwards (as on SQLite
-- and in Rust), so a page token issued before this migration for a listing
-- by id may skip or repeat rows once.
--
-- One ALTER TABLE per table (an index is rebuilt once, not once per
-- column); columns already "C" are left alone, so applying it again changes
-- only columns added since. It takes each table's exclusive lock until the
-- migration commits, and replicas of the previous version holding prepared
-- statements over these tables must be restarted with the upgrade (their
-- cached plans' result types change): upgrade all replicas together.
DO $$
DECLARE t record;
BEGIN
    FOR t IN
        SELECT c.table_name,
               string_agg(format('ALTER COLUMN %I TYPE text COLLATE "C"', c.column_name), ', '
                          ORDER BY c.column_name) AS changes
        FROM information_schema.columns c
        WHERE c.table_schema = current_schema() AND c.data_type = 'text'
          AND c.collation_name IS DISTINCT FROM 'C'
          AND (c.column_name IN ('id', 'state', 'status', 'idempotency_key', 'code', 'currency', 'number', 'kind')
               OR c.column_name LIKE '%\_id')
        GROUP BY c.table_name
        ORDER BY c.table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.table_name, t.changes);
    END LOOP;
END $$;
