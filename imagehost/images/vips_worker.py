"""The libvips worker: the only code in imagehost that decodes an image.

Run by `imagehost.images.derivatives.DerivativePool` as
`python -P vips_worker.py '<config json>'`, one job at a time, for as long as the pool
lives. It imports nothing from imagehost (only the standard library and pyvips), so a
worker starts in about a tenth of a second and shares no state with the server.

Protocol, over the worker's stdin and stdout: each message is a 4-byte big-endian length
followed by that many bytes of UTF-8 JSON. The worker first sends `{"ready": {...}}`,
then answers each request with exactly one reply, `{"ok": {...}}` or
`{"error": reason, "detail": text}`. End of input means: exit. Before anything else the
worker moves the protocol to private descriptors and points fd 1 at stderr, so a stray
write by any C library can never corrupt a reply.

Limits, set here before libvips loads: RLIMIT_DATA (every private writable mapping,
malloc'd pixels included) from the config; one libvips thread (`VIPS_CONCURRENCY=1`;
the pool runs one worker per core); no operation cache; only the five loaders we accept
(every other libvips loader is blocked); `fail_on="error"`, so a truncated or corrupt
file is an error, not grey pixels. Time is limited by the pool, which kills the worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import struct
import sys
import time
from typing import Any

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 20

# What libvips must find in a file of each accepted type: the loader's nickname (and,
# for HEIF, the compression: AVIF is AV1; HEIC is not accepted).
LOADERS = {
    "image/jpeg": "jpegload",
    "image/png": "pngload",
    "image/gif": "gifload",
    "image/webp": "webpload",
    "image/avif": "heifload",
}
# The libvips classes of those loaders; every other loader is blocked.
LOADER_CLASSES = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
)
ANIMATABLE = ("image/gif", "image/webp")
TEST_TYPES = ("x-test/exit", "x-test/segfault", "x-test/sleep", "x-test/alloc", "x-test/vips-alloc")


class Refused(Exception):
    """A job that cannot be done, with the short reason the pool passes on."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- protocol


