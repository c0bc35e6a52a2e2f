"""The embedded default: objects are files in one folder.

The "presigned" PUT is an HMAC-signed URL on the app itself (see
`imagehost.images.local_put`), so the browser code is the same for both backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ClassVar
from urllib.parse import urlencode

from ..db import new_id
from .base import (
    READ_CHUNK,
    InvalidKey,
    ObjectChanged,
    ObjectInfo,
    ObjectNotFound,
    PresignedPut,
    StorageError,
    check_key,
)

EXT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "bin": "application/octet-stream",
}
_WRITE_BUFFER = 1 << 20


def _sign(secret: bytes, key: str, content_type: str, length: int, expires: int) -> str:
    msg = f"PUT\n{key}\n{content_type}\n{length}\n{expires}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


class LocalStorage:
    name = "local"
    # With no bucket, the app serves the bytes and takes the signed PUTs itself: the
    # routes this backend needs, by name, with the paths its URLs below point at.
    APP_ROUTES: ClassVar[dict[str, str]] = {"image_file": "/i/{key}", "upload_put": "/api/uploads/pending/{name}"}

    def __init__(self, root: Path, public_base_url: str, secret_key: str) -> None:
        self.root = root.resolve()
        self.base_url = public_base_url.rstrip("/")
        self._secret = hashlib.sha256(b"imagehost-local-put:" + secret_key.encode()).digest()

    # paths ---------------------------------------------------------------

    def path(self, key: str) -> Path:
        check_key(key)
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise InvalidKey(f"invalid storage key: {key!r}")
        return path

    # operations ----------------------------------------------------------

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, *, replace: bool = False
    ) -> int:
        path = self.path(key)
        tmp = self.root / ".tmp" / f"{new_id()}.part"
        loop = asyncio.get_running_loop()
        try:
            fh = await loop.run_in_executor(None, _open_exclusive, tmp)
        except OSError as exc:
            raise StorageError(f"local storage not writable: {exc.strerror}") from exc
        total = 0
        try:
            # Chunks are gathered in a list and joined once per write: one copy, no
            # bytearray regrowth (which briefly doubles the memory it holds).
            buf: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                buf.append(chunk)
                buffered += len(chunk)
                total += len(chunk)
                if buffered >= _WRITE_BUFFER:
                    data = buf[0] if len(buf) == 1 else b"".join(buf)
                    buf, buffered = [], 0
                    await loop.run_in_executor(None, fh.write, data)
            if buf:
                await loop.run_in_executor(None, fh.write, b"".join(buf))
            await loop.run_in_executor(None, fh.close)
            await loop.run_in_executor(None, _publish, tmp, path, replace)
        except BaseException:
            fh.close()
            await asyncio.shield(loop.run_in_executor(None, _unlink, tmp))
            raise
        return total

    async def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        try:
            st = await asyncio.get_running_loop().run_in_executor(None, path.stat)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(str(exc)) from exc
        return ObjectInfo(
            size=st.st_size,
            content_type=EXT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream"),
            etag=_etag(st),
        )

    async def read_range(self, key: str, start: int, length: int, if_match: str = "") -> bytes:
        path = self.path(key)

        def read() -> bytes:
            with open(path, "rb") as fh:
                if if_match and _etag(os.fstat(fh.fileno())) != if_match:
                    raise ObjectChanged(key)
                if start < 0:
                    size = fh.seek(0, os.SEEK_END)
                    fh.seek(max(0, size + start))
                else:
                    fh.seek(start)
                return fh.read(length)

        try:
            return await asyncio.get_running_loop().run_in_executor(None, read)
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    async def read_stream(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        path = self.path(key)
        loop = asyncio.get_running_loop()

        def open_and_read() -> tuple[BinaryIO, bytes]:
            fh = open(path, "rb")  # noqa: SIM115 (closed by the generator below, or here on failure)
            try:
                return fh, fh.read(chunk_size)
            except BaseException:
                fh.close()
                raise

        try:
            # Once open, the file reads to its end even if the object is deleted meanwhile
            # (an unlinked file lives on while open): one version, whole. Opening and the
            # first read are one hop to the executor; a short read is the end of a file.
            fh, chunk = await loop.run_in_executor(None, open_and_read)
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(str(exc)) from exc
        try:
            while chunk:
                yield chunk
                if len(chunk) < chunk_size:
                    return
                try:
                    chunk = await loop.run_in_executor(None, fh.read, chunk_size)
                except OSError as exc:
                    raise StorageError(str(exc)) from exc
        finally:
            fh.close()

    async def copy(self, src: str, dst: str, content_type: str) -> None:
        s, d = self.path(src), self.path(dst)

        def do() -> None:
            # A hard link is a server-side copy that costs nothing; the source is
            # deleted right after, so the two names never diverge.
            try:
                os.link(s, d)
            except FileExistsError:
                if os.path.samefile(s, d):
                    return
                raise

        try:
            await asyncio.get_running_loop().run_in_executor(None, do)
        except FileNotFoundError as exc:
            raise ObjectNotFound(src) from exc
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    async def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            await asyncio.get_running_loop().run_in_executor(None, _unlink, path)
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    async def presign_put(self, key: str, content_type: str, length: int, expires_in: int) -> PresignedPut:
        check_key(key)
        expires_at = int(time.time()) + expires_in
        sig = _sign(self._secret, key, content_type, length, expires_at)
        query = urlencode({"ct": content_type, "len": length, "exp": expires_at, "sig": sig})
        path = self.APP_ROUTES["upload_put"].format(name=key.removeprefix("pending/"))
        return PresignedPut(url=f"{self.base_url}{path}?{query}", headers={"Content-Type": content_type})

    def verify_put(self, key: str, content_type: str, length: int, expires_at: int, sig: str) -> bool:
        expected = _sign(self._secret, key, content_type, length, expires_at)
        return sig.isascii() and hmac.compare_digest(expected, sig)  # compare_digest raises on non-ASCII str

    def public_url(self, key: str) -> str:
        return self.base_url + self.APP_ROUTES["image_file"].format(key=check_key(key))

    async def check(self) -> None:
        def probe() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
                raise StorageError(f"{self.root} is not a writable folder")

        await asyncio.get_running_loop().run_in_executor(None, probe)

    async def clean_partials(self, older_than: datetime) -> int:
        """Temp files of writes whose process died (kill -9 mid-upload): nothing else
        records them. A live write's file is younger than `older_than`."""
        cutoff = older_than.replace(tzinfo=UTC).timestamp()

        def clean() -> int:
            removed = 0
            for part in (self.root / ".tmp").glob("*.part"):
                try:
                    if part.stat().st_mtime < cutoff:
                        part.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        try:
            return await asyncio.get_running_loop().run_in_executor(None, clean)
        except OSError as exc:
            raise StorageError(str(exc)) from exc

    async def start(self) -> None:
        for d in (self.root, self.root / "pending", self.root / ".tmp"):
            d.mkdir(parents=True, exist_ok=True)

    async def setup(self, app_origin: str = "", pending_expiry_days: int = 1) -> list[str]:
        await self.start()
        return [f"folder {self.root} ready"]


def _etag(st: os.stat_result) -> str:
    """A local object's version: a file is only ever replaced whole, never rewritten."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _open_exclusive(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")


def _publish(tmp: Path, final: Path, replace: bool) -> None:
    """Publish the finished file under its key, refusing to replace an existing object
    unless asked to (then atomically: a reader sees the old file or the new one)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        if replace:
            os.replace(tmp, final)
        else:
            os.link(tmp, final)
    finally:
        _unlink(tmp)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
