-- Flows of the OpenPSM workflow: one row per start link in progress.
CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    person TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX flows_expiry ON flows (expires_at);

-- Exclusive check-out of a shared credential: at most one holder, until it expires.
CREATE TABLE leases (
    credential TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Ids that may be used once: start-link nonces, launch tokens, MFA steps.
CREATE TABLE consumed (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX consumed_expiry ON consumed (expires_at);

-- Live and ended sessions.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    person TEXT NOT NULL,
    computer TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT
);

-- The audit log, a hash chain: hash = SHA-256(prev_hash, seq, at, actor, event, detail).
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
