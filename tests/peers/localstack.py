"""The strict S3 peer: LocalStack's S3 with signature validation on, in its own venv
(.peers/localstack/, made by install-localstack.sh). Unlike moto it refuses a presigned
PUT whose signature, expiry, signed Content-Type or Content-Length does not hold, and it
answers CORS preflights from the bucket's CORS rule.

It runs as a child process in a session of its own, bound to a free loopback port, with
its files in a temporary folder, and nothing that reaches out: no analytics, no DNS
server, no certificate download, no Docker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".peers" / "localstack"
VERSION = "2026.3.0"
INSTALL = "tests/peers/install-localstack.sh"
# Presigned URLs are checked against the secret LocalStack keeps for an access key; for
# a key it does not know, that is "test".
KEY_ID = SECRET = "test"


class PeerUnavailable(Exception):
    """LocalStack is not installed, or did not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(root: Path, port: int) -> dict[str, str]:
    # Built from nothing: LocalStack reads dozens of variables (DEBUG, DATA_DIR,
    # PERSISTENCE, ...) and must not pick up the caller's.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "FILESYSTEM_ROOT": str(root),  # its state, caches and logs: the temporary folder
        "OVERRIDE_IN_DOCKER": "0",  # else, in a container, it writes to /var/lib/localstack
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "SERVICES": "s3",
        "EAGER_SERVICE_LOADING": "1",
        "S3_SKIP_SIGNATURE_VALIDATION": "0",
        "ALLOW_NONSTANDARD_REGIONS": "1",  # R2's region "auto"
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        # Anything that would still try to phone home goes to a closed loopback port.
        "API_ENDPOINT": "http://127.0.0.1:9",
        "ANALYTICS_API": "http://127.0.0.1:9",
    }


class LocalStack:
    def __init__(self, proc: subprocess.Popen, endpoint: str, log: Path) -> None:
        self.proc = proc
        self.endpoint = endpoint
        self.log = log

    @classmethod
    def start(cls, root: Path, timeout: float = 90) -> LocalStack:
        python = VENV / "bin" / "python"
        if not (VENV / f".installed-{VERSION}").exists():
            raise PeerUnavailable(f"LocalStack {VERSION} is not installed in .peers/localstack: run `{INSTALL}`")
        # The service index built at install time, read-only: saves ~4 s per start.
        static = VENV / "static" / "usr" / "lib" / "localstack"
        if static.is_dir():
            (root / "usr" / "lib").mkdir(parents=True, exist_ok=True)
            (root / "usr" / "lib" / "localstack").symlink_to(static, target_is_directory=True)
        port = _free_port()
        log = root / "localstack.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(python), "-m", "localstack.runtime.main"],
                env=_environment(root, port),
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, stopped as one
            )
        peer = cls(proc, f"http://127.0.0.1:{port}", log)
        try:
            peer._wait_healthy(timeout)
        except BaseException:
            peer.stop()
            raise
        return peer

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PeerUnavailable(f"LocalStack exited at start ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_localstack/health", timeout=2) as resp:
                    if json.load(resp).get("services", {}).get("s3") in ("running", "available"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise PeerUnavailable(f"LocalStack's S3 was not up after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL. LocalStack's shutdown sometimes stalls
        until something wakes its event loop (it stops the loop from another thread), so a
        connection to its port is made while waiting."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.proc.wait(0.5)
                return
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError), socket.create_connection(self._address, timeout=0.5):
                    pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    @property
    def _address(self) -> tuple[str, int]:
        host, port = self.endpoint.removeprefix("http://").split(":")
        return host, int(port)
