"""Stage dataset01: MNIST's raw files in `_data/data/MNIST/raw/`, a manifest, the arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from src.dataset.dataset01.mnist_files import RAW_FILES, ensure_mnist_files
from src.utils.stages.manifests import describe_files, write_manifest

STAGE = "dataset01"


def manifest_path(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / f"{STAGE}_manifest.json"


def make_dataset(data_dir: Path, download: bool = True) -> dict[str, Any]:
    """Download (once) or verify MNIST, then write and return its manifest."""
    raw = ensure_mnist_files(Path(data_dir), download=download)
    manifest = {
        "stage": STAGE,
        "source": "torchvision.datasets.MNIST",
        "folder": str(raw),
        "files": describe_files([raw / name for name in RAW_FILES]),
    }
    write_manifest(manifest_path(data_dir), manifest)
    return manifest


def load_split(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images N×28×28 and int64 labels, parsed by torchvision from the raw files."""
    from torchvision.datasets import MNIST

    mnist = MNIST(root=str(data_dir), train=train, download=False)
    return mnist.data, mnist.targets.to(torch.int64)
