"""Settings, read from the environment and `.env`.

Every setting has a default that makes `make run` work with nothing set. A bad
value raises `ConfigError` with one line naming the variable; the CLI prints
that line and exits 1.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif")
# Types a browser could run as a page or script: never accepted, whatever is configured.
NEVER_ALLOWED = {"image/svg+xml", "text/html", "application/xhtml+xml", "application/xml", "text/xml"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}
# Bind addresses that mean "every interface": a browser on this machine reaches them as localhost.
ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def default_base_url(host: str, port: int) -> str:
    """The address a browser on this machine opens for a server bound to `host:port`:
    the default PUBLIC_BASE_URL, so every URL the app gives out points where it listens."""
    host = host.strip()
    if host in ANY_ADDRESS:
        host = "localhost"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = "sqlite+aiosqlite:///./data/imagehost.db"
    storage_backend: Literal["local", "s3"] = "local"
    local_storage_path: Path = Path("./data/images")
    r2_account_id: str = ""
    r2_access_key_id: str = ""
    r2_secret_access_key: str = ""
    r2_bucket_name: str = ""
    r2_public_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "auto"
    public_base_url: str = ""  # default: where HOST/PORT listen (`default_base_url`)
    secret_key: str = ""
    jwt_expiration_minutes: int = Field(7 * 24 * 60, ge=1)
    max_upload_mb: float = Field(25, gt=0)
    max_user_storage_mb: float = Field(0, ge=0)  # before DEFAULT_USER_QUOTA_MB: its alias when set
    default_user_quota_mb: float = Field(1024, ge=0)  # accounts without their own quota; 0 = unlimited
    max_image_pixels: int = Field(100_000_000, ge=1)
    strip_metadata: bool = True
    expiry_min_seconds: int = Field(60, ge=1)  # the shortest lifetime an upload may ask for
    expiry_max_seconds: int = Field(365 * 24 * 3600, ge=60)  # the longest
    derivative_workers: int = Field(0, ge=0)  # libvips worker processes; 0 = one per core
    derivative_memory_mb: int = Field(1024, ge=64)  # per worker process
    derivative_timeout_seconds: float = Field(30, gt=0)  # per image
    allowed_image_types: Annotated[tuple[str, ...], NoDecode] = DEFAULT_TYPES
    registration_open: bool = True  # before REGISTRATION_MODE: true = open, false = closed, when set
    registration_mode: Literal["open", "invite", "closed"] = "invite"
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False
    gc_interval_seconds: float = Field(600, ge=0)
    pending_upload_expiry_seconds: int = Field(900, ge=30, le=7 * 24 * 3600)
    s3_multipart_threshold_mb: float = Field(5, ge=5)  # S3/R2's smallest part; parts are held in memory
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    workers: int = Field(1, ge=0)  # `serve` worker processes on one port; 0 = one per core
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"  # auto: uvloop when installed
    metrics_token: str = ""  # GET /metrics with `Authorization: Bearer <token>`; empty: loopback/proxies only
    _base_url_derived: bool = PrivateAttr(False)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("allowed_image_types", mode="before")
    @classmethod
    def _types(cls, v: object) -> tuple[str, ...]:
        items = [t.strip().lower() for t in v.split(",")] if isinstance(v, str) else list(cast("list[str]", v))
        items = [t for t in items if t]
        if not items:
            raise ValueError("must name at least one type")
        for t in items:
            if t in NEVER_ALLOWED or not t.startswith("image/"):
                raise ValueError(f"{t!r} is not an image type that is safe to serve")
            if t not in DEFAULT_TYPES:
                raise ValueError(f"{t!r} is not supported (supported: {', '.join(DEFAULT_TYPES)})")
        return tuple(dict.fromkeys(items))

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, v: object) -> tuple[str, ...]:
        items = [t.strip() for t in v.split(",")] if isinstance(v, str) else list(cast("list[str]", v))
        items = [t for t in items if t]
        for t in items:
            ipaddress.ip_network(t, strict=False)  # raises ValueError with a clear message
        return tuple(items)

    @field_validator("public_base_url", "r2_public_url", "s3_endpoint_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme.startswith(("postgres", "postgresql")):
            return "postgresql+psycopg://" + v.split("://", 1)[1]
        if scheme in ("sqlite", "sqlite+aiosqlite"):
            return "sqlite+aiosqlite://" + v.split("://", 1)[1]
        raise ValueError("must be a postgresql:// or sqlite:// URL")

    @model_validator(mode="after")
    def _base_url(self) -> Settings:
        if not self.public_base_url:
            self.public_base_url = default_base_url(self.host, self.port)
            self._base_url_derived = True
        return self

    @model_validator(mode="after")
    def _storage(self) -> Settings:
        if self.storage_backend == "s3":
            missing = [
                name
                for name in ("r2_access_key_id", "r2_secret_access_key", "r2_bucket_name", "r2_public_url")
                if not getattr(self, name)
            ]
            if not self.s3_endpoint_url and not self.r2_account_id:
                missing.insert(0, "r2_account_id")
            if missing:
                raise ValueError(f"{missing[0].upper()} is required when STORAGE_BACKEND=s3")
        return self

    # Derived values -------------------------------------------------------

    @property
    def is_production(self) -> bool:
        """S3, or a PUBLIC_BASE_URL someone chose that is not this machine. An address
        derived from HOST (say a LAN address) keeps the embedded defaults."""
        host = urlsplit(self.public_base_url).hostname or ""
        return self.storage_backend == "s3" or (host not in LOCAL_HOSTS and not self._base_url_derived)

    @property
    def base_url_derived(self) -> bool:
        """PUBLIC_BASE_URL was not set: it follows HOST and PORT."""
        return self._base_url_derived

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def default_quota_bytes(self) -> int:
        """The quota of an account the admin gave none of its own (0 = unlimited):
        DEFAULT_USER_QUOTA_MB, or MAX_USER_STORAGE_MB where only that older name is set."""
        fields = self.model_fields_set
        mb = self.default_user_quota_mb
        if "max_user_storage_mb" in fields and "default_user_quota_mb" not in fields:
            mb = self.max_user_storage_mb
        return int(mb * 1024 * 1024)

    @property
    def registration(self) -> str:
        """open | invite | closed: REGISTRATION_MODE, or REGISTRATION_OPEN (true = open,
        false = closed) where only that older name is set. The first account of an empty
        instance may always register."""
        fields = self.model_fields_set
        if "registration_open" in fields and "registration_mode" not in fields:
            return "open" if self.registration_open else "closed"
        return self.registration_mode

    @property
    def s3_endpoint(self) -> str:
        return self.s3_endpoint_url or f"https://{self.r2_account_id}.r2.cloudflarestorage.com"

    @property
    def cookie_secure(self) -> bool:
        return self.public_base_url.startswith("https://")

    @property
    def yoyo_url(self) -> str:
        """The same database for yoyo's synchronous backends."""
        if self.is_sqlite:
            return "sqlite://" + self.database_url.split("://", 1)[1]
        return self.database_url  # postgresql+psycopg:// is a yoyo backend too


def _field_env_name(loc: tuple[Any, ...]) -> str:
    return str(loc[0]).upper() if loc else "configuration"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning any validation failure into one clear line."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            raise ConfigError(f"{_field_env_name(err['loc'])}: {msg}") from None
        raise ConfigError(msg) from None
    return ensure_secret_key(settings)


def ensure_secret_key(settings: Settings) -> Settings:
    if settings.secret_key:
        if len(settings.secret_key.encode()) < 32:
            raise ConfigError("SECRET_KEY: must be at least 32 bytes")
        return settings
    if settings.is_production:
        raise ConfigError("SECRET_KEY: required (at least 32 bytes) when using S3 storage or a public PUBLIC_BASE_URL")
    path = settings.data_dir / "secret_key"
    try:
        if path.exists():
            key = path.read_text().strip()
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            path.touch(mode=0o600)
            path.write_text(key + "\n")
    except OSError as exc:
        raise ConfigError(f"SECRET_KEY: cannot read or create {path}: {exc.strerror}") from None
    if len(key.encode()) < 32:
        raise ConfigError(f"SECRET_KEY: the key in {path} is shorter than 32 bytes")
    return settings.model_copy(update={"secret_key": key})
