-- No query looks certificates up by serial number (revocation and OCSP read the CA ledger):
-- the index only cost every import one more B-tree insert per certificate.
DROP INDEX IF EXISTS certificates_serial;

-- The trigram index keeps which rows hold each trigram, not where in them (detail=none): half
-- the size, and 5 instead of 8 microseconds per row written (measured). A search asks for each
-- trigram of its term and checks the whole term on the rows found, so it needs no positions.
-- The triggers of 0002 keep it in step as before.
DROP TABLE certificates_search;
CREATE VIRTUAL TABLE certificates_search USING fts5(
    search_text, content = 'certificates', content_rowid = 'pk', tokenize = 'trigram',
    detail = none
);
INSERT INTO certificates_search (certificates_search) VALUES ('rebuild');
