"""Metadata stripping by rewriting the container, never by re-encoding.

GPS position, camera serial numbers, owner names and capture times travel in a file's
metadata blocks, never in its pixels. `Stripper` removes those blocks as the bytes stream
past and leaves every byte the decoder reads untouched, so decoding the result gives
exactly the pixels of the original.

Per format (content types as `formats.sniff` names them):

- JPEG: keeps SOI, the JFIF APP0, ICC profile APP2 segments, the Adobe APP14 and every
  non-APP segment (tables, frames, scans) up to EOI. Drops every other APPn (Exif, XMP and
  extended XMP, MPF, FlashPix, IPTC/Photoshop, ...), COM and everything after EOI (Motion
  Photo videos, Samsung trailers, MPF's second images). An Exif orientation other than 1
  comes back as a minimal Exif APP1 holding only that tag, so the photo still displays
  upright.
- PNG: drops tEXt, zTXt, iTXt (XMP lives there) and tIME; eXIf becomes an orientation-only
  eXIf like JPEG's; every other chunk is kept as it is.
- GIF: drops comment extensions and application extensions other than the looping ones
  (NETSCAPE2.0, ANIMEXTS1.0) and the ICC profile (ICCRGBG1012): XMP lives in one.
- WebP: drops the EXIF (kept as orientation-only) and XMP chunks, clears their VP8X flags
  and rewrites the RIFF length. Metadata comes after the image data there, so an extended
  (VP8X) file is spooled (memory, then disk past 1 MiB) and emitted by `finish`; a simple
  file (one VP8/VP8L chunk, no room for metadata) streams through.
- AVIF: blanks the Exif items and the XMP items (mime application/rdf+xml) in place, so
  every box and offset stays valid: an Exif item becomes an empty TIFF header then zeros,
  an XMP item an empty x:xmpmeta element then spaces (readers refuse NUL-filled ones).
  The meta box is read whole (it comes first and holds headers only); the items' bytes
  are blanked as they stream past, in mdat (iloc construction method 0) or in the meta
  box's idat (method 1). An item stored before the end of the meta box (a file with its
  meta after mdat) or built from other items (method 2) is refused: `Unprocessable`.

With `keep_camera`, the Exif block is kept (Make, Model, lens, exposure, serial...) but its
GPS IFD is blanked in place: its entries and their data are zeroed and the GPSInfo entry
is taken out of its IFD, so every other offset stays valid. XMP is dropped all the same: it
can carry a location too.

Broken metadata never refuses an image: an Exif block that cannot be read is dropped
whole (or zeroed, in AVIF). A broken container raises `Unprocessable`.
"""

from __future__ import annotations

import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import Unprocessable, UnsupportedMediaType

PIECE = 1 << 20  # the largest piece `finish` yields, and how much a spooled WebP keeps in memory
MAX_EXIF = 1 << 20  # a bigger Exif block is dropped (or zeroed) without being read
MAX_META = 16 << 20  # an AVIF meta box is read whole: it holds the headers only

_NAMES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP", "image/avif": "AVIF"}


# --------------------------------------------------------------------------- driver
#
# Each format is a generator ("walker") that says what to do with the next bytes of the
# stream by yielding a request; the driver fulfils it with whatever has arrived and
# resumes the walker. Only `_Read` hands bytes to the walker (a few headers, metadata
# blocks); everything else streams through.


