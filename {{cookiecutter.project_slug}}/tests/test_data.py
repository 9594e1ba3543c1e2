import shutil
from pathlib import Path

import pytest
import torch
from mnist_idx_fixture import write_mnist_fixture

from src.dataset.dataset01.mnist_datamodule import MNISTDataModule
from src.dataset.dataset01.mnist_files import MNISTFilesError, ensure_mnist_files


def test_datamodule_splits_a_seeded_validation_fraction(mnist_dir: Path):
    datamodule = MNISTDataModule(mnist_dir, batch_size=32, val_fraction=0.2, split_seed=1)
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.val_set) == 120
    assert len(datamodule.train_set) == 480
    assert len(datamodule.test_set) == 200
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert labels.dtype == torch.int64

    again = MNISTDataModule(mnist_dir, batch_size=32, val_fraction=0.2, split_seed=1)
    again.setup("fit")
    assert torch.equal(again.val_set.tensors[1], datamodule.val_set.tensors[1])


def test_gzipped_files_as_downloaded_are_unpacked(tmp_path: Path):
    write_mnist_fixture(tmp_path, n_train=50, n_test=20, gz=True)
    raw = ensure_mnist_files(tmp_path, download=False)
    assert sorted(p.name for p in raw.glob("*-ubyte")) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]


def test_missing_files_offline_name_the_folder_and_the_four_files(tmp_path: Path):
    with pytest.raises(MNISTFilesError) as error:
        ensure_mnist_files(tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in message


def test_truncated_file_is_reported_by_name(tmp_path: Path, mnist_dir: Path):
    shutil.copytree(mnist_dir / "MNIST", tmp_path / "MNIST")
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(MNISTFilesError, match="train-images-idx3-ubyte.*truncated or corrupt"):
        ensure_mnist_files(tmp_path, download=False)


def test_images_and_labels_from_different_downloads_are_refused(tmp_path: Path):
    write_mnist_fixture(tmp_path, n_train=50, n_test=20)
    other = tmp_path / "other"
    write_mnist_fixture(other, n_train=60, n_test=20)
    labels = "train-labels-idx1-ubyte"
    shutil.copy(other / "MNIST" / "raw" / labels, tmp_path / "MNIST" / "raw" / labels)
    with pytest.raises(MNISTFilesError, match="50 images but 60 labels"):
        ensure_mnist_files(tmp_path, download=False)
