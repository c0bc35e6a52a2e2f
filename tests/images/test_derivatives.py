"""The libvips worker pool: what it makes, what it refuses, and how it survives workers
that crash, hang or run out of memory. Needs no app; inputs are made with pyvips here
(the test process is not the server)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pyvips

from imagehost.images.derivatives import WORKER_SCRIPT, DerivativeError, DerivativePool, Derivatives, Rendition

MAX_PIXELS = 100_000_000
RED, GREEN, BLUE = (220, 20, 30), (20, 200, 40), (30, 40, 210)


# --------------------------------------------------------------------------- inputs


def solid(width: int, height: int, colour: tuple[int, int, int]) -> pyvips.Image:
    return (pyvips.Image.black(width, height) + list(colour)).cast("uchar").copy(interpretation="srgb")


def photo(width: int, height: int) -> pyvips.Image:
    """Gradients and noise: something a JPEG encoder has to work for."""
    xyz = pyvips.Image.xyz(width, height)
    base = (xyz[0] * (255 / width)).bandjoin([xyz[1] * (255 / height), xyz[0] * 0 + 128])
    return (base + pyvips.Image.gaussnoise(width, height, sigma=8)).cast("uchar").copy(interpretation="srgb")


def with_corner(image: pyvips.Image, colour: tuple[int, int, int], size: int) -> pyvips.Image:
    """`image` with its top-left corner painted `colour`."""
    return image.insert(solid(size, size, colour), 0, 0)


def animated_gif(path: Path, width: int, height: int, colours: list[tuple[int, int, int]]) -> None:
    frames = [solid(width, height, c) for c in colours]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100 * (i + 1) for i in range(len(colours))])
    strip.set_type(pyvips.GValue.gint_type, "loop", 2)
    strip.gifsave(str(path))


def png_bomb(path: Path, side: int) -> None:
    """A real decompression bomb: a 1-bit greyscale PNG of side×side zero pixels, a few
    hundred KB on disk, side² pixels once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = {name: d / name for name in ("big.jpg", "rot6.jpg", "small.png", "anim.gif", "big-anim.gif", "photo.avif")}
    # A 4000×3000 photo with camera metadata and a wide-gamut (P3) profile.
    big = with_corner(photo(4000, 3000), RED, 400).icc_transform("p3", input_profile="srgb")
    big.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Make", "TestCam")
    big.jpegsave(str(files["big.jpg"]), Q=90)
    # Stored landscape 1280×960 with a red top-left corner; EXIF orientation 6 shows it
    # turned 90° clockwise: portrait, the red corner at the top right.
    rot = with_corner(solid(1280, 960, BLUE), RED, 160).copy()
    rot.set_type(pyvips.GValue.gint_type, "orientation", 6)
    rot.jpegsave(str(files["rot6.jpg"]), Q=90)
    photo(800, 600).pngsave(str(files["small.png"]))
    animated_gif(files["anim.gif"], 300, 200, [RED, GREEN, BLUE])
    animated_gif(files["big-anim.gif"], 2400, 600, [RED, GREEN, BLUE])
    photo(1200, 900).heifsave(str(files["photo.avif"]), compression="av1", Q=60, effort=0)
    return files


@pytest.fixture
async def pool() -> AsyncIterator[DerivativePool]:
    async with DerivativePool(size=2, _test_hooks=True) as p:
        yield p


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def webp(rendition: Rendition) -> pyvips.Image:
    """Open an output, checking on the way that it is what the result says."""
    data = rendition.path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert rendition.content_type == "image/webp"
    assert rendition.size_bytes == len(data)
    image = pyvips.Image.new_from_file(str(rendition.path))
    assert (image.width, image.height) == (rendition.width, rendition.height)
    for field in ("exif-data", "xmp-data", "icc-profile-data"):
        assert image.get_typeof(field) == 0, f"{field} left in {rendition.path.name}"
    return image


