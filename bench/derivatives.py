"""Thumbnails by our libvips worker pool against Debian's `vipsthumbnail`, and what a
derivative job adds to an upload. Prints figures; asserts nothing.

    .venv/bin/python bench/derivatives.py [--runs 7]

Inputs (made here, in a temporary folder): a 12 MP photo-like JPEG (~4 MB), a 4000×4000
WebP, a 1920×1080 screenshot-like PNG, an animated GIF.

Time: ours is `await pool.make(...)` on a warm pool of one worker (send the job, wait for
the reply: the cost an upload sees) and the worker's CPU time for the job; vipsthumbnail
is one `vipsthumbnail IN --size 640x640 -o OUT.webp[Q=80,strip]` process (libvips'
default WebP effort 4; our thumbnail uses THUMBNAIL_EFFORT, 2), wall and CPU
(user + system, from GNU time), its CPU also shown less its start-up (the median run on
an 8×8 image). CPU time is the fairer figure on a shared machine. Runs are interleaved;
medians. Memory: the peak RSS of a fresh process doing one job, from GNU time: our
worker (Python and pyvips included; its idle figure is shown) and vipsthumbnail.

Needs `vipsthumbnail` (Debian's libvips-tools) and GNU time: installed with apt-get when missing and
running as root. The two sides run different builds of libvips (pyvips-binary's and
Debian's); both versions are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyvips  # noqa: E402  (the bench makes its inputs; the server never imports this)

from imagehost.images.derivatives import THUMBNAIL_EFFORT, WORKER_SCRIPT, DerivativePool  # noqa: E402

MAX_PIXELS = 100_000_000
VT_OPTIONS = "[Q=80,strip]"
# pyvips-binary's libvips sets VIPSHOME in this process's C environment (not in
# os.environ); inherited, it would hide Debian's libvips modules from vipsthumbnail.
CLEAN_ENV = dict(os.environ)


# --------------------------------------------------------------------------- setup


def ensure_tools() -> str | None:
    """vipsthumbnail (Debian's libvips-tools) and GNU time, installed when missing and
    running as root. Returns vipsthumbnail's path, or None (then only ours is shown)."""
    missing = [
        pkg for pkg, path in (("libvips-tools", "vipsthumbnail"), ("time", "/usr/bin/time")) if not shutil.which(path)
    ]
    if missing and os.geteuid() == 0:
        print(f"installing {' '.join(missing)} with apt-get …", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    if not shutil.which("/usr/bin/time"):
        raise SystemExit("GNU time (/usr/bin/time) is needed: apt-get install time")
    return shutil.which("vipsthumbnail")


def debian_version() -> str:
    return subprocess.run(["vips", "--version"], capture_output=True, text=True, env=CLEAN_ENV).stdout.strip()


def photo(width: int, height: int, sigma: float) -> pyvips.Image:
    """Gradients, soft blobs and sensor-like noise."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    base = (x * (255 / width)).bandjoin([y * (255 / height), ((x + y) * (720 / (width + height))).sin() * 60 + 128])
    blobs = pyvips.Image.gaussnoise(width // 16, height // 16, sigma=60, mean=0).resize(16, kernel="linear")
    noise = pyvips.Image.gaussnoise(width, height, sigma=sigma, mean=0)
    return (base + blobs + noise).cast("uchar").copy(interpretation="srgb")


def screenshot(width: int, height: int) -> pyvips.Image:
    """Flat panels and lines of 'text' (small dark blocks)."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    panel = (x > 260) & (y > 60) & (x < width - 40) & (y < height - 40)
    text = panel & ((x % 9) < 6) & ((y % 22) < 12) & (((x // 57) % 5) != 0) & ((y // 22) % 7 != 6)
    background = pyvips.Image.black(width, height).new_from_image([236, 238, 242])
    image = panel.ifthenelse([255, 255, 255], background)
    image = text.ifthenelse([40, 44, 52], image)
    image = ((x < 260) & (y > 60)).ifthenelse([48, 56, 70], image)
    image = (y < 60).ifthenelse([30, 90, 200], image)
    return image.cast("uchar").copy(interpretation="srgb")


def make_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    files = {
        "12 MP JPEG": (folder / "photo.jpg", "image/jpeg"),
        "4000² WebP": (folder / "big.webp", "image/webp"),
        "1080p PNG": (folder / "screen.png", "image/png"),
        "anim GIF": (folder / "anim.gif", "image/gif"),
    }
    photo(4000, 3000, 10).jpegsave(str(files["12 MP JPEG"][0]), Q=88)
    photo(4000, 4000, 6).webpsave(str(files["4000² WebP"][0]), Q=80)
    screenshot(1920, 1080).pngsave(str(files["1080p PNG"][0]))
    frames = [photo(800, 600, 4).embed(-20 * i, 0, 800, 600, extend="mirror") for i in range(12)]
    gif = pyvips.Image.arrayjoin(frames, across=1).copy()
    gif.set_type(pyvips.GValue.gint_type, "page-height", 600)
    gif.set_type(pyvips.GValue.array_int_type, "delay", [80] * 12)
    gif.set_type(pyvips.GValue.gint_type, "loop", 0)
    gif.gifsave(str(files["anim GIF"][0]))
    tiny = folder / "tiny.png"
    pyvips.Image.black(8, 8, bands=3).pngsave(str(tiny))
    files["tiny"] = (tiny, "image/png")
    return files


# --------------------------------------------------------------------------- measuring


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds, user + system
    peak_kb: int  # RSS high-water mark


def timed(argv: list[str]) -> list[str]:
    """Run argv under GNU time, which forks it from a small process: ru_maxrss of a
    child counts what it inherited at fork, so it must not be forked from this one."""
    return ["/usr/bin/time", "-f", "%U %S %M", "--", *argv]


def parse_time(stderr: str) -> tuple[float, int]:
    user, system, peak = stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), int(peak)


def run_measured(argv: list[str]) -> Run:
    t0 = time.perf_counter()
    proc = subprocess.run(timed(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()}")
    cpu, peak = parse_time(proc.stderr)
    return Run(wall, cpu, peak)


def vipsthumbnail_argv(binary: str, src: Path, out_dir: Path) -> list[str]:
    return [binary, str(src), "--size", "640x640", "-o", f"{out_dir}/%s.webp{VT_OPTIONS}"]


def job(src: Path, content_type: str, out_dir: Path, display: bool) -> dict[str, object]:
    return {
        "op": "make",
        "src": str(src),
        "content_type": content_type,
        "out_dir": str(out_dir),
        "prefix": "bench.",
        "max_pixels": MAX_PIXELS,
        "thumbnail": True,
        "display": display,
        "thumbnail_size": 640,
        "display_size": 2048,
        "quality": 80,
        "thumbnail_effort": THUMBNAIL_EFFORT,
    }


def worker_peak(src: Path, content_type: str, out_dir: Path, display: bool | None) -> int:
    """Peak RSS (KiB) of a fresh worker doing one job (None: start and stop only)."""
    config = json.dumps({"memory_limit": 1 << 30, "test_hooks": False})
    env = {**os.environ, "VIPS_CONCURRENCY": "1", "MALLOC_ARENA_MAX": "2"}
    argv = timed([sys.executable, "-P", str(WORKER_SCRIPT), config])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None

    def receive() -> dict[str, object]:
        (n,) = struct.unpack(">I", stdout.read(4))
        reply: dict[str, object] = json.loads(stdout.read(n))
        return reply

    receive()  # ready
    if display is not None:
        body = json.dumps(job(src, content_type, out_dir, display)).encode()
        stdin.write(struct.pack(">I", len(body)) + body)
        stdin.flush()
        reply = receive()
        if "ok" not in reply:
            raise RuntimeError(f"worker: {reply}")
    stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.wait()
    stdout.close()
    proc.stderr.close()
    return parse_time(err)[1]


BARE = """
import os, sys, time
os.environ["VIPS_CONCURRENCY"] = "1"
import pyvips
pyvips.cache_set_max(0)
cpu = 0.0
for _ in range(int(sys.argv[3])):  # the last run is timed: 2 for a warm figure, as ours
    t = time.process_time()
    image = pyvips.Image.thumbnail(sys.argv[1], 640, height=640, size="down")
    image.webpsave(sys.argv[2], Q=80, keep="none")
    cpu = time.process_time() - t
print(cpu)
"""


def bare(src: Path | None, out_dir: Path, runs: int) -> tuple[float, int]:
    """vipsthumbnail's pipeline in plain pyvips (the same libvips as ours, no pool, no
    checks), `runs` times in a fresh process: CPU seconds of the last run and the
    process's peak RSS (KiB)."""
    argv = [sys.executable, "-c", BARE, str(src or ""), str(out_dir / "bare.webp"), str(runs if src else 0)]
    proc = subprocess.run(timed(argv), capture_output=True, text=True, env={**CLEAN_ENV, "MALLOC_ARENA_MAX": "2"})
    if proc.returncode != 0:
        raise RuntimeError(f"bare pyvips failed: {proc.stderr.strip()}")
    return float(proc.stdout.strip()), parse_time(proc.stderr)[1]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def clear(folder: Path) -> None:
    for entry in folder.iterdir():
        entry.unlink()


# --------------------------------------------------------------------------- main


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--e2e-runs", type=int, default=15)
    args = parser.parse_args()

    vt = ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-derivatives-"))
    out = work / "out"
    out.mkdir()
    try:
        print("making inputs …", flush=True)
        inputs = make_inputs(work)
        tiny = inputs.pop("tiny")[0]
        for name, (path, _) in inputs.items():
            head = pyvips.Image.new_from_file(str(path))
            pages = head.get("n-pages") if head.get_typeof("n-pages") else 1
            print(f"  {name:11s} {head.width}×{head.height} ×{pages}  {path.stat().st_size / 1e6:.2f} MB  {path.name}")
        debian = debian_version() if vt else "not installed"
        print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

        async with DerivativePool(size=1) as pool:
            print(f"libvips: ours (pyvips-binary) {pool.libvips_version}; Debian's vipsthumbnail: {debian}")
            print("ours: one worker, VIPS_CONCURRENCY=1; vipsthumbnail: default concurrency (all cores)\n")
            await compare(pool, inputs, tiny, out, vt, args.runs)
            await end_to_end(pool, inputs["12 MP JPEG"], tiny, out, args.e2e_runs)
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def compare(
    pool: DerivativePool, inputs: dict[str, tuple[Path, str]], tiny: Path, out: Path, vt: str | None, runs: int
) -> None:
    # ---- time: interleaved rounds; ours on the warm pool, vipsthumbnail a process each
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    vt_start: list[Run] = []

    async def ours(name: str, label: str, src: Path, ctype: str, display: bool) -> None:
        t0 = time.perf_counter()
        result = await pool.make(src, ctype, out, MAX_PIXELS, display=display)
        wall.setdefault((name, label), []).append(time.perf_counter() - t0)
        cpu.setdefault((name, label), []).append(result.cpu_seconds)
        clear(out)

    def theirs(name: str, src: Path) -> None:
        assert vt
        run = run_measured(vipsthumbnail_argv(vt, src, out))
        wall.setdefault((name, "vt"), []).append(run.wall)
        cpu.setdefault((name, "vt"), []).append(run.cpu)
        clear(out)

    for src, ctype in inputs.values():  # warm-up: page cache, first-use costs
        await pool.make(src, ctype, out, MAX_PIXELS)
        if vt:
            run_measured(vipsthumbnail_argv(vt, src, out))
        clear(out)
    for _ in range(runs):
        if vt:
            vt_start.append(run_measured(vipsthumbnail_argv(vt, tiny, out)))
        for name, (src, ctype) in inputs.items():
            await ours(name, "thumb", src, ctype, False)
            if vt:
                theirs(name, src)
            await ours(name, "both", src, ctype, True)

    # ---- memory: fresh processes, interleaved
    peaks: dict[tuple[str, str], list[int]] = {}
    idle = [worker_peak(tiny, "image/png", out, None) for _ in range(3)]
    bare_idle = [bare(None, out, 0)[1] for _ in range(3)]
    vt_idle = [run_measured(vipsthumbnail_argv(vt, tiny, out)).peak_kb for _ in range(3)] if vt else [0]
    clear(out)
    for _ in range(3):
        for name, (src, ctype) in inputs.items():
            peaks.setdefault((name, "thumb"), []).append(worker_peak(src, ctype, out, False))
            peaks.setdefault((name, "both"), []).append(worker_peak(src, ctype, out, True))
            if vt:
                peaks.setdefault((name, "vt"), []).append(run_measured(vipsthumbnail_argv(vt, src, out)).peak_kb)
            cpu.setdefault((name, "bare"), []).append(bare(src, out, 2)[0])  # warm, as ours
            peaks.setdefault((name, "bare"), []).append(bare(src, out, 1)[1])  # one job, as ours
            clear(out)

    start_wall = median_ms([r.wall for r in vt_start]) if vt_start else 0.0
    start_cpu = median_ms([r.cpu for r in vt_start]) if vt_start else 0.0
    print(
        f"time (median of {runs}, ms); vipsthumbnail's start-up (on an 8×8 image): "
        f"{start_wall:.0f} ms wall, {start_cpu:.0f} ms CPU"
    )
    print(
        f"{'':11s} {'--------- wall ---------':>24s}  {'------------- CPU -------------':>31s}  {'thumb+display':>13s}"
    )
    print(
        f"{'input':11s} {'ours':>6s} {'vt':>6s} {'ratio':>6s}  {'ours':>6s} {'vt':>6s} {'vt−st':>6s} {'ratio':>6s}"
        f" {'ratio′':>6s}   {'wall':>6s} {'CPU':>6s}"
    )
    for name in inputs:
        o_wall, o_cpu = median_ms(wall[(name, "thumb")]), median_ms(cpu[(name, "thumb")])
        b_wall, b_cpu = median_ms(wall[(name, "both")]), median_ms(cpu[(name, "both")])
        if vt:
            t_wall, t_cpu = median_ms(wall[(name, "vt")]), median_ms(cpu[(name, "vt")])
            net = max(t_cpu - start_cpu, 1.0)
            print(
                f"{name:11s} {o_wall:6.0f} {t_wall:6.0f} {o_wall / t_wall:6.2f}  {o_cpu:6.0f} {t_cpu:6.0f} {net:6.0f}"
                f" {o_cpu / t_cpu:6.2f} {o_cpu / net:6.2f}   {b_wall:6.0f} {b_cpu:6.0f}"
            )
        else:
            print(f"{name:11s} {o_wall:6.0f} {'':13s}  {o_cpu:6.0f} {'':27s}   {b_wall:6.0f} {b_cpu:6.0f}")
    print(
        "ours: the job through the pool (wall) and the worker's CPU for it; vt: one vipsthumbnail process\n"
        "ratio = ours / vt; ratio′ = ours CPU / (vt CPU − its start-up CPU)\n"
    )

    idle_mb, vt_idle_mb = statistics.median(idle) / 1024, statistics.median(vt_idle) / 1024
    print(f"peak RSS (median of 3, MB); idle: our worker {idle_mb:.1f}, vipsthumbnail on 8×8 {vt_idle_mb:.1f}")
    print(
        f"{'input':11s} {'ours':>6s} {'vt':>6s} {'ratio':>6s}  {'Δours':>6s} {'Δvt':>6s} {'Δratio':>6s}"
        f"   {'thumb+display':>13s}"
    )
    for name in inputs:
        o_mb = statistics.median(peaks[(name, "thumb")]) / 1024
        b_mb = statistics.median(peaks[(name, "both")]) / 1024
        if vt:
            t_mb = statistics.median(peaks[(name, "vt")]) / 1024
            d_o, d_t = o_mb - idle_mb, t_mb - vt_idle_mb
            print(
                f"{name:11s} {o_mb:6.1f} {t_mb:6.1f} {o_mb / t_mb:6.2f}  {d_o:6.1f} {d_t:6.1f}"
                f" {d_o / max(d_t, 0.1):6.2f}   {b_mb:13.1f}"
            )
        else:
            print(f"{name:11s} {o_mb:6.1f} {'':13s}  {o_mb - idle_mb:6.1f} {'':13s}   {b_mb:13.1f}")
    print("ours: a fresh worker doing one job; Δ = peak − idle (the image work alone); Δratio = Δours / Δvt\n")

    bare_idle_mb = statistics.median(bare_idle) / 1024
    print(
        "the same pipeline in bare pyvips (pyvips-binary's libvips, VIPS_CONCURRENCY=1, no pool, no checks), "
        "median of 3:"
    )
    print(f"{'input':11s} {'CPU ms':>7s} {'Δpeak MB':>9s}   vs ours: {'CPU':>5s} {'Δpeak':>6s}")
    for name in inputs:
        b_cpu = median_ms(cpu[(name, "bare")])
        b_d = statistics.median(peaks[(name, "bare")]) / 1024 - bare_idle_mb
        o_cpu = median_ms(cpu[(name, "thumb")])
        o_d = statistics.median(peaks[(name, "thumb")]) / 1024 - idle_mb
        print(f"{name:11s} {b_cpu:7.0f} {b_d:9.1f}   {'':8s} {o_cpu / b_cpu:5.2f} {o_d / max(b_d, 0.1):6.2f}")
    print()


async def end_to_end(pool: DerivativePool, photo_input: tuple[Path, str], tiny: Path, out: Path, runs: int) -> None:
    src, ctype = photo_input
    overhead: list[float] = []
    for _ in range(runs):  # an 8×8 PNG: what the pool itself costs a job
        t0 = time.perf_counter()
        result = await pool.make(tiny, "image/png", out, MAX_PIXELS)
        overhead.append(time.perf_counter() - t0 - result.cpu_seconds)
        clear(out)
    size_mb = src.stat().st_size / 1e6
    labels = ("thumbnail only", "thumbnail + display", "display only")
    walls: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(runs):
        for label in labels:
            t0 = time.perf_counter()
            if label == "display only":
                await pool.make_display(src, ctype, out, MAX_PIXELS)
            else:
                await pool.make(src, ctype, out, MAX_PIXELS, display=label != "thumbnail only")
            walls[label].append(time.perf_counter() - t0)
            clear(out)
    print(f"end to end through the pool (send the job, wait for the reply), {size_mb:.1f} MB 12 MP JPEG, {runs} runs:")
    for label, values in walls.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"  {label:20s} median {median_ms(values):6.0f} ms   p90 {p90 * 1000:6.0f} ms   (budget: 150 ms)")
    print(f"  the pool's own cost per job (8×8 PNG, wall − worker CPU): median {median_ms(overhead):.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
