"""Shared by the benchmarks: a real `imagehost serve` in a subprocess on a fresh database
and storage, a moto server, a user with an API key, RSS sampling, a load loop."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

PY = sys.executable
SECRET = "bench-secret-" + "x" * 40
DEFAULT_PG = (
    os.environ.get("BENCH_DATABASE_URL")
    or os.environ.get("TEST_DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


def taskset(pin: str) -> list[str]:
    """The command prefix that pins a process (and its children) to the CPUs in `pin`."""
    return ["taskset", "-c", pin] if pin and shutil.which("taskset") else []


@contextmanager
def moto_server(pin: str = ""):
    port = free_port()
    proc = subprocess.Popen(
        [*taskset(pin), PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def pg_database(base: str = DEFAULT_PG):
    import psycopg

    name = f"imagehost_bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base)._replace(path="/" + name))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    base: str
    pid: int
    env: dict[str, str]
    api_key: str = ""
    user_id: str = ""
    tmp: Path = field(default_factory=Path)
    list_owner: str = ""  # the user side_by_side lists the images of

    def rss_kb(self) -> tuple[int, int]:
        return read_rss(self.pid)


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class RssSampler:
    """Peak VmRSS of a process, sampled every few milliseconds in a thread."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.start = read_rss(pid)[0]
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, read_rss(self.pid)[0])
            except OSError:
                return
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def imagehost(
    db: str = "sqlite",
    storage: str = "local",
    s3_endpoint: str = "",
    pin: str = "",
    workers: int = 1,
    root: Path = ROOT,
    **extra: str,
):
    """Migrate, create a user with an API key, and serve in a subprocess (pinned to the
    CPUs `pin` names with taskset, with `workers` worker processes)."""
    tmp = Path(tempfile.mkdtemp(prefix="imagehost-bench-"))
    port = free_port()
    with pg_database() if db == "pg" else _nothing(f"sqlite:///{tmp}/bench.db") as db_url:
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "PYTHONPATH": str(root),  # the checkout served: this one, or a baseline
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET,
            "DATA_DIR": str(tmp / "data"),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
            "GC_INTERVAL_SECONDS": "0",
            "STORAGE_BACKEND": storage,
            "LOCAL_STORAGE_PATH": str(tmp / "images"),
            **extra,
        }
        if storage == "s3":
            bucket = "bench-" + secrets.token_hex(4)
            env.update(
                S3_ENDPOINT_URL=s3_endpoint,
                R2_ACCESS_KEY_ID="testing",
                R2_SECRET_ACCESS_KEY="testing",
                R2_BUCKET_NAME=bucket,
                R2_PUBLIC_URL=f"{s3_endpoint}/{bucket}",
                S3_REGION="us-east-1",
            )
        subprocess.run([PY, "-m", "imagehost", "migrate"], env=env, cwd=tmp, check=True, capture_output=True)
        subprocess.run([PY, "-m", "imagehost", "storage-setup"], env=env, cwd=tmp, check=True, capture_output=True)
        user_id, key = make_user(env)
        argv = [PY, "-m", "imagehost", "serve", "--port", str(port)]
        if workers != 1:
            argv += ["--workers", str(workers)]
        proc = subprocess.Popen(taskset(pin) + argv, env=env, cwd=tmp)
        try:
            wait_http(f"http://127.0.0.1:{port}/api/health")
            yield Server(f"http://127.0.0.1:{port}", proc.pid, env, key, user_id, tmp)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _nothing(value):
    yield value


_MAKE_USER = r"""
import asyncio, os, sys
from imagehost.accounts.service import create_api_key, register_user
from imagehost.cli import cli_env
from imagehost.config import load_settings

async def main(name):
    settings = load_settings(
        _env_file=None, database_url=os.environ["DATABASE_URL"], secret_key=os.environ["SECRET_KEY"],
        bcrypt_rounds=4, data_dir=os.environ["DATA_DIR"],
    )
    async with cli_env(settings) as ienv:
        user = await register_user(ienv, name, name + "@example.com", "correct horse battery")
        _k, secret = await create_api_key(ienv, user.id, "bench")
    print(user.id, secret)

asyncio.run(main(sys.argv[1]))
"""


def make_user(env: dict[str, str], name: str = "bench") -> tuple[str, str]:
    """A user with an API key, made by the served checkout's own code (its schema)."""
    # cwd: not this checkout, whose folder would come first on sys.path for `-c`
    out = subprocess.run(
        [PY, "-c", _MAKE_USER, name], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    if out.returncode != 0:
        raise RuntimeError(f"could not make the user {name}: {out.stderr[-2000:]}")
    user_id, key = out.stdout.split()[-2:]
    return user_id, key


async def load(fn, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Run `await fn()` `total` times, `concurrency` at once: (seconds, latencies in ms)."""
    latencies: list[float] = []
    todo = iter(range(total))

    async def worker():
        for _ in todo:
            t0 = time.perf_counter()
            await fn()
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def summary(name: str, seconds: float, lat: list[float]) -> str:
    return (
        f"{name:<34} {len(lat) / seconds:9.1f} req/s   p50 {statistics.median(lat):7.2f} ms   "
        f"p99 {pct(lat, 99):7.2f} ms"
    )


def session(limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))
