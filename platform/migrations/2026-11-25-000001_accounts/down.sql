DROP TABLE setup_tokens;
DROP TABLE login_failures;
DROP TABLE sessions;
DROP TABLE users;
