-- MFA enrolments waiting for their first code: the provider's new secret (sealed), shown to the
-- person through an enrolment link or the CLI; it replaces an existing enrolment only once a
-- valid code confirms it.
CREATE TABLE mfa_pending (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    provider TEXT NOT NULL,
    sealed TEXT NOT NULL,
    reveal TEXT NOT NULL,
    failures INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- MFA lockouts: a person who made too many wrong codes may not use MFA until `until`.
CREATE TABLE mfa_locks (
    person TEXT PRIMARY KEY,
    until_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
)
