-- People who log in through OpenID Connect, their sessions, and the logins under way.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT,
    name          TEXT,
    -- What the last login's claims gave: the role, the owners (by id), and the groups read.
    role          TEXT NOT NULL,
    owner_ids     TEXT NOT NULL DEFAULT '[]',
    groups        TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    UNIQUE (provider, subject)
);

-- A session is found by the SHA-256 of its cookie; the cookie itself is never stored.
CREATE TABLE user_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    role         TEXT NOT NULL,
    owner_ids    TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX user_sessions_expiry ON user_sessions (expires_at);

-- A login sent to the provider and not back yet: taken (deleted) by its callback, once.
CREATE TABLE login_attempts (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
