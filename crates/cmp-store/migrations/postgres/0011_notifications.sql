-- Notifications: rules (who hears what, and how), the marks that make each notice fire once,
-- and deliveries (one message each: a notice, or a digest of several) with their attempts.

CREATE TABLE notification_rules (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- NULL: every owner's certificates, and the platform's own events.
    owner_id    TEXT REFERENCES owners(id) ON DELETE CASCADE,
    -- JSON: the events listened to.
    events      TEXT NOT NULL,
    -- JSON: the channel (email or webhook) without its secret, which is in the secret store.
    channel     TEXT NOT NULL,
    has_secret  INTEGER NOT NULL,
    -- JSON: days before expiry.
    thresholds  TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A notice given: (rule, event, subject, level) fires once, on every replica. `level` is the
-- threshold in days for expiry, 0 otherwise; the subject names the episode (a certificate, a
-- request, a version of a managed certificate, an agent's last contact).
CREATE TABLE notification_marks (
    rule_id     TEXT NOT NULL REFERENCES notification_rules(id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    level       BIGINT NOT NULL,
    delivery_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (rule_id, event, subject, level)
);

CREATE TABLE notification_deliveries (
    id              TEXT PRIMARY KEY,
    rule_id         TEXT NOT NULL REFERENCES notification_rules(id) ON DELETE CASCADE,
    owner_id        TEXT,
    -- JSON: the notices this message carries.
    notices         TEXT NOT NULL,
    notice_count    BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_deliveries_rule ON notification_deliveries (rule_id, created_at);
CREATE INDEX notification_deliveries_created ON notification_deliveries (created_at, id);

-- A managed certificate's open renewal request (overdue renewals; the scheduler's newest
-- request of a managed certificate).
CREATE INDEX issuance_requests_managed ON issuance_requests (managed_certificate_id, created_at);
