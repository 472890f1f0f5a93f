"""Glyphs rendered from the TrueType fonts matplotlib ships: one copyright owner per typeface.

Every glyph is drawn with FreeType (matplotlib.ft2font) at `oversample` times the target size, with
the same em size and baseline for every typeface (so x-height, weight, slant and serifs are the
style), centred horizontally, then box-filtered down to size x size grayscale in [0, 1] (ink = 1).
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_CHARS = string.ascii_uppercase + string.ascii_lowercase + string.digits
# symbol fonts and fallbacks whose code points are not letters
EXCLUDED = {"LastResortHE-Regular", "cmex10", "cmsy10"}
# five clearly different typefaces: the default owners (sans, serif, monospace, italic, typewriter)
DEFAULT_OWNERS = ("DejaVuSans", "DejaVuSerif-Bold", "DejaVuSansMono", "STIXGeneralItalic", "cmtt10")


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=None)
def typefaces(chars: str = DEFAULT_CHARS) -> dict[str, Path]:
    """Typeface name (file stem) -> path, for every shipped font that has a glyph for every char."""
    from matplotlib.ft2font import FT2Font

    out = {}
    for path in sorted(font_dir().glob("*.ttf")):
        if path.stem in EXCLUDED:
            continue
        charmap = FT2Font(str(path)).get_charmap()
        if all(ord(c) in charmap for c in chars):
            out[path.stem] = path
    return out


def render_glyph(font_path: str | Path, char: str, size: int = 16, oversample: int = 4,
                 em: float = 0.8, baseline: float = 0.78) -> np.ndarray:
    """One glyph as float32 [size, size] in [0, 1].

    em: font size as a fraction of the image height; baseline: height of the baseline from the top,
    as a fraction of the image. Ink outside the canvas is cropped.
    """
    from matplotlib.ft2font import FT2Font, LoadFlags

    big = size * oversample
    font = FT2Font(str(font_path))
    font.set_size(em * big, 72)  # points at 72 dpi = pixels
    font.set_text(char, 0.0, flags=LoadFlags.NO_HINTING)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    descent = font.get_descent() / 64.0
    canvas = np.zeros((big, big), np.float32)
    h, w = bitmap.shape
    top = int(round(baseline * big + descent - h))
    left = (big - w) // 2
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, big), min(left + w, big)
    if r1 > r0 and c1 > c0:
        canvas[r0:r1, c0:c1] = bitmap[r0 - top:r1 - top, c0 - left:c1 - left]
    return canvas.reshape(size, oversample, size, oversample).mean(axis=(1, 3))


def render_typeface(name: str, chars: str = DEFAULT_CHARS, size: int = 16, oversample: int = 4) -> np.ndarray:
    """All glyphs of one typeface: float32 [len(chars), 1, size, size]."""
    faces = typefaces(chars)
    if name not in faces:
        raise ValueError(f"unknown typeface {name!r} (or it lacks some of the characters); valid: {', '.join(faces)}")
    return np.stack([render_glyph(faces[name], c, size, oversample) for c in chars])[:, None]


def glyph_owners(owners=DEFAULT_OWNERS, chars: str = DEFAULT_CHARS, size: int = 16,
                 public: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(owner typeface -> glyphs, public typeface -> glyphs). Public = every other usable typeface
    unless given; owners and public never share a typeface."""
    faces = typefaces(chars)
    owners = list(owners)
    unknown = [o for o in owners if o not in faces]
    if unknown:
        raise ValueError(f"glyph owners {unknown} are not usable typefaces; valid: {', '.join(faces)}")
    if len(set(owners)) != len(owners):
        raise ValueError(f"glyph owners {owners} list a typeface twice")
    public = [f for f in faces if f not in owners] if public is None else list(public)
    overlap = set(public) & set(owners)
    if overlap:
        raise ValueError(f"public typefaces {sorted(overlap)} are also owners: public data must be disjoint")
    return ({o: render_typeface(o, chars, size) for o in owners},
            {p: render_typeface(p, chars, size) for p in public})
