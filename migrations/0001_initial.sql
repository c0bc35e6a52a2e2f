-- The initial schema. Portable SQL: it applies unchanged to SQLite and PostgreSQL.
-- Ids are random text made by the application (nothing sequential is ever public);
-- timestamps are naive UTC.

CREATE TABLE users (
    id VARCHAR(32) PRIMARY KEY,
    username VARCHAR(50) NOT NULL,
    username_key VARCHAR(50) NOT NULL UNIQUE,
    email VARCHAR(254) NOT NULL,
    email_key VARCHAR(254) NOT NULL UNIQUE,
    password_hash VARCHAR(100) NOT NULL,
    storage_used_bytes BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
    id VARCHAR(32) PRIMARY KEY,
    user_id VARCHAR(32) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name VARCHAR(100) NOT NULL,
    prefix VARCHAR(16) NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NULL,
    revoked_at TIMESTAMP NULL
);

CREATE INDEX ix_api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE images (
    id VARCHAR(32) PRIMARY KEY,
    owner_id VARCHAR(32) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status VARCHAR(10) NOT NULL CHECK (status IN ('pending', 'active')),
    storage_key VARCHAR(255) NOT NULL UNIQUE,
    upload_key VARCHAR(255) NULL UNIQUE,
    filename VARCHAR(255) NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    size_bytes BIGINT NOT NULL,
    width INTEGER NULL,
    height INTEGER NULL,
    delete_token_hash VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NULL
);

-- Newest-first keyset listing per owner: WHERE owner_id = ? AND status = 'active'
-- AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC.
CREATE INDEX ix_images_owner_listing ON images (owner_id, status, created_at, id);
-- The sweep: pending rows past their expiry.
CREATE INDEX ix_images_status_expiry ON images (status, expires_at);

-- Objects whose delete failed; the sweep retries them until storage confirms.
CREATE TABLE storage_orphans (
    storage_key VARCHAR(255) PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL
);

-- Login throttling: one row per failure, counted per username and per client address.
CREATE TABLE login_failures (
    id VARCHAR(32) PRIMARY KEY,
    scope VARCHAR(8) NOT NULL CHECK (scope IN ('user', 'addr')),
    subject VARCHAR(255) NOT NULL,
    failed_at TIMESTAMP NOT NULL
);

CREATE INDEX ix_login_failures_subject ON login_failures (scope, subject, failed_at);
