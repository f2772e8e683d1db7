-- Approvers review members' requests for sites; they have no other admin right.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'approver', 'admin'));

-- A sign-in started by someone already signed in, to link the provider's person to their own
-- account: the callback must come from that same account's session.
ALTER TABLE oidc_logins ADD COLUMN link_user BIGINT REFERENCES users (id) ON DELETE CASCADE;

-- The provider whose sign-in made a session, so that signing out may offer to sign out there too.
ALTER TABLE sessions ADD COLUMN provider TEXT;

-- A provider's person whose email address an existing account already has: never linked
-- silently (the address is the provider's word, and anyone may have typed it there). They wait
-- here for an admin to link them, or for the account's owner to sign in and link them.
CREATE TABLE pending_identities (
    issuer             TEXT        NOT NULL,
    subject            TEXT        NOT NULL,
    provider           TEXT        NOT NULL,
    user_id            BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    preferred_username TEXT        NOT NULL DEFAULT '',
    name               TEXT        NOT NULL DEFAULT '',
    email              TEXT        NOT NULL,
    seen_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX pending_identities_user_id ON pending_identities (user_id);

-- Whether the account's owner knows its password: an account made at a first sign-in through a
-- provider has one nobody knows, so its last link to a provider is its only way in.
ALTER TABLE users ADD COLUMN password_set BOOLEAN NOT NULL DEFAULT TRUE;
-- Every account linked so far was made at a first sign-in.
UPDATE users SET password_set = FALSE WHERE id IN (SELECT user_id FROM user_identities);
