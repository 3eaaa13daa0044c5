-- CreateContact honours an idempotency key, unique per tenant.
ALTER TABLE contacts ADD COLUMN idempotency_key TEXT;
ALTER TABLE contacts ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX contacts_idempotency ON contacts (tenant_id, idempotency_key);

-- An account's tags, one row each, so ListAccounts can filter by tag with
-- an index on both backends (accounts.tags keeps the list as given).
CREATE TABLE account_tags (
    tenant_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    tag        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, tag, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
INSERT INTO account_tags (tenant_id, account_id, tag)
SELECT DISTINCT a.tenant_id, a.id, t.value
  FROM accounts a, json_each(a.tags) AS t;
