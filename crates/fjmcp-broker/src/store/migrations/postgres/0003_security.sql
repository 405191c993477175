-- Security hardening (issue 12). 0002 is reserved for the credentials work.

-- A refresh token presented again inside the reuse grace window gets a
-- sibling successor; every successor names the token it replaced, so when
-- one sibling is used after another (the family was split between the client
-- and a thief) the grant is revoked.
ALTER TABLE refresh_tokens ADD COLUMN parent_hash TEXT;
CREATE INDEX refresh_tokens_by_parent ON refresh_tokens (parent_hash);

-- Registered clients that never obtained a grant are swept by age.
CREATE INDEX clients_by_creation ON clients (created_at);
