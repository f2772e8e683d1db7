ALTER TABLE users DROP COLUMN password_set;
DROP TABLE pending_identities;
ALTER TABLE sessions DROP COLUMN provider;
ALTER TABLE oidc_logins DROP COLUMN link_user;
UPDATE users SET role = 'user' WHERE role = 'approver';
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'admin'));
