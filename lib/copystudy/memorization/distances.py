"""How far apart are two images? Normalised and tiled l2, all pairs at once, and nearest neighbours.

Images are float arrays [N, C, H, W] with pixels in [0, 1].

- normalised l2: root mean squared pixel error, so 0 is identical and 1 is black vs white everywhere.
- tiled l2 (Carlini et al. 2023): the image is cut into a grid x grid lattice of tiles (4 x 4 by
  default, as in the paper); the distance is the largest normalised l2 over corresponding tiles. A
  sample is then close only if *every* region is close, so a copy of one stroke on an otherwise
  different image does not count. On 8 x 8 images a 4 x 4 grid means tiles of 2 x 2 pixels.
"""

from __future__ import annotations

import numpy as np

DISTANCES = ("l2", "tiled_l2")


def _flat(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:  # one image [C, H, W]
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W] or [C, H, W], got shape {images.shape}")
    return images


def _tiles(images: np.ndarray, grid: int) -> np.ndarray:
    """[N, C, H, W] -> [N, grid*grid, C*th*tw]: the pixels of each tile (H, W divisible by grid)."""
    n, c, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"tiled l2: image size {h}x{w} is not divisible by the {grid}x{grid} grid")
    th, tw = h // grid, w // grid
    t = images.reshape(n, c, grid, th, grid, tw).transpose(0, 2, 4, 1, 3, 5)
    return t.reshape(n, grid * grid, c * th * tw)


def pairwise_distances(a: np.ndarray, b: np.ndarray, kind: str = "l2", grid: int = 4,
                       chunk: int = 512) -> np.ndarray:
    """All distances between images a [N, C, H, W] and b [M, C, H, W] -> [N, M] float64.

    kind = "l2" (normalised l2, RMS pixel error) or "tiled_l2" (max over grid x grid tiles of the
    normalised l2 of the tile).
    """
    if kind not in DISTANCES:
        raise ValueError(f"distance kind must be one of {DISTANCES}, got {kind!r}")
    a, b = _flat(a), _flat(b)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"image shapes differ: {a.shape[1:]} vs {b.shape[1:]}")
    if kind == "l2":
        fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
        sq = (fa**2).sum(1)[:, None] + (fb**2).sum(1)[None, :] - 2 * fa @ fb.T
        return np.sqrt(np.maximum(sq, 0.0) / fa.shape[1])
    ta, tb = _tiles(a, grid), _tiles(b, grid)  # [N, T, P], [M, T, P]
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        diff = ta[i:i + chunk, None] - tb[None]  # [n, M, T, P]
        out[i:i + chunk] = np.sqrt((diff**2).mean(-1)).max(-1)
    return out


def normalised_l2(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean squared pixel error between two images of the same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.sqrt(((a - b) ** 2).mean()))


def tiled_l2(a: np.ndarray, b: np.ndarray, grid: int = 4) -> float:
    """Largest normalised l2 over a grid x grid lattice of corresponding tiles of two images."""
    return float(pairwise_distances(a, b, "tiled_l2", grid)[0, 0])


def nearest(samples: np.ndarray, references: np.ndarray, kind: str = "l2", grid: int = 4):
    """For every sample, its nearest reference image: (index [N] int, distance [N] float)."""
    d = pairwise_distances(samples, references, kind, grid)
    idx = d.argmin(1)
    return idx, d[np.arange(len(d)), idx]
