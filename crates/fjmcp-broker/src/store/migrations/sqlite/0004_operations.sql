-- Operations (issue 13): the "Connected apps" page's sign-in and sessions, the
-- time a grant was last used, and an index for the audit trail per user.
-- Times are integer Unix seconds; secrets only as SHA-256 hex digests (*_hash)
-- or sealed (sealed_*).

-- A sign-in to the account page in progress: the state the broker sent to
-- Forgejo, bound to the browser that started it (a cookie whose hash is kept),
-- and the broker's PKCE verifier for Forgejo, sealed. Never creates a grant.
CREATE TABLE account_logins (
    state_hash               TEXT PRIMARY KEY,
    browser_hash             TEXT NOT NULL,
    sealed_upstream_verifier BLOB NOT NULL,
    created_at               INTEGER NOT NULL,
    expires_at               INTEGER NOT NULL,
    used_at                  INTEGER           -- Forgejo came back with this state (single use)
);
CREATE INDEX account_logins_by_expiry ON account_logins (expires_at);

-- A browser signed in to the account page (the session cookie's hash). The
-- CSRF token of its forms is derived from the cookie, so it is not stored.
CREATE TABLE account_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX account_sessions_by_user ON account_sessions (user_id);
CREATE INDEX account_sessions_by_expiry ON account_sessions (expires_at);

-- When the grant's client last obtained tokens (code exchange or refresh).
ALTER TABLE grants ADD COLUMN last_used_at INTEGER;

CREATE INDEX audit_events_by_user ON audit_events (user_id, at);
