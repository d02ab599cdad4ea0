-- The dashboard's counts by status and expiry timeline, answered from indexes (a fraction of
-- the table, whose rows carry the DER) and mostly from ranges of them, for everyone or a team:
-- - the two expiry indexes also hold what a status needs (owner, not_before, revoked_at), so
--   that "expired", "expiring" and the weeks ahead are index-only range counts; they replace
--   the indexes of the same leading columns, so an import maintains no more B-trees;
-- - revoked and not-yet-valid certificates are few: partial indexes hold only them (an
--   import of valid certificates adds nothing to either). A certificate not valid yet now was
--   not valid yet when it was stored either, so `not_before > created_at` holds every one.
DROP INDEX certificates_not_after;
CREATE INDEX certificates_not_after
    ON certificates (not_after, id, owner_id, not_before, revoked_at);
DROP INDEX certificates_owner_not_after;
CREATE INDEX certificates_owner_not_after
    ON certificates (owner_id, not_after, id, not_before, revoked_at);
CREATE INDEX certificates_revoked ON certificates (owner_id) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_not_valid_yet
    ON certificates (owner_id, not_before) WHERE not_before > created_at;
