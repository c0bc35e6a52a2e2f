"""Draws imagehost's app icons with Pillow: the brand mark (a picture — hills and a sun —
on a rounded square in the accent colour), at the sizes the web app manifest names.

    .venv/bin/python static/icons/make_icons.py

Writes icon-192.png, icon-512.png (rounded square, transparent corners, purpose "any")
and icon-maskable-512.png (full bleed; the glyph inside the central safe zone, for
Android's adaptive shapes). Drawn 4× larger and scaled down, for smooth edges.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
TOP, BOTTOM = (78, 110, 236), (44, 70, 186)  # the accent (#3a5bd9), lit from above
WHITE = (255, 255, 255, 255)
SUPERSAMPLE = 4


def _gradient(size: int) -> Image.Image:
    img = Image.new("RGBA", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):
        t = y / (size - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True))
        draw.line([(0, y), (size, y)], fill=(*colour, 255))
    return img


def _glyph(img: Image.Image, extent: float) -> None:
    """The picture glyph of the brand mark (templates/base.html), in its 32-unit box,
    scaled to `extent` of the icon and centred."""
    size = img.width
    scale = size * extent / 32
    offset = size * (1 - extent) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return (offset + x * scale, offset + y * scale)

    draw = ImageDraw.Draw(img)
    draw.polygon([at(7, 23.5), at(13, 16), at(17.5, 21.2), at(20.3, 17.8), at(25, 23.5)], fill=WHITE)
    cx, cy = at(21, 10.5)
    r = 2.6 * scale
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=WHITE)


def icon(size: int, maskable: bool = False) -> Image.Image:
    big = size * SUPERSAMPLE
    img = _gradient(big)
    if maskable:
        _glyph(img, 0.72)  # hills and sun stay within the 80 % circle every mask keeps
    else:
        mask = Image.new("L", (big, big), 0)
        ImageDraw.Draw(mask).rounded_rectangle([0, 0, big - 1, big - 1], radius=round(big * 9 / 32), fill=255)
        img.putalpha(mask)
        _glyph(img, 1.0)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    for name, size, maskable in (
        ("icon-192.png", 192, False),
        ("icon-512.png", 512, False),
        ("icon-maskable-512.png", 512, True),
    ):
        icon(size, maskable).save(HERE / name, optimize=True)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
