"""feature01's cached MNIST tensors as a LightningDataModule, with a seeded validation split.

Batches are sliced from in-memory tensors: no per-sample image decoding and no worker
processes to start, which is what a small dataset on a few CPU cores wants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.feature.feature01.mnist_features import FeatureSet, ensure_features
from src.utils.stages.config import load_stage_config
from src.utils.training.resume import EpochShuffle


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 -> float32 N×1×28×28 in [0, 1]: what DigitCNN and the served model take."""
    return images.unsqueeze(1).to(torch.float32).div_(255.0)


def _split(
    features: FeatureSet, val_fraction: float, split_seed: int
) -> tuple[TensorDataset, TensorDataset]:
    images = as_model_input(features.train_images)
    labels = features.train_labels
    # A fraction, not a count, so a 600-image file splits as sensibly as 60,000.
    n_val = max(1, round(len(images) * val_fraction))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    train = TensorDataset(images[train_idx], labels[train_idx])
    return train, TensorDataset(images[val_idx], labels[val_idx])


# The datasets this process prepared last, by what they were made from: a sweep's trials
# share them. Converting and splitting MNIST's 60,000 images took ~0.19 s of every trial
# (two CPU cores); the tensors are only read, never changed in place.
_PREPARED: dict[tuple, tuple[TensorDataset, ...]] = {}


def _prepared(
    key: tuple, make: Callable[[], tuple[TensorDataset, ...]]
) -> tuple[TensorDataset, ...]:
    if key not in _PREPARED:
        for stale in [k for k in _PREPARED if k[0] == key[0]]:
            del _PREPARED[stale]  # one version of each kind in memory, not one per trial
        _PREPARED[key] = make()
    return _PREPARED[key]


class MNISTDataModule(L.LightningDataModule):
    """Train/validation from MNIST's training file, test from its official test file.

    The stage configs default to config/dataset/dataset01 and config/feature/feature01;
    tests pass their own (another data folder, another cache).
    """

    def __init__(
        self,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        dataset_config: Mapping[str, Any] | None = None,
        feature_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.dataset_config = dataset_config or load_stage_config("dataset", "dataset01")
        self.feature_config = feature_config or load_stage_config("feature", "feature01")
        self._features: FeatureSet | None = None
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def features(self) -> FeatureSet:
        """The feature set, built on demand (dataset01 then feature01) the first time."""
        if self._features is None:
            self._features, _built = ensure_features(self.dataset_config, self.feature_config)
        return self._features

    def prepare_data(self) -> None:
        self.features()

    def setup(self, stage: str | None = None) -> None:
        features = self.features()
        if stage in (None, "fit", "validate") and self.train_set is None:
            self.train_set, self.val_set = _prepared(
                ("split", features.digest, self.val_fraction, self.split_seed),
                lambda: _split(features, self.val_fraction, self.split_seed),
            )
        if stage in (None, "test", "predict") and self.test_set is None:
            (self.test_set,) = _prepared(
                ("test", features.digest),
                lambda: (
                    TensorDataset(as_model_input(features.test_images), features.test_labels),
                ),
            )

    def _loader(self, dataset: TensorDataset | None, shuffle: bool) -> DataLoader:
        assert dataset is not None, "call setup() first"
        # Each epoch's order from (shuffle_seed, epoch) alone, and no draw from the global
        # generator (dropout's): a resumed run trains as if never stopped (training.resume).
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffle(dataset, self.shuffle_seed) if shuffle else None,
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            num_workers=self.num_workers,
            pin_memory=self._pin_memory(),
            persistent_workers=self.num_workers > 0,
        )

    def _pin_memory(self) -> bool:
        """The configured value; None means: pin when the trainer trains on a CUDA GPU."""
        if self.pin_memory is not None:
            return self.pin_memory
        from lightning.pytorch.accelerators import CUDAAccelerator

        return self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
