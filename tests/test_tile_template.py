"""The gallery tile template: the thumbnail with its own size when the image JSON has one,
else the image and its size; the aspect bucket the justified grid lays out by."""

from __future__ import annotations

import re

import jinja2
import pytest

from imagehost.web.assets import TEMPLATES_DIR


def _tile(image: dict) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    env.globals.update(url=lambda name, **parts: f"/{name}/{parts.get('id', '')}", csrf_token="t")
    return env.from_string('{% from "_tile.html" import tile with context %}{{ tile(image) }}').render(image=image)


BASE = {"id": "abc", "filename": "a.png", "size_bytes": 10, "public_url": "https://img/i/a.png", "deletion_url": ""}


def test_the_thumbnail_and_its_size_when_there_is_one():
    html = _tile(
        BASE
        | {
            "width": 4000,
            "height": 3000,
            "thumbnail_url": "https://img/i/a.thumb.webp",
            "thumbnail_width": 640,
            "thumbnail_height": 480,
        }
    )
    assert re.search(r'<img src="https://img/i/a\.thumb\.webp" width="640" height="480"', html)
    assert 'data-width="4000"' in html and 'data-ar="13"' in html


def test_the_image_and_its_size_without_a_thumbnail_size():
    html = _tile(BASE | {"width": 300, "height": 600, "thumbnail_url": "https://img/i/a.png"})
    assert re.search(r'<img src="https://img/i/a\.png" width="300" height="600"', html)
    assert 'data-ar="5"' in html


@pytest.mark.parametrize(("w", "h", "ar"), [(10000, 100, "30"), (100, 10000, "4"), (None, None, "13")])
def test_extreme_or_unknown_shapes_are_clamped(w, h, ar):
    html = _tile(BASE | {"width": w, "height": h, "thumbnail_url": ""})
    assert f'data-ar="{ar}"' in html
    if w is None:
        assert "width=" not in html.split("<img", 1)[1].split(">", 1)[0]