class Channel:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd

    def _read_exactly(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(self.rfd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def receive(self) -> dict[str, Any] | None:
        head = self._read_exactly(_HEADER.size)
        if head is None:
            return None
        (length,) = _HEADER.unpack(head)
        if length > MAX_MESSAGE:
            raise SystemExit("message too long")
        body = self._read_exactly(length)
        if body is None:
            return None
        message: dict[str, Any] = json.loads(body)
        return message

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        data = _HEADER.pack(len(body)) + body
        while data:
            data = data[os.write(self.wfd, data) :]


def _private_channel() -> Channel:
    """Keep the pipes on fresh descriptors; stdin becomes /dev/null, stdout goes to stderr."""
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return Channel(rfd, wfd)


# --------------------------------------------------------------------------- libvips set-up


class Vips:
    """pyvips, configured once, and the spelling of options in this libvips version."""

    def __init__(self) -> None:
        os.environ["VIPS_CONCURRENCY"] = "1"
        os.environ["VIPS_BLOCK_UNTRUSTED"] = "1"
        import pyvips

        self.pyvips = pyvips
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.concurrency_set(1)
        pyvips.block_untrusted_set(True)
        pyvips.operation_block_set("VipsForeignLoad", True)
        for name in LOADER_CLASSES:
            pyvips.operation_block_set(name, False)
        self.version = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"

        thumbnail = set(pyvips.Introspect.get("thumbnail").optional_input)
        webpsave = set(pyvips.Introspect.get("webpsave").optional_input)
        # libvips 8.18 renamed export_profile to output_profile.
        self.profile_option = "output_profile" if "output_profile" in thumbnail else "export_profile"
        self.thumbnail_options: dict[str, Any] = {"size": "down"}
        self.fail_on_option = "fail_on" in thumbnail  # else given in the filename
        if self.fail_on_option:
            self.thumbnail_options["fail_on"] = "error"
        # libvips 8.15 replaced strip=True by keep="none".
        self.strip: dict[str, Any] = {"keep": "none"} if "keep" in webpsave else {"strip": True}
        # libvips 8.12 renamed reduction_effort to effort.
        self.effort_option = "effort" if "effort" in webpsave else "reduction_effort"

    def header(self, path: str) -> Any:
        """Open a file lazily: reads the header only, decodes nothing."""
        return self.pyvips.Image.new_from_file(path, access="sequential", fail_on="error")

    def thumbnail(self, path: str, size: int, *, profile: bool, animated: bool = False) -> Any:
        """Shrink-on-load and autorotate; `animated` keeps every frame. An image with an
        embedded colour profile is converted to sRGB (its profile is not kept); asking
        that of one without a profile would cost an sRGB-to-sRGB transform."""
        options = [] if self.fail_on_option else ["fail_on=error"]
        if animated:
            options.append("n=-1")
        name = f"{path}[{','.join(options)}]" if options else path
        extra = {self.profile_option: "srgb"} if profile else {}
        return self.pyvips.Image.thumbnail(name, size, height=size, **self.thumbnail_options, **extra)


# --------------------------------------------------------------------------- jobs


def _field(image: Any, name: str, default: int) -> int:
    if image.get_typeof(name) == 0:
        return default
    return int(image.get(name))


def inspect(vips: Vips, path: str, content_type: str) -> dict[str, Any]:
    """What the header says: size, oriented size, frames. Decodes no pixels."""
    try:
        head = vips.header(path)
        loader = head.get("vips-loader")
        compression = head.get("heif-compression") if head.get_typeof("heif-compression") else ""
    except vips.pyvips.Error as e:
        raise Refused("cannot decode", str(e)) from None
    if loader != LOADERS[content_type] or (content_type == "image/avif" and compression != "av1"):
        raise Refused("cannot decode", f"{content_type} file opened by {loader} {compression}".strip())
    width, height = head.width, head.height  # one frame: the loader reads the first only
    pages = _field(head, "n-pages", 1)
    animated = content_type in ANIMATABLE and pages > 1
    orientation = _field(head, "orientation", 1)
    if not 1 <= orientation <= 8:
        orientation = 1
    oriented = (height, width) if orientation >= 5 else (width, height)
    return {
        "width": width,
        "height": height,
        "oriented_width": oriented[0],
        "oriented_height": oriented[1],
        "orientation": orientation,
        "animated": animated,
        "pages": pages if animated else 1,
        "profile": head.get_typeof("icc-profile-data") != 0,
    }


def make(vips: Vips, job: dict[str, Any]) -> dict[str, Any]:
    """The thumbnail and/or the display size (as asked), written as `<prefix>thumb.webp`
    and `<prefix>display.webp` in out_dir, each first as a `.part` file then renamed."""
    path: str = job["src"]
    content_type: str = job["content_type"]
    prefix = os.path.join(job["out_dir"], job["prefix"])
    max_pixels: int = job["max_pixels"]
    thumbnail_size: int = job["thumbnail_size"]
    display_size: int = job["display_size"]
    quality: int = job["quality"]
    effort: int = job["thumbnail_effort"]

    info = inspect(vips, path, content_type)
    pixels = info["width"] * info["height"]  # of one frame
    if pixels > max_pixels:
        raise Refused("too many pixels", f"{info['width']}x{info['height']} > {max_pixels}")
    longest = max(info["width"], info["height"])
    animated: bool = info["animated"]
    if animated:
        # Browsers play an animated original; it gets an animated WebP display only when
        # larger than the display size, and only if all its frames together are within
        # the pixel limit (else the original serves).
        wanted = longest > display_size and pixels * info["pages"] <= max_pixels
    else:
        wanted = longest > display_size or info["orientation"] != 1
    thumbnail = display = None
    written: list[str] = []
    try:
        if animated:
            if job["thumbnail"]:  # the first frame: the loader reads only that one
                thumb = _decode(vips.thumbnail(path, thumbnail_size, profile=info["profile"]))
                thumbnail = _save(vips, thumb, prefix + "thumb.webp", quality, written, effort=effort)
            if wanted and job["display"]:
                image = vips.thumbnail(path, display_size, profile=info["profile"], animated=True)  # streamed
                display = _save(vips, image, prefix + "display.webp", quality, written, animated=True)
        elif wanted and job["display"]:
            image = _decode(vips.thumbnail(path, display_size, profile=info["profile"]))  # one decode for both
            display = _save(vips, image, prefix + "display.webp", quality, written)
            if job["thumbnail"]:
                thumb = _decode(image.thumbnail_image(thumbnail_size, height=thumbnail_size, size="down"))
                thumbnail = _save(vips, thumb, prefix + "thumb.webp", quality, written, effort=effort)
        elif job["thumbnail"]:
            thumb = _decode(vips.thumbnail(path, thumbnail_size, profile=info["profile"]))
            thumbnail = _save(vips, thumb, prefix + "thumb.webp", quality, written, effort=effort)
    except vips.pyvips.Error as e:
        _remove(written)
        raise Refused("cannot decode", str(e)) from None
    except BaseException:
        _remove(written)
        raise
    return {**info, "display_wanted": wanted, "thumbnail": thumbnail, "display": display}


def _decode(image: Any) -> Any:
    """Run the pipeline into memory (at most display size, 16 MB), so that an error while
    decoding is told apart from one while writing."""
    return image.copy_memory()


def _save(
    vips: Vips, image: Any, final: str, quality: int, written: list[str], animated: bool = False, effort: int = 4
) -> dict[str, Any]:
    part = final + ".part"
    written.append(part)
    options: dict[str, Any] = {"Q": quality, vips.effort_option: effort, **vips.strip}
    try:
        image.webpsave(part, **options)
    except vips.pyvips.Error as e:
        # An animated display is streamed from the file, so its decoding errors show here.
        raise Refused("cannot decode" if animated else "cannot write", str(e)) from None
    try:
        os.replace(part, final)
        written.append(final)
        size = os.stat(final).st_size
    except OSError as e:
        raise Refused("cannot write", str(e)) from None
    height = image.get("page-height") if animated and image.get_typeof("page-height") else image.height
    return {"path": final, "width": image.width, "height": height, "size_bytes": size}


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def test_hook(vips: Vips, job: dict[str, Any], memory_limit: int) -> dict[str, Any]:
    """Misbehaviour on request, for the pool's tests (only when the pool enabled it).
    Each first leaves a partial output behind, as a real crash would."""
    kind = job["content_type"]
    with open(os.path.join(job["out_dir"], job["prefix"] + "thumb.webp.part"), "wb") as f:
        f.write(b"RIFF")
    if kind == "x-test/exit":
        os._exit(1)
    if kind == "x-test/segfault":
        import ctypes

        ctypes.string_at(0)
    if kind == "x-test/sleep":
        time.sleep(3600)
    if kind == "x-test/alloc":
        bytearray(2 * memory_limit)
    if kind == "x-test/vips-alloc":
        side = int((2 * memory_limit / 4) ** 0.5) + 1
        vips.pyvips.Image.black(side, side, bands=4).copy_memory()
    raise Refused("cannot decode", "unknown test hook")


# --------------------------------------------------------------------------- main loop


def handle(vips: Vips, request: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    content_type = request.get("content_type")
    if config["test_hooks"] and content_type in TEST_TYPES:
        return test_hook(vips, request, config["memory_limit"])
    if content_type not in LOADERS:
        raise Refused("cannot decode", f"unsupported type {content_type}")
    if op == "probe":
        return inspect(vips, request["src"], content_type)
    if op == "make":
        return make(vips, request)
    raise Refused("bad request", f"unknown op {op}")


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "out of memory" in str(e).lower()


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    channel = _private_channel()
    limit = int(config["memory_limit"])
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    vips = Vips()
    channel.send({"ready": {"libvips": vips.version, "pid": os.getpid(), "memory_limit": limit}})
    while True:
        request = channel.receive()
        if request is None:
            return
        cpu = time.process_time()
        try:
            reply: dict[str, Any] = {"ok": handle(vips, request, config)}
            reply["ok"]["cpu_seconds"] = round(time.process_time() - cpu, 6)
        except Refused as e:
            reason = "out of memory" if _out_of_memory(Exception(e.detail)) else e.reason
            reply = {"error": reason, "detail": e.detail[:2000]}
        except Exception as e:  # a bug or an exhausted limit: report it, then start afresh
            reason = "out of memory" if _out_of_memory(e) else "failed"
            channel.send({"error": reason, "detail": f"{type(e).__name__}: {e}"[:2000], "exiting": True})
            return
        if reply.get("error") == "out of memory":
            reply["exiting"] = True  # memory may be fragmented or libvips half-way: go
            channel.send(reply)
            return
        channel.send(reply)


if __name__ == "__main__":
    main()
