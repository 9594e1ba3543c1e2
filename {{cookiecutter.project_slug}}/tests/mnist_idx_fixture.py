"""Write a small, learnable MNIST look-alike in the real IDX format torchvision reads.

MNIST cannot be downloaded in CI, so the tests draw digits 0-9 with Pillow's built-in
font at random offsets, scales and noise, and store them exactly as MNIST is stored. The
real loading path (torchvision's IDX parser) runs on them and a model can learn them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from src.dataset.dataset01.idx_format import write_idx
from src.dataset.dataset01.mnist_files import raw_folder


def _glyphs() -> list[np.ndarray]:
    """Each digit drawn once, large, as a float array in [0, 1]."""
    font = ImageFont.load_default(size=22)
    glyphs = []
    for digit in range(10):
        canvas = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(canvas).text((14, 14), str(digit), fill=255, font=font, anchor="mm")
        glyphs.append(np.asarray(canvas, dtype=np.float32) / 255.0)
    return glyphs


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` uint8 28×28 images of digits with labels; shifted, thickened, noisy."""
    rng = np.random.default_rng(seed)
    glyphs = _glyphs()
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = np.zeros((count, 28, 28), dtype=np.float32)
    for i, label in enumerate(labels):
        image = glyphs[label]
        if rng.random() < 0.5:  # a thicker stroke, as handwriting varies
            image = np.maximum(image, np.roll(image, 1, axis=1))
        image = np.roll(image, (rng.integers(-2, 3), rng.integers(-2, 3)), axis=(0, 1))
        image = image * rng.uniform(0.7, 1.0) + rng.normal(0, 0.08, size=image.shape)
        images[i] = np.clip(image, 0.0, 1.0)
    return (images * 255).round().astype(np.uint8), labels


def write_mnist_fixture(
    data_dir: Path, n_train: int = 600, n_test: int = 200, seed: int = 0, gz: bool = False
) -> Path:
    """Write the four MNIST files under `<data_dir>/MNIST/raw/`; return that folder."""
    raw = raw_folder(data_dir)
    splits = {"train": synthetic_digits(n_train, seed), "t10k": synthetic_digits(n_test, seed + 1)}
    for split, (images, labels) in splits.items():
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{split}-{kind}-ubyte"
            write_idx(path, array)
            if gz:
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
                path.unlink()
    return raw
