"""imagehost side by side with its physical anchors, in one run (issue 14's table).

    .venv/bin/python bench/side_by_side.py [--duration 5] [--rounds 3] [--only serve,upload,list]
        [--modes sqlite-local,pg-local,sqlite-s3] [--scaling] [--existing]

wrk `-t1 -c32 -d<duration>s` drives every server from CPU 1 (`taskset -c 1`); the server
under test and its anchor both run on CPU 0 (`taskset -c 0`), one at a time, the pairs
interleaved round after round; the medians and ratios are printed at the end.

- serve:  GET /i/<key>, a 26 KB JPEG, against nginx (sendfile on) serving the same file
          from the same folder with the same headers;
- upload: POST /api/upload, a 197 KB PNG (API key), against a bare aiohttp handler
          reading the same multipart body to a file in the same folder;
- list:   GET /api/images/?limit=50 of 200 images (API key), against a bare aiohttp
          handler running the same keyset query through SQLAlchemy on the same database.

Modes: sqlite-local (all three), pg-local (upload, list), sqlite-s3 (upload; the moto
server runs on CPU 1 beside wrk). `--scaling` adds imagehost with 1 and with 2 worker
processes on both CPUs (wrk shares CPU 1: a lower bound of what two cores give);
`--loops` adds imagehost on asyncio's event loop against uvloop's (EVENT_LOOP).
`--baseline DIR` runs the imagehost of another checkout (say `git worktree add /tmp/main
main`) beside this one in every mode, interleaved, for before/after figures from one run.
For uploads it also prints the CPU each upload costs in the server process and in its
libvips workers (the thumbnail made before the answer), from /proc, and the rate the
workers' share alone would allow on one core.
`--existing` runs bench/upload_throughput.py and bench/list_images.py afterwards (upload
memory; 100 vs 100 000 images). wrk and nginx come from bench/setup.sh if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
from _harness import PY, ROOT, free_port, imagehost, make_user, moto_server, taskset, wait_http
from list_images import insert_rows
from PIL import Image

HERE = Path(__file__).resolve().parent
SERVER_CPU, CLIENT_CPU = "0", "1"
BOUNDARY = "sideBySideB0undary"
VARIANTS = ("loop", "scaling")
RESULTS: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (mode, what, who) → req/s per round
ERRORS: dict[tuple[str, str, str], int] = defaultdict(int)
# (mode, who) → (server ms, libvips workers ms) of CPU per upload, per round
UPLOAD_CPU: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)

BARE_APP = r"""
import asyncio, os, sys, uuid
import orjson
from aiohttp import web

port, folder, db_url, owner = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

async def upload(request):
    reader = await request.multipart()
    part = await reader.next()
    path = os.path.join(folder, uuid.uuid4().hex + ".bin")
    n = 0
    with open(path, "wb") as fh:
        while chunk := await part.read_chunk(256 * 1024):
            fh.write(chunk)
            n += len(chunk)
    return web.json_response({"bytes": n}, status=201)

async def listing(request):
    from imagehost.images import store
    async with request.app["engine"].connect() as conn:
        rows, _nxt, total = await store.list_for_owner(conn, owner, None, 50)
    body = {"images": [r.__dict__ for r in rows], "total": total}
    return web.Response(body=orjson.dumps(body, default=str), content_type="application/json")

async def ok(request):
    return web.Response(text="ok")

async def engine_ctx(app):
    from imagehost.config import load_settings
    from imagehost.db import create_engine
    settings = load_settings(_env_file=None, database_url=db_url, secret_key="x" * 48)
    app["engine"] = create_engine(settings)
    yield
    await app["engine"].dispose()

app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/upload", upload)
app.router.add_get("/list", listing)
app.router.add_get("/", ok)
app.cleanup_ctx.append(engine_ctx)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
"""

UPLOAD_LUA = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=%s"
"""


# --------------------------------------------------------------------------- inputs


def jpeg_26k() -> bytes:
    """A JPEG of about 26 KB (noise, so every size is reachable by the quality)."""
    best = b""
    for q in range(95, 5, -2):
        buf = io.BytesIO()
        Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3)).save(buf, "JPEG", quality=q)
        best = buf.getvalue()
        if len(best) <= 26_900:
            break
    return best


