"""Run every benchmark in turn (each also runs on its own).

.venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["upload_throughput.py"],
    ["upload_concurrency.py"],
    ["upload_concurrency.py", "--storage", "s3"],
    ["list_images.py"],
    ["serve_image.py"],
    ["login.py"],
    ["export_memory.py"],
]


def main() -> int:
    failed = 0
    for argv in BENCHES:
        if not (HERE / argv[0]).exists():
            continue
        print(f"\n$ bench/{' '.join(argv)}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
