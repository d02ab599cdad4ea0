-- No query looks certificates up by serial number (revocation and OCSP read the CA ledger):
-- the index only cost every import one more B-tree insert per certificate.
DROP INDEX IF EXISTS certificates_serial;
