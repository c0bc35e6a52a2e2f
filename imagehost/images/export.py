"""Export: a person's originals and a JSON file of their metadata, as one streamed ZIP.

`zip_response(request, env, owner, rows, archive_name)` is the whole of it, for any
list of one owner's images (`GET /api/export` gives it all of the caller's; an album's
download can give it the album's).

Memory. The archive is written with zipstream-ng, uncompressed (ZIP_STORED: images are
compressed already), so its exact length is known before the first byte and is sent as
Content-Length: the browser shows its own progress and the client can tell a complete
download from a cut one. Each original is read from storage a chunk at a time
(`Storage.read_stream`) and written to the socket before the next chunk is read, with
aiohttp's backpressure in between; what is held is one chunk plus, per image, its row
and its ZIP directory entry (about 2 KB): flat in the bytes exported, linear in
the number of images.

zipstream-ng pulls an entry's data from a plain (synchronous) iterable, and storage is
read asynchronously. The bridge keeps everything on the event loop, without threads: an
entry's iterable answers "I need data" by yielding an empty chunk, which passes through
the ZIP writer unchanged (no bytes, no change to the CRC); the loop below sees it,
awaits the next chunk from storage, and resumes the writer, which then takes that chunk.

An image that goes while the archive is written. The list is taken at the start and
its sizes are promised in Content-Length and the ZIP's directory, so a missing entry
cannot be left out and nothing can be put in its place without breaking that promise.
An entry that has begun is finished whole (an open file, or a GET under way, outlives a
delete); an object found missing (or of another size than its row says) when its entry
begins ends the response there: the connection is closed before the promised length, so
the client sees a failed download, never a silently wrong archive, and a retry takes a
fresh list.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import suppress
from datetime import datetime
from urllib.parse import quote

import orjson
from aiohttp import hdrs, web
from loguru import logger
from zipstream import ZipStream

from ..accounts.store import User
from ..db import json_time, utcnow
from ..env import Env
from ..storage import Storage, StorageError
from ..typedefs import REQUEST_ID
from .formats import EXTENSIONS
from .service import CHUNK, image_json
from .store import ACTIVE, ImageRow

METADATA_NAME = "metadata.json"  # at the top; the originals are under IMAGES_DIR, so no name meets it
IMAGES_DIR = "images/"
WRITE_BATCH = 64 * 1024  # bytes gathered before a write to the socket
MAX_NAME = 200  # characters of an entry's stem: far from every file system's limit

# Characters Windows will not have in a file name, and the names it reserves.
_FORBIDDEN = set('<>:"/\\|?*')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_SAME_EXT = {"jpg": {"jpg", "jpeg", "jpe", "jfif"}}


class ExportBroken(Exception):
    """An object is not what the export promised (gone, or another size): the response ends."""


# --------------------------------------------------------------------------- names


def _component(text: str) -> str:
    """One path component of `text`: its last, with no control, format or reserved
    characters, no leading or trailing dots and spaces."""
    name = unicodedata.normalize("NFC", text).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if ch in _FORBIDDEN else ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " "
    )
    return " ".join(name.split()).strip(". ")


def _not_reserved(stem: str) -> str:
    return "_" + stem if stem.split(".", 1)[0].upper() in _RESERVED else stem


def safe_name(filename: str, content_type: str) -> str:
    """A file name that is safe to create on any system: one path component (never `..`,
    never absolute), no control or reserved characters, not a reserved device name, and
    ending with the extension of the image's verified type."""
    name = _component(filename)
    ext = EXTENSIONS.get(content_type, "bin")
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix.lower() not in _SAME_EXT.get(ext, {ext}):
        stem, suffix = name, ext
    stem = stem[:MAX_NAME].strip(". ") or "image"
    return f"{_not_reserved(stem)}.{suffix}"


def archive_names(rows: Sequence[ImageRow]) -> list[str]:
    """Each image's path in the archive: `images/<safe name>`, made unique without regard
    to case (as on Windows and macOS): `name.png`, `name (2).png`, …"""
    taken: set[str] = set()
    names: list[str] = []
    for row in rows:
        name = safe_name(row.filename, row.content_type)
        stem, _, ext = name.rpartition(".")
        n = 1
        while name.casefold() in taken:
            n += 1
            name = f"{stem} ({n}).{ext}"
        taken.add(name.casefold())
        names.append(IMAGES_DIR + name)
    return names


def content_disposition(archive_name: str) -> str:
    """`attachment; filename="…"` with an ASCII fallback, and `filename*` (RFC 6266) when
    the name is not plain ASCII (an album's title may be anything)."""
    stem = _component(archive_name)
    stem = stem[:-4] if stem.lower().endswith(".zip") else stem
    name = _not_reserved(stem[:MAX_NAME].strip(". ") or "export") + ".zip"
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%;' else "_" for ch in name)
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


# --------------------------------------------------------------------------- metadata


