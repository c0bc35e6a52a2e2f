"""S3-compatible object storage (Cloudflare R2 in production, MinIO, moto in tests)
through aiobotocore. The client is entered once per process in `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..config import Settings
from .base import READ_CHUNK, ObjectChanged, ObjectInfo, ObjectNotFound, PresignedPut, StorageError, check_key

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_CHANGED = {"412", "PreconditionFailed"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def client_config() -> AioConfig:
    # botocore >= 1.36 adds CRC32 checksums to requests by default, which R2
    # rejects on presigned PUTs: only send checksums when an operation needs them.
    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )


class S3Storage:
    name = "s3"
    APP_ROUTES: ClassVar[dict[str, str]] = {}  # the bucket serves the bytes and takes the PUTs

    def __init__(self, client: Any, bucket: str, public_base: str, part_size: int, region: str = "auto") -> None:
        self.client = client
        self.region = region
        self.bucket = bucket
        self.public_base = public_base.rstrip("/")
        self.part_size = part_size

    @classmethod
    async def open(cls, settings: Settings, stack: AsyncExitStack) -> S3Storage:
        session = get_session()
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=settings.s3_endpoint,
                region_name=settings.s3_region,
                aws_access_key_id=settings.r2_access_key_id,
                aws_secret_access_key=settings.r2_secret_access_key,
                config=client_config(),
            )
        )
        part = int(settings.s3_multipart_threshold_mb * 1024 * 1024)
        return cls(client, settings.r2_bucket_name, settings.r2_public_url, part, settings.s3_region)

    async def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectNotFound(kwargs.get("Key", self.bucket)) from exc
            if _code(exc) in _CHANGED:
                raise ObjectChanged(kwargs.get("Key", self.bucket)) from exc
            raise StorageError(f"{op}: {_code(exc) or exc}") from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise StorageError(f"{op}: {type(exc).__name__}: {exc}") from exc

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, *, replace: bool = False
    ) -> int:
        check_key(key)
        # Chunks are gathered in a list and joined once per part: one copy of a part in
        # memory at a time, never the whole file. Every part but the last is exactly
        # part_size bytes: R2 requires equal part sizes (S3 only a 5 MiB minimum).
        buf: list[bytes] = []
        buffered = 0
        total = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                total += len(chunk)
                while chunk:
                    take = chunk[: self.part_size - buffered]
                    chunk = chunk[len(take) :]
                    buf.append(take)
                    buffered += len(take)
                    if buffered < self.part_size:
                        break
                    if upload_id is None:
                        resp = await self._call("create_multipart_upload", Key=key, ContentType=content_type)
                        upload_id = resp["UploadId"]
                    part = b"".join(buf)
                    buf, buffered = [], 0
                    n = len(parts) + 1
                    resp = await self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=n, Body=part)
                    del part
                    parts.append({"PartNumber": n, "ETag": resp["ETag"]})
            if upload_id is None:
                await self._call("put_object", Key=key, Body=b"".join(buf), ContentType=content_type)
            else:
                if buf:
                    n = len(parts) + 1
                    resp = await self._call(
                        "upload_part", Key=key, UploadId=upload_id, PartNumber=n, Body=b"".join(buf)
                    )
                    parts.append({"PartNumber": n, "ETag": resp["ETag"]})
                await self._call(
                    "complete_multipart_upload", Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            if upload_id is not None:
                await asyncio.shield(self._abort(key, upload_id))
            raise
        return total

    async def _abort(self, key: str, upload_id: str) -> None:
        # On failure the bucket's lifecycle rule aborts incomplete uploads after a day.
        with contextlib.suppress(StorageError):
            await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    async def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            resp = await self._call("head_object", Key=key)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            size=int(resp["ContentLength"]), content_type=resp.get("ContentType", ""), etag=resp.get("ETag", "")
        )

    async def read_range(self, key: str, start: int, length: int, if_match: str = "") -> bytes:
        check_key(key)
        rng = f"bytes={start}-{start + length - 1}" if start >= 0 else f"bytes={start}"
        bound = {"IfMatch": if_match} if if_match else {}
        resp = await self._call("get_object", Key=key, Range=rng, **bound)
        try:
            async with resp["Body"] as body:
                data: bytes = await body.read()
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise StorageError(f"get_object: {exc}") from exc
        return data[:length]

    async def read_stream(self, key: str, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        check_key(key)
        resp = await self._call("get_object", Key=key)
        # One GET, its body read a chunk at a time: what is held is one chunk (and the
        # socket's buffers), whatever the object's size.
        async with resp["Body"] as body:
            while True:
                try:
                    chunk: bytes = await body.read(chunk_size)
                except (TimeoutError, BotoCoreError, OSError) as exc:
                    raise StorageError(f"get_object: {exc}") from exc
                if not chunk:
                    return
                yield chunk

    async def copy(self, src: str, dst: str, content_type: str) -> None:
        check_key(src)
        check_key(dst)
        await self._call(
            "copy_object",
            Key=dst,
            CopySource={"Bucket": self.bucket, "Key": src},
            ContentType=content_type,
            MetadataDirective="REPLACE",
        )

    async def delete(self, key: str) -> None:
        check_key(key)
        with suppress(ObjectNotFound):
            await self._call("delete_object", Key=key)

    async def presign_put(self, key: str, content_type: str, length: int, expires_in: int) -> PresignedPut:
        check_key(key)
        url = await self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": length},
            ExpiresIn=expires_in,
        )
        return PresignedPut(url=url, headers={"Content-Type": content_type})

    def public_url(self, key: str) -> str:
        return f"{self.public_base}/{check_key(key)}"

    async def clean_partials(self, older_than: datetime) -> int:
        """Abort incomplete multipart uploads begun before `older_than`, whatever the
        bucket's lifecycle rules (a process killed mid-upload leaves one behind). Every
        key in the bucket is the app's, so all of them are listed."""
        aborted = 0
        kwargs: dict[str, Any] = {}
        while True:
            page = await self._call("list_multipart_uploads", **kwargs)
            for upload in page.get("Uploads", []):
                initiated = upload["Initiated"]
                if initiated.tzinfo is not None:
                    initiated = initiated.astimezone(UTC).replace(tzinfo=None)
                if initiated < older_than:
                    with contextlib.suppress(ObjectNotFound):  # finished or aborted meanwhile
                        await self._call("abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            kwargs = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    async def start(self) -> None:
        """Nothing: the bucket is made once, by `imagehost storage-setup`."""

    async def check(self) -> None:
        await self._call("head_bucket")

    async def setup(self, app_origin: str, pending_expiry_days: int = 1) -> list[str]:
        async def call(op: str, **kwargs: Any) -> Any:
            # An error names what the store answered (code and message); "unreachable"
            # is kept for a store that gave no answer at all.
            try:
                return await self._call(op, **kwargs)
            except StorageError as exc:
                if isinstance(exc, ObjectNotFound) and op == "head_bucket":
                    raise
                cause = exc.__cause__
                if isinstance(cause, ClientError):
                    error = cause.response.get("Error", {})
                    answer = ": ".join(str(part) for part in (error.get("Code"), error.get("Message")) if part)
                    raise StorageError(f"the store answered {op} with {answer or cause}") from cause
                raise StorageError(f"storage unreachable: {exc}") from cause

        done: list[str] = []
        try:
            await call("head_bucket")
            done.append(f"bucket {self.bucket} exists")
        except ObjectNotFound:
            extra = {}
            if self.region not in ("auto", "us-east-1"):
                extra["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            await call("create_bucket", **extra)
            done.append(f"bucket {self.bucket} created")
        cors = {
            "CORSRules": [
                {
                    "AllowedOrigins": [app_origin],
                    "AllowedMethods": ["PUT"],
                    "AllowedHeaders": ["content-type"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        }
        lifecycle = {
            "Rules": [
                {
                    "ID": "imagehost-expire-pending",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "pending/"},
                    "Expiration": {"Days": pending_expiry_days},
                },
                {
                    "ID": "imagehost-abort-incomplete-multipart",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
            ]
        }
        for what, op, kwargs in (
            (f"CORS: PUT from {app_origin}", "put_bucket_cors", {"CORSConfiguration": cors}),
            (
                "lifecycle: expire pending/, abort incomplete multipart uploads",
                "put_bucket_lifecycle_configuration",
                {"LifecycleConfiguration": lifecycle},
            ),
        ):
            try:
                await call(op, **kwargs)
                done.append(what)
            except StorageError as exc:
                # MinIO answers NotImplemented to CORS and MalformedXML to a lifecycle rule
                # with only AbortIncompleteMultipartUpload (minio/minio#15681).
                if "NotImplemented" not in str(exc) and "MalformedXML" not in str(exc):
                    raise
                done.append(f"WARNING: this server does not implement {op}; set it up by hand ({what})")
        return done
