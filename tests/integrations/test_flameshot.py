"""The Flameshot script, run against a live server with stand-ins for flameshot and xclip."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import pytest

from imagehost.integrations.service import flameshot_script
from tests.support.uploads import image_bytes, snapshot

TIERS = pytest.mark.tiers("sqlite-local", "pg-s3")


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_the_script_gets_the_validated_public_url(backend):
    text = flameshot_script(backend.settings)
    assert 'IMAGEHOST_URL="${IMAGEHOST_URL:-http://localhost:8000}"' in text
    for bad in ('http://x.example/"; rm -rf ~; "', "http://x.example/$(id)", "http://x.example/`id`"):
        with pytest.raises(ValueError):
            flameshot_script(backend.settings.model_copy(update={"public_base_url": bad}))


@TIERS
async def test_flameshot_script_uploads_and_copies_the_link(client, backend, make_user, tmp_path):
    user = await make_user()
    base = f"http://{client.server.host}:{client.server.port}"
    script = tmp_path / "imagehost-flameshot.sh"
    script.write_text(flameshot_script(backend.settings.model_copy(update={"public_base_url": base})))
    script.chmod(0o755)
    png = tmp_path / "shot.png"
    png.write_bytes(image_bytes("PNG", (50, 30), noise=True))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    clip = tmp_path / "clipboard.txt"
    _tool(bin_dir, "flameshot", f'[ "$1 $2" = "gui --raw" ] || exit 2\ncat "{png}"\n')
    _tool(bin_dir, "xclip", f'[ "$1 $2" = "-selection clipboard" ] || exit 2\ncat > "{clip}"\n')
    for tool in ("curl", "bash", "date", "head", "tail", "tr", "mktemp", "rm", "cat", "sed", "printf"):
        real = next((Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()), None)
        if real is not None and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(real)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "IMAGEHOST_KEY": user.api_key, "TMPDIR": str(tmp_path)}

    proc = await asyncio.create_subprocess_exec(
        "/bin/bash", str(script), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    url = out.decode().strip()
    assert clip.read_text() == url
    assert url.rsplit("/", 1)[-1] in backend.objects()
    assert (await snapshot(client, backend)).images == 1

    # No key: a clear message, nothing uploaded.
    env.pop("IMAGEHOST_KEY")
    proc = await asyncio.create_subprocess_exec(
        "/bin/bash", str(script), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1 and b"no API key" in err

    # A wrong key: the server's answer is shown.
    env["IMAGEHOST_KEY"] = "ih_" + "x" * 43
    proc = await asyncio.create_subprocess_exec(
        "/bin/bash", str(script), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1 and b"HTTP 401" in err
    assert (await snapshot(client, backend)).images == 1
    assert script.exists()
