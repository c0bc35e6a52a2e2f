"""What a file really is: libmagic on the first bytes, then the structure of the format.

Nothing here trusts the client's filename or Content-Type. A file is accepted when
1. libmagic names an allowed image type for its first bytes;
2. the first bytes hold no HTML/SVG/script markup (a browser that sniffs looks there:
   this is what refuses a `GIF89a` header followed by HTML, which libmagic calls a GIF);
3. the header gives width and height, and their product is within the pixel limit
   (nothing is ever decoded);
4. the whole stream has the format's structure from first byte to last: PNG chunks up
   to IEND, GIF blocks up to the trailer, WebP's RIFF length, AVIF's top-level boxes,
   JPEG's segments from SOI to its first scan, then an EOI. A truncated file is refused,
   and so are bytes after the end (except after a JPEG's EOI: see `_jpeg`).

`Checker` sees the stream chunk by chunk (it keeps no more than a few bytes), so the
same check runs while an upload streams to storage and when a presigned upload is
read back at confirm.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Generator
from dataclasses import dataclass

import magic
from PIL import Image, UnidentifiedImageError

from ..errors import AppError, Unprocessable, UnsupportedMediaType

# We check the pixel count against settings.max_image_pixels ourselves, on the header,
# before anything could be decoded; Pillow's own global check would only warn or raise
# on the same header with a different limit.
Image.MAX_IMAGE_PIXELS = None

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp", "image/avif": "avif"}
HEAD_BYTES = 1 << 20  # read before anything is stored: enough for every header we parse
MAGIC_BYTES = 64 * 1024  # what libmagic looks at

# Markup a sniffing browser would run. Matched case-insensitively in the first bytes.
_MARKUP_TAGS = (
    b"!doctype",
    b"html",
    b"head",
    b"body",
    b"script",
    b"svg",
    b"iframe",
    b"frameset",
    b"object",
    b"embed",
    b"style",
    b"meta",
    b"link",
    b"base",
    b"img",
    b"form",
)
# The lookahead changes nothing in what matches: it passes a "<" on only when the next
# byte can begin one of the tags. In compressed image data most "<" bytes are followed
# by anything else, and trying every alternative at each of them was most of the time
# of a sniff (137 -> 83 us on a 197 KB PNG).
_MARKUP = re.compile(
    rb"<(?=["
    + re.escape(bytes(sorted({tag[0] for tag in _MARKUP_TAGS})))
    + rb"])(?:"
    + b"|".join(_MARKUP_TAGS)
    + rb")[\s/>]",
    re.IGNORECASE,
)
_AVIF_BRANDS = {b"avif", b"avis"}


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    ext: str
    width: int
    height: int


# --------------------------------------------------------------------------- sniffing


def sniff_type(head: bytes) -> str:
    """libmagic's MIME type for the first bytes, with AVIF recognised by its brand when
    an older libmagic calls it something else."""
    mime = magic.from_buffer(head[:MAGIC_BYTES], mime=True)
    if mime not in EXTENSIONS and _is_avif(head):
        return "image/avif"
    return mime


def sniff(head: bytes, allowed: tuple[str, ...], max_pixels: int) -> Sniffed:
    """Check the first bytes of a file (blocking: call it in an executor for big heads).
    Raises 415 for a type that is not an allowed image, 422 for a broken or huge one."""
    if not head:
        raise Unprocessable("empty file", code="invalid_image")
    mime = sniff_type(head)
    if mime not in EXTENSIONS or mime not in allowed:
        raise UnsupportedMediaType("unsupported file type", {"detected": mime, "allowed": list(allowed)})
    if _MARKUP.search(head):
        raise UnsupportedMediaType("file holds HTML or script markup", {"detected": mime})
    width, height = dimensions(mime, head)
    if width <= 0 or height <= 0:
        raise Unprocessable("image has no size", {"width": width, "height": height}, code="invalid_image")
    if width * height > max_pixels:
        raise Unprocessable(
            "image has too many pixels",
            {"width": width, "height": height, "max_pixels": max_pixels},
            code="too_many_pixels",
        )
    return Sniffed(mime, EXTENSIONS[mime], width, height)


def _is_avif(head: bytes) -> bool:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = struct.unpack(">I", head[:4])[0]
    brands = head[8:12], *(head[i : i + 4] for i in range(16, min(size, len(head)), 4))
    return any(b in _AVIF_BRANDS for b in brands)


# --------------------------------------------------------------------------- dimensions


def dimensions(mime: str, head: bytes) -> tuple[int, int]:
    try:
        if mime == "image/webp":
            return _webp_size(head)
        if mime == "image/avif":
            return _avif_size(head)
        fmt = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF"}[mime]
        with Image.open(io.BytesIO(head), formats=[fmt]) as im:  # reads the header only
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, IndexError, KeyError):
        raise Unprocessable("cannot read the image's size from its header", code="invalid_image") from None


def _webp_size(head: bytes) -> tuple[int, int]:
    kind = head[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if kind == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        if head[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ValueError("unknown WebP chunk")


def _avif_size(head: bytes) -> tuple[int, int]:
    """The largest `ispe` (image spatial extents) property in the header: the canvas."""
    best = (0, 0)
    for m in re.finditer(rb"ispe", head):
        at = m.start() + 4
        if len(head) < at + 12:
            break
        w, h = struct.unpack(">II", head[at + 4 : at + 12])
        if w * h > best[0] * best[1]:
            best = (w, h)
    if best == (0, 0):
        raise ValueError("no ispe box")
    return best


# --------------------------------------------------------------------------- structure


class _Read:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Skip(_Read):
    __slots__ = ()


class _Rest:
    """Everything up to the end of the stream; the walker resumes at the end."""


class _EOF(Exception):
    """Thrown into a walker at the end of the stream."""


Walker = Generator["_Read | _Rest", "bytes | None", None]


class Checker:
    """Feeds a stream through the walker for its format. `feed` raises 422 as soon as the
    bytes cannot be that format; `finish` raises 422 if the stream ended early."""

    TAIL = 16

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        self.total = 0
        self.tail = b""
        self._walker: Walker = _WALKERS[content_type](self)
        self._want: _Read | _Rest | None = next(self._walker)
        self._buf = bytearray()
        self._done = False
        self.scan_for_eoi = False  # JPEG: after the first SOS, look for FFD9
        self.eoi_seen = False
        self._last = b""

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        self.tail = (self.tail + data[-self.TAIL :])[-self.TAIL :]
        view = memoryview(data)
        while view:
            want = self._want
            if self._done or want is None:
                raise self.fail("data after the end of the image")
            if isinstance(want, _Rest):
                if self.scan_for_eoi and not self.eoi_seen:
                    chunk = self._last + bytes(view)
                    self.eoi_seen = chunk.find(b"\xff\xd9") != -1
                    self._last = chunk[-1:]
                return
            if isinstance(want, _Skip):
                step = min(want.n, len(view))
                want.n -= step
                view = view[step:]
                if want.n == 0:
                    self._advance(None)
                continue
            step = min(want.n - len(self._buf), len(view))
            self._buf += view[:step]
            view = view[step:]
            if len(self._buf) == want.n:
                got = bytes(self._buf)
                self._buf.clear()
                self._advance(got)

    @property
    def done(self) -> bool:
        return self._done

    def finish(self) -> None:
        """The stream has ended: raise 422 unless the image ended exactly here."""
        if self._done:
            return
        if isinstance(self._want, _Rest):
            self._advance(None)
            if not self.done:
                raise self.fail("the file is truncated")
            return
        if self._buf or (isinstance(self._want, _Skip) and self._want.n):
            raise self.fail("the file is truncated")
        try:
            self._want = self._walker.throw(_EOF())
        except StopIteration:
            self._done = True
            return
        except _EOF:
            raise self.fail("the file is truncated") from None
        raise self.fail("the file is truncated")

    def _advance(self, value: bytes | None) -> None:
        try:
            self._want = self._walker.send(value)
        except StopIteration:
            self._done = True
            self._want = None

    def fail(self, why: str) -> AppError:
        name = EXTENSIONS.get(self.content_type, "image").upper()
        return Unprocessable(f"not a valid {name} file: {why}", code="invalid_image")


def _png(c: Checker) -> Walker:
    if (yield _Read(8)) != b"\x89PNG\r\n\x1a\n":
        raise c.fail("bad signature")
    first = True
    while True:
        header = yield _Read(8)
        assert header is not None
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF or not ctype.isalpha():
            raise c.fail("bad chunk")
        if first and ctype != b"IHDR":
            raise c.fail("IHDR is not the first chunk")
        first = False
        yield _Skip(length + 4)  # data and CRC
        if ctype == b"IEND":
            return


def _gif(c: Checker) -> Walker:
    header = yield _Read(13)
    assert header is not None
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        raise c.fail("bad signature")
    flags = header[10]
    if flags & 0x80:
        yield _Skip(3 << ((flags & 7) + 1))
    while True:
        try:
            block = yield _Read(1)
        except _EOF:
            raise c.fail("no trailer") from None
        assert block is not None
        if block == b"\x3b":
            return
        if block == b"\x21":
            yield _Read(1)  # extension label
        elif block == b"\x2c":
            desc = yield _Read(9)
            assert desc is not None
            if desc[8] & 0x80:
                yield _Skip(3 << ((desc[8] & 7) + 1))
            yield _Read(1)  # LZW minimum code size
        else:
            raise c.fail(f"unexpected block 0x{block[0]:02x}")
        while True:  # data sub-blocks
            n = yield _Read(1)
            assert n is not None
            if n[0] == 0:
                break
            yield _Skip(n[0])


def _jpeg(c: Checker) -> Walker:
    """SOI, then the marker segments by their lengths up to the first SOS; after that
    an end-of-image marker must follow. In entropy-coded data every 0xFF is stuffed
    (FF00), so FFD9 there is the real EOI; the scan for it runs at C speed (`Checker`).
    Bytes after EOI are allowed: phones append metadata (Samsung) or a whole video
    (Motion Photos), and nothing after EOI is ever decoded."""
    if (yield _Read(2)) != b"\xff\xd8":
        raise c.fail("bad signature")
    while True:
        marker = yield _Read(2)
        assert marker is not None
        while marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes before a marker
            fill = yield _Read(1)
            assert fill is not None
            marker = marker[1:] + fill
        if marker[0] != 0xFF:
            raise c.fail("bad marker")
        code = marker[1]
        if code == 0xD9:
            raise c.fail("end of image before any scan")
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # standalone markers
            continue
        length = yield _Read(2)
        assert length is not None
        n = struct.unpack(">H", length)[0]
        if n < 2:
            raise c.fail("bad segment length")
        yield _Skip(n - 2)
        if code == 0xDA:  # start of scan: entropy-coded data follows
            c.scan_for_eoi = True
            yield _Rest()
            if not c.eoi_seen:
                raise c.fail("no end-of-image marker (truncated?)")
            return


def _webp(c: Checker) -> Walker:
    header = yield _Read(12)
    assert header is not None
    if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        raise c.fail("bad signature")
    size = struct.unpack("<I", header[4:8])[0]
    if size < 4:
        raise c.fail("bad RIFF size")
    yield _Skip(size - 4)


def _avif(c: Checker) -> Walker:
    first = True
    while True:
        try:
            header = yield _Read(8)
        except _EOF:
            if first:
                raise c.fail("empty") from None
            return
        assert header is not None
        size, btype = struct.unpack(">I4s", header)
        if first and btype != b"ftyp":
            raise c.fail("ftyp is not the first box")
        first = False
        if size == 1:
            large = yield _Read(8)
            assert large is not None
            size = struct.unpack(">Q", large)[0] - 16
        elif size == 0:  # the last box runs to the end of the file
            yield _Rest()
            return
        else:
            size -= 8
        if size < 0:
            raise c.fail("bad box size")
        yield _Skip(size)


_WALKERS = {"image/png": _png, "image/gif": _gif, "image/jpeg": _jpeg, "image/webp": _webp, "image/avif": _avif}
