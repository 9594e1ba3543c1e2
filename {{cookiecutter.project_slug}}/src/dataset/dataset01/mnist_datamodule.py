"""MNIST as a LightningDataModule: tensors in memory, a seeded validation fraction.

The images are read once through torchvision's parser into one uint8 tensor; batches are
sliced from it, so there is no per-sample PIL decoding and no worker processes to start.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.dataset.dataset01.mnist_files import ensure_mnist_files


def load_mnist_split(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 N×1×28×28 in [0, 1] and labels as int64, via torchvision."""
    from torchvision.datasets import MNIST

    mnist = MNIST(root=str(data_dir), train=train, download=False)
    images = mnist.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return images, mnist.targets.to(torch.int64)


class MNISTDataModule(L.LightningDataModule):
    """Train/validation from MNIST's training file, test from its official test file."""

    def __init__(
        self,
        data_dir: str | Path,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.download = download
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def prepare_data(self) -> None:
        ensure_mnist_files(self.data_dir, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = load_mnist_split(self.data_dir, train=True)
            # A fraction, not a count, so a 600-image file splits as sensibly as 60,000.
            n_val = max(1, round(len(images) * self.val_fraction))
            order = torch.randperm(
                len(images), generator=torch.Generator().manual_seed(self.split_seed)
            )
            val_idx, train_idx = order[:n_val], order[n_val:]
            self.train_set = TensorDataset(images[train_idx], labels[train_idx])
            self.val_set = TensorDataset(images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = TensorDataset(*load_mnist_split(self.data_dir, train=False))

    def _loader(self, dataset: TensorDataset | None, shuffle: bool) -> DataLoader:
        assert dataset is not None, "call setup() first"
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
