-- Substring search (`q`) over subject and SANs without scanning the table: a trigram index.
-- PostgreSQL: pg_trgm (a trusted extension) serves LIKE '%...%' from a GIN index.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX certificates_search_trgm ON certificates USING gin (search_text gin_trgm_ops);
