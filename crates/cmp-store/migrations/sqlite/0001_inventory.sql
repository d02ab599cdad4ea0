-- Foundation: owners, certificates, locations, tokens, the audit chain, and the seed tables
-- Booleans are 0/1 integers on both databases, so one code path reads them.
-- of the original design that later issues fill in. Times are Unix seconds unless named *_us.

CREATE TABLE owners (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    email       TEXT,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- pk: an integer rowid alias, stable across VACUUM, for the full-text index (SQLite only).
CREATE TABLE certificates (
    pk                  INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    fingerprint_sha256  TEXT NOT NULL UNIQUE,
    serial_number       TEXT NOT NULL,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    common_name         TEXT,
    not_before          INTEGER NOT NULL,
    not_after           INTEGER NOT NULL,
    sans                TEXT NOT NULL,
    search_text         TEXT NOT NULL,
    key_type            TEXT NOT NULL,
    key_bits            INTEGER,
    key_curve           TEXT,
    signature_algorithm TEXT NOT NULL,
    is_ca               INTEGER NOT NULL,
    self_signed         INTEGER NOT NULL,
    finding_flags       INTEGER NOT NULL,
    owner_id            TEXT REFERENCES owners(id) ON DELETE SET NULL,
    labels              TEXT NOT NULL DEFAULT '{}',
    source              TEXT NOT NULL,
    der                 BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
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
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    UNIQUE (certificate_id, kind, address)
);
CREATE INDEX locations_address ON locations (kind, address);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    owner_ids    TEXT NOT NULL DEFAULT '[]',
    expires_at   INTEGER,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE audit_logs (
    seq          INTEGER PRIMARY KEY,
    occurred_us  INTEGER NOT NULL,
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
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END;

-- The chain head: one row, updated first in every audited transaction, which serializes appends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
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
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    labels         TEXT NOT NULL DEFAULT '{}',
    version        TEXT,
    last_heartbeat INTEGER,
    created_at     INTEGER NOT NULL
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
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX issuance_requests_state ON issuance_requests (state, created_at);
