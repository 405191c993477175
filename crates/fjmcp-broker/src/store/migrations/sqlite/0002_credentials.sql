-- A sign-in waiting on the consent page keeps the Forgejo tokens it brought
-- (sealed) instead of storing them as the user's credential: a user who denies
-- the client gets nothing stored. The user may not exist yet, so the pending
-- row's user_id no longer references users. SQLite cannot drop a constraint:
-- the table is rebuilt (pending authorizations live ten minutes; they are kept).
CREATE TABLE pending_authorizations_v2 (
    state_hash                 TEXT PRIMARY KEY,
    client_id                  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_uri               TEXT NOT NULL,
    client_state               TEXT,
    code_challenge             TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    resource                   TEXT NOT NULL,
    sealed_upstream_verifier   BLOB NOT NULL,
    created_at                 INTEGER NOT NULL,
    expires_at                 INTEGER NOT NULL,
    callback_at                INTEGER,
    user_id                    TEXT,
    consent_ticket_hash        TEXT UNIQUE,
    consent_csrf_hash          TEXT,
    used_at                    INTEGER,
    -- The sign-in's identity and tokens, held until the user approves:
    user_login                 TEXT,
    sealed_upstream_access     BLOB,
    sealed_upstream_refresh    BLOB,
    upstream_access_expires_at INTEGER
);
INSERT INTO pending_authorizations_v2 (state_hash, client_id, redirect_uri, client_state,
    code_challenge, scopes, resource, sealed_upstream_verifier, created_at, expires_at,
    callback_at, user_id, consent_ticket_hash, consent_csrf_hash, used_at)
SELECT state_hash, client_id, redirect_uri, client_state, code_challenge, scopes, resource,
    sealed_upstream_verifier, created_at, expires_at, callback_at, user_id,
    consent_ticket_hash, consent_csrf_hash, used_at
FROM pending_authorizations;
DROP TABLE pending_authorizations;
ALTER TABLE pending_authorizations_v2 RENAME TO pending_authorizations;
CREATE INDEX pending_authorizations_by_expiry ON pending_authorizations (expires_at);
