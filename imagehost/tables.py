"""SQLAlchemy Core tables. The migrations in `migrations/` are the schema's truth;
`tests/test_schema.py` checks that these match what the migrations create."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(50), nullable=False),
    Column("username_key", String(50), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False, unique=True),
    Column("password_hash", String(100), nullable=False),
    Column("storage_used_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("image_count", Integer, nullable=False, server_default="0"),  # active images (0003)
    # 0006: roles, disabled accounts, per-user quotas, session/JWT version, TOTP
    Column("role", String(10), nullable=False, server_default="user"),
    Column("disabled_at", DateTime, nullable=True),
    Column("auth_version", Integer, nullable=False, server_default="1"),
    Column("quota_bytes", BigInteger, nullable=True),  # NULL: DEFAULT_USER_QUOTA_MB; 0: unlimited
    Column("last_login_at", DateTime, nullable=True),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_enabled_at", DateTime, nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    # embed settings and default expiry (0008_sharing)
    Column("embed_title", String(200), nullable=True),
    Column("embed_description", String(500), nullable=True),
    Column("embed_site_name", String(100), nullable=True),
    Column("embed_color", String(7), nullable=True),
    Column("default_expiry_seconds", Integer, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("last_used_at", DateTime, nullable=True),
    Column("revoked_at", DateTime, nullable=True),
)

images = Table(
    "images",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(10), nullable=False),
    Column("storage_key", String(255), nullable=False, unique=True),
    Column("upload_key", String(255), nullable=True, unique=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("delete_token_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=True),
    Column("thumb_key", String(255), nullable=True, unique=True),
    Column("display_key", String(255), nullable=True, unique=True),
    Column("thumb_width", Integer, nullable=True),
    Column("thumb_height", Integer, nullable=True),
    Column("animated", Boolean, nullable=False, default=False),
    Column("pipeline_version", Integer, nullable=False, default=0),
    Column("pipeline_attempts", Integer, nullable=False, default=0),
    Column("expire_after_seconds", Integer, nullable=True),
    Column("display_width", Integer, nullable=True),  # the display size's own (0008_sharing)
    Column("display_height", Integer, nullable=True),
)

storage_orphans = Table(
    "storage_orphans",
    metadata,
    Column("storage_key", String(255), primary_key=True),
    Column("created_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scope", String(8), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("failed_at", DateTime, nullable=False),
)

revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("sid", String(32), primary_key=True),
    Column("expires_at", DateTime, nullable=False),
)

# 0006 ---------------------------------------------------------------------- accounts

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", DateTime, nullable=True),
)

invites = Table(
    "invites",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("revoked_at", DateTime, nullable=True),
)

password_resets = Table(
    "password_resets",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("used_at", DateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("actor_id", String(32), nullable=True),
    Column("actor_name", String(50), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target_id", String(32), nullable=True),
    Column("target_name", String(50), nullable=True),
    Column("detail", Text, nullable=False),
)
