"""The format checks on their own: every supported type, fed in any chunking, passes
whole and fails truncated or with bytes after its end."""

from __future__ import annotations

import pytest

from imagehost.errors import AppError
from imagehost.images.formats import EXTENSIONS, Checker, sniff

from .test_upload_support import FORMATS, image_bytes


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_checker_accepts_whole_files_in_any_chunking_and_refuses_cut_ones(fmt):
    data = image_bytes(fmt, (120, 90), noise=True)
    mime = FORMATS[fmt]
    assert sniff(data[:4096], tuple(EXTENSIONS), 10**8).content_type == mime
    for step in (1, 3, 1000, len(data)):
        c = Checker(mime)
        for i in range(0, len(data), step):
            c.feed(data[i:i + step])
        c.finish()
    for bad in (data[:-1], data[: len(data) // 2], data + b"\x01"):
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
