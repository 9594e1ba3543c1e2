"""Get MNIST's four raw files into `_data/data/MNIST/raw/`, once, and check them.

torchvision's own layout is kept, so `torchvision.datasets.MNIST(root=_data/data)` reads
the files. Users without internet place the files there by hand; the error says which.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from filelock import FileLock

from src.dataset.dataset01.idx_format import IdxFormatError, read_idx_shape

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTFilesError(RuntimeError):
    """The MNIST files are missing, unreadable or inconsistent."""


def raw_folder(data_dir: Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _gunzip_placed_archives(raw: Path) -> None:
    """Users often place the `.gz` files as downloaded; unpack them next to themselves."""
    for name in RAW_FILES:
        archive, target = raw / f"{name}.gz", raw / name
        if archive.exists() and not target.exists():
            partial = target.with_suffix(".partial")
            try:
                with gzip.open(archive, "rb") as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as error:
                partial.unlink(missing_ok=True)
                raise MNISTFilesError(
                    f"{archive} is not a valid gzip file ({error}). Delete it and download "
                    "it again, or place the unpacked file instead."
                ) from error
            partial.rename(target)


def _missing(raw: Path) -> list[str]:
    return [name for name in RAW_FILES if not (raw / name).exists()]


def check_mnist_files(raw: Path) -> dict[str, tuple[int, ...]]:
    """Check every raw file's IDX header and that images and labels agree in count."""
    shapes = {}
    for name in RAW_FILES:
        try:
            shapes[name] = read_idx_shape(raw / name)
        except IdxFormatError as error:
            raise MNISTFilesError(f"{error}. Delete it and download or place it again.") from None
    for split in ("train", "t10k"):
        images = shapes[f"{split}-images-idx3-ubyte"]
        labels = shapes[f"{split}-labels-idx1-ubyte"]
        if len(images) != 3 or images[1:] != (28, 28) or len(labels) != 1:
            raise MNISTFilesError(
                f"{raw}/{split}-*: expected images of shape (N, 28, 28) and labels of shape "
                f"(N,), got {images} and {labels}"
            )
        if images[0] != labels[0]:
            raise MNISTFilesError(
                f"{raw}: {split} has {images[0]} images but {labels[0]} labels; one of the "
                "two files is from another download"
            )
    return shapes


def ensure_mnist_files(data_dir: Path, download: bool = True) -> Path:
    """Make sure the four raw files exist and are sound; download them once if allowed.

    A file lock serialises the download, so trials that start together (a parallel
    sweep) download once and never read a half-written file.
    """
    raw = raw_folder(data_dir)
    raw.mkdir(parents=True, exist_ok=True)
    with FileLock(str(raw / ".download.lock")):
        _gunzip_placed_archives(raw)
        if _missing(raw) and download:
            from torchvision.datasets import MNIST

            try:
                MNIST(root=str(data_dir), train=True, download=True)
                MNIST(root=str(data_dir), train=False, download=True)
            except Exception as error:  # noqa: BLE001 - torchvision raises many kinds
                missing = _missing(raw)
                if missing:
                    raise MNISTFilesError(_missing_message(raw, missing, error)) from None
                raise
        missing = _missing(raw)
        if missing:
            raise MNISTFilesError(_missing_message(raw, missing, None))
        check_mnist_files(raw)
    return raw


def _missing_message(raw: Path, missing: list[str], error: Exception | None) -> str:
    reason = (
        f"the download failed ({type(error).__name__}: {error})"
        if error
        else ("downloading is switched off (data.download=false)")
    )
    names = "\n".join(f"  {raw / name}[.gz]" for name in missing)
    return (
        f"MNIST is not in {raw} and {reason}.\n"
        f"Place these files there (from any MNIST mirror, .gz or unpacked):\n{names}\n"
        "then run the command again."
    )
