"""Metadata stripping throughput: a ~5 MB JPEG and a ~5 MB PNG (both with Exif, GPS and
XMP) fed through `Stripper` in fixed-size chunks, N times, against a plain chunked copy
of the same bytes with the same chunk size; MB/s for both and the ratio.

    .venv/bin/python bench/strip_throughput.py [--n 20] [--chunk 65536] [--mb 5]

The copy slices the same chunks and hands them to the same counting sink, so the
difference is the stripper's own work. Single-threaded, in-process: no server involved.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from imagehost.images.metadata import Stripper  # noqa: E402

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


def exif() -> Image.Exif:
    e = Image.Exif()
    e[0x010F], e[0x0110], e[0x0112] = "Canon", "EOS R5", 6
    e.get_ifd(0x8769)[0xA431] = "SERIAL123456"
    gps = e.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.5)
    return e


def noisy(width: int, height: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(width).randbytes(width * height * 3))


def make_jpeg(mb: float) -> bytes:
    side = 1000
    while True:  # noise at quality 90 costs about 2.2 bytes a pixel: grow until big enough
        out = io.BytesIO()
        noisy(side, side).save(out, "JPEG", quality=90, exif=exif(), xmp=XMP)
        if out.tell() >= mb * 1e6:
            return out.getvalue()
        side = int(side * 1.15)


def make_png(mb: float) -> bytes:
    side = int((mb * 1e6 / 3) ** 0.5)
    out = io.BytesIO()
    noisy(side, side).save(out, "PNG", compress_level=1, exif=exif())
    return out.getvalue()


def run(data: bytes, chunk: int, work: Callable[[bytes], bytes], tail: Callable[[], list[bytes]]) -> int:
    total = 0
    for i in range(0, len(data), chunk):
        total += len(work(data[i : i + chunk]))
    for piece in tail():
        total += len(piece)
    return total


def measure(content_type: str, data: bytes, n: int, chunk: int) -> tuple[float, float, int]:
    def copy_once() -> int:
        return run(data, chunk, lambda piece: piece, list)

    def strip_once() -> int:
        stripper = Stripper(content_type)
        return run(data, chunk, stripper.feed, lambda: list(stripper.finish()))

    out_len = strip_once()  # warm up, and check it works
    copy_once()
    rates = []
    for once in (copy_once, strip_once):
        start = time.perf_counter()
        for _ in range(n):
            once()
        rates.append(n * len(data) / 1e6 / (time.perf_counter() - start))
    return rates[0], rates[1], out_len


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="passes over each file")
    parser.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per feed()")
    parser.add_argument("--mb", type=float, default=5.0, help="size of each file")
    args = parser.parse_args()

    print(f"chunk {args.chunk} B, {args.n} passes, Python {sys.version.split()[0]}")
    for content_type, data in (("image/jpeg", make_jpeg(args.mb)), ("image/png", make_png(args.mb))):
        copy, strip, out_len = measure(content_type, data, args.n, args.chunk)
        print(
            f"{content_type:<11} {len(data) / 1e6:5.2f} MB -> {out_len / 1e6:5.2f} MB   "
            f"copy {copy:8.0f} MB/s   strip {strip:7.0f} MB/s   strip/copy {strip / copy:.3f}"
        )


if __name__ == "__main__":
    main()
