-- The dashboard's total of certificates, per owner, kept as certificates come, go and change
-- owner: on PostgreSQL a COUNT(*) visits every row (or, after a vacuum, every page of the
-- visibility map and an index): 100-260 ms at a million certificates, against a 500 ms budget
-- for the whole overview page. Each statement that adds, removes or moves certificates adds
-- one row per owner it touched, with its change; no row is updated in place, so writers never
-- wait on one another here, however long an import's transaction. The store folds the rows
-- into one per owner from time to time (`fold_certificate_count_changes`).
CREATE TABLE certificate_count_changes (
    owner_id TEXT,
    change BIGINT NOT NULL
);
CREATE INDEX certificate_count_changes_owner ON certificate_count_changes (owner_id);

CREATE FUNCTION certificate_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO certificate_count_changes (owner_id, change)
        SELECT owner_id, COUNT(*) FROM added GROUP BY owner_id;
    RETURN NULL;
END $$;

CREATE FUNCTION certificate_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO certificate_count_changes (owner_id, change)
        SELECT owner_id, -COUNT(*) FROM removed GROUP BY owner_id;
    RETURN NULL;
END $$;

-- Owner changes: set by a person, or cleared when the owner is deleted (ON DELETE SET NULL).
CREATE FUNCTION certificate_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO certificate_count_changes (owner_id, change)
        SELECT owner_id, SUM(change) FROM (
            SELECT b.owner_id, -1 AS change FROM before_change b JOIN after_change a ON a.id = b.id
                WHERE a.owner_id IS DISTINCT FROM b.owner_id
            UNION ALL
            SELECT a.owner_id, 1 AS change FROM before_change b JOIN after_change a ON a.id = b.id
                WHERE a.owner_id IS DISTINCT FROM b.owner_id
        ) moved
        GROUP BY owner_id;
    RETURN NULL;
END $$;

CREATE TRIGGER certificates_counted_insert AFTER INSERT ON certificates
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION certificate_count_added();
CREATE TRIGGER certificates_counted_delete AFTER DELETE ON certificates
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION certificate_count_removed();
CREATE TRIGGER certificates_counted_update AFTER UPDATE ON certificates
    REFERENCING OLD TABLE AS before_change NEW TABLE AS after_change
    FOR EACH STATEMENT EXECUTE FUNCTION certificate_count_moved();

INSERT INTO certificate_count_changes (owner_id, change)
    SELECT owner_id, COUNT(*) FROM certificates GROUP BY owner_id;
