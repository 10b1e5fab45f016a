-- MFA enrolments: the provider's secret for a person, sealed with the gateway's vault key.
CREATE TABLE mfa_enrollments (
    person TEXT NOT NULL,
    provider TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (person, provider)
)
