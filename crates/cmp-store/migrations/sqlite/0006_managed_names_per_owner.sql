-- Managed-certificate names are unique per owner, not across the platform: two teams may each
-- have a `web`, and a clash no longer tells one team what another has named its certificates.
--
-- SQLite cannot change a table's constraints in place: the table is rebuilt. Dropping the old
-- table deletes its rows first, and with foreign keys on (PRAGMA foreign_keys cannot be turned
-- off inside the migration's transaction) that sets issuance_requests.managed_certificate_id
-- to NULL: the links are kept aside and put back once the new table has the rows.
-- certificates.managed_certificate_id has no foreign key and is not touched.
-- If a migration adds a column to managed_certificates, it must be added here too.

CREATE TEMP TABLE managed_links AS
    SELECT id, managed_certificate_id FROM issuance_requests
    WHERE managed_certificate_id IS NOT NULL;

CREATE TABLE managed_certificates_new (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    owner_id               TEXT REFERENCES owners(id) ON DELETE SET NULL,
    adapter_id             TEXT NOT NULL REFERENCES adapters(id),
    spec                   TEXT NOT NULL,
    csr                    BLOB,
    current_certificate_id TEXT REFERENCES certificates(id) ON DELETE SET NULL,
    renewal_failures       INTEGER NOT NULL DEFAULT 0,
    last_failure_at        INTEGER,
    last_error             TEXT,
    next_check_at          INTEGER NOT NULL,
    decision               TEXT,
    created_by             TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    -- Also serves lookups by owner and name (the old managed_certificates_owner index).
    UNIQUE (owner_id, name)
);

INSERT INTO managed_certificates_new (id, name, owner_id, adapter_id, spec, csr,
    current_certificate_id, renewal_failures, last_failure_at, last_error, next_check_at,
    decision, created_by, created_at, updated_at)
SELECT id, name, owner_id, adapter_id, spec, csr, current_certificate_id, renewal_failures,
    last_failure_at, last_error, next_check_at, decision, created_by, created_at, updated_at
FROM managed_certificates;

DROP TABLE managed_certificates;
ALTER TABLE managed_certificates_new RENAME TO managed_certificates;
CREATE INDEX managed_certificates_next_check ON managed_certificates (next_check_at);

UPDATE issuance_requests
SET managed_certificate_id =
    (SELECT l.managed_certificate_id FROM managed_links l WHERE l.id = issuance_requests.id)
WHERE id IN (SELECT id FROM managed_links);

DROP TABLE managed_links;
