-- Ends of sessions at the credential source (the seed's endsession) not yet confirmed: written
-- before the first try, deleted when the source confirms or the retry rules give up. `sealed` is
-- the end request (it carries the IAM access token), sealed with the vault key.
CREATE TABLE pending_ends (
    session TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    flow TEXT NOT NULL,
    sealed TEXT NOT NULL,
    unauthorized INTEGER NOT NULL,
    others INTEGER NOT NULL,
    next_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pending_ends_due ON pending_ends (next_at)
