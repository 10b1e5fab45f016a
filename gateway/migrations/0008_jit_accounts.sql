-- Just-in-time accounts the gateway made, by session: written before the provisioner is asked
-- (so an account is never in the directory without a row here, except after a crash between the
-- two, which the sweeper then removes), the account's id filled in once made, the row deleted once
-- the account is removed. The sweeper removes marked accounts whose flow is over or unknown.
CREATE TABLE jit_accounts (
    session TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    person TEXT NOT NULL,
    account TEXT,
    created_at BIGINT NOT NULL
)