class _Read:
    """Collect n bytes and send them to the walker (which emits what it wants of them)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Pass(_Read):
    """Emit the next n bytes as they are."""

    __slots__ = ()


class _Drop(_Read):
    """Skip the next n bytes."""

    __slots__ = ()


class _Fill(_Read):
    """Emit n copies of one byte in place of the next n bytes."""

    __slots__ = ("byte",)

    def __init__(self, n: int, byte: bytes = b"\x00") -> None:
        super().__init__(n)
        self.byte = byte


class _Scan:
    """JPEG entropy-coded data: emit up to the next marker (FF followed by neither a
    stuffed 00, a restart marker nor a fill FF); the walker then reads that marker."""

    __slots__ = ()


class _Blocks:
    """GIF data sub-blocks up to and including the empty one: emit them or skip them."""

    __slots__ = ("keep", "left")

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.left = 0  # bytes left in the current sub-block; 0: a size byte comes next


class _Rest:
    """Everything up to the end of the stream: emit it or skip it."""

    __slots__ = ("keep",)

    def __init__(self, keep: bool) -> None:
        self.keep = keep


class _EOF(Exception):
    """Thrown into a walker whose `_Read` met the end of the stream before any byte."""


_Want = _Read | _Scan | _Blocks | _Rest
Walker = Generator[_Want, bytes, None]
_Sink = Callable[[bytes | memoryview], object]

# A marker inside entropy-coded data: FF then anything but 00 (stuffing), D0-D7 (restart)
# or FF (fill: the match moves on to the last FF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class Stripper:
    """Strips one file's metadata while it streams: `feed` each chunk and send on what it
    returns, then send on every piece `finish` returns. `changed` (valid after `finish`)
    is False when there was nothing to remove: the output is then the input, byte for byte.

    `feed` and `finish` raise `Unprocessable` when the stream is not a well-formed file
    of its type (truncated, bytes after the end, a broken structure)."""

    def __init__(self, content_type: str, keep_camera: bool = False) -> None:
        if content_type not in _WALKERS:
            raise UnsupportedMediaType("cannot strip metadata from this type", {"content_type": content_type})
        self.content_type = content_type
        self.keep_camera = keep_camera
        self.changed = False
        self.pos = 0  # bytes of input consumed so far (exact whenever a walker runs)
        self._out: list[bytes | memoryview] = []
        self.emit: _Sink = self._out.append
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None
        self._buf = bytearray()
        self._carry = b""  # a JPEG scan's last byte when it is FF: the next chunk decides
        self._open = True
        self._walker: Walker = _WALKERS[content_type](self)
        self._want: _Want | None = None
        self._guarded(lambda: self._settle(next(self._walker)))

    # ----------------------------------------------------------------- public

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk; return the bytes that are ready (often all of them, b"" while
        a metadata block or a spooled WebP is being read)."""
        if not self._open:
            raise RuntimeError("feed() after finish() or after an error")
        if not data:
            return b""
        if self._carry:
            data, self._carry = self._carry + data, b""
        view = memoryview(data)
        try:
            while view:
                view = self._step(view)
        except BaseException:
            self._close()
            raise
        return self._collect(data)

    def finish(self) -> Iterator[bytes]:
        """The stream has ended: raise `Unprocessable` now if the file is incomplete, else
        return the rest of the output in pieces of at most `PIECE` bytes."""
        if not self._open:
            raise RuntimeError("finish() called twice or after an error")
        try:
            self._end()
        except BaseException:
            self._close()
            raise
        self._open = False
        if self._spool is None:
            tail = b"".join(self._out)
            self._out.clear()
            return iter([tail[i : i + PIECE] for i in range(0, len(tail), PIECE)])
        return self._drain(self._spool)

    # ----------------------------------------------------------------- for walkers

    def fail(self, why: str) -> Unprocessable:
        return Unprocessable(f"not a valid {_NAMES[self.content_type]} file: {why}")

    def spool(self) -> None:
        """From now on, collect the output in a temporary file (patched with `patch`,
        emitted by `finish`)."""
        spool = tempfile.SpooledTemporaryFile(max_size=PIECE)  # noqa: SIM115 (closed by finish or on error)
        for piece in self._out:
            spool.write(piece)
        self._out.clear()
        self._spool = spool
        self.emit = spool.write

    def spooled(self) -> int:
        assert self._spool is not None
        return self._spool.tell()

    def patch(self, offset: int, data: bytes) -> None:
        """Overwrite spooled output at `offset`."""
        assert self._spool is not None
        end = self._spool.tell()
        self._spool.seek(offset)
        self._spool.write(data)
        self._spool.seek(end)

    # ----------------------------------------------------------------- machinery

    def _step(self, view: memoryview) -> memoryview:
        """Fulfil the current request with the start of `view`; return what is left."""
        want = self._want
        if want is None:
            raise self.fail("data after the end of the image")
        if isinstance(want, _Read):
            if type(want) is _Read:
                have = len(self._buf)
                step = min(want.n - have, len(view))
                self._buf += view[:step]
                self.pos += step
                if have + step == want.n:
                    got = bytes(self._buf)
                    self._buf.clear()
                    self._advance(got)
                return view[step:]
            step = min(want.n, len(view))
            if type(want) is _Pass:
                self.emit(view[:step])
            elif isinstance(want, _Fill):
                fill = want.byte * step
                if not self.changed and view[:step] != fill:
                    self.changed = True
                self.emit(fill)
            want.n -= step
            self.pos += step
            if want.n == 0:
                self._advance(b"")
            return view[step:]
        if isinstance(want, _Scan):
            match = _JPEG_MARKER.search(view)
            if match is None:
                end = len(view) - 1 if view[-1] == 0xFF else len(view)
                self.emit(view[:end])
                self.pos += end
                self._carry = bytes(view[end:])
                return view[len(view) :]
            end = match.start()
            self.emit(view[:end])
            self.pos += end
            self._advance(b"")
            return view[end:]
        if isinstance(want, _Blocks):
            i, n, left, done = 0, len(view), want.left, False
            while i < n:
                if left:
                    step = min(left, n - i)
                    i += step
                    left -= step
                else:
                    left = view[i]
                    i += 1
                    if not left:
                        done = True
                        break
            want.left = left
            if want.keep:
                self.emit(view[:i])
            self.pos += i
            if done:
                self._advance(b"")
            return view[i:]
        if want.keep:
            self.emit(view)
        else:
            self.changed = True
        self.pos += len(view)
        return view[len(view) :]

    def _advance(self, value: bytes) -> None:
        self._guarded(lambda: self._settle(self._walker.send(value)))

    def _settle(self, want: _Want) -> None:
        """Make `want` current, answering empty requests at once."""
        while isinstance(want, _Read) and want.n == 0:
            want = self._walker.send(b"")
        self._want = want

    def _guarded(self, run: Callable[[], None]) -> None:
        try:
            run()
        except StopIteration:
            self._want = None
        except (struct.error, IndexError, ValueError, OverflowError) as e:  # a walker's oversight: still a 422
            raise self.fail("broken structure") from e

    def _end(self) -> None:
        truncated = self.fail("the file is truncated")
        want = self._want
        if want is None:
            return
        if self._carry:
            raise truncated
        if isinstance(want, _Rest):
            self._advance(b"")
        elif type(want) is _Read and not self._buf:

            def at_eof() -> None:
                try:
                    self._settle(self._walker.throw(_EOF()))
                except _EOF:
                    raise truncated from None

            self._guarded(at_eof)
        if self._want is not None:
            raise truncated

    def _collect(self, data: bytes) -> bytes:
        out = self._out
        if not out:
            return b""
        if len(out) == 1 and isinstance(out[0], memoryview) and out[0].obj is data and len(out[0]) == len(data):
            out.clear()
            return data  # the whole chunk went through untouched: no copy
        joined = b"".join(out)
        out.clear()
        return joined

    @staticmethod
    def _drain(spool: tempfile.SpooledTemporaryFile[bytes]) -> Iterator[bytes]:
        with spool:
            spool.seek(0)
            while piece := spool.read(PIECE):
                yield piece

    def _close(self) -> None:
        self._open = False
        self._want = None
        self._walker.close()
        if self._spool is not None:
            self._spool.close()


