"""Still digit images for the synthetic camera: MNIST idx files, PNG folders, and font-rendered digits.

Every image is a 28x28 uint8 array, bright digit on a dark background (the MNIST convention), and
comes with its label (or None) and a name used as the sample id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

SIZE = 28


@dataclass(frozen=True)
class Digit:
    """One still image: `image` (28x28 uint8, bright on dark), `label` (int or None), `name` (sample id)."""

    image: np.ndarray
    label: int | None
    name: str


def mnist_digits(folder: str | Path, split: str = "test", first: int = 1,
                 count: int | None = None) -> list[Digit]:
    """MNIST images `first`..`first+count-1` (1-based, as in the N-MNIST numbering) of a split."""
    from ..io.mnist_idx import load_mnist

    images, labels = load_mnist(folder, split)
    if not 1 <= first <= len(images):
        raise InputError(f"--first {first} is outside MNIST {split} images 1..{len(images)} in {folder}")
    stop = len(images) if count is None else min(len(images), first - 1 + count)
    return [Digit(images[k], int(labels[k]), f"mnist-{k + 1}") for k in range(first - 1, stop)]


def to_digit_image(img) -> np.ndarray:
    """A PIL image as a 28x28 uint8 array, bright on dark (inverted when the border is bright)."""
    from PIL import Image

    grey = img.convert("L")
    if grey.size != (SIZE, SIZE):
        grey = grey.resize((SIZE, SIZE), Image.Resampling.BOX)
    a = np.asarray(grey, dtype=np.uint8)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return 255 - a if border.mean() > 127 else a.copy()


_LABEL_IN_NAME = re.compile(r"^(\d+)_")


def png_label(path: Path, root: Path) -> int | None:
    """The label of a PNG: its parent folder's name when that is a number, else `<label>_*.png`."""
    if path.parent != root and path.parent.name.isdigit():
        return int(path.parent.name)
    m = _LABEL_IN_NAME.match(path.name)
    return int(m.group(1)) if m else None


def png_digits(folder: str | Path) -> list[Digit]:
    """Every *.png under `folder` (sorted), one digit per image, labels from folder or file names."""
    from PIL import Image, UnidentifiedImageError

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"PNG folder {root} does not exist; give a folder of digit images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise InputError(f"no .png files under {root}; expect <label>/<name>.png or <label>_<name>.png")
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                image = to_digit_image(im)
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"cannot read PNG {p}: {exc}; replace or remove the file") from None
        out.append(Digit(image, png_label(p, root), f"png-{p.relative_to(root).with_suffix('').as_posix()}"))
    return out


#: TrueType fonts tried in order for rendered digits (Debian's DejaVu first).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "DejaVuSans.ttf",
)


def _fonts(size: int) -> list:
    """Every available candidate font at `size`, or Pillow's built-in font when none is installed."""
    from PIL import ImageFont

    fonts = []
    for name in FONT_CANDIDATES:
        try:
            fonts.append(ImageFont.truetype(name, size))
        except OSError:
            continue
    return fonts or [ImageFont.load_default(size)]


def render_digit(label: int, rng: np.random.Generator, fonts: list) -> np.ndarray:
    """Digit `label` drawn from a random font with random stroke, rotation, scale and shift, MNIST-style.

    As in MNIST, the glyph is fitted into a 20x20 box (aspect kept) and centred by its centre of
    mass in a 28x28 frame; the random pose is applied on top of that.
    """
    from PIL import Image, ImageDraw

    big = 96
    canvas = Image.new("L", (2 * big, 2 * big), 0)
    font = fonts[int(rng.integers(len(fonts)))]
    stroke = int(rng.integers(0, 6))
    ImageDraw.Draw(canvas).text((big, big), str(label), fill=255, font=font, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
    box = canvas.getbbox()
    if box is None:  # pragma: no cover - a font without digits
        raise InputError(f"the font {getattr(font, 'path', 'built-in')} has no glyph for {label}")
    glyph = canvas.crop(box)
    fit = 20.0 * float(rng.uniform(0.75, 1.05)) / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.size[0] * fit)), max(1, round(glyph.size[1] * fit))),
                         Image.Resampling.LANCZOS)
    g = np.asarray(glyph, dtype=np.float64)
    ys, xs = np.indices(g.shape)
    cy, cx = (ys * g).sum() / g.sum(), (xs * g).sum() / g.sum()
    dx, dy = rng.uniform(-1.5, 1.5, 2)
    out = Image.new("L", (SIZE, SIZE), 0)
    out.paste(glyph, (int(round(SIZE / 2 - cx + dx)), int(round(SIZE / 2 - cy + dy))))
    return np.asarray(out, dtype=np.uint8).copy()


def font_digits(count: int, seed: int = 0) -> Iterator[Digit]:
    """`count` rendered digits with random labels 0..9, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    fonts = _fonts(96)
    for n in range(count):
        label = int(rng.integers(10))
        yield Digit(render_digit(label, rng, fonts), label, f"font-{n + 1}")
