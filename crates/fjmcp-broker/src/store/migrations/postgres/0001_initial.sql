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
    created_at                 BIGINT NOT NULL,
    metadata_expires_at        BIGINT         -- when a fetched document must be fetched again
);

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,     -- Forgejo's subject: the numeric user id, as text
    login                TEXT NOT NULL,
    sealed_access_token  BYTEA,
    sealed_refresh_token BYTEA,
    access_expires_at    BIGINT,
    generation           BIGINT NOT NULL DEFAULT 0,  -- bumped on every new credential
    credential_dead_at   BIGINT,              -- Forgejo refused the refresh token
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
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
    sealed_upstream_verifier BYTEA NOT NULL,
    created_at               BIGINT NOT NULL,
    expires_at               BIGINT NOT NULL,
    callback_at              BIGINT,          -- Forgejo came back with this state (single use)
    -- Set while the user looks at the consent page:
    user_id                  TEXT REFERENCES users (id) ON DELETE CASCADE,
    consent_ticket_hash      TEXT UNIQUE,      -- names this request in the consent form
    consent_csrf_hash        TEXT,             -- must match the browser's consent cookie
    used_at                  BIGINT           -- a code was issued or the request was denied
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
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    token_hash       TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    family_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    replaced_by_hash TEXT,
    revoked_at       BIGINT
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE sessions (
    id_hash          TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    protocol_version TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    deleted_at       BIGINT
);
CREATE INDEX sessions_by_grant ON sessions (grant_id);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE audit_events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    user_id   TEXT,
    client_id TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'  -- JSON, never secrets
);
CREATE INDEX audit_events_by_time ON audit_events (at);
