"""Accessibility audit: axe-core (the engine behind Lighthouse's accessibility score) run
in the system Chromium over every page, light and dark. Prints violations; asserts nothing.

    .venv/bin/python bench/a11y_audit.py

axe-core comes from the npm registry into bench/.node/ on first run.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / ".node"
AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def ensure_axe() -> Path:
    if not AXE.exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), "axe-core@4"],
            check=True,
        )
    return AXE


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PORT": str(port),
        "PUBLIC_BASE_URL": base,
        "DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": f"sqlite:///{tmp / 'a11y.db'}",
        "LOCAL_STORAGE_PATH": str(tmp / "images"),
        "SECRET_KEY": "a11y-" + "k" * 40,
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "-m", "imagehost", "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "imagehost", "serve"], env=env)
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/api/health", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    axe = ensure_axe().read_text()
    with tempfile.TemporaryDirectory() as tmpdir:
        proc, base = start_server(Path(tmpdir))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                    ],
                )
                user = "a11y_" + secrets.token_hex(3)
                total = 0
                for scheme in ("light", "dark"):
                    ctx = browser.new_context(base_url=base, color_scheme=scheme, bypass_csp=True)
                    page = ctx.new_page()
                    if scheme == "light":
                        page.goto("/register")
                        page.fill("[name=username]", user)
                        page.fill("[name=email]", f"{user}@example.com")
                        page.fill("[name=password]", "correct horse battery")
                        page.click("button[type=submit]")
                    else:
                        page.goto("/login")
                        page.fill("[name=username]", user)
                        page.fill("[name=password]", "correct horse battery")
                        page.click("button[type=submit]")
                    page.wait_for_url("**/gallery")
                    buf = io.BytesIO()
                    Image.new("RGB", (64, 48), (200, 80, 40)).save(buf, "PNG")
                    page.set_input_files(
                        "[data-testid=upload-input]",
                        files=[{"name": "a11y.png", "mimeType": "image/png", "buffer": buf.getvalue()}],
                    )
                    page.wait_for_selector("[data-testid=tile]")
                    image_id = page.get_attribute("[data-testid=tile]", "data-image-id")
                    deletion = page.evaluate("fetch('/api/images/" + image_id + "').then(r => r.json())")[
                        "deletion_url"
                    ]
                    pages = ["/gallery", f"/images/{image_id}", "/keys", "/integrations", deletion, "/no/such/page"]
                    anon = browser.new_context(base_url=base, color_scheme=scheme, bypass_csp=True).new_page()

                    def audit(pg, label: str, scheme: str = scheme) -> int:
                        pg.add_script_tag(content=axe)
                        result = pg.evaluate("axe.run(document, {resultTypes: ['violations']})")
                        violations = result["violations"]
                        print(
                            f"{scheme:5} {label:32} {len(violations)} violation(s), "
                            f"{len(result.get('passes', []))} rules passed"
                        )
                        for v in violations:
                            print(f"      [{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} node(s))")
                            for node in v["nodes"][:3]:
                                print(f"        {' '.join(node['target'])}: {node.get('failureSummary', '')[:160]!r}")
                        return len(violations)

                    for path, pg in [(x, anon) for x in ("/login", "/register", "/no/such/page")] + [
                        (x, page) for x in pages
                    ]:
                        pg.goto(path)
                        total += audit(pg, path if not path.startswith("http") else "/d/… (deletion page)")
                    # States a page gets into: a refused upload in the tray and a tile's menu
                    # open; a key just created; the account menu open.
                    page.goto("/gallery")
                    page.set_input_files(
                        "[data-testid=upload-input]",
                        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"text"}],
                    )
                    page.wait_for_selector("[data-upload-list] [data-state=error]")
                    page.click("[data-testid=tile] summary")
                    page.wait_for_timeout(400)  # let the tile bar's fade-in finish
                    total += audit(page, "/gallery (tray, tile menu)")
                    page.goto("/keys")
                    page.fill("#key-name", "audit")
                    page.click("form[action='/keys'] button[type=submit]")
                    page.wait_for_selector("[data-testid=new-key]")
                    page.click("[data-testid=account-menu] summary")
                    total += audit(page, "/keys (new key, account menu)")
                    ctx.close()
                print(f"total violations: {total}")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