def png_197k() -> bytes:
    """A PNG of about 197 KB (uncompressible noise, 256×256 RGB)."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def multipart(data: bytes, filename: str, ctype: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


# --------------------------------------------------------------------------- tools


def ensure_tools() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not shutil.which("wrk") or not os.path.exists(nginx):
        subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return nginx


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk(url: str, duration: int, connections: int, headers: dict[str, str], script: str = "") -> tuple[float, int]:
    """req/s and the count of failed answers (non-2xx and socket errors)."""
    # A 30 s timeout: a slow answer counts as slow, not as failed (wrk's default is 2 s).
    argv = [*taskset(CLIENT_CPU), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    if script:
        argv += ["-s", script]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    m = _RPS.search(out)
    if not m:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = int(_NON2XX.search(out).group(1)) if _NON2XX.search(out) else 0
    if s := _SOCKERR.search(out):
        errors += sum(int(x) for x in s.groups())
    return float(m.group(1)), errors


@contextmanager
def process(argv: list[str], url: str, env: dict[str, str] | None = None):
    proc = subprocess.Popen(argv, env=env)
    try:
        wait_http(url)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def nginx_for(nginx: str, folder: Path):
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # the image folder is private to us
    conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
error_log {prefix}/logs/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  types {{ image/jpeg jpg; }}
  default_type image/jpeg;
  server {{
    listen 127.0.0.1:{port};
    location /i/ {{ alias {folder}/;
      add_header X-Content-Type-Options nosniff;
      add_header Content-Security-Policy "default-src 'none'; sandbox";
      add_header Cross-Origin-Resource-Policy cross-origin;
      add_header Cache-Control "public, max-age=31536000, immutable"; }}
    location = / {{ return 200 ok; }}
  }}
}}
""")
    try:
        with process([*taskset(SERVER_CPU), nginx, "-p", str(prefix), "-c", str(conf)], f"http://127.0.0.1:{port}/"):
            yield f"http://127.0.0.1:{port}"
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def bare_for(srv, owner: str):
    port = free_port()
    script = srv.tmp / "bare_app.py"
    script.write_text(BARE_APP)
    db_url = srv.env["DATABASE_URL"]
    if db_url.startswith("sqlite:///"):
        db_url = "sqlite+aiosqlite:///" + db_url.split(":///", 1)[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (srv.tmp / "images").mkdir(exist_ok=True)  # S3 mode has no folder of its own: the anchor writes there
    argv = [*taskset(SERVER_CPU), PY, str(script), str(port), str(srv.tmp / "images"), db_url, owner]
    with process(argv, f"http://127.0.0.1:{port}/", env):
        yield f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- setup


async def _upload(base: str, key: str, data: bytes, filename: str, ctype: str) -> str:
    async with aiohttp.ClientSession() as s:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type=ctype)
        async with s.post(f"{base}/api/upload", data=form, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 201, (r.status, await r.text())
            return str((await r.json())["public_url"])


def _second_user(env: dict[str, str]) -> tuple[str, str]:
    return make_user(env, "lister")


def record(mode: str, what: str, who: str, rate: float, errors: int) -> None:
    RESULTS[(mode, what, who)].append(rate)
    ERRORS[(mode, what, who)] += errors
    note = f"  ({errors} failed)" if errors else ""
    print(f"  {mode:<13} {what:<7} {who:<22} {rate:10.1f} req/s{note}", flush=True)


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process and of its children (the libvips
    workers), read from /proc while they run."""
    tick = os.sysconf("SC_CLK_TCK")

    def own(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return own(pid), sum(own(k) for k in kids)


def _targets(srv, whats: list[str]) -> dict[str, tuple[str, dict[str, str], str]]:
    """What wrk asks of one imagehost server: (url, headers, script) by benchmark."""
    out: dict[str, tuple[str, dict[str, str], str]] = {}
    if "serve" in whats:
        url = asyncio.run(_upload(srv.base, srv.api_key, jpeg_26k(), "hot.jpg", "image/jpeg"))
        out["serve"] = (url, {}, "")
    if "upload" in whats:
        out["upload"] = (f"{srv.base}/api/upload", {"Authorization": f"Bearer {srv.api_key}"}, UPLOAD_SCRIPT)
    if "list" in whats:
        owner, key = _second_user(srv.env)
        insert_rows(srv.env["DATABASE_URL"], owner, 200)
        srv.list_owner = owner
        out["list"] = (f"{srv.base}/api/images/?limit=50", {"Authorization": f"Bearer {key}"}, "")
    return out


def _upload_script() -> str:
    """The wrk script POSTing the 197 KB PNG as multipart (BENCH_BODY names the body)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    body = folder / "upload.body"
    body.write_bytes(multipart(png_197k(), "shot.png", "image/png"))
    lua = folder / "upload.lua"
    lua.write_text(UPLOAD_LUA % BOUNDARY)
    os.environ["BENCH_BODY"] = str(body)
    return str(lua)


UPLOAD_SCRIPT = ""


def run_mode(mode: str, args: argparse.Namespace, nginx: str, moto: str) -> None:
    db, storage = mode.split("-")
    whats = [w for w in args.only if w in {"sqlite-local": ("serve", "upload", "list")}.get(mode, ("upload", "list"))]
    if storage == "s3":
        whats = [w for w in whats if w == "upload"]
    if not whats:
        return
    print(f"\n# {mode}: {', '.join(whats)}", flush=True)
    extra = {"S3_ENDPOINT_URL": moto} if storage == "s3" else {}
    with ExitStack() as stack:
        srv = stack.enter_context(imagehost(db, storage, s3_endpoint=moto, pin=SERVER_CPU, **extra))
        contenders = [("imagehost", _targets(srv, whats))]
        if args.baseline:
            base = stack.enter_context(
                imagehost(db, storage, s3_endpoint=moto, pin=SERVER_CPU, root=Path(args.baseline), **extra)
            )
            contenders.append(("baseline", _targets(base, whats)))
        bare = stack.enter_context(bare_for(srv, srv.list_owner))
        anchors: dict[str, tuple[str, str, dict[str, str], str]] = {}
        if "serve" in whats:
            ng = stack.enter_context(nginx_for(nginx, srv.tmp / "images"))
            key = contenders[0][1]["serve"][0].rsplit("/", 1)[-1]
            anchors["serve"] = ("nginx sendfile", f"{ng}/i/{key}", {}, "")
        if "upload" in whats:
            anchors["upload"] = ("bare multipart→file", f"{bare}/upload", {}, UPLOAD_SCRIPT)
        if "list" in whats:
            anchors["list"] = ("bare keyset query", f"{bare}/list", {}, "")
        runs = {what: [(who, *targets[what]) for who, targets in contenders] + [anchors[what]] for what in whats}
        for entries in runs.values():  # warm-up
            for _who, u, h, sc in entries:
                wrk(u, 1, args.connections, h, sc)
        for rnd in range(args.rounds):
            print(f" round {rnd + 1}/{args.rounds}", flush=True)
            for what, entries in runs.items():
                order = entries if rnd % 2 == 0 else list(reversed(entries))  # no one always first
                for who, u, h, sc in order:
                    pid = {"imagehost": srv.pid, "baseline": base.pid if args.baseline else 0}.get(who, 0)
                    before = tree_cpu(pid) if what == "upload" and pid else None
                    rate, errors = wrk(u, args.duration, args.connections, h, sc)
                    record(mode, what, who, rate, errors)
                    if before is not None and rate > 0:
                        after, n = tree_cpu(pid), rate * args.duration
                        UPLOAD_CPU[(mode, who)].append(
                            ((after[0] - before[0]) / n * 1000, (after[1] - before[1]) / n * 1000)
                        )


def run_variants(name: str, pin: str, variants: list[tuple[str, dict]], args: argparse.Namespace) -> None:
    """imagehost (sqlite-local) under each variant of its settings, interleaved round by
    round: serve, upload and list, as in the table."""
    print(f"\n# {name}: sqlite-local, server on CPU(s) {pin}, wrk on CPU {CLIENT_CPU}", flush=True)
    for rnd in range(args.rounds):
        for label, kwargs in variants if rnd % 2 == 0 else list(reversed(variants)):
            with imagehost("sqlite", "local", pin=pin, **kwargs) as srv:
                url = asyncio.run(_upload(srv.base, srv.api_key, jpeg_26k(), "hot.jpg", "image/jpeg"))
                owner, key = _second_user(srv.env)
                insert_rows(srv.env["DATABASE_URL"], owner, 200)
                for what, u, h, sc in (
                    ("serve", url, {}, ""),
                    ("upload", f"{srv.base}/api/upload", {"Authorization": f"Bearer {srv.api_key}"}, UPLOAD_SCRIPT),
                    ("list", f"{srv.base}/api/images/?limit=50", {"Authorization": f"Bearer {key}"}, ""),
                ):
                    if what not in args.only:
                        continue
                    wrk(u, 1, args.connections, h, sc)
                    rate, errors = wrk(u, args.duration, args.connections, h, sc)
                    record(name, what, label, rate, errors)


def report(args: argparse.Namespace) -> None:
    print(f"\n## medians of {args.rounds} round(s), wrk -t1 -c{args.connections} -d{args.duration}s")
    print(f"{'mode':<13} {'what':<7} {'imagehost':>10} {'anchor':>10}  {'ratio':>6}  anchor")
    groups: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for (mode, what, who), rates in RESULTS.items():
        groups[(mode, what)][who] = statistics.median(rates)
    for (mode, what), by in groups.items():
        if mode in VARIANTS:
            continue
        ours = by.pop("imagehost", 0.0)
        base = by.pop("baseline", None)
        for who, theirs in by.items():
            fails = ERRORS[(mode, what, "imagehost")]
            note = f"  [{fails} failed answers]" if fails else ""
            print(f"{mode:<13} {what:<7} {ours:10.1f} {theirs:10.1f}  {ours / theirs:6.3f}  {who}{note}")
            if base is not None:
                fails = ERRORS[(mode, what, "baseline")]
                note = f"  [{fails} failed answers]" if fails else ""
                print(
                    f"{'  baseline':<13} {what:<7} {base:10.1f} {theirs:10.1f}  {base / theirs:6.3f}  "
                    f"{who}; this checkout ×{ours / base:.2f} the baseline{note}"
                )
    if UPLOAD_CPU:
        print("\nupload: CPU per request (median ms), the server process and its libvips workers")
        for (mode, who), rows in UPLOAD_CPU.items():
            server = statistics.median(r[0] for r in rows)
            workers = statistics.median(r[1] for r in rows)
            anchor = groups[(mode, "upload")].get("bare multipart→file")
            line = f"  {mode:<13} {who:<10} server {server:6.2f}   libvips {workers:6.2f}"
            if anchor and workers > 0:  # what the thumbnail alone leaves possible on one core
                ceiling = 1000 / workers
                line += f"   ceiling from libvips alone {ceiling:7.1f} req/s = {ceiling / anchor:.3f} of the anchor"
            print(line)
    for (mode, what), by in groups.items():
        if mode in VARIANTS and len(by) == 2:
            (a_label, a), (b_label, b) = by.items()
            print(f"{mode:<13} {what:<7} {a_label} {a:9.1f}   {b_label} {b:9.1f}   ×{b / a:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", default="serve,upload,list")
    ap.add_argument("--modes", default="sqlite-local,pg-local,sqlite-s3", help="'' for none")
    ap.add_argument("--scaling", action="store_true", help="also 1 vs 2 worker processes")
    ap.add_argument("--loops", action="store_true", help="also EVENT_LOOP=asyncio vs uvloop")
    ap.add_argument("--baseline", default="", help="another checkout (e.g. main) run beside this one, interleaved")
    ap.add_argument("--existing", action="store_true", help="also upload_throughput.py and list_images.py")
    args = ap.parse_args()
    args.only = args.only.split(",")
    nginx = ensure_tools()
    global UPLOAD_SCRIPT
    UPLOAD_SCRIPT = _upload_script()
    modes = [m for m in args.modes.split(",") if m]
    with ExitStack() as stack:
        moto = stack.enter_context(moto_server(pin=CLIENT_CPU))[0] if any(m.endswith("s3") for m in modes) else ""
        for mode in modes:
            run_mode(mode, args, nginx, moto)
    if args.loops:
        loops = [("asyncio", {"EVENT_LOOP": "asyncio"}), ("uvloop", {"EVENT_LOOP": "uvloop"})]
        run_variants("loop", SERVER_CPU, loops, args)
    if args.scaling:
        both = f"{SERVER_CPU},{CLIENT_CPU}"
        run_variants("scaling", both, [("1 worker", {"workers": 1}), ("2 workers", {"workers": 2})], args)
    report(args)
    failed = 0
    if args.existing:
        for argv in (["upload_throughput.py"], ["list_images.py"]):
            print(f"\n$ bench/{' '.join(argv)}", flush=True)
            failed += subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
