-- Host keys seen on first use (trust on first use), per computer and host.
CREATE TABLE host_keys (
    computer TEXT NOT NULL,
    host TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (computer, host)
)
