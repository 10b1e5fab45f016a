-- The embedded vault. Shared credentials are sealed with the gateway's vault key; personal ones
-- with a key derived from the owner's master password (Argon2id, per-credential salt).
CREATE TABLE vault_credentials (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    computer TEXT NOT NULL,
    user_name TEXT NOT NULL,
    is_key BIGINT NOT NULL,
    salt TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX vault_by_computer ON vault_credentials (computer);

-- Each person's master password, as an Argon2id verifier (PHC string).
CREATE TABLE master_passwords (
    person TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,
    updated_at BIGINT NOT NULL
)
