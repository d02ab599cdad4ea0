-- Substring search (`q`) over subject and SANs without scanning the table: a trigram index.
-- SQLite: an FTS5 trigram table over certificates.search_text, kept in step by triggers.
CREATE VIRTUAL TABLE certificates_search USING fts5(
    search_text, content = 'certificates', content_rowid = 'pk', tokenize = 'trigram'
);
CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates BEGIN
    INSERT INTO certificates_search (rowid, search_text) VALUES (new.pk, new.search_text);
END;
CREATE TRIGGER certificates_search_delete AFTER DELETE ON certificates BEGIN
    INSERT INTO certificates_search (certificates_search, rowid, search_text)
    VALUES ('delete', old.pk, old.search_text);
END;
CREATE TRIGGER certificates_search_update AFTER UPDATE OF search_text ON certificates BEGIN
    INSERT INTO certificates_search (certificates_search, rowid, search_text)
    VALUES ('delete', old.pk, old.search_text);
    INSERT INTO certificates_search (rowid, search_text) VALUES (new.pk, new.search_text);
END;
