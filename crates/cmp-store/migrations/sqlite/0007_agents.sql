-- Host agents: single-use bootstrap tokens, enrolled agents (identified by the fingerprint of
-- the client certificate the platform's agent CA gave them), where managed certificates are
-- deployed, and the jobs that carry each new version to the agents.

-- The seed table of the first migration was never written to; it is replaced.
DROP TABLE agents;

CREATE TABLE agent_bootstrap_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    labels      TEXT NOT NULL DEFAULT '{}',
    expires_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER,
    agent_id    TEXT,
    revoked_at  INTEGER
);

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    labels           TEXT NOT NULL DEFAULT '{}',
    cert_fingerprint TEXT NOT NULL UNIQUE,
    -- The certificate before the last renewal, accepted until the new one is first used (its
    -- answer may have been lost on the way to the agent).
    previous_fingerprint TEXT,
    cert_not_after   INTEGER NOT NULL,
    disabled_at      INTEGER,
    hostname         TEXT,
    version          TEXT,
    os               TEXT,
    targets          TEXT NOT NULL DEFAULT '[]',
    last_seen_at     INTEGER,
    enrolled_at      INTEGER NOT NULL,
    enrolled_with    TEXT NOT NULL
);

CREATE TABLE deployments (
    managed_certificate_id TEXT NOT NULL REFERENCES managed_certificates(id) ON DELETE CASCADE,
    agent_id               TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    target                 TEXT NOT NULL,
    state                  TEXT NOT NULL,
    certificate_id         TEXT,
    served_fingerprint     TEXT,
    verified_at            INTEGER,
    failed_step            TEXT,
    last_error             TEXT,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (managed_certificate_id, agent_id, target)
);
CREATE INDEX deployments_agent ON deployments (agent_id);

CREATE TABLE agent_jobs (
    id                     TEXT PRIMARY KEY,
    agent_id               TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    target                 TEXT NOT NULL,
    kind                   TEXT NOT NULL,
    managed_certificate_id TEXT REFERENCES managed_certificates(id) ON DELETE CASCADE,
    certificate_id         TEXT,
    state                  TEXT NOT NULL,
    attempts               INTEGER NOT NULL DEFAULT 0,
    not_before             INTEGER NOT NULL,
    lease_until            INTEGER,
    step                   TEXT,
    result                 TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX agent_jobs_due ON agent_jobs (agent_id, state, not_before);
CREATE INDEX agent_jobs_queued ON agent_jobs (state, not_before);
