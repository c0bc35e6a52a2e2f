-- Logged-out sessions. The session is an encrypted cookie, so the server keeps no list of
-- live sessions; a copy of the cookie taken before logout would otherwise stay valid until
-- it expires. Logout records the session's random id here until the cookie's own expiry.
-- Portable SQL: it applies unchanged to SQLite and PostgreSQL.

CREATE TABLE revoked_sessions (
    sid VARCHAR(32) PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL
);

CREATE INDEX ix_revoked_sessions_expiry ON revoked_sessions (expires_at);
