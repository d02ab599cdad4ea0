-- Network discovery: scan definitions, their runs, and what an endpoint said about the
-- certificate it serves (its findings and handshake facts, and when it stopped serving it).

CREATE TABLE scans (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    -- JSON: targets, ports, SNI names, limits (the API's ScanSpec).
    spec           TEXT NOT NULL,
    owner_id       TEXT REFERENCES owners(id) ON DELETE SET NULL,
    interval_secs  BIGINT,
    cron           TEXT,
    enabled        INTEGER NOT NULL,
    -- When the scheduler starts it next; NULL: only by hand.
    next_run_at    BIGINT,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX scans_next_run_at ON scans (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE scan_runs (
    id               TEXT PRIMARY KEY,
    scan_id          TEXT NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    state            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    started_by       TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    -- Written with each batch of results; a running run whose heartbeat stopped was
    -- interrupted (its process died) and is closed by the next scheduler pass.
    heartbeat_at     BIGINT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    -- JSON: the counts and the first errors (the API's ScanProgress).
    progress         TEXT NOT NULL,
    detail           TEXT
);
-- One run per scan at a time, on every replica.
CREATE UNIQUE INDEX scan_runs_one_running ON scan_runs (scan_id) WHERE state = 'running';
CREATE INDEX scan_runs_scan ON scan_runs (scan_id, started_at);

ALTER TABLE locations ADD COLUMN gone_at BIGINT;
ALTER TABLE locations ADD COLUMN finding_flags BIGINT NOT NULL DEFAULT 0;
-- JSON: the handshake facts of an endpoint location.
ALTER TABLE locations ADD COLUMN details TEXT;
