-- Running an instance for others (issue 12): roles, disabled accounts, per-user quotas,
-- a version that ends every session and JWT, two-factor sign-in, invites, password-reset
-- links and the audit trail. Portable SQL: it applies unchanged to SQLite and PostgreSQL.
--
-- users.role: 'admin' or 'user'. users.disabled_at: NULL while the account may sign in.
-- users.auth_version: sessions and JWTs carry the value they were issued with; bumping it
-- (password change, reset) ends them all at their next request. API keys do not carry it.
-- users.quota_bytes: NULL follows DEFAULT_USER_QUOTA_MB; a number is the admin's choice
-- for this account (0 = unlimited).
-- users.totp_*: the TOTP secret, when it was turned on, and the last time step accepted
-- (a code is never accepted twice).
ALTER TABLE users ADD COLUMN role VARCHAR(10) NOT NULL DEFAULT 'user';
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP NULL;
ALTER TABLE users ADD COLUMN auth_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN quota_bytes BIGINT NULL;
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP NULL;
ALTER TABLE users ADD COLUMN totp_secret VARCHAR(64) NULL;
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMP NULL;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NULL;

-- An instance that had accounts before roles existed: its oldest account is the admin.
UPDATE users SET role = 'admin'
WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- The admin's users list: newest first, keyset on (created_at, id).
CREATE INDEX ix_users_created ON users (created_at, id);

-- Two-factor recovery codes: ten per enrolment, stored hashed, each used once.
CREATE TABLE recovery_codes (
    id VARCHAR(32) PRIMARY KEY,
    user_id VARCHAR(32) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash VARCHAR(64) NOT NULL,
    used_at TIMESTAMP NULL
);

CREATE INDEX ix_recovery_codes_user ON recovery_codes (user_id);

-- Invitation links: only the token's hash is stored. A registration through one counts a
-- use with a conditional UPDATE (uses < max_uses), so two people cannot share the last use.
CREATE TABLE invites (
    id VARCHAR(32) PRIMARY KEY,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    created_by VARCHAR(32) NULL REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    max_uses INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at TIMESTAMP NULL
);

CREATE INDEX ix_invites_created ON invites (created_at, id);

-- Password-reset links: one use, short-lived, only the token's hash is stored.
CREATE TABLE password_resets (
    token_hash VARCHAR(64) PRIMARY KEY,
    user_id VARCHAR(32) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);

CREATE INDEX ix_password_resets_user ON password_resets (user_id);

-- What admins did, to whom, when. Names are copied, so the trail outlives the accounts;
-- detail is a JSON object as text.
CREATE TABLE audit_log (
    id VARCHAR(32) PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor_id VARCHAR(32) NULL,
    actor_name VARCHAR(50) NOT NULL,
    action VARCHAR(40) NOT NULL,
    target_id VARCHAR(32) NULL,
    target_name VARCHAR(50) NULL,
    detail TEXT NOT NULL
);

CREATE INDEX ix_audit_log_at ON audit_log (at, id);
