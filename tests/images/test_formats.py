"""The format checks on their own: every supported type, fed in any chunking, passes
whole and fails truncated or with bytes after its end."""

from __future__ import annotations

import pytest

from imagehost.errors import AppError
from imagehost.images.formats import EXTENSIONS, Checker, sniff
from tests.support.uploads import FORMATS, image_bytes


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_checker_accepts_whole_files_in_any_chunking_and_refuses_cut_ones(fmt):
    data = image_bytes(fmt, (120, 90), noise=True)
    mime = FORMATS[fmt]
    assert sniff(data[:4096], tuple(EXTENSIONS), 10**8).content_type == mime
    for step in (1, 3, 1000, len(data)):
        c = Checker(mime)
        for i in range(0, len(data), step):
            c.feed(data[i : i + step])
        c.finish()
    cut = [data[:-1], data[: len(data) // 2]]
    if fmt != "JPEG":  # bytes after a JPEG's EOI are allowed: see the next test
        cut.append(data + b"\x01")
    for bad in cut:
        c = Checker(mime)
        with pytest.raises(AppError) as err:
            c.feed(bad)
            c.finish()
        assert err.value.status == 422


def test_sniff_reads_sizes_from_headers_and_applies_the_pixel_limit():
    data = image_bytes("WEBP", (300, 20))
    assert (sniff(data, tuple(EXTENSIONS), 10**8).width, sniff(data, tuple(EXTENSIONS), 10**8).height) == (300, 20)
    with pytest.raises(AppError) as err:
        sniff(data, tuple(EXTENSIONS), 5999)
    assert err.value.status == 422
    with pytest.raises(AppError) as err:
        sniff(image_bytes("GIF"), ("image/png",), 10**8)
    assert err.value.status == 415


def _feed(mime: str, data: bytes, step: int = 4096) -> None:
    c = Checker(mime)
    for i in range(0, len(data), step):
        c.feed(data[i : i + step])
    c.finish()


def _jpeg_with_exif_thumbnail() -> bytes:
    """A JPEG whose APP1 segment holds a whole JPEG thumbnail (with its own EOI)."""
    thumb = image_bytes("JPEG", (16, 16))
    body = image_bytes("JPEG", (200, 150), noise=True)
    app1 = b"Exif\x00\x00" + b"II*\x00" + b"\x00" * 8 + thumb  # not a parsed IFD: only its bytes matter
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    return body[:2] + segment + body[2:]


def test_jpeg_with_appended_data_after_eoi_is_accepted():
    """Phones append metadata (Samsung) or a whole video (Motion Photos) after EOI."""
    data = image_bytes("JPEG", (120, 90), noise=True)
    for step in (1, 7, 4096):
        _feed("image/jpeg", data + b"SEFH" + b"\x00" * 300 + b"trailing video bytes", step)


def test_truncated_jpeg_is_refused_even_when_its_exif_thumbnail_has_an_eoi():
    data = _jpeg_with_exif_thumbnail()
    _feed("image/jpeg", data)  # whole: fine
    sos = data.index(b"\xff\xda", data.index(b"\xff\xd9") + 2)  # the main image's scan
    for cut in (sos + 40, len(data) - 2, len(data) // 2 + sos // 2):
        with pytest.raises(AppError) as err:
            _feed("image/jpeg", data[:cut], 1000)
        assert err.value.status == 422


def test_eoi_split_across_chunks_is_found():
    data = image_bytes("JPEG", (64, 64), noise=True)
    end = len(data) - 1  # split FFD9 between two chunks
    c = Checker("image/jpeg")
    c.feed(data[:end])
    c.feed(data[end:])
    c.finish()
