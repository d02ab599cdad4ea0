-- ACME orders by issuance request: the URL is written as soon as the CA accepts the order, so
-- that an attempt after a restart resumes it instead of placing another (no leaked or
-- duplicated certificates).
CREATE TABLE acme_orders (
    ca_id      TEXT NOT NULL,
    request_id TEXT NOT NULL,
    order_url  TEXT NOT NULL,
    PRIMARY KEY (ca_id, request_id)
);
