"""Login cost: what bcrypt and the database throttle add to `POST /api/auth/login`.

    .venv/bin/python bench/login.py [--n 50] [--rounds 12] [--database-url URL]

Starts the real app (SQLite in a temporary folder unless --database-url is given, default
bcrypt cost 12) on a free loopback port, registers a user, then times N sequential logins
each: the right password, a wrong password, and an unknown user (which is verified against
a dummy hash, so it should cost the same). Failures are cleared between attempts, outside
the timed part, so the throttle never answers 429 here. Also times bcrypt verification
alone, so the difference is the HTTP, database and throttle overhead. Prints figures and
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from imagehost.accounts import passwords
from imagehost.app import create_app
from imagehost.config import load_settings
from imagehost.db import apply_migrations, transaction
from imagehost.logs import setup_logging
from imagehost.tables import login_failures
from imagehost.typedefs import ENGINE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {statistics.median(samples):7.1f} ms   p95 {qs[94]:7.1f} ms   "
        f"min {min(samples):7.1f}   max {max(samples):7.1f}"
    )


async def run(n: int, rounds: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            _env_file=None,
            database_url=database_url or f"sqlite:///{tmp}/bench.db",
            data_dir=Path(tmp) / "data",
            local_storage_path=Path(tmp) / "images",
            secret_key="bench-secret-key-" + "x" * 40,
            bcrypt_rounds=rounds,
            gc_interval_seconds=0,
            log_level="WARNING",
        )
        await asyncio.to_thread(apply_migrations, settings)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        username = f"bench_{int(time.time())}"
        password = "correct horse battery staple"
        try:
            async with aiohttp.ClientSession() as http:
                resp = await http.post(
                    f"{base}/api/auth/register",
                    json={"username": username, "email": f"{username}@example.com", "password": password},
                )
                assert resp.status == 201, await resp.text()

                async def clear_failures() -> None:
                    async with transaction(app[ENGINE]) as conn:
                        await conn.execute(login_failures.delete())

                async def timed(name: str, pw: str, expect: int) -> list[float]:
                    samples = []
                    for _ in range(n):
                        start = time.perf_counter()
                        r = await http.post(f"{base}/api/auth/login", json={"username": name, "password": pw})
                        await r.read()
                        samples.append((time.perf_counter() - start) * 1000)
                        if r.status != expect:
                            print(f"  unexpected status {r.status} (wanted {expect})")
                        await clear_failures()
                    return samples

                await timed(username, password, 200)  # warm-up: pools, caches
                await timed("nobody_" + username, password, 401)  # and the dummy hash, made once
                right = await timed(username, password, 200)
                wrong = await timed(username, "not the password", 401)
                unknown = await timed("nobody_" + username, password, 401)
        finally:
            await runner.cleanup()

    hashed = passwords.hash_password_sync(password, rounds)
    verify = []
    for _ in range(n):
        start = time.perf_counter()
        passwords.verify_password_sync(password, hashed)
        verify.append((time.perf_counter() - start) * 1000)

    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(f"POST /api/auth/login, {n} sequential requests each, bcrypt cost {rounds}, {db}")
    print(f"  right password   {percentiles(right)}")
    print(f"  wrong password   {percentiles(wrong)}")
    print(f"  unknown user     {percentiles(unknown)}")
    print(f"  bcrypt alone     {percentiles(verify)}")
    overhead = statistics.median(right) - statistics.median(verify)
    print(f"  HTTP + database + throttle overhead (p50 login - p50 bcrypt): {overhead:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=passwords.BCRYPT_ROUNDS)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_logging("WARNING")
    asyncio.run(run(args.n, args.rounds, args.database_url))


if __name__ == "__main__":
    main()
