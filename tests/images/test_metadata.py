"""Metadata stripping (`imagehost.images.metadata`): what leaves is free of location, camera
serial, owner and capture time, decodes to exactly the same pixels, and streams correctly
whatever the chunk boundaries. Every fixture is made here with Pillow or pyvips, and each
test first checks that the fixture really holds what is to be removed."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree

import pytest
import pyvips
from PIL import Image, ImageCms, ImageSequence, TiffImagePlugin
from PIL.PngImagePlugin import PngInfo

from imagehost.errors import Unprocessable, UnsupportedMediaType
from imagehost.images.metadata import PIECE, Stripper, strip_bytes, strip_file

SERIAL = b"SERIAL123456"
OWNER = b"Jane Owner"
TAKEN = b"2021:05:06 07:08:09"
XMP_SECRET = b"XMPCreator"
XMP_EXT_SECRET = b"XMPExtendedSecret"
COMMENT = b"COMMENT-SECRET"
IPTC_SECRET = b"IPTCCityOfJane"
TRAILER = b"MotionPhoto_Data" + SERIAL + b"video" * 50
GPS_SECONDS = 2912347  # latitude seconds x 100000: its 4 bytes, in either order, must vanish
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' dc:creator="XMPCreator" exif:GPSLatitude="48,51.485N"/></rdf:RDF></x:xmpmeta>'
)
SECRETS = (SERIAL, OWNER, TAKEN, XMP_SECRET, XMP_EXT_SECRET, COMMENT, IPTC_SECRET)

JPEG, PNG, GIF, WEBP, AVIF = "image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"


# --------------------------------------------------------------------------- fixtures


def camera_exif(orientation: int = 6, endian: str = "<", gps: bool = True) -> Image.Exif:
    exif = Image.Exif()
    exif.endian = endian
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "EOS R5"  # Model
    exif[0x013B] = OWNER.decode()  # Artist
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0xA431] = SERIAL.decode()  # BodySerialNumber
    sub[0x9003] = TAKEN.decode()  # DateTimeOriginal
    if gps:
        rational = TiffImagePlugin.IFDRational
        g = exif.get_ifd(0x8825)
        g[1], g[3], g[5] = "N", "E", b"\x00"
        g[2] = (rational(48), rational(51), rational(Fraction(GPS_SECONDS, 100000)))
        g[4] = (rational(2), rational(17), rational(Fraction(4012347, 100000)))
        g[6] = rational(Fraction(3512, 10))  # altitude
    return exif


def has_gps_bytes(data: bytes) -> bool:
    return struct.pack("<I", GPS_SECONDS) in data or struct.pack(">I", GPS_SECONDS) in data


def noise(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, 80 + 10 * i) for i in range(3)]).convert(mode)


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def insert_after_app0(jpeg: bytes, extra: bytes) -> bytes:
    assert jpeg[2:4] == b"\xff\xe0"
    at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:at] + extra + jpeg[at:]


def jpeg_photo(endian: str = "<", trailer: bool = True) -> bytes:
    out = io.BytesIO()
    noise().save(out, "JPEG", exif=camera_exif(endian=endian), icc_profile=ICC, xmp=XMP, comment=COMMENT, quality=95)
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", 18) + b"\x1c\x02\x5a\x00\x0e" + IPTC_SECRET
    mp_index = (
        struct.pack(">H", 3)
        + struct.pack(">HHI4s", 0xB000, 7, 4, b"0100")  # MPFVersion
        + struct.pack(">HHII", 0xB001, 4, 1, 1)  # NumberOfImages
        + struct.pack(">HHII", 0xB002, 7, 16, 50)  # MPEntry, at 50
        + struct.pack(">I", 0)
    )
    mpf = b"MPF\x00MM\x00*" + struct.pack(">I", 8) + mp_index + struct.pack(">IIIHH", 0x030000, 0, 0, 0, 0)
    ext_xmp = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + struct.pack(">II", 17, 0) + XMP_EXT_SECRET
    data = insert_after_app0(out.getvalue(), segment(0xED, iptc) + segment(0xE2, mpf) + segment(0xE1, ext_xmp))
    return data + TRAILER if trailer else data


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def png_photo() -> bytes:
    info = PngInfo()
    info.add_text("Author", OWNER.decode())
    info.add_text("Comment", COMMENT.decode(), zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    noise().save(out, "PNG", exif=camera_exif(), icc_profile=ICC, pnginfo=info)
    data = out.getvalue()
    time_chunk = png_chunk(b"tIME", struct.pack(">HBBBBB", 2021, 5, 6, 7, 8, 9))
    return data[:-12] + time_chunk + data[-12:]


def apng_photo() -> bytes:
    frames = [noise().convert("RGBA") for _ in range(3)]
    out = io.BytesIO()
    frames[0].save(
        out, "PNG", save_all=True, append_images=frames[1:], loop=0, duration=80, exif=camera_exif(), icc_profile=ICC
    )
    return out.getvalue()


def gif_extension(label: int, data: bytes) -> bytes:
    blocks = b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))
    return bytes([0x21, label]) + blocks + b"\x00"


def gif_anim(metadata: bool = True) -> bytes:
    frames = [noise((40, 30)).convert("P", palette=Image.Palette.ADAPTIVE) for _ in range(3)]
    out = io.BytesIO()
    extra = {"comment": COMMENT} if metadata else {}
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=[50, 60, 70], **extra)
    data = out.getvalue()
    if not metadata:
        return data
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    magic_trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    xmp_ext = b"\x21\xff\x0bXMP DataXMP" + XMP + magic_trailer
    icc_ext = b"\x21\xff\x0bICCRGBG1012" + gif_extension(0, ICC)[2:]
    other_app = b"\x21\xff\x0bMYAPPLICAT1" + bytes([len(OWNER)]) + OWNER + b"\x00"
    return data[:at] + xmp_ext + icc_ext + other_app + data[at:]


def webp_photo() -> bytes:
    out = io.BytesIO()
    noise().save(out, "WEBP", lossless=True, exif=camera_exif(), xmp=XMP, icc_profile=ICC)
    return out.getvalue()


def webp_anim() -> bytes:
    frames = [noise() for _ in range(3)]
    out = io.BytesIO()
    frames[0].save(
        out,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        loop=0,
        duration=[50, 60, 70],
        lossless=True,
        exif=camera_exif(),
        xmp=XMP,
        icc_profile=ICC,
    )
    return out.getvalue()


def avif_pillow(metadata: bool = True) -> bytes:
    out = io.BytesIO()
    extra = {"exif": camera_exif(orientation=1), "xmp": XMP} if metadata else {}
    noise().save(out, "AVIF", icc_profile=ICC, quality=90, **extra)
    return out.getvalue()


def avif_vips() -> bytes:
    out = io.BytesIO()
    noise().save(out, "JPEG", exif=camera_exif(), icc_profile=ICC, xmp=XMP)
    im = pyvips.Image.new_from_buffer(out.getvalue(), "")
    assert im.get_typeof("exif-data") and im.get_typeof("xmp-data") and im.get_typeof("icc-profile-data")
    data: bytes = im.heifsave_buffer(compression="av1", Q=90)
    return data


# ISOBMFF by hand, to move the Exif item of a libavif file into idat or the meta box after mdat.


def boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    found, at = [], 0
    while at < len(data):
        size, btype = struct.unpack(">I4s", data[at : at + 8])
        found.append((btype, at, at + size))
        at += size
    return found


def box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + btype + payload


def rebuild_avif(data: bytes, exif_in_idat: bool = False, method: int = 1, meta_last: bool = False) -> bytes:
    top = {t: data[a:z] for t, a, z in boxes(data)}
    assert list(top) == [b"ftyp", b"meta", b"mdat"]
    meta_head, children = top[b"meta"][8:12], boxes(top[b"meta"][12:])
    meta_body = top[b"meta"][12:]
    parts = {t: meta_body[a:z] for t, a, z in children}
    iloc = parts[b"iloc"][8:]
    assert iloc[:6] == b"\x00\x00\x00\x00\x44\x00", "libavif writes iloc v0 with 4-byte offsets"
    items = []
    for i in range(struct.unpack(">H", iloc[6:8])[0]):
        item_id, _dref, n, off, length = struct.unpack_from(">HHHII", iloc, 8 + 14 * i)
        assert n == 1
        items.append((item_id, off, length))
    iinf = parts[b"iinf"][8:]
    exif_id = 0
    for _t, a, _z in boxes(iinf[6:]):
        entry = iinf[6 + a + 8 :]
        if entry[8:12] == b"Exif":
            exif_id = struct.unpack(">H", entry[4:6])[0]
    assert exif_id
    exif_at, exif_len = next((off, length) for item_id, off, length in items if item_id == exif_id)
    exif_bytes = data[exif_at : exif_at + exif_len]
    mdat = bytearray(top[b"mdat"])
    mdat_start = len(top[b"ftyp"]) + len(top[b"meta"])

    def build(shift: int) -> bytes:
        rows = b""
        for item_id, off, length in items:
            if exif_in_idat and item_id == exif_id:
                rows += struct.pack(">HHHHII", item_id, method, 0, 1, 0, length)
            else:
                rows += struct.pack(">HHHHII", item_id, 0, 0, 1, off + shift, length)
        new_iloc = box(b"iloc", b"\x01\x00\x00\x00\x44\x00" + struct.pack(">H", len(items)) + rows)
        body = b"".join(new_iloc if t == b"iloc" else meta_body[a:z] for t, a, z in children)
        if exif_in_idat:
            body += box(b"idat", exif_bytes)
        return box(b"meta", meta_head + body)

    if exif_in_idat:
        mdat[exif_at - mdat_start : exif_at - mdat_start + exif_len] = bytes(exif_len)  # the only copy is in idat
    if meta_last:  # ftyp, mdat, meta: every offset moves by the meta box's length, back
        return top[b"ftyp"] + bytes(mdat) + build(-len(top[b"meta"]))
    grown = len(build(0)) - len(top[b"meta"])
    return top[b"ftyp"] + build(grown) + bytes(mdat)


def avif_idat() -> bytes:
    return rebuild_avif(avif_pillow(), exif_in_idat=True)


# name -> (content type, builder, secrets it holds, has an ICC profile Pillow reads)
PHOTOS: dict[str, tuple[str, Callable[[], bytes], tuple[bytes, ...], bool]] = {
    "jpeg": (JPEG, jpeg_photo, SECRETS, True),
    "png": (PNG, png_photo, (SERIAL, OWNER, TAKEN, XMP_SECRET, b"zTXt", b"tIME"), True),
    "apng": (PNG, apng_photo, (SERIAL, OWNER, TAKEN), True),
    "gif": (GIF, gif_anim, (XMP_SECRET, COMMENT, OWNER), False),
    "webp": (WEBP, webp_photo, (SERIAL, OWNER, TAKEN, XMP_SECRET), True),
    "webp-anim": (WEBP, webp_anim, (SERIAL, OWNER, TAKEN, XMP_SECRET), True),
    "avif-libavif": (AVIF, avif_pillow, (SERIAL, OWNER, TAKEN, XMP_SECRET), True),
    "avif-libheif": (AVIF, avif_vips, (SERIAL, OWNER, TAKEN, XMP_SECRET), True),
    "avif-idat": (AVIF, avif_idat, (SERIAL, OWNER, TAKEN, XMP_SECRET), True),
}
WITH_GPS = [name for name in PHOTOS if name != "gif"]
_cache: dict[str, bytes] = {}


def photo(name: str) -> bytes:
    if name not in _cache:
        _cache[name] = PHOTOS[name][1]()
    return _cache[name]


# --------------------------------------------------------------------------- helpers


def pillow_frames(data: bytes) -> list[tuple[str, tuple[int, int], bytes, object]]:
    with Image.open(io.BytesIO(data)) as im:
        return [(f.mode, f.size, f.tobytes(), f.info.get("duration")) for f in ImageSequence.Iterator(im)]


def vips_pixels(data: bytes, animated: bool) -> bytes:
    im = pyvips.Image.new_from_buffer(data, "", n=-1) if animated else pyvips.Image.new_from_buffer(data, "")
    pixels: bytes = im.write_to_memory()
    return pixels


def assert_same_pixels(before: bytes, after: bytes, content_type: str) -> None:
    assert pillow_frames(after) == pillow_frames(before)
    assert vips_pixels(after, content_type in (GIF, WEBP)) == vips_pixels(before, content_type in (GIF, WEBP))


def exif_of(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as im:
        return im.getexif()


def info_of(data: bytes) -> dict[str, object]:
    with Image.open(io.BytesIO(data)) as im:
        return dict(im.info)


def chunked(content_type: str, data: bytes, size: int, keep_camera: bool = False) -> tuple[bytes, bool]:
    stripper = Stripper(content_type, keep_camera)
    out = [stripper.feed(data[i : i + size]) for i in range(0, len(data), size)]
    out += list(stripper.finish())
    return b"".join(out), stripper.changed


# --------------------------------------------------------------------------- what goes


@pytest.mark.parametrize("name", list(PHOTOS))
def test_stripped_photo_loses_every_secret_and_keeps_pixels_and_icc(name: str) -> None:
    content_type, _, secrets, pillow_icc = PHOTOS[name]
    data = photo(name)
    for secret in secrets:
        assert secret in data, f"the fixture lacks {secret!r}"
    assert has_gps_bytes(data) == (name in WITH_GPS)

    out, changed = strip_bytes(content_type, data)

    assert changed is True
    for secret in secrets:
        assert secret not in out
    assert not has_gps_bytes(out)
    assert b"GPSLatitude" not in out  # XMP's location
    exif = exif_of(out)
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)
    assert not {0x010F, 0x0110, 0x013B, 0x8769} & set(exif)
    xmp = info_of(out).get("xmp")
    if isinstance(xmp, bytes):  # AVIF: the item is still there, blanked; readers must still parse it
        assert ElementTree.fromstring(xmp).tag == "{adobe:ns:meta/}xmpmeta" and XMP_SECRET not in xmp
    else:
        assert xmp is None
    if pillow_icc:
        assert info_of(out)["icc_profile"] == ICC
    else:  # GIF: Pillow does not read the ICCRGBG1012 extension
        assert b"ICCRGBG1012" + gif_extension(0, ICC)[2:] in out
    assert_same_pixels(data, out, content_type)


def test_jpeg_loses_segments_between_scans_and_everything_after_eoi() -> None:
    out = io.BytesIO()
    noise((160, 120)).save(out, "JPEG", progressive=True, restart_marker_blocks=2, quality=97, exif=camera_exif())
    data = out.getvalue()
    scan = data.index(b"\xff\xda")
    later = data.index(b"\xff\xc4", scan)  # a table between two progressive scans
    data = data[:later] + segment(0xFE, COMMENT) + segment(0xE1, b"Exif\x00\x00" + SERIAL) + data[later:] + TRAILER
    assert data.count(b"\xff\xda") > 2 and b"\xff\xd0" in data

    result, changed = strip_bytes(JPEG, data)

    assert changed is True
    assert COMMENT not in result and SERIAL not in result and b"MotionPhoto" not in result
    assert result.endswith(b"\xff\xd9") and result.count(b"\xff\xda") == data.count(b"\xff\xda")
    assert_same_pixels(data, result, JPEG)
    for size in (1, 7, 4096):
        assert chunked(JPEG, data, size) == (result, True)


def test_cmyk_jpeg_keeps_its_adobe_segment_and_colours() -> None:
    out = io.BytesIO()
    noise(mode="CMYK").save(out, "JPEG", exif=camera_exif(), icc_profile=ICC)
    data = out.getvalue()
    assert b"\xff\xee\x00\x0eAdobe" in data

    result, changed = strip_bytes(JPEG, data)

    assert changed is True and b"\xff\xee\x00\x0eAdobe" in result and SERIAL not in result
    assert_same_pixels(data, result, JPEG)


def test_gif_keeps_looping_and_icc_extensions_only() -> None:
    data = photo("gif")
    result, _ = strip_bytes(GIF, data)

    assert b"NETSCAPE2.0" in result and b"ICCRGBG1012" in result
    assert b"XMP DataXMP" not in result and b"MYAPPLICAT1" not in result
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(result)) as b:
        assert b.n_frames == a.n_frames == 3
        assert b.info["loop"] == a.info["loop"] == 0


@pytest.mark.parametrize("name", ["webp-anim", "apng"])
def test_animations_keep_every_frame_and_their_looping(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    result, _ = strip_bytes(content_type, data)
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(result)) as b:
        assert b.n_frames == a.n_frames == 3
        assert b.info["loop"] == a.info["loop"] == 0
    assert_same_pixels(data, result, content_type)


@pytest.mark.parametrize("orientation", [6, 1])
def test_webp_flags_and_riff_length_match_what_is_left(orientation: int) -> None:
    out = io.BytesIO()
    noise().save(out, "WEBP", lossless=True, exif=camera_exif(orientation), xmp=XMP, icc_profile=ICC)
    data = out.getvalue()
    assert data[20] & 0x2C == 0x2C  # ICC, EXIF, XMP

    result, _ = strip_bytes(WEBP, data)

    assert struct.unpack("<I", result[4:8])[0] == len(result) - 8
    assert result[12:16] == b"VP8X"
    flags = result[20]
    assert flags & 0x20  # ICC
    assert bool(flags & 0x08) == (orientation != 1) == (b"EXIF" in result)  # the orientation-only block
    assert not flags & 0x04 and b"XMP " not in result
    assert_same_pixels(data, result, WEBP)


def test_avif_item_with_an_empty_head_but_a_secret_after_it_is_blanked() -> None:
    once, _ = strip_bytes(AVIF, photo("avif-libavif"))
    head = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    at = once.index(head) + len(head)
    planted = once[:at] + XMP_SECRET + once[at + len(XMP_SECRET) :]

    assert strip_bytes(AVIF, planted) == (once, True)
    assert chunked(AVIF, planted, 5) == (once, True)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("content_type", [JPEG, PNG, WEBP])
def test_orientation_survives_alone(content_type: str, endian: str) -> None:
    out = io.BytesIO()
    fmt = content_type.split("/")[1].upper()
    noise().save(
        out, fmt, exif=camera_exif(orientation=6, endian=endian), **({"lossless": True} if fmt == "WEBP" else {})
    )
    data = out.getvalue()
    assert exif_of(data)[0x0112] == 6 and SERIAL in data

    result, changed = strip_bytes(content_type, data)

    assert changed is True
    assert dict(exif_of(result)) == {0x0112: 6}
    assert SERIAL not in result and OWNER not in result and not has_gps_bytes(result)
    assert_same_pixels(data, result, content_type)


def test_orientation_1_leaves_no_exif_at_all() -> None:
    out = io.BytesIO()
    noise().save(out, "JPEG", exif=camera_exif(orientation=1))
    result, changed = strip_bytes(JPEG, out.getvalue())
    assert changed is True and b"Exif" not in result and not exif_of(result)


# --------------------------------------------------------------------------- keep_camera


@pytest.mark.parametrize("name", [n for n in WITH_GPS if n != "apng"])
def test_keep_camera_keeps_make_model_and_serial_but_no_location(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    assert exif_of(data).get_ifd(0x8825)

    result, changed = strip_bytes(content_type, data, keep_camera=True)

    assert changed is True
    exif = exif_of(result)
    assert exif[0x010F] == "Canon" and exif[0x0110] == "EOS R5"
    assert exif.get_ifd(0x8769)[0xA431] == SERIAL.decode()
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)
    assert not has_gps_bytes(result)
    assert XMP_SECRET not in result and b"GPSLatitude" not in result  # XMP goes anyway
    assert_same_pixels(data, result, content_type)


def test_keep_camera_blanks_gps_pointed_to_from_ifd0_and_ifd1() -> None:
    """A hand-made Exif block: IFD0 (Make, GPS) -> IFD1 (Compression, GPS, Orientation)."""

    def ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
        return (
            struct.pack("<H", len(entries))
            + b"".join(struct.pack("<HHII", *e) for e in entries)
            + struct.pack("<I", next_ifd)
        )

    def gps(data_at: int) -> bytes:
        return ifd([(2, 5, 3, data_at)], 0)

    ifd0_at, ifd1_at, gps0_at, gps1_at, data0_at, data1_at, make_at = 8, 38, 80, 98, 116, 140, 164
    seconds = struct.pack("<6I", 48, 1, 51, 1, GPS_SECONDS, 100000)
    tiff = b"II*\x00" + struct.pack("<I", ifd0_at)
    tiff += ifd([(0x010F, 2, 6, make_at), (0x8825, 4, 1, gps0_at)], ifd1_at)
    tiff += ifd([(0x0103, 3, 1, 6), (0x0112, 3, 1, 3), (0x8825, 4, 1, gps1_at)], 0)
    tiff = tiff.ljust(gps0_at, b"\x00") + gps(data0_at) + gps(data1_at) + seconds + seconds + b"Canon\x00"
    assert len(tiff) == make_at + 6
    png = PLAIN["png"][1]
    data = png[:33] + png_chunk(b"eXIf", tiff) + png[33:]
    assert exif_of(data).get_ifd(0x8825) and has_gps_bytes(data)

    result, changed = strip_bytes(PNG, data, keep_camera=True)

    assert changed is True and len(result) == len(data) and not has_gps_bytes(result)
    exif = exif_of(result)
    assert exif[0x010F] == "Canon" and 0x8825 not in exif
    ifd1 = exif.get_ifd(-1)  # ExifTags.IFD.IFD1
    assert ifd1[0x0103] == 6 and ifd1[0x0112] == 3 and 0x8825 not in ifd1


@pytest.mark.parametrize("endian", ["<", ">"])
def test_keep_camera_blanks_gps_in_place_in_either_byte_order(endian: str) -> None:
    out = io.BytesIO()
    noise().save(out, "JPEG", exif=camera_exif(endian=endian))
    data = out.getvalue()

    result, changed = strip_bytes(JPEG, data, keep_camera=True)

    assert changed is True and len(result) == len(data)  # same length: every offset still holds
    exif = exif_of(result)
    assert exif[0x0112] == 6 and exif[0x013B] == OWNER.decode()
    assert exif.get_ifd(0x8769)[0x9003] == TAKEN.decode()
    assert 0x8825 not in exif and not has_gps_bytes(result)


def test_keep_camera_without_gps_changes_nothing() -> None:
    out = io.BytesIO()
    noise().save(out, "JPEG", exif=camera_exif(gps=False), icc_profile=ICC)
    data = out.getvalue()
    assert strip_bytes(JPEG, data, keep_camera=True) == (data, False)


# --------------------------------------------------------------------------- nothing to strip


def plain_files() -> dict[str, tuple[str, bytes]]:
    def save(fmt: str, image: Image.Image | None = None, **options: object) -> bytes:
        out = io.BytesIO()
        (image or noise()).save(out, fmt, **options)
        return out.getvalue()

    frames = [noise() for _ in range(3)]
    return {
        "jpeg": (JPEG, save("JPEG", icc_profile=ICC)),
        "jpeg-progressive-restarts": (JPEG, save("JPEG", progressive=True, restart_marker_rows=1)),
        "png": (PNG, save("PNG", icc_profile=ICC)),
        "gif": (GIF, save("GIF")),
        "gif-anim": (GIF, gif_anim(metadata=False)),
        "webp-simple": (WEBP, save("WEBP", quality=80)),
        "webp-icc": (WEBP, save("WEBP", lossless=True, icc_profile=ICC)),
        "webp-anim": (WEBP, save("WEBP", frames[0], save_all=True, append_images=frames[1:], loop=0)),
        "avif": (AVIF, avif_pillow(metadata=False)),
    }


PLAIN = plain_files()


@pytest.mark.parametrize("name", list(PLAIN))
def test_file_without_metadata_comes_out_byte_identical(name: str) -> None:
    content_type, data = PLAIN[name]
    for keep_camera in (False, True):
        assert strip_bytes(content_type, data, keep_camera) == (data, False)
        assert chunked(content_type, data, 7, keep_camera) == (data, False)


@pytest.mark.parametrize("name", list(PHOTOS))
def test_stripping_twice_changes_nothing_more(name: str) -> None:
    content_type = PHOTOS[name][0]
    for keep_camera in (False, True):
        once, _ = strip_bytes(content_type, photo(name), keep_camera)
        assert strip_bytes(content_type, once, keep_camera) == (once, False)


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("name", list(PHOTOS))
def test_any_chunking_gives_the_same_output(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    for keep_camera in (False, True):
        whole = strip_bytes(content_type, data, keep_camera)
        for size in (1, 7, 64 * 1024, len(data)):
            assert chunked(content_type, data, size, keep_camera) == whole, f"chunks of {size}"


@pytest.mark.parametrize("name", ["jpeg", "gif", "avif-libavif", "avif-idat", "webp"])
def test_every_split_point_gives_the_same_output(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    whole = strip_bytes(content_type, data)
    for cut in range(1, len(data)):
        stripper = Stripper(content_type)
        out = stripper.feed(data[:cut]) + stripper.feed(data[cut:]) + b"".join(stripper.finish())
        assert (out, stripper.changed) == whole, f"split at {cut}"


def big_png() -> bytes:
    raw = random.Random(1).randbytes(1200 * 1200 * 3 + 1200)
    out = io.BytesIO()
    Image.frombytes("RGB", (1200, 1200), raw[: 1200 * 1200 * 3]).save(out, "PNG", compress_level=0, exif=camera_exif())
    return out.getvalue()


@pytest.mark.parametrize("content_type", [PNG, JPEG])
def test_output_streams_as_input_arrives(content_type: str) -> None:
    if content_type == PNG:
        data = big_png()
    else:
        out = io.BytesIO()
        noise((1200, 1200)).save(out, "JPEG", quality=95, exif=camera_exif())
        data = out.getvalue()
    assert len(data) > 1_000_000
    removed = len(data) - len(strip_bytes(content_type, data)[0])
    stripper = Stripper(content_type)
    step = 64 * 1024
    emitted = 0
    for i in range(0, len(data), step):
        emitted += len(stripper.feed(data[i : i + step]))
        read = min(i + step, len(data))
        if i > 2 * step:  # past the headers: what came in has gone out, bar what is removed
            assert read - removed - emitted <= 1  # a JPEG scan holds back a final FF
    tail = list(stripper.finish())
    assert all(len(piece) <= PIECE for piece in tail)


def test_extended_webp_is_emitted_at_finish_in_bounded_pieces() -> None:
    frames = [Image.frombytes("RGB", (700, 700), random.Random(i).randbytes(700 * 700 * 3)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], lossless=True, exif=camera_exif(), xmp=XMP)
    data = out.getvalue()
    assert len(data) > 2 * PIECE

    stripper = Stripper(WEBP)
    assert all(stripper.feed(data[i : i + 65536]) == b"" for i in range(0, len(data), 65536))
    pieces = list(stripper.finish())

    assert len(pieces) > 2 and all(len(p) <= PIECE for p in pieces)
    result = b"".join(pieces)
    assert SERIAL not in result and XMP_SECRET not in result
    assert_same_pixels(data, result, WEBP)


def test_simple_webp_streams_through() -> None:
    _, data = PLAIN["webp-simple"]
    stripper = Stripper(WEBP)
    assert stripper.feed(data[:100]) == data[:100]


# --------------------------------------------------------------------------- broken input


def box_ends(data: bytes) -> set[int]:
    return {end for _t, _a, end in boxes(data)}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_every_truncation_raises_unprocessable(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    if content_type == JPEG:
        data = data[: data.rindex(b"\xff\xd9") + 2]  # without the trailer: the EOI is the end
    allowed = box_ends(data) if content_type == AVIF else set()  # a file may end after any top-level box
    for cut in range(len(data)):
        try:
            strip_bytes(content_type, data[:cut])
        except Unprocessable:
            continue
        assert cut in allowed, f"a file cut at {cut} of {len(data)} was accepted"


@pytest.mark.parametrize("name", list(PHOTOS))
def test_corrupted_bytes_raise_nothing_but_unprocessable(name: str) -> None:
    content_type = PHOTOS[name][0]
    data = photo(name)
    rng = random.Random(name)
    for _ in range(300):
        broken = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.choice((0, 0xFF, rng.randrange(256)))
        try:
            for keep_camera in (False, True):
                chunked(content_type, bytes(broken), 97, keep_camera)
        except Unprocessable:
            pass


def avif_with_method_2() -> bytes:
    return rebuild_avif(avif_pillow(), exif_in_idat=True, method=2)


@pytest.mark.parametrize(
    ("content_type", "build", "why"),
    [
        (JPEG, lambda: b"\xff\xd8\xff\xe1\x00\x01", "bad segment length"),
        (JPEG, lambda: b"\xff\xd8\xff\xd9", "end of image before any scan"),
        (JPEG, lambda: b"GIF89a" + bytes(20), "bad signature"),
        (PNG, lambda: PLAIN["png"][1] + b"x", "data after the end"),
        (
            PNG,
            lambda: PLAIN["png"][1][:8] + png_chunk(b"tEXt", b"a\x00b") + PLAIN["png"][1][8:],
            "IHDR is not the first",
        ),
        (GIF, lambda: PLAIN["gif"][1] + b"\x00", "data after the end"),
        (GIF, lambda: PLAIN["gif"][1][:-1] + b"\x99", "unexpected block"),
        (WEBP, lambda: PLAIN["webp-simple"][1] + b"\x00\x00", "data after the end"),
        (WEBP, lambda: PLAIN["webp-simple"][1][:4] + struct.pack("<I", 2) + PLAIN["webp-simple"][1][8:], "RIFF size"),
        (WEBP, lambda: simple_webp_with_exif(), "metadata in a simple-format file"),
        (AVIF, lambda: rebuild_avif(avif_pillow(), meta_last=True), "before the end of the meta box"),
        (AVIF, avif_with_method_2, "construction method 2"),
        (AVIF, lambda: b"\x00\x00\x00\x10mdat" + bytes(8), "ftyp is not the first box"),
    ],
)
def test_malformed_input_is_refused_with_a_clear_message(
    content_type: str, build: Callable[[], bytes], why: str
) -> None:
    data = build()
    for size in (1, len(data)):
        with pytest.raises(Unprocessable, match=why):
            chunked(content_type, data, size)


def simple_webp_with_exif() -> bytes:
    data = PLAIN["webp-simple"][1]
    exif = b"EXIF" + struct.pack("<I", 6) + b"MM\x00*\x00\x00"
    return data[:4] + struct.pack("<I", len(data) - 8 + len(exif)) + data[8:] + exif


def test_meta_after_mdat_fixture_is_a_valid_avif() -> None:
    """The file the previous test refuses is a real image: the refusal is a documented limit."""
    original = photo("avif-libavif")
    data = rebuild_avif(original, meta_last=True)
    assert data[4:8] == b"ftyp" and data.rindex(b"meta") > data.index(b"mdat")
    assert pillow_frames(data) == pillow_frames(original)
    assert SERIAL in info_of(data)["exif"]  # type: ignore[operator]


@pytest.mark.parametrize("keep_camera", [False, True])
def test_unreadable_exif_is_dropped_not_refused(keep_camera: bool) -> None:
    _, plain = PLAIN["jpeg"]
    data = insert_after_app0(plain, segment(0xE1, b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + SERIAL))
    result, changed = strip_bytes(JPEG, data, keep_camera)
    assert changed is True and result == plain

    png = PLAIN["png"][1]
    data = png[:33] + png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\xff\xff" + SERIAL) + png[33:]
    result, changed = strip_bytes(PNG, data, keep_camera)
    assert changed is True and result == png


def test_unknown_type_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType):
        Stripper("image/svg+xml")


def test_finish_raises_at_once_on_a_truncated_file() -> None:
    stripper = Stripper(PNG)
    stripper.feed(PLAIN["png"][1][:-5])
    with pytest.raises(Unprocessable, match="truncated"):
        stripper.finish()  # not only once the pieces are iterated


# --------------------------------------------------------------------------- files


def test_strip_file_streams_file_to_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    src.write_bytes(photo("jpeg"))
    assert strip_file(src, dst, JPEG) is True
    assert dst.read_bytes() == strip_bytes(JPEG, photo("jpeg"))[0]


def test_strip_file_leaves_nothing_behind_on_bad_input(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    src.write_bytes(PLAIN["png"][1][:-5])
    with pytest.raises(Unprocessable):
        strip_file(src, dst, PNG)
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


# --------------------------------------------------------------------------- exiftool


@pytest.mark.parametrize("name", list(PHOTOS))
def test_exiftool_finds_no_personal_metadata(name: str, tmp_path: Path) -> None:
    """An independent reader's view. Optional: skipped where exiftool is not installed
    (Debian: libimage-exiftool-perl)."""
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        pytest.skip("exiftool is not installed")
    content_type = PHOTOS[name][0]
    path = tmp_path / "photo"

    def tags(data: bytes) -> dict[str, object]:
        path.write_bytes(data)
        run = subprocess.run([exiftool, "-j", "-a", "-G1", "-n", str(path)], capture_output=True, check=True)
        found: dict[str, object] = json.loads(run.stdout)[0]
        return found

    def personal(found: dict[str, object]) -> set[str]:
        words = ("GPS", "Serial", "Artist", "Author", "Creator", "DateTimeOriginal", "Comment", "XMP", "IPTC", "Make")
        ignore = ("ExifTool", "File", "System", "ICC")
        return {k for k in found if any(w in k for w in words) and not k.startswith(ignore)}

    assert personal(tags(photo(name)))
    for keep_camera in (False, True):
        found = tags(strip_bytes(content_type, photo(name), keep_camera)[0])
        if keep_camera and name in WITH_GPS:
            assert not {k for k in personal(found) if "GPS" in k or "XMP" in k}, found
        else:
            assert not personal(found), found
        known = ("Improper EXIF header", "construction method 1")  # libvips' WebP; exiftool's own limit
        assert not {k for k in found if "Warning" in k and not str(found[k]).endswith(known)}, found
