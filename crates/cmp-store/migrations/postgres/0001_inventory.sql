-- Foundation: owners, certificates, locations, tokens, the audit chain, and the seed tables
-- Booleans are 0/1 integers on both databases, so one code path reads them.
-- of the original design that later issues fill in. Times are Unix seconds unless named *_us.

CREATE TABLE owners (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    email       TEXT,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE certificates (
    id                  TEXT PRIMARY KEY,
    fingerprint_sha256  TEXT NOT NULL UNIQUE,
    serial_number       TEXT NOT NULL,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    common_name         TEXT,
    not_before          BIGINT NOT NULL,
    not_after           BIGINT NOT NULL,
    sans                TEXT NOT NULL,
    search_text         TEXT NOT NULL,
    key_type            TEXT NOT NULL,
    key_bits            BIGINT,
    key_curve           TEXT,
    signature_algorithm TEXT NOT NULL,
    is_ca               BIGINT NOT NULL,
    self_signed         BIGINT NOT NULL,
    finding_flags       BIGINT NOT NULL,
    owner_id            TEXT REFERENCES owners(id) ON DELETE SET NULL,
    labels              TEXT NOT NULL DEFAULT '{}',
    source              TEXT NOT NULL,
    der                 BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX certificates_not_after ON certificates (not_after, id);
CREATE INDEX certificates_owner_not_after ON certificates (owner_id, not_after, id);
CREATE INDEX certificates_issuer_not_after ON certificates (issuer, not_after, id);
CREATE INDEX certificates_created_at ON certificates (created_at, id);
CREATE INDEX certificates_serial ON certificates (serial_number);
CREATE INDEX certificates_key_type ON certificates (key_type, not_after, id);

CREATE TABLE locations (
    id             TEXT PRIMARY KEY,
    certificate_id TEXT NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    address        TEXT NOT NULL,
    first_seen     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL,
    UNIQUE (certificate_id, kind, address)
);
CREATE INDEX locations_address ON locations (kind, address);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    owner_ids    TEXT NOT NULL DEFAULT '[]',
    expires_at   BIGINT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE audit_logs (
    seq          BIGINT PRIMARY KEY,
    occurred_us  BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    request_id   TEXT,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_logs_entity ON audit_logs (entity_type, entity_id, seq);
CREATE INDEX audit_logs_actor ON audit_logs (actor, seq);
CREATE INDEX audit_logs_action ON audit_logs (action, seq);
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only';
END;
$$;
CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs
FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

-- The chain head: one row, updated first in every audited transaction, which serializes appends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Seed tables of the original design; the issuance, adapter and agent issues extend them.
CREATE TABLE adapters (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    config     TEXT NOT NULL DEFAULT '{}',
    enabled    BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    labels         TEXT NOT NULL DEFAULT '{}',
    version        TEXT,
    last_heartbeat BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE issuance_requests (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    owner_id        TEXT REFERENCES owners(id) ON DELETE SET NULL,
    adapter_id      TEXT REFERENCES adapters(id),
    certificate_id  TEXT REFERENCES certificates(id) ON DELETE SET NULL,
    requested_by    TEXT NOT NULL,
    idempotency_key TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX issuance_requests_state ON issuance_requests (state, created_at);
