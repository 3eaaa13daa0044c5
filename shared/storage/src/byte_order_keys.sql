-- A service's ids, states, statuses, codes and keys are ASCII and only ever compared
-- for equality or for a stable order: they compare byte by byte (COLLATE
-- "C"). Under the database's own collation (en_US, or even C.UTF-8 on
-- PostgreSQL 15) every index comparison of them is a locale comparison,
-- several times the cost, on every lookup and every index insert. The order
-- of ids among rows created in the same microsecond may change; pages stay
-- consistent because the indexes are rebuilt under the same collation.
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text'
          AND (column_name IN ('id', 'state', 'status', 'idempotency_key', 'code', 'currency', 'number', 'kind')
               OR column_name LIKE '%\_id')
        ORDER BY table_name, column_name
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE text COLLATE "C"', c.table_name, c.column_name);
    END LOOP;
END $$;