def strip_bytes(content_type: str, data: bytes, keep_camera: bool = False) -> tuple[bytes, bool]:
    """The whole file at once (it is in memory already): (stripped bytes, changed)."""
    stripper = Stripper(content_type, keep_camera)
    head = stripper.feed(data)
    rest = b"".join(stripper.finish())
    return head + rest, stripper.changed


def strip_file(src: Path, dst: Path, content_type: str, keep_camera: bool = False) -> bool:
    """Stream `src` into `dst` without its metadata; return whether anything was removed.
    On error `dst` is removed and the error raised. Blocking: run it in an executor."""
    stripper = Stripper(content_type, keep_camera)
    try:
        with src.open("rb") as fin, dst.open("wb") as fout:
            while chunk := fin.read(PIECE):
                fout.write(stripper.feed(chunk))
            for piece in stripper.finish():
                fout.write(piece)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return stripper.changed


# --------------------------------------------------------------------------- Exif


class _BadExif(Exception):
    pass


# Bytes per value of each TIFF field type: BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
# UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD; then 16-18: LONG8, SLONG8, IFD8.
_TIFF_TYPE_SIZES = dict(enumerate((1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4), start=1)) | {16: 8, 17: 8, 18: 8}
_ORIENTATION = 0x0112
_GPS_IFD = 0x8825


