"""What the project says in several places must say the same thing everywhere:

- every setting in `imagehost/config.py` is documented, as its environment variable, in
  `.env.example` and in the settings table of `docs/PRODUCTION.md` (and that table names
  no setting the code does not have);
- the link snippets the server renders (`templates/_links.html`, on the image page) are
  exactly the ones the browser builds (`static/links.js`, from a gallery tile's data),
  for filenames and URLs that need escaping. links.js runs under node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import jinja2
import pytest
from sqlalchemy import update

from imagehost.config import Settings
from imagehost.tables import images
from imagehost.typedefs import ENGINE
from tests.support import ROOT
from tests.support.accounts import browser_login
from tests.support.uploads import uploaded

KINDS = ("url", "markdown", "html", "bbcode")
SETTINGS_VARS = sorted(name.upper() for name in Settings.model_fields)

# --------------------------------------------------------------------------- settings


def _docs_table_vars() -> list[str]:
    text = (ROOT / "docs" / "PRODUCTION.md").read_text()
    return re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.M)


@pytest.mark.parametrize("var", SETTINGS_VARS)
def test_every_setting_is_in_env_example(var):
    text = (ROOT / ".env.example").read_text()
    assert re.search(rf"^# {var}=", text, re.M), f"{var} is not in .env.example (as a commented '# {var}=' line)"


@pytest.mark.parametrize("var", SETTINGS_VARS)
def test_every_setting_is_in_the_production_guide(var):
    assert var in _docs_table_vars(), f"{var} has no row in the settings table of docs/PRODUCTION.md"


def test_the_production_guide_documents_no_setting_the_code_lacks():
    stale = sorted(set(_docs_table_vars()) - set(SETTINGS_VARS))
    assert not stale, f"docs/PRODUCTION.md documents settings that imagehost/config.py does not have: {stale}"


# --------------------------------------------------------------------------- link formats

TRICKY_NAME = 'a<b>"c]&.png'


class _Tags(HTMLParser):
    """Start tags with their attributes, entity references already decoded."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def links_js(images_: list[dict]) -> list[dict[str, str]]:
    """formatLink(kind, image) from static/links.js, for every kind and image, run by node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the links.js parity check needs it (Debian: apt-get install nodejs)")
    script = (
        f"import {{ formatLink }} from {json.dumps((ROOT / 'static' / 'links.js').as_uri())};\n"
        "let input = '';\n"
        "for await (const chunk of process.stdin) input += chunk;\n"
        f"const kinds = {json.dumps(KINDS)};\n"
        "const out = JSON.parse(input).map((im) => Object.fromEntries(kinds.map((k) => [k, formatLink(k, im)])));\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    proc = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(images_),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def links_template(image: dict) -> dict[str, str]:
    """The link texts `_links.html` renders, used exactly as image.html uses them (an input's value)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "templates"), autoescape=True)
    page = env.from_string(
        '{% from "_links.html" import link_formats %}'
        "{% call(kind, label, text) link_formats(image) %}"
        '<input data-kind="{{ kind }}" value="{{ text }}">'
        "{% endcall %}"
    ).render(image=image)
    return {a["data-kind"]: a["value"] for tag, a in _Tags(page).tags if tag == "input"}


CASES = [
    {"public_url": "https://img.example.com/i/abc.png", "filename": TRICKY_NAME, "width": 64, "height": 48},
    {
        "public_url": "https://cdn.example.com/my pics/(1)[2]\"q'&<x>.png",
        "filename": "back\\slash [x] one\ntwo\r\nthree\rfour 'q' \"d\" <t> & ;",
        "width": 1920,
        "height": 1080,
    },
    {
        "public_url": "https://img.example.com/i/u.webp",
        "filename": "café ñ 日本 ![alt](x).webp",
        "width": None,
        "height": None,
    },
    {"public_url": "https://img.example.com/i/z.gif", "filename": "]]][[[\\\\", "width": 0, "height": 5},
    {"public_url": "", "filename": "", "width": None, "height": None},
    {"public_url": "https://img.example.com/i/w.png", "filename": "w.png", "width": 10, "height": None},
]


@pytest.mark.parametrize("image", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_the_link_template_and_links_js_make_the_same_text(image):
    (from_js,) = links_js([image])
    assert links_template(image) == from_js


@pytest.mark.tiers("sqlite-local")
async def test_the_image_page_and_the_gallery_copy_buttons_give_the_same_links(client, backend, make_user):
    """The real app: the image page's link fields (server-rendered) against what the
    gallery's copy buttons produce (links.js over the tile's data attributes, as gallery.js
    does), for an image whose name needs escaping in every format."""
    account = await make_user()
    image = await uploaded(client, account)
    async with client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(images).where(images.c.id == image["id"]).values(filename=TRICKY_NAME))
    assert (await browser_login(client, account.username, account.password)).status == 303

    detail = await client.get(f"/images/{image['id']}")
    assert detail.status == 200
    inputs = {a["data-testid"]: a["value"] for t, a in _Tags(await detail.text()).tags if t == "input" and a.get("id")}
    server = {kind: inputs.get(f"link-{kind}") for kind in KINDS}

    gallery = await client.get("/gallery")
    assert gallery.status == 200
    (tile,) = [a for t, a in _Tags(await gallery.text()).tags if t == "li" and a.get("data-image-id") == image["id"]]
    assert tile["data-filename"] == TRICKY_NAME and tile["data-url"] == image["public_url"]
    tile_image = {  # gallery.js tileImage(): the dataset, strings as they are
        "public_url": tile["data-url"],
        "filename": tile["data-filename"],
        "width": tile["data-width"],
        "height": tile["data-height"],
    }
    from_tile, from_api = links_js([tile_image, {**image, "filename": TRICKY_NAME}])

    assert server == from_tile
    assert server == from_api
    assert server["markdown"] == f'![a<b>"c\\]&.png]({image["public_url"]})'
    assert (
        server["html"] == f'<img src="{image["public_url"]}" alt="a&lt;b&gt;&quot;c]&amp;.png" width="64" height="48">'
    )
