"""The integrations page makes a key for Flameshot and says where it goes; the line it
shows, run as it is, lets the script upload (imagehost issue 11)."""

from __future__ import annotations

import asyncio
import html
import re
import stat
import subprocess
from pathlib import Path

import pytest

from imagehost.integrations.service import flameshot_key_command, flameshot_script
from tests.support.accounts import logged_in_token
from tests.support.uploads import image_bytes, snapshot

pytestmark = pytest.mark.tiers("sqlite-local", "pg-local")
LINE = re.compile(r'data-testid="flameshot-key-line"><code>([^<]+)</code>')


def _tools(tmp_path: Path, png: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("flameshot", f'cat "{png}"\n'), ("xclip", f'cat > "{tmp_path / "clip"}"\n')):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    for tool in ("curl", "bash", "date", "head", "tail", "tr", "mktemp", "rm", "cat", "sed", "printf", "mkdir"):
        real = next((Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists()), None)
        if real is not None:
            (bin_dir / tool).symlink_to(real)
    return bin_dir


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_flameshot_button_makes_a_key_and_the_line_it_shows_makes_the_script_work(
    client, backend, make_user, db_count, tmp_path
):
    account = await make_user()
    token = await logged_in_token(client, account)
    page = await (await client.get("/integrations")).text()
    assert "~/.config/imagehost/key" in page  # where the key goes, said before any key exists
    assert "creates a new API key named “ShareX”" in page  # what the .sxcu download does

    resp = await client.post("/integrations/flameshot-key", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/integrations#flameshot-key"
    assert await db_count("api_keys", user_id=account.id, name="Flameshot") == 1
    shown = await client.get("/integrations")
    assert shown.headers["Cache-Control"] == "no-store"
    line = html.unescape(LINE.search(await shown.text()).group(1))
    secret = re.search(r"ih_[A-Za-z0-9_-]+", line).group(0)
    assert line == flameshot_key_command(secret)
    again = await (await client.get("/integrations")).text()  # shown once: a reload has no secret
    assert secret not in again and not LINE.search(again)
    assert await db_count("api_keys", user_id=account.id, name="Flameshot") == 1

    # Followed literally: the line in a shell, then the script with no IMAGEHOST_KEY.
    png = tmp_path / "shot.png"
    png.write_bytes(image_bytes("PNG", (40, 30)))
    bin_dir = _tools(tmp_path, png)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    code, _, err = await _run("/bin/bash", "-c", line, env=env)
    assert code == 0, err
    key_file = tmp_path / ".config" / "imagehost" / "key"
    assert key_file.read_text() == secret + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    base = f"http://{client.server.host}:{client.server.port}"
    script = tmp_path / "imagehost-shot"
    script.write_text(flameshot_script(backend.settings.model_copy(update={"public_base_url": base})))
    code, out, err = await _run("/bin/bash", str(script), env=env)
    assert code == 0, err
    assert out.strip().startswith("http") and (await snapshot(client, backend)).images == 1


async def test_the_flameshot_key_needs_a_session_and_its_token(client, backend, make_user, db_count):
    account = await make_user()
    resp = await client.post("/integrations/flameshot-key", allow_redirects=False)
    assert resp.status in (303, 403)
    await logged_in_token(client, account)
    resp = await client.post("/integrations/flameshot-key", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert resp.status == 403
    assert await db_count("api_keys", user_id=account.id, name="Flameshot") == 0


def test_the_key_line_refuses_anything_that_is_not_a_key():
    with pytest.raises(ValueError):
        flameshot_key_command("ih_x'; rm -rf ~; '")
