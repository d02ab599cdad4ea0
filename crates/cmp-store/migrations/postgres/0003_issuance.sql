-- Issuance: requests, managed certificates, policies, idempotency keys, and the builtin CA's
-- material and ledger. Issued certificates live in `certificates` with their links.

-- The seed table was never written before this version: replace it with its full shape.
DROP TABLE issuance_requests;

ALTER TABLE certificates ADD COLUMN managed_certificate_id TEXT;
ALTER TABLE certificates ADD COLUMN adapter_id TEXT;
-- Name of the private key in the secret store, for keys the server generated (never the key).
ALTER TABLE certificates ADD COLUMN key_secret TEXT;
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT;
CREATE INDEX certificates_managed ON certificates (managed_certificate_id, not_after);

-- Credentials of an adapter are in the secret store; this only says that there are some.
ALTER TABLE adapters ADD COLUMN has_credentials BIGINT NOT NULL DEFAULT 0;

-- The builtin CA's certificates (its keys are in the secret store).
CREATE TABLE ca_material (
    adapter_id  TEXT PRIMARY KEY REFERENCES adapters(id) ON DELETE CASCADE,
    root_der    BYTEA NOT NULL,
    issuing_der BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every serial the builtin CA signed: idempotency by request, OCSP status, CRL content.
CREATE TABLE ca_ledger (
    ca_id             TEXT NOT NULL,
    serial            TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    der               BYTEA NOT NULL,
    not_after         BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason TEXT,
    PRIMARY KEY (ca_id, serial),
    UNIQUE (ca_id, request_id)
);
CREATE INDEX ca_ledger_revoked ON ca_ledger (ca_id, revoked_at);

CREATE TABLE policies (
    owner_id   TEXT PRIMARY KEY REFERENCES owners(id) ON DELETE CASCADE,
    rules      TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE managed_certificates (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    owner_id               TEXT REFERENCES owners(id) ON DELETE SET NULL,
    adapter_id             TEXT NOT NULL REFERENCES adapters(id),
    spec                   TEXT NOT NULL,
    csr                    BYTEA,
    current_certificate_id TEXT REFERENCES certificates(id) ON DELETE SET NULL,
    renewal_failures       BIGINT NOT NULL DEFAULT 0,
    last_failure_at        BIGINT,
    last_error             TEXT,
    next_check_at          BIGINT NOT NULL,
    decision               TEXT,
    created_by             TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX managed_certificates_next_check ON managed_certificates (next_check_at);
CREATE INDEX managed_certificates_owner ON managed_certificates (owner_id, name);

CREATE TABLE issuance_requests (
    id                     TEXT PRIMARY KEY,
    kind                   TEXT NOT NULL,
    state                  TEXT NOT NULL,
    owner_id               TEXT REFERENCES owners(id) ON DELETE SET NULL,
    adapter_id             TEXT NOT NULL REFERENCES adapters(id),
    managed_certificate_id TEXT REFERENCES managed_certificates(id) ON DELETE SET NULL,
    certificate_id         TEXT REFERENCES certificates(id) ON DELETE SET NULL,
    spec                   TEXT NOT NULL,
    csr                    BYTEA,
    key_secret             TEXT,
    requested_by           TEXT NOT NULL,
    decided_by             TEXT,
    decision_comment       TEXT,
    attempts               BIGINT NOT NULL DEFAULT 0,
    last_error             TEXT,
    next_attempt_at        BIGINT,
    lease_until            BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX issuance_requests_state ON issuance_requests (state, next_attempt_at);
CREATE INDEX issuance_requests_created ON issuance_requests (created_at, id);
CREATE INDEX issuance_requests_owner ON issuance_requests (owner_id, created_at, id);

-- A creating POST's Idempotency-Key: a retry with the same key and body gets the same resource.
CREATE TABLE idempotency_keys (
    caller      TEXT NOT NULL,
    key         TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
