CREATE TABLE signup_sessions (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    status     TEXT NOT NULL,
    data       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX signup_sessions_expiry ON signup_sessions (status, expires_at);
