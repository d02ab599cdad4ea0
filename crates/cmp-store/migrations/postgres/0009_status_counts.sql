-- The dashboard's counts by status and expiry timeline read only these columns: with them in
-- the owner index, both are answered from the index (a fraction of the table, whose rows carry
-- the DER), for everyone or for a team. It replaces the index of the same leading columns, so
-- an import maintains no more indexes than before.
DROP INDEX certificates_owner_not_after;
CREATE INDEX certificates_owner_not_after
    ON certificates (owner_id, not_after, id, not_before, revoked_at);