class _Tiff:
    """The TIFF structure inside an Exif block: `buf[base:]`, every offset relative to base.
    Every read is bounds-checked and raises `_BadExif`."""

    def __init__(self, buf: bytearray, base: int) -> None:
        magic = bytes(buf[base : base + 4])
        if magic == b"II*\x00":
            self.order = "<"
        elif magic == b"MM\x00*":
            self.order = ">"
        else:
            raise _BadExif
        self.buf, self.base = buf, base
        self.ifd0 = self.u32(4)

    def _at(self, off: int, size: int) -> int:
        at = self.base + off
        if off < 0 or at + size > len(self.buf):
            raise _BadExif
        return at

    def u16(self, off: int) -> int:
        value: int = struct.unpack_from(self.order + "H", self.buf, self._at(off, 2))[0]
        return value

    def u32(self, off: int) -> int:
        value: int = struct.unpack_from(self.order + "I", self.buf, self._at(off, 4))[0]
        return value

    def entries(self, ifd: int) -> list[tuple[int, int, int, int]]:
        """(offset of the entry, tag, type, count) for each entry of the IFD at `ifd`."""
        count = self.u16(ifd)
        self._at(ifd + 2, 12 * count)
        return [
            (at, self.u16(at), self.u16(at + 2), self.u32(at + 4)) for at in range(ifd + 2, ifd + 2 + 12 * count, 12)
        ]

    def orientation(self) -> int | None:
        for at, tag, typ, count in self.entries(self.ifd0):
            if tag == _ORIENTATION and typ == 3 and count >= 1:
                value = self.u16(at + 8)
                return value if 1 <= value <= 8 else None
        return None

    def zero(self, off: int, size: int) -> None:
        """Zero `size` bytes at `off`, clipped to the block."""
        start = self.base + max(off, 0)
        end = min(self.base + off + size, len(self.buf))
        if start < end:
            self.buf[start:end] = bytes(end - start)

    def blank_gps(self) -> bool:
        """Zero the GPS IFD and the data its entries point to, and take the GPSInfo entry
        out of IFD0 (or IFD1): the entries after it move up one slot, so no other offset
        changes. True when there was a GPS IFD."""
        found = False
        ifd, seen = self.ifd0, set[int]()
        while ifd and ifd not in seen and len(seen) < 2:
            seen.add(ifd)
            entries = self.entries(ifd)
            end = ifd + 2 + 12 * len(entries) + 4  # the next-IFD offset included
            self._at(ifd, end - ifd)
            for at, tag, _typ, _count in entries:
                if tag == _GPS_IFD:
                    self._blank_ifd(self.u32(at + 8))
                    a, b = self.base + at, self.base + end
                    self.buf[a : b - 12] = self.buf[a + 12 : b]
                    self.buf[b - 12 : b] = bytes(12)
                    struct.pack_into(self.order + "H", self.buf, self.base + ifd, len(entries) - 1)
                    found, end = True, end - 12
                    break
            ifd = self.u32(end - 4)  # the next IFD
        return found

    def _blank_ifd(self, ifd: int) -> None:
        entries = self.entries(ifd)
        for at, _tag, typ, count in entries:
            size = _TIFF_TYPE_SIZES.get(typ, 1) * count
            if size > 4:
                self.zero(self.u32(at + 8), size)
        self.zero(ifd, 2 + 12 * len(entries) + 4)


