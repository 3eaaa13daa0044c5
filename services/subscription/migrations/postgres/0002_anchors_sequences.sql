-- Every contract keeps its billing anchor: the day (and for yearly periods
-- the month) its periods start on. Contracts made before had none; their
-- start date's day is the best there is.
ALTER TABLE subscriptions ADD COLUMN anchor_day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN anchor_month INTEGER NOT NULL DEFAULT 0;
UPDATE subscriptions SET anchor_day = CAST(substr(start_date, 9, 2) AS INTEGER);

-- Event sequences are per tenant, gap-free from a tenant's point of view:
-- `serial` orders writes, `sequence` is given per tenant when events are
-- first listed, in commit order (recur_storage::outbox).
ALTER TABLE events RENAME COLUMN seq TO serial;
ALTER TABLE events ADD COLUMN sequence BIGINT;
UPDATE events SET sequence = o.rn
  FROM (SELECT serial AS s, row_number() OVER (PARTITION BY tenant_id ORDER BY serial) AS rn FROM events) AS o
 WHERE events.serial = o.s;
CREATE TABLE event_counters (
    tenant_id     TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);
INSERT INTO event_counters (tenant_id, last_sequence) SELECT tenant_id, MAX(sequence) FROM events GROUP BY tenant_id;
DROP INDEX events_tenant;
CREATE UNIQUE INDEX events_sequence ON events (tenant_id, sequence) WHERE sequence IS NOT NULL;
CREATE INDEX events_unsequenced ON events (tenant_id, serial) WHERE sequence IS NULL;
