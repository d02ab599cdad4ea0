-- The chain each issued certificate came with, as its CA returned it: issuing CA first, one row
-- per certificate above the leaf, each one an inventory certificate. Downloads (PEM chain,
-- PKCS#12) are built from here, whatever the adapter. A leaf's rows go with the leaf; a CA
-- certificate that some chain names cannot be deleted (the store answers a conflict first, the
-- foreign key is the backstop).
CREATE TABLE certificate_chains (
    certificate_id       TEXT NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    position             INTEGER NOT NULL,
    chain_certificate_id TEXT NOT NULL REFERENCES certificates(id),
    PRIMARY KEY (certificate_id, position)
);
CREATE INDEX certificate_chains_member ON certificate_chains (chain_certificate_id);