def _orientation_tiff(order: str, orientation: int) -> bytes:
    """A TIFF header and an IFD0 holding one entry: Orientation (SHORT, count 1)."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    return magic + struct.pack(order + "IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, orientation, 0, 0)


def _rewrite_exif(block: bytes, keep_camera: bool) -> bytes | None:
    """What to publish in place of an Exif block (a TIFF stream, perhaps after an
    "Exif\\0\\0" prefix): with keep_camera the same block with its GPS IFD blanked;
    otherwise an orientation-only block, or None when there is nothing to keep. An
    unreadable block gives None. The block itself comes back when nothing changed."""
    start = 6 if block.startswith(b"Exif\x00\x00") else 0
    buf = bytearray(block)
    try:
        tiff = _Tiff(buf, start)
        if keep_camera:
            return bytes(buf) if tiff.blank_gps() else block
        orientation = tiff.orientation()
    except _BadExif:
        return None
    if orientation is None or orientation == 1:
        return None
    return block[:start] + _orientation_tiff(tiff.order, orientation)


# --------------------------------------------------------------------------- JPEG

# APPn segments worth keeping, by marker and the identifier their payload starts with.
_JPEG_KEEP = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}


def _jpeg(s: Stripper) -> Walker:
    if (yield _Read(2)) != b"\xff\xd8":
        raise s.fail("bad signature")
    s.emit(b"\xff\xd8")
    exif_seen = scanned = False
    while True:
        marker = yield _Read(2)
        while marker == b"\xff\xff":  # fill bytes before a marker
            s.emit(b"\xff")
            marker = b"\xff" + (yield _Read(1))
        code = marker[1]
        if marker[0] != 0xFF or code in (0x00, 0xD8):
            raise s.fail("bad marker")
        if code == 0xD9:
            if not scanned:
                raise s.fail("end of image before any scan")
            s.emit(marker)
            yield _Rest(keep=False)  # trailers, Motion Photo videos, MPF images
            return
        if 0xD0 <= code <= 0xD7 or code == 0x01:  # standalone markers
            s.emit(marker)
            continue
        length = yield _Read(2)
        n = int.from_bytes(length, "big")
        if n < 2:
            raise s.fail("bad segment length")
        if 0xE0 <= code <= 0xEF or code == 0xFE:  # APPn, COM
            body = yield _Read(n - 2)
            if code == 0xE1 and body.startswith(b"Exif\x00\x00") and not exif_seen:
                exif_seen = True
                new = _rewrite_exif(body, s.keep_camera)
                if new != body:
                    s.changed = True
                if new is not None:
                    s.emit(marker + (len(new) + 2).to_bytes(2, "big") + new)
            elif code in _JPEG_KEEP and body.startswith(_JPEG_KEEP[code]):
                s.emit(marker + length + body)
            else:
                s.changed = True
            continue
        s.emit(marker + length)
        yield _Pass(n - 2)
        if code == 0xDA:  # start of scan: entropy-coded data up to the next marker
            scanned = True
            yield _Scan()


# --------------------------------------------------------------------------- PNG

_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _png(s: Stripper) -> Walker:
    signature = yield _Read(8)
    if signature != b"\x89PNG\r\n\x1a\n":
        raise s.fail("bad signature")
    s.emit(signature)
    first = True
    while True:
        header = yield _Read(8)
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF or not ctype.isalpha():
            raise s.fail("bad chunk")
        if first and ctype != b"IHDR":
            raise s.fail("IHDR is not the first chunk")
        first = False
        if ctype in _PNG_DROP or (ctype == b"eXIf" and length > MAX_EXIF):
            s.changed = True
            yield _Drop(length + 4)
        elif ctype == b"eXIf":
            body = yield _Read(length + 4)  # data and CRC
            new = _rewrite_exif(body[:-4], s.keep_camera)
            if new == body[:-4]:
                s.emit(header + body)
            else:
                s.changed = True
                if new is not None:
                    s.emit(_png_chunk(b"eXIf", new))
        else:
            s.emit(header)
            yield _Pass(length + 4)
        if ctype == b"IEND":
            return


# --------------------------------------------------------------------------- GIF

# The looping extensions, and the ICC profile's (colour, nothing personal: kept as in
# every other format).
_GIF_KEEP = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _gif(s: Stripper) -> Walker:
    header = yield _Read(13)
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        raise s.fail("bad signature")
    s.emit(header)
    flags = header[10]
    if flags & 0x80:
        yield _Pass(3 << ((flags & 7) + 1))  # global colour table
    while True:
        try:
            block = yield _Read(1)
        except _EOF:
            raise s.fail("no trailer") from None
        if block == b"\x3b":
            s.emit(block)
            return
        if block == b"\x21":
            label = yield _Read(1)
            if label == b"\xfe":  # comment
                s.changed = True
                yield _Blocks(keep=False)
            elif label == b"\xff":  # application: its first sub-block names it
                size = yield _Read(1)
                ident = yield _Read(size[0])
                if ident in _GIF_KEEP:
                    s.emit(block + label + size + ident)
                    yield _Blocks(keep=True)
                else:
                    s.changed = True
                    if size[0]:
                        yield _Blocks(keep=False)
            else:  # graphic control, plain text
                s.emit(block + label)
                yield _Blocks(keep=True)
        elif block == b"\x2c":  # image descriptor
            desc = yield _Read(9)
            s.emit(block + desc)
            if desc[8] & 0x80:
                yield _Pass(3 << ((desc[8] & 7) + 1))  # local colour table
            s.emit((yield _Read(1)))  # LZW minimum code size
            yield _Blocks(keep=True)
        else:
            raise s.fail(f"unexpected block 0x{block[0]:02x}")


# --------------------------------------------------------------------------- WebP

_VP8X_EXIF = 0x08
_VP8X_XMP = 0x04


def _riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


def _webp(s: Stripper) -> Walker:
    riff = yield _Read(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WEBP":
        raise s.fail("bad signature")
    left = struct.unpack("<I", riff[4:8])[0] - 4
    if left < 8:
        raise s.fail("bad RIFF size")
    flags: int | None = None  # VP8X's; None for a simple file
    first, exif_kept = True, False
    while left:
        if left < 8:
            raise s.fail("bad chunk")
        header = yield _Read(8)
        fourcc, size = header[:4], struct.unpack("<I", header[4:8])[0]
        padded = size + (size & 1)
        if padded > left - 8:
            raise s.fail("a chunk runs past the end of the file")
        left -= 8 + padded
        if first and fourcc == b"VP8X":
            first = False
            if size < 10:
                raise s.fail("bad VP8X chunk")
            s.spool()  # the RIFF length and the flags are known only at the end
            vp8x = yield _Read(padded)
            flags = vp8x[0]
            s.emit(riff + header + vp8x)
        elif first:  # simple format: one image chunk
            first = False
            s.emit(riff + header)
            yield _Pass(padded)
        elif fourcc not in (b"EXIF", b"XMP "):
            s.emit(header)
            yield _Pass(padded)
        elif flags is None:  # cannot be dropped: the RIFF length has gone already
            raise s.fail("metadata in a simple-format file")
        elif fourcc == b"EXIF" and size <= MAX_EXIF and not exif_kept:
            body = yield _Read(padded)
            new = _rewrite_exif(body[:size], s.keep_camera)
            if new != body[:size]:
                s.changed = True
            if new is not None:
                s.emit(header + body if new == body[:size] else _riff_chunk(b"EXIF", new))
                exif_kept = True
        else:
            s.changed = True
            yield _Drop(padded)
    if flags is not None and s.changed:
        flags &= ~_VP8X_XMP
        if not exif_kept:
            flags &= ~_VP8X_EXIF
        s.patch(4, struct.pack("<I", s.spooled() - 8))
        s.patch(20, bytes([flags]))


# --------------------------------------------------------------------------- AVIF


@dataclass(frozen=True)
class _Extent:
    start: int
    end: int
    kind: str  # "exif", "xmp", "camera" (an Exif item whose GPS IFD is blanked) or "zero"


# What a blanked item becomes: an empty block of its kind, then padding. Readers choke on
# zeros: libavif refuses to decode a file whose Exif item holds no TIFF header, XML
# parsers refuse NUL bytes. An Exif item: offset 0 to a TIFF header with an empty IFD0.
_EMPTY = {
    "exif": (b"\x00\x00\x00\x00MM\x00*" + struct.pack(">IHI", 8, 0, 0), b"\x00"),
    "xmp": (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>', b" "),
    "zero": (b"", b"\x00"),
}


def _empty(kind: str, n: int) -> tuple[bytes, bytes]:
    """The start of a blanked item of n bytes, and the byte that pads the rest."""
    head, pad = _EMPTY[kind]
    return (head, pad) if n >= len(head) else (b"", b"\x00")


def _empty_exif(n: int) -> bytes:
    head, pad = _empty("exif", n)
    return head + pad * (n - len(head))


def _blank_avif_exif(item: bytes) -> bytes:
    """An Exif item (a 4-byte offset to the TIFF header, then the Exif block) with its GPS
    IFD blanked, or emptied if it cannot be read."""
    buf = bytearray(item)
    try:
        if len(item) < 4:
            raise _BadExif
        _Tiff(buf, 4 + int.from_bytes(item[:4], "big")).blank_gps()
    except _BadExif:
        return _empty_exif(len(item))
    return bytes(buf)


class _Boxes:
    """Bounds-checked reads over the meta box; a short box raises `Unprocessable`."""

    def __init__(self, s: Stripper, buf: bytearray) -> None:
        self.s, self.buf = s, buf

    def uint(self, at: int, size: int) -> int:
        if size == 0:
            return 0
        if at < 0 or at + size > len(self.buf):
            raise self.s.fail("the meta box is cut short")
        return int.from_bytes(self.buf[at : at + size], "big")

    def children(self, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        """(type, content start, content end) of the boxes in buf[start:end]."""
        at = start
        while at + 8 <= end:
            size, btype = self.uint(at, 4), bytes(self.buf[at + 4 : at + 8])
            head = 8
            if size == 1:
                size, head = self.uint(at + 8, 8), 16
            elif size == 0:
                size = end - at
            if size < head or at + size > end:
                raise self.s.fail(f"bad {btype!r} box")
            yield btype, at + head, at + size
            at += size

    def cstring_end(self, at: int, end: int) -> int:
        """The offset just past the NUL-terminated string at `at`."""
        nul = self.buf.find(b"\x00", at, end)
        return end if nul < 0 else nul + 1


def _meta_items(b: _Boxes, start: int, end: int) -> dict[int, str]:
    """Item id -> "exif" or "xmp" for the metadata items listed in iinf."""
    kinds: dict[int, str] = {}
    for btype, at, stop in b.children(start + 4, end):  # meta is a full box
        if btype != b"iinf":
            continue
        version = b.uint(at, 1)
        count_size = 2 if version == 0 else 4
        for etype, e, e_end in b.children(at + 4 + count_size, stop):
            if etype != b"infe":
                continue
            v = b.uint(e, 1)
            if v < 2:  # item_ID, protection index, name, content type: no item type
                item_id = b.uint(e + 4, 2)
                ctype_at = b.cstring_end(e + 8, e_end)
                item_type = b"mime"
            else:
                id_size = 2 if v == 2 else 4
                item_id = b.uint(e + 4, id_size)
                item_type = bytes(b.buf[e + 6 + id_size : e + 10 + id_size])
                ctype_at = b.cstring_end(e + 10 + id_size, e_end)  # after item_name
            if item_type == b"Exif":
                kinds[item_id] = "exif"
            elif item_type == b"mime":
                ctype = bytes(b.buf[ctype_at : b.cstring_end(ctype_at, e_end)]).rstrip(b"\x00")
                if ctype.strip().lower() == b"application/rdf+xml":
                    kinds[item_id] = "xmp"
    return kinds


def _meta_extents(s: Stripper, meta: bytearray) -> list[_Extent]:
    """Find the Exif and XMP items in the meta box body `meta`. Items in idat are blanked
    in `meta` itself; the file ranges of the others come back, sorted and merged."""
    b = _Boxes(s, meta)
    kinds = _meta_items(b, 0, len(meta))
    if not kinds:
        return []
    idat: tuple[int, int] | None = None
    extents: list[_Extent] = []
    for btype, at, stop in b.children(4, len(meta)):
        if btype == b"idat":
            idat = (at, stop)
    for btype, at, _stop in b.children(4, len(meta)):
        if btype != b"iloc":
            continue
        version = b.uint(at, 1)
        sizes = b.uint(at + 4, 1), b.uint(at + 5, 1)
        offset_size, length_size = sizes[0] >> 4, sizes[0] & 15
        base_size, index_size = sizes[1] >> 4, (sizes[1] & 15 if version else 0)
        if any(n not in (0, 4, 8) for n in (offset_size, length_size, base_size, index_size)):
            raise s.fail("bad iloc box")
        id_size = 4 if version == 2 else 2
        count = b.uint(at + 6, id_size)
        p = at + 6 + id_size
        for _ in range(count):
            item_id = b.uint(p, id_size)
            p += id_size
            method = 0
            if version in (1, 2):
                method = b.uint(p, 2) & 15
                p += 2
            dref = b.uint(p, 2)
            base = b.uint(p + 2, base_size)
            n_extents = b.uint(p + 2 + base_size, 2)
            p += 4 + base_size
            spans = []
            for _ in range(n_extents):
                p += index_size
                off, length = b.uint(p, offset_size), b.uint(p + offset_size, length_size)
                p += offset_size + length_size
                spans.append((base + off, base + off + length, length))
            kind = kinds.get(item_id)
            if kind is None or dref != 0 or not spans:
                continue
            if any(length == 0 for _start, _end, length in spans):
                raise s.fail("a metadata item runs to the end of the file")
            kinds_of_spans = [kind] + ["zero"] * (len(spans) - 1)  # the block starts in the first extent
            if kind == "exif" and s.keep_camera and len(spans) == 1:
                kinds_of_spans[0] = "camera"
            if method == 0:
                extents += [_Extent(a, z, k) for (a, z, _n), k in zip(spans, kinds_of_spans, strict=True)]
            elif method == 1:
                if idat is None:
                    raise s.fail("an item in idat without an idat box")
                for (a, z, _n), k in zip(spans, kinds_of_spans, strict=True):
                    lo, hi = idat[0] + a, idat[0] + z
                    if hi > idat[1]:
                        raise s.fail("an item runs past its idat box")
                    item = bytes(meta[lo:hi])
                    blank = _blank_item(k, item)
                    if blank != item:
                        meta[lo:hi] = blank
                        s.changed = True
            else:
                raise s.fail("a metadata item built from other items (iloc construction method 2)")
    return _merge(extents)


def _merge(extents: list[_Extent]) -> list[_Extent]:
    """Sorted by offset, overlapping ranges merged into one range to zero."""
    merged: list[_Extent] = []
    for e in sorted(extents, key=lambda e: (e.start, e.end)):
        if merged and e.start < merged[-1].end:
            last = merged.pop()
            merged.append(_Extent(last.start, max(last.end, e.end), "zero"))
        else:
            merged.append(e)
    return merged


def _blank_item(kind: str, item: bytes) -> bytes:
    if kind == "camera":
        return _blank_avif_exif(item)
    head, pad = _empty(kind, len(item))
    return head + pad * (len(item) - len(head))


def _avif(s: Stripper) -> Walker:
    pending: list[_Extent] = []
    meta_seen, first = False, True
    while True:
        start = s.pos
        try:
            header = yield _Read(8)
        except _EOF:
            if first:
                raise s.fail("empty") from None
            if pending:
                raise s.fail("a metadata item lies past the end of the file") from None
            return
        size, btype = struct.unpack(">I4s", header)
        if first and btype != b"ftyp":
            raise s.fail("ftyp is not the first box")
        first = False
        if size == 1:
            large = yield _Read(8)
            header += large
            size = struct.unpack(">Q", large)[0]
        if size and size < len(header):
            raise s.fail("bad box size")
        body_start = start + len(header)
        body_end = start + size if size else None  # size 0: the box runs to the end
        if btype == b"meta" and not meta_seen:
            meta_seen = True
            if body_end is None or body_end - body_start > MAX_META:
                raise s.fail("the meta box is too large")
            meta = bytearray((yield _Read(body_end - body_start)))
            pending = _meta_extents(s, meta)
            if pending and pending[0].start < body_end:
                raise s.fail("a metadata item is stored before the end of the meta box")
            s.emit(header + meta)
            continue
        s.emit(header)
        at = body_start
        while pending and (body_end is None or pending[0].start < body_end):
            e = pending.pop(0)
            if e.start < at or (body_end is not None and e.end > body_end):
                raise s.fail("a metadata item straddles a box boundary")
            yield _Pass(e.start - at)
            size = e.end - e.start
            if e.kind == "camera" and size <= MAX_EXIF:
                item = yield _Read(size)
                blank = _blank_avif_exif(item)
            else:  # the head of an empty block now, the padding as it streams past
                blank, pad = _empty("exif" if e.kind == "camera" else e.kind, size)
                item = yield _Read(len(blank))
            if blank != item:
                s.changed = True
            s.emit(blank)
            if len(blank) < size:
                yield _Fill(size - len(blank), pad)
            at = e.end
        if body_end is None:
            yield _Rest(keep=True)
            return
        yield _Pass(body_end - at)


_WALKERS: dict[str, Callable[[Stripper], Walker]] = {
    "image/jpeg": _jpeg,
    "image/png": _png,
    "image/gif": _gif,
    "image/webp": _webp,
    "image/avif": _avif,
}
