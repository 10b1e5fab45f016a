-- Failed attempts (master passwords, MFA codes) per person, for limits across flows and nodes.
CREATE TABLE attempts (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX attempts_by_subject ON attempts (kind, subject, at)
