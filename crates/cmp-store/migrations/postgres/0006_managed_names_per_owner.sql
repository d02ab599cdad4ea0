-- Managed-certificate names are unique per owner, not across the platform: two teams may each
-- have a `web`, and a clash no longer tells one team what another has named its certificates.
-- The unique constraint's index serves lookups by owner and name, as the old index did.
ALTER TABLE managed_certificates DROP CONSTRAINT managed_certificates_name_key;
DROP INDEX managed_certificates_owner;
ALTER TABLE managed_certificates
    ADD CONSTRAINT managed_certificates_owner_name_key UNIQUE (owner_id, name);
