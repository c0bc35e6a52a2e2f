"""The one small interface both storage backends implement."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

# Keys are made by the application: a random id plus an extension from the sniffed
# type, optionally under `pending/`. Anything else is refused before it reaches a backend.
READ_CHUNK = 1 << 20  # bytes per step of a streamed read
KEY_RE = re.compile(r"^(?:pending/)?[A-Za-z0-9_-]{16,64}(?:\.thumb)?\.[a-z0-9]{2,5}$")


class StorageError(Exception):
    """Storage could not do what was asked (unreachable, refused, timed out)."""


class ObjectChanged(StorageError):
    """The object is no longer the version a read was bound to (its ETag changed)."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class InvalidKey(ValueError):
    """A key that the application would never make."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise InvalidKey(f"invalid storage key: {key[:80]!r}")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str
    etag: str = ""  # names this version of the object: reads can be bound to it


@dataclass(frozen=True)
class PresignedPut:
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class Storage(Protocol):
    name: str
    APP_ROUTES: ClassVar[dict[str, str]]  # routes the app must serve for this backend: name → path

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, *, replace: bool = False
    ) -> int:
        """Store the chunks under `key`; return the byte count. On any failure nothing
        is left under `key` (a multipart upload is aborted, a temp file removed). An
        existing object is replaced only with `replace` (the local backend refuses
        otherwise; a bucket always replaces)."""

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def read_range(self, key: str, start: int, length: int, if_match: str = "") -> bytes:
        """Up to `length` bytes from offset `start`; negative `start` counts from the end.
        With `if_match` (an ETag from `head`), ObjectChanged if the object is another
        version now."""

    def read_stream(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        """The whole object, in chunks of at most `chunk_size` bytes, never all of it in
        memory (an export streams originals of any size this way). ObjectNotFound from the
        first step if the object is missing. A reader that stops early closes the iterator
        (`aclosing`), which releases the file or the connection."""

    async def copy(self, src: str, dst: str, content_type: str) -> None: ...

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing object succeeds."""

    async def presign_put(self, key: str, content_type: str, length: int, expires_in: int) -> PresignedPut: ...

    def public_url(self, key: str) -> str: ...

    async def clean_partials(self, older_than: datetime) -> int:
        """Remove what interrupted writes left behind (a dead process's temp files,
        incomplete multipart uploads) started before `older_than` (naive UTC); return
        how many went."""

    async def start(self) -> None:
        """What the backend needs when the app starts (the local folder makes its folders)."""

    async def check(self) -> None:
        """Raise StorageError unless the bucket or folder is reachable."""

    async def setup(self, app_origin: str, pending_expiry_days: int = 1) -> list[str]:
        """Create the bucket/folder and its rules; return what was done, one line each."""
