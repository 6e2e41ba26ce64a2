"""Synthetic stand-ins for the image tasks, so that everything runs offline and in seconds.

``SyntheticShapes``: one shape or texture per image, the class is what it is. The default ten classes
are chosen so that each kind of dynamic convolution has something to show:

- **orientation only**: horizontal vs vertical bar, and horizontal vs vertical stripes; each pair is the
  same picture turned by 90 degrees (what ``orient``'s rotated kernels pool over; its static stem still
  sees the orientation);
- **a texture that changes from image to image**: the stripes and the checkerboard have a period and a
  phase drawn per image, so a kernel tuned to one image fits the next one less well (what per-image
  kernels, ``dyconv`` and the ODConvs, can adapt to);
- **where the parts sit**: arrow right vs left, the same shaft with its head at the other end (a
  choice that depends on the position, ``local``'s per-pixel mixture);
- and plain shapes (disc, ring, square), for contrast.

Colours, background gradient, size, position, a small rotation and pixel noise are random, so colour
never gives the class away; classes are balanced. The remaining shapes of :data:`SHAPE_CLASSES` (16 in
all) come in with ``num_classes > 10``.

``SyntheticScenes``: several shapes per image over a random background with clutter (thin strokes of
random colours, labelled background), and a per-pixel mask (0 = background, k = the k-th shape class),
for the segmentation task. Each scene has a subject: one larger shape drawn on top of up to two
smaller ones, its class taken in turn, so every class is the subject of equally many scenes and the
scene's largest shape says what it is about (the label an image-level attention can learn to encode).

Everything is drawn with NumPy's vectorised generator from one seed: the same seed gives the
same images, and 2,000 images of 32x32 take a fraction of a second. Images are stored as uint8
and turned into normalised float tensors per sample: ``(x / 255 - 0.5) / 0.25``.

Do not train on these with horizontal flips: a flipped "arrow right" is an "arrow left".
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

MEAN, STD = 0.5, 0.25
CHUNK = 1024
SeedLike = int | Sequence[int]


def _patch(u, v, r):
    return (np.abs(u) < 0.85 * r) & (np.abs(v) < 0.85 * r)


def _stripes(w, q, phase):
    return np.mod(w / q + phase, 1.0) < 0.5


def _triangle(u, v, r):
    t = (v + r) / (1.7 * r)           # 0 at the apex (top), 1 at the base
    return (t >= 0) & (t <= 1) & (np.abs(u) <= 0.9 * r * t)


def _arrow(u, v, r):
    shaft = (u >= -r) & (u < 0.1 * r) & (np.abs(v) < 0.22 * r)
    head = (u >= 0.1 * r) & (u <= r) & (np.abs(v) < (r - u))
    return shaft | head


# Each shape is a mask of coordinates (u, v) relative to its centre (v points down), its
# radius r, a texture period q and a texture phase; all arrays broadcast to (m, H, W).
ShapeFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
SHAPES: dict[str, ShapeFn] = {
    "disc": lambda u, v, r, q, p: u**2 + v**2 < r**2,
    "ring": lambda u, v, r, q, p: ((u**2 + v**2) < r**2) & ((u**2 + v**2) > (0.55 * r) ** 2),
    "horizontal bar": lambda u, v, r, q, p: (np.abs(u) < r) & (np.abs(v) < 0.28 * r),
    "vertical bar": lambda u, v, r, q, p: (np.abs(v) < r) & (np.abs(u) < 0.28 * r),
    "horizontal stripes": lambda u, v, r, q, p: _patch(u, v, r) & _stripes(v, q, p),
    "vertical stripes": lambda u, v, r, q, p: _patch(u, v, r) & _stripes(u, q, p),
    "checkerboard": lambda u, v, r, q, p: _patch(u, v, r) & (
        (np.floor(u / (0.5 * q) + p) + np.floor(v / (0.5 * q) + p)) % 2 == 0),
    "square": lambda u, v, r, q, p: (np.abs(u) < 0.8 * r) & (np.abs(v) < 0.8 * r),
    "arrow right": lambda u, v, r, q, p: _arrow(u, v, r),
    "arrow left": lambda u, v, r, q, p: _arrow(-u, v, r),
    "triangle up": lambda u, v, r, q, p: _triangle(u, v, r),
    "cross": lambda u, v, r, q, p: (((np.abs(u) < r) & (np.abs(v) < 0.22 * r))
                                    | ((np.abs(v) < r) & (np.abs(u) < 0.22 * r))),
    "frame": lambda u, v, r, q, p: ((np.abs(u) < 0.8 * r) & (np.abs(v) < 0.8 * r)
                                    & ~((np.abs(u) < 0.45 * r) & (np.abs(v) < 0.45 * r))),
    "diagonal stripes": lambda u, v, r, q, p: _patch(u, v, r) & _stripes((u + v) / np.sqrt(2), q, p),
    "anti-diagonal stripes": lambda u, v, r, q, p: _patch(u, v, r) & _stripes((u - v) / np.sqrt(2), q, p),
    "triangle down": lambda u, v, r, q, p: _triangle(u, -v, r),
}
# Shapes whose class depends on orientation only turn a little; the others turn freely.
ORIENTED = {"triangle up", "triangle down", "horizontal bar", "vertical bar", "horizontal stripes",
            "vertical stripes", "arrow right", "arrow left", "diagonal stripes", "anti-diagonal stripes"}
SHAPE_CLASSES = tuple(SHAPES)
SCENE_CLASSES = ("disc", "square", "triangle up", "ring", "cross", "horizontal bar", "vertical bar",
                 "frame", "arrow right", "arrow left")


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _background(rng: np.random.Generator, m: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random colour with a random linear gradient, (m, 3, S, S) in [0, 1], and that colour."""
    base = rng.uniform(0.0, 1.0, (m, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, m).astype(np.float32)
    strength = rng.uniform(0.0, 0.25, m).astype(np.float32)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    slope = (np.cos(angle)[:, None, None] * ramp[None, None, :]
             + np.sin(angle)[:, None, None] * ramp[None, :, None]) * strength[:, None, None]
    return base[:, :, None, None] + slope[:, None], base


def _contrasting(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Colours that differ from ``background`` by at least 0.35 in every channel."""
    shift = rng.uniform(0.35, 0.65, background.shape).astype(np.float32)
    return np.mod(background + shift, 1.0)


def _draw_masks(rng: np.random.Generator, names: Sequence[str], which: np.ndarray, size: int,
                radius: tuple[float, float]) -> np.ndarray:
    """One mask (m, S, S) per entry of ``which`` (an index into ``names``), randomly placed."""
    m = len(which)
    r = rng.uniform(*radius, m).astype(np.float32) * size
    cx = rng.uniform(r, size - r).astype(np.float32)
    cy = rng.uniform(r, size - r).astype(np.float32)
    oriented = np.array([names[w] in ORIENTED for w in which])
    turn = np.where(oriented, np.pi / 12, np.pi / 4) * rng.uniform(-1, 1, m)
    period = rng.uniform(0.35, 0.7, m).astype(np.float32) * r  # textures differ from image to image
    phase = rng.uniform(0, 1, m).astype(np.float32)
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    cos, sin = np.cos(turn).astype(np.float32)[:, None, None], np.sin(turn).astype(np.float32)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    col = lambda a: a[:, None, None]  # noqa: E731 - (m,) -> (m, 1, 1) for broadcasting
    masks = np.zeros((m, size, size), dtype=bool)
    for k in np.unique(which):
        i = which == k
        masks[i] = SHAPES[names[k]](u[i], v[i], col(r[i]), col(period[i]), col(phase[i]))
    return masks


def _clutter(rng: np.random.Generator, picture: np.ndarray, strokes: int) -> np.ndarray:
    """``picture`` with ``strokes`` thin line segments of random colours drawn on each image."""
    m, _, size, _ = picture.shape
    grid = np.arange(size, dtype=np.float32) + 0.5
    for _ in range(strokes):
        start = rng.uniform(0, size, (m, 2)).astype(np.float32)
        direction = rng.uniform(0, 2 * np.pi, m)
        length = rng.uniform(0.2, 0.5, m).astype(np.float32) * size
        along = np.stack([np.cos(direction), np.sin(direction)], 1).astype(np.float32)
        dx = grid[None, None, :] - start[:, 0, None, None]
        dy = grid[None, :, None] - start[:, 1, None, None]
        t = np.clip(dx * along[:, 0, None, None] + dy * along[:, 1, None, None], 0, length[:, None, None])
        distance = np.hypot(dx - t * along[:, 0, None, None], dy - t * along[:, 1, None, None])
        colour = rng.uniform(0, 1, (m, 3, 1, 1)).astype(np.float32)
        picture = np.where((distance < 0.7)[:, None], colour, picture)
    return picture


def _to_uint8(images: np.ndarray, rng: np.random.Generator, noise: float, *, part: int = 128) -> np.ndarray:
    """``images`` plus Gaussian noise, as uint8. Worked ``part`` images at a time, in place, to keep the
    memory small (Binder's box); the generator fills its draws in order, so the values do not depend on ``part``."""
    out = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, len(images), part):
        noisy = rng.standard_normal(images[start:start + part].shape, dtype=np.float32)
        noisy *= noise
        noisy += images[start:start + part]
        np.clip(noisy, 0.0, 1.0, out=noisy)
        noisy *= 255
        out[start:start + part] = np.round(noisy, out=noisy)
    return out


def _normalise(image: torch.Tensor) -> torch.Tensor:
    return (image.float() / 255 - MEAN) / STD


class SyntheticShapes(Dataset):
    """Classification images: ``(float tensor (3, S, S), int64 label)``, classes balanced.

    ``num_classes`` takes the first classes of :data:`SHAPE_CLASSES` (up to 16; the default 10 are
    described in the module doc). ``seed`` may be an int or a tuple of
    ints (e.g. ``(seed, split)``) so that splits are independent draws.
    """

    def __init__(self, n: int, image_size: int = 32, num_classes: int = 10, seed: SeedLike = 0, *,
                 noise: float = 0.08) -> None:
        _check("num_classes", num_classes, 2, len(SHAPE_CLASSES))
        _check("image_size", image_size, 16, 1024)
        self.image_size, self.num_classes = image_size, num_classes
        self.class_names = list(SHAPE_CLASSES[:num_classes])
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(n) % num_classes)
        images = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
        for start in range(0, n, CHUNK):
            which = labels[start:start + CHUNK]
            picture, bg = _background(rng, len(which), image_size)
            masks = _draw_masks(rng, self.class_names, which, image_size, (0.22, 0.40))
            fg = _contrasting(rng, bg)[:, :, None, None]
            picture = np.where(masks[:, None], fg, picture)
            images[start:start + CHUNK] = _to_uint8(picture, rng, noise)
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _normalise(self.images[i]), self.labels[i]

    @property
    def targets(self) -> np.ndarray:
        return self.labels.numpy()


class SyntheticScenes(Dataset):
    """Segmentation scenes: ``(float tensor (3, S, S), int64 mask (S, S))``, 0 = background.

    Each scene holds ``min_shapes`` to ``max_shapes`` shapes of the ``num_classes - 1`` first
    classes of :data:`SCENE_CLASSES`, each its own colour, over ``clutter`` thin strokes that are
    background; later shapes cover earlier ones and the mask shows what is visible. One shape is the
    scene's subject (as a photograph has one): drawn last and larger (``subject_radius`` against
    ``radius``), its class taken in turn so that every class is the subject of equally many scenes.
    The subject is what the scene is "about", the label that an image-level attention can encode.
    """

    def __init__(self, n: int, image_size: int = 64, num_classes: int = 6, seed: SeedLike = 0, *,
                 min_shapes: int = 1, max_shapes: int = 3, noise: float = 0.08, clutter: int = 3,
                 radius: tuple[float, float] = (0.12, 0.2), subject_radius: tuple[float, float] = (0.26, 0.36)) -> None:
        _check("num_classes", num_classes, 2, len(SCENE_CLASSES) + 1)
        _check("image_size", image_size, 16, 1024)
        _check("min_shapes", min_shapes, 1, max_shapes)
        self.image_size, self.num_classes = image_size, num_classes
        self.class_names = ["background", *SCENE_CLASSES[:num_classes - 1]]
        shape_names = SCENE_CLASSES[:num_classes - 1]
        rng = np.random.default_rng(seed)
        subjects = rng.permutation(np.arange(n) % len(shape_names))
        images = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
        masks = np.zeros((n, image_size, image_size), dtype=np.uint8)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            picture, bg = _background(rng, m, image_size)
            picture = _clutter(rng, picture, clutter)
            label = np.zeros((m, image_size, image_size), dtype=np.uint8)
            count = rng.integers(min_shapes, max_shapes + 1, m)
            subject = subjects[start:start + m]
            for slot in range(max_shapes):  # the last slot is the subject, on top of the others
                last = slot == max_shapes - 1
                which = subject if last else rng.integers(0, len(shape_names), m)
                drawn = _draw_masks(rng, shape_names, which, image_size, subject_radius if last else radius)
                drawn &= (max_shapes - slot <= count)[:, None, None]
                fg = _contrasting(rng, bg)[:, :, None, None]
                picture = np.where(drawn[:, None], fg, picture)
                label = np.where(drawn, (which + 1).astype(np.uint8)[:, None, None], label)
            images[start:start + m] = _to_uint8(picture, rng, noise)
            masks[start:start + m] = label
        self.images = torch.from_numpy(images)
        self.masks = torch.from_numpy(masks)

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _normalise(self.images[i]), self.masks[i].long()
