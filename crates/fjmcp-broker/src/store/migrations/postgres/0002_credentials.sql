-- A sign-in waiting on the consent page keeps the Forgejo tokens it brought
-- (sealed) instead of storing them as the user's credential: a user who denies
-- the client gets nothing stored. The user may not exist yet, so the pending
-- row's user_id no longer references users.
ALTER TABLE pending_authorizations DROP CONSTRAINT IF EXISTS pending_authorizations_user_id_fkey;
ALTER TABLE pending_authorizations ADD COLUMN user_login TEXT;
ALTER TABLE pending_authorizations ADD COLUMN sealed_upstream_access BYTEA;
ALTER TABLE pending_authorizations ADD COLUMN sealed_upstream_refresh BYTEA;
ALTER TABLE pending_authorizations ADD COLUMN upstream_access_expires_at BIGINT;