def near(pixel: list[float], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


# --------------------------------------------------------------------------- what a job makes


async def test_large_jpeg_gets_a_640_thumbnail_and_a_2048_display(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    source = pyvips.Image.new_from_file(str(inputs["big.jpg"]))
    assert source.get_typeof("exif-data") and source.get_typeof("icc-profile-data")  # so stripping is tested

    result = await pool.make(inputs["big.jpg"], "image/jpeg", tmp_path, MAX_PIXELS)

    assert (result.width, result.height, result.animated, result.pages) == (4000, 3000, False, 1)
    assert (result.thumbnail.width, result.thumbnail.height) == (640, 480)
    assert result.display is not None and result.display_wanted
    assert (result.display.width, result.display.height) == (2048, 1536)
    thumb, display = webp(result.thumbnail), webp(result.display)
    # The P3 original was converted to sRGB before its profile went: the corner is the
    # sRGB red that was drawn, not P3 numbers read as sRGB.
    assert near(thumb(10, 10), RED) and near(display(40, 40), RED)
    assert listing(tmp_path) == sorted([result.thumbnail.path.name, result.display.path.name])


async def test_exif_orientation_6_gives_an_upright_portrait(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    result = await pool.make(inputs["rot6.jpg"], "image/jpeg", tmp_path, MAX_PIXELS)

    assert (result.width, result.height) == (960, 1280)
    assert (result.thumbnail.width, result.thumbnail.height) == (480, 640)
    thumb = webp(result.thumbnail)
    assert near(thumb(475, 5), RED) and near(thumb(5, 5), BLUE) and near(thumb(475, 635), BLUE)
    # Within 2048 px, but the original would show sideways where orientation is ignored.
    assert result.display is not None
    assert (result.display.width, result.display.height) == (960, 1280)
    assert near(webp(result.display)(950, 10), RED)

    probe = await pool.probe(inputs["rot6.jpg"], "image/jpeg")
    assert (probe.width, probe.height, probe.orientation, probe.animated) == (960, 1280, 6, False)


async def test_small_png_needs_no_display(pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path) -> None:
    result = await pool.make(inputs["small.png"], "image/png", tmp_path, MAX_PIXELS)

    assert result.display is None and not result.display_wanted
    assert (result.thumbnail.width, result.thumbnail.height) == (640, 480)
    webp(result.thumbnail)
    assert listing(tmp_path) == [result.thumbnail.path.name]


async def test_small_image_is_never_upscaled(pool: DerivativePool, tmp_path: Path) -> None:
    src = tmp_path / "tiny.png"
    solid(120, 90, GREEN).pngsave(str(src))
    out = tmp_path / "out"
    out.mkdir()

    result = await pool.make(src, "image/png", out, MAX_PIXELS)

    assert (result.thumbnail.width, result.thumbnail.height) == (120, 90) and result.display is None


async def test_animated_gif_gets_a_still_first_frame_thumbnail(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    result = await pool.make(inputs["anim.gif"], "image/gif", tmp_path, MAX_PIXELS)

    assert (result.animated, result.pages, result.width, result.height) == (True, 3, 300, 200)
    thumb = webp(result.thumbnail)
    assert (thumb.width, thumb.height) == (300, 200)
    assert thumb.get_typeof("n-pages") == 0 or thumb.get("n-pages") == 1
    assert near(thumb(150, 100), RED)  # the first frame
    assert result.display is None and not result.display_wanted  # the original plays


async def test_large_animated_gif_gets_an_animated_display(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    result = await pool.make(inputs["big-anim.gif"], "image/gif", tmp_path, MAX_PIXELS)

    assert result.animated and result.pages == 3
    assert (result.thumbnail.width, result.thumbnail.height) == (640, 160)
    assert result.display is not None
    assert (result.display.width, result.display.height) == (2048, 512)
    frames = pyvips.Image.new_from_file(str(result.display.path), n=-1)
    assert frames.get("n-pages") == 3 and frames.get("page-height") == 512
    assert frames.get("delay") == [100, 200, 300] and frames.get("loop") == 2  # timing kept, metadata gone
    assert [near(frames(1000, 256 + 512 * i), c) for i, c in enumerate([RED, GREEN, BLUE])] == [True] * 3

    # All frames together over the pixel limit: the original serves as the display.
    result = await pool.make(inputs["big-anim.gif"], "image/gif", tmp_path, 2400 * 600 * 2)
    assert result.display is None and not result.display_wanted and result.thumbnail.width == 640


async def test_avif_input(pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path) -> None:
    result = await pool.make(inputs["photo.avif"], "image/avif", tmp_path, MAX_PIXELS)

    assert (result.width, result.height) == (1200, 900)
    assert (result.thumbnail.width, result.thumbnail.height) == (640, 480)
    webp(result.thumbnail)
    assert result.display is None


async def test_thumbnail_first_then_display(pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path) -> None:
    result = await pool.make(inputs["big.jpg"], "image/jpeg", tmp_path, MAX_PIXELS, display=False)
    assert result.display is None and result.display_wanted
    assert listing(tmp_path) == [result.thumbnail.path.name]

    display = await pool.make_display(inputs["big.jpg"], "image/jpeg", tmp_path, MAX_PIXELS)
    assert display is not None and (display.width, display.height) == (2048, 1536)
    webp(display)
    assert await pool.make_display(inputs["small.png"], "image/png", tmp_path, MAX_PIXELS) is None
    assert len(listing(tmp_path)) == 2


# --------------------------------------------------------------------------- bad input


def truncated_jpeg(folder: Path, inputs: dict[str, Path]) -> Path:
    data = inputs["big.jpg"].read_bytes()
    path = folder / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_png(folder: Path, inputs: dict[str, Path]) -> Path:
    data = bytearray(inputs["small.png"].read_bytes())
    at = data.find(b"IDAT") + 64
    data[at : at + 256] = bytes(b ^ 0x5A for b in data[at : at + 256])
    path = folder / "corrupt.png"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("make_input", "content_type"), [(truncated_jpeg, "image/jpeg"), (corrupt_png, "image/png")])
async def test_broken_file_cannot_be_decoded_and_leaves_nothing(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path, make_input: object, content_type: str
) -> None:
    assert callable(make_input)
    src = make_input(tmp_path, inputs)
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(DerivativeError) as caught:
        await pool.make(src, content_type, out, MAX_PIXELS)

    assert caught.value.reason == "cannot decode"
    assert listing(out) == []
    assert (await pool.make(inputs["small.png"], "image/png", out, MAX_PIXELS)).thumbnail.width == 640


async def test_file_of_another_type_than_declared_is_refused(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(DerivativeError) as caught:
        await pool.make(inputs["small.png"], "image/jpeg", tmp_path, MAX_PIXELS)
    assert caught.value.reason == "cannot decode"
    with pytest.raises(DerivativeError) as caught:
        await pool.make(inputs["small.png"], "image/svg+xml", tmp_path, MAX_PIXELS)
    assert caught.value.reason == "unsupported type"
    assert listing(tmp_path) == []


def svg_file(folder: Path) -> Path:
    path = folder / "image.svg"
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'
    )
    return path


def tiff_file(folder: Path) -> Path:
    path = folder / "image.tif"
    solid(64, 64, RED).tiffsave(str(path))
    return path


@pytest.mark.parametrize("make_input", [svg_file, tiff_file])
async def test_a_loader_we_do_not_accept_is_blocked(pool: DerivativePool, tmp_path: Path, make_input: object) -> None:
    assert callable(make_input)
    src = make_input(tmp_path)
    assert pyvips.Image.new_from_file(str(src)).width == 64  # libvips reads it: only the block refuses
    out = tmp_path / "out"
    out.mkdir()
    for content_type in ("image/png", "image/jpeg"):
        with pytest.raises(DerivativeError) as caught:
            await pool.make(src, content_type, out, MAX_PIXELS)
        assert caught.value.reason == "cannot decode"
        # Refused by the loader block before any parsing, not by the later check of
        # which loader opened the file (that would have parsed it already).
        assert "not a known file format" in caught.value.detail
    assert listing(out) == []


async def test_decompression_bomb_is_refused_before_decoding(pool: DerivativePool, tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    png_bomb(src, 30000)
    assert src.stat().st_size < 1_000_000
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(DerivativeError) as caught:
        await pool.make(src, "image/png", out, MAX_PIXELS)

    assert caught.value.reason == "too many pixels"
    assert listing(out) == []
    probe = await pool.probe(src, "image/png")  # the header alone is harmless
    assert (probe.width, probe.height) == (30000, 30000)


# --------------------------------------------------------------------------- isolation


async def test_crashing_worker_fails_only_its_job(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    crash_out, ok_out = tmp_path / "crash", tmp_path / "ok"
    crash_out.mkdir()
    ok_out.mkdir()
    before = set(pool.worker_pids())

    crashed, made = await asyncio.gather(
        pool.make(inputs["big.jpg"], "x-test/exit", crash_out, MAX_PIXELS),
        pool.make(inputs["big.jpg"], "image/jpeg", ok_out, MAX_PIXELS),
        return_exceptions=True,
    )

    assert isinstance(crashed, DerivativeError) and crashed.reason == "crashed"
    assert "exit status 1" in crashed.detail
    assert isinstance(made, Derivatives) and made.display is not None
    assert listing(crash_out) == []  # the partial file the worker began is gone
    assert len(listing(ok_out)) == 2
    after = await pool.make(inputs["small.png"], "image/png", ok_out, MAX_PIXELS)
    assert after.thumbnail.width == 640
    assert len(set(pool.worker_pids()) - before) == 1  # one worker was replaced


async def test_segfault_in_a_worker_is_a_crash(pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DerivativeError) as caught:
        await pool.make(inputs["small.png"], "x-test/segfault", tmp_path, MAX_PIXELS)
    assert caught.value.reason == "crashed" and "SIGSEGV" in caught.value.detail
    assert listing(tmp_path) == []
    assert (await pool.make(inputs["small.png"], "image/png", tmp_path, MAX_PIXELS)).thumbnail.width == 640


async def test_job_over_the_time_limit_is_killed(inputs: dict[str, Path], tmp_path: Path) -> None:
    hang_out, ok_out = tmp_path / "hang", tmp_path / "ok"
    hang_out.mkdir()
    ok_out.mkdir()
    async with DerivativePool(size=2, time_limit=3, _test_hooks=True) as pool:
        hung, made = await asyncio.gather(
            pool.make(inputs["small.png"], "x-test/sleep", hang_out, MAX_PIXELS),
            pool.make(inputs["rot6.jpg"], "image/jpeg", ok_out, MAX_PIXELS),
            return_exceptions=True,
        )

        assert isinstance(hung, DerivativeError) and hung.reason == "timeout"
        assert isinstance(made, Derivatives) and made.height == 1280
        assert listing(hang_out) == []
        after = await pool.make(inputs["small.png"], "image/png", ok_out, MAX_PIXELS)
        assert after.thumbnail.width == 640
        assert len(pool.worker_pids()) == 2


@pytest.mark.parametrize("hook", ["x-test/alloc", "x-test/vips-alloc"])
async def test_memory_limit_holds(inputs: dict[str, Path], tmp_path: Path, hook: str) -> None:
    """The hook asks for twice the limit (512 MiB, which this machine has): only the
    worker's limit can refuse it."""
    async with DerivativePool(size=1, memory_limit=256 << 20, _test_hooks=True) as pool:
        with pytest.raises(DerivativeError) as caught:
            await pool.make(inputs["small.png"], hook, tmp_path, MAX_PIXELS)
        assert caught.value.reason == "out of memory"
        assert listing(tmp_path) == []
        # A real job fits in the limit, on a fresh worker.
        result = await pool.make(inputs["big.jpg"], "image/jpeg", tmp_path, MAX_PIXELS)
        assert result.display is not None


async def test_cancelled_job_kills_its_worker_and_leaves_nothing(
    pool: DerivativePool, inputs: dict[str, Path], tmp_path: Path
) -> None:
    hang_out, ok_out = tmp_path / "hang", tmp_path / "ok"
    hang_out.mkdir()
    ok_out.mkdir()
    job = asyncio.create_task(pool.make(inputs["small.png"], "x-test/sleep", hang_out, MAX_PIXELS))
    for _ in range(600):  # until the worker has begun writing (generous: a loaded machine)
        if listing(hang_out):
            break
        await asyncio.sleep(0.05)
    assert listing(hang_out), "the worker never began the job"
    before = set(pool.worker_pids())

    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job

    result = await pool.make(inputs["small.png"], "image/png", ok_out, MAX_PIXELS)
    assert result.thumbnail.width == 640
    for _ in range(600):  # the clean-up runs once the killed worker is reaped
        if not listing(hang_out):
            break
        await asyncio.sleep(0.05)
    assert listing(hang_out) == []
    assert before - set(pool.worker_pids())  # the worker that had the job is gone


async def test_pool_starts_lazily_and_closes_its_workers(inputs: dict[str, Path], tmp_path: Path) -> None:
    pool = DerivativePool(size=2)
    assert pool.worker_pids() == []
    result = await pool.make(inputs["small.png"], "image/png", tmp_path, MAX_PIXELS)
    assert result.thumbnail.width == 640
    pids = pool.worker_pids()
    assert len(pids) == 1 and pool.libvips_version

    await pool.close()

    assert pool.worker_pids() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(DerivativeError) as caught:
        await pool.make(inputs["small.png"], "image/png", tmp_path, MAX_PIXELS)
    assert caught.value.reason == "closed"


async def test_test_hooks_are_refused_unless_enabled(inputs: dict[str, Path], tmp_path: Path) -> None:
    async with DerivativePool(size=1) as pool:
        with pytest.raises(DerivativeError) as caught:
            await pool.make(inputs["small.png"], "x-test/exit", tmp_path, MAX_PIXELS)
        assert caught.value.reason == "unsupported type"
        assert len(pool.worker_pids()) == 1


def test_worker_itself_ignores_test_hooks_unless_started_with_them(tmp_path: Path) -> None:
    """Defence in depth: even a request that got past the pool cannot make a production
    worker misbehave."""
    request = json.dumps({"op": "make", "src": "/x", "content_type": "x-test/exit", "out_dir": str(tmp_path)})
    body = request.encode()
    config = json.dumps({"memory_limit": 0, "test_hooks": False})
    done = subprocess.run(
        [sys.executable, "-P", str(WORKER_SCRIPT), config],
        input=struct.pack(">I", len(body)) + body,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0  # it answered, then left at the end of its input
    frames, data = [], done.stdout
    while data:
        (n,) = struct.unpack(">I", data[:4])
        frames.append(json.loads(data[4 : 4 + n]))
        data = data[4 + n :]
    assert "ready" in frames[0]
    assert frames[1]["error"] == "cannot decode" and "unsupported type" in frames[1]["detail"]
    assert listing(tmp_path) == []