class Metadata:
    """The JSON file beside the originals: each image's JSON (as the API answers it; its
    `filename` is the name it was uploaded with) and its `path` in the archive, one image
    a line. Made a piece at a time, twice (once to count its bytes for Content-Length,
    once to send them; the same rows give the same bytes), never whole in memory."""

    BATCH = 256  # images per piece

    def __init__(self, env: Env, owner: User, rows: Sequence[ImageRow], names: Sequence[str], now: datetime) -> None:
        self.env, self.owner, self.rows, self.names, self.now = env, owner, rows, names, now

    def __iter__(self) -> Iterator[bytes]:
        head = {
            "exported_at": json_time(self.now),
            "owner": {"id": self.owner.id, "username": self.owner.username},
            "count": len(self.rows),
        }
        yield orjson.dumps(head)[:-1] + b', "images": ['
        batch: list[bytes] = []
        for i, (row, name) in enumerate(zip(self.rows, self.names, strict=True)):
            image = orjson.dumps({**image_json(self.env, row), "path": name})
            batch.append((b",\n" if i else b"\n") + image)
            if len(batch) == self.BATCH:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)
        yield b"\n]}\n"

    async def size(self) -> int:
        """Its length in bytes (letting other requests run between pieces)."""
        total = 0
        for piece in self:
            total += len(piece)
            await asyncio.sleep(0)
        return total


# --------------------------------------------------------------------------- the stream


class _Feed:
    """Which entry is waiting for its next chunk (set by the entry, read by the loop)."""

    asking: _Entry | None = None


class _Entry:
    """One original: a synchronous iterable for the ZIP writer, filled from storage by
    the loop. Promises exactly `size` bytes, or breaks the export."""

    def __init__(self, feed: _Feed, storage: Storage, key: str, size: int) -> None:
        self.feed, self.storage, self.key, self.size = feed, storage, key, size
        self.stream: AsyncIterator[bytes] | None = None
        self.chunk: bytes | None = None
        self.sent = 0
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.feed.asking = self
            yield b""  # "I need data": the loop fills self.chunk, or sets self.done
            if self.done:
                return
            chunk, self.chunk = self.chunk, None
            if chunk is None:  # the writer resumed us without handing the request back
                raise ExportBroken("the ZIP writer did not pass the request for data on")
            yield chunk

    async def fill(self) -> None:
        if self.stream is None:
            self.stream = self.storage.read_stream(self.key, CHUNK)
        chunk = b""
        while not chunk:
            try:
                chunk = await anext(self.stream)
            except StopAsyncIteration:
                if self.sent != self.size:
                    raise ExportBroken(f"{self.key}: {self.sent} bytes, {self.size} promised") from None
                self.done = True
                await self.close()
                return
        self.sent += len(chunk)
        if self.sent > self.size:
            raise ExportBroken(f"{self.key}: more than the {self.size} bytes promised")
        self.chunk = chunk

    async def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


async def zip_response(
    request: web.Request, env: Env, owner: User, rows: Sequence[ImageRow], archive_name: str
) -> web.StreamResponse:
    """Stream `rows` (one owner's images; any that are no longer live are left out) as a
    ZIP attachment named `archive_name`: the originals under `images/` and `metadata.json`.
    The caller has checked that the requester may have them."""
    now = utcnow()
    live = [r for r in rows if r.status == ACTIVE and not r.expired(now)]
    if any(r.owner_id != owner.id for r in live):
        raise ValueError("an export holds the images of one owner")
    names = archive_names(live)

    feed = _Feed()
    archive = ZipStream(sized=True)  # stored, every size known: so is the archive's
    entries: list[_Entry] = []
    for row, name in zip(live, names, strict=True):
        entry = _Entry(feed, env.storage, row.storage_key, row.size_bytes)
        archive.add(entry, name, size=row.size_bytes)
        entries.append(entry)
    meta = Metadata(env, owner, live, names, now)
    archive.add(meta, METADATA_NAME, size=await meta.size())

    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "application/zip",
            hdrs.CONTENT_DISPOSITION: content_disposition(archive_name),
            hdrs.CACHE_CONTROL: "no-store",
            # Sent before the middlewares could add them (the response is prepared here).
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }
    )
    response.content_length = len(archive)
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD:
        return response

    pieces = iter(archive)
    # Small pieces (entry headers, data descriptors, small files) are gathered into
    # writes of WRITE_BATCH bytes or more: one send per many files, not three per file.
    batch: list[bytes] = []
    batched = 0
    try:
        for piece in pieces:
            if piece:
                big = len(piece) >= WRITE_BATCH  # a chunk of an original: sent as is, not copied
                if not big:
                    batch.append(piece)
                    batched += len(piece)
                if batch and (big or batched >= WRITE_BATCH):
                    data, batch, batched = b"".join(batch), [], 0
                    await response.write(data)
                if big:
                    await response.write(piece)
                continue
            asking, feed.asking = feed.asking, None
            if asking is None:
                raise ExportBroken("an empty piece nobody asked for")
            await asking.fill()
        if batch:
            await response.write(b"".join(batch))
    except (ExportBroken, StorageError, RuntimeError) as exc:
        # Headers and part of the body are out: no error answer can follow. Cut the
        # connection short of Content-Length, so the client knows the download failed.
        logger.bind(request_id=request.get(REQUEST_ID)).warning(
            "export cut short, connection closed: {}: {}", type(exc).__name__, exc
        )
        if request.transport is not None:
            request.transport.abort()
        return response
    finally:
        with suppress(Exception):
            pieces.close()
        for entry in entries:
            with suppress(Exception):
                await entry.close()
    await response.write_eof()
    return response
