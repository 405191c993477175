-- Times are integer Unix seconds. Broker-issued secrets are stored only as
-- SHA-256 hex digests (*_hash); Forgejo tokens only sealed (sealed_*).

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    -- 'registered' (RFC 7591) or 'metadata_document' (client ID metadata document).
    kind                       TEXT NOT NULL CHECK (kind IN ('registered', 'metadata_document')),
    client_name                TEXT,
    redirect_uris              TEXT NOT NULL,  -- JSON array of strings
    application_type           TEXT NOT NULL DEFAULT 'web',
    token_endpoint_auth_method TEXT NOT NULL DEFAULT 'none',
    client_secret_hash         TEXT,
    metadata                   TEXT NOT NULL,  -- the registered or fetched document, JSON
    created_at                 INTEGER NOT NULL,
    metadata_expires_at        INTEGER         -- when a fetched document must be fetched again
);

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,     -- Forgejo's subject: the numeric user id, as text
    login                TEXT NOT NULL,
    sealed_access_token  BLOB,
    sealed_refresh_token BLOB,
    access_expires_at    INTEGER,
    generation           INTEGER NOT NULL DEFAULT 0,  -- bumped on every new credential
    credential_dead_at   INTEGER,              -- Forgejo refused the refresh token
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX grants_by_user ON grants (user_id);
CREATE INDEX grants_by_client ON grants (client_id);

CREATE TABLE pending_authorizations (
    state_hash               TEXT PRIMARY KEY,  -- the state the broker sent to Forgejo
    client_id                TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_uri             TEXT NOT NULL,
    client_state             TEXT,
    code_challenge           TEXT NOT NULL,
    scopes                   TEXT NOT NULL,
    resource                 TEXT NOT NULL,
    sealed_upstream_verifier BLOB NOT NULL,
    created_at               INTEGER NOT NULL,
    expires_at               INTEGER NOT NULL,
    callback_at              INTEGER,          -- Forgejo came back with this state (single use)
    -- Set while the user looks at the consent page:
    user_id                  TEXT REFERENCES users (id) ON DELETE CASCADE,
    consent_ticket_hash      TEXT UNIQUE,      -- names this request in the consent form
    consent_csrf_hash        TEXT,             -- must match the browser's consent cookie
    used_at                  INTEGER           -- a code was issued or the request was denied
);
CREATE INDEX pending_authorizations_by_expiry ON pending_authorizations (expires_at);

CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash       TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    family_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    replaced_by_hash TEXT,
    revoked_at       INTEGER
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE sessions (
    id_hash          TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    protocol_version TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    deleted_at       INTEGER
);
CREATE INDEX sessions_by_grant ON sessions (grant_id);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    user_id   TEXT,
    client_id TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'  -- JSON, never secrets
);
CREATE INDEX audit_events_by_time ON audit_events (at);
