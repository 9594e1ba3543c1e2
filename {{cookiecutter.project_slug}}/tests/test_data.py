import shutil
from pathlib import Path

import pytest
import torch
from mnist_idx_fixture import write_mnist_fixture

from src.dataset.dataset01.mnist_dataset import make_dataset, manifest_path
from src.dataset.dataset01.mnist_files import RAW_FILES, MNISTFilesError, ensure_mnist_files
from src.feature.feature01.mnist_datamodule import MNISTDataModule
from src.feature.feature01.mnist_features import ensure_features
from src.utils.stages.manifests import read_manifest, sha256_of


def test_datamodule_splits_a_seeded_validation_fraction(stage_configs):
    dataset_config, feature_config = stage_configs

    def datamodule_with(split_seed: int) -> MNISTDataModule:
        return MNISTDataModule(
            batch_size=32,
            val_fraction=0.2,
            split_seed=split_seed,
            dataset_config=dataset_config,
            feature_config=feature_config,
        )

    datamodule = datamodule_with(split_seed=1)
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.val_set) == 120
    assert len(datamodule.train_set) == 480
    assert len(datamodule.test_set) == 200
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert labels.dtype == torch.int64

    again = datamodule_with(split_seed=1)
    again.setup("fit")
    assert torch.equal(again.val_set.tensors[1], datamodule.val_set.tensors[1])
    # Prepared once per process (a sweep's trials share it); another seed splits anew.
    assert again.train_set is datamodule.train_set
    other = datamodule_with(split_seed=2)
    other.setup("fit")
    assert not torch.equal(other.val_set.tensors[1], datamodule.val_set.tensors[1])


def test_dataset_manifest_records_names_sizes_and_hashes(mnist_dir: Path):
    manifest = make_dataset(mnist_dir, download=False)
    assert read_manifest(manifest_path(mnist_dir)) == manifest
    assert set(manifest["files"]) == set(RAW_FILES)
    raw = mnist_dir / "MNIST" / "raw"
    for name, info in manifest["files"].items():
        assert info["bytes"] == (raw / name).stat().st_size
        assert info["sha256"] == sha256_of(raw / name)


def test_raw_files_are_hashed_again_only_when_they_change(tmp_path: Path, monkeypatch):
    import os

    import src.utils.stages.manifests as manifests

    write_mnist_fixture(tmp_path / "data", n_train=50, n_test=20)
    raw = tmp_path / "data" / "MNIST" / "raw"
    # Written long ago: a file written in the same clock tick as its hashing is re-hashed.
    for name in RAW_FILES:
        os.utime(raw / name, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    first = make_dataset(tmp_path / "data", download=False)
    hashed = []
    monkeypatch.setattr(manifests, "sha256_of", lambda path: hashed.append(path.name) or "x")
    assert make_dataset(tmp_path / "data", download=False) == first
    assert hashed == []  # unchanged since hashed: no file read again

    images = raw / "train-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[-1] ^= 0xFF  # one pixel, same size: only the modification time tells
    images.write_bytes(bytes(data))
    changed = make_dataset(tmp_path / "data", download=False)
    assert set(hashed) == set(RAW_FILES)
    assert changed["files"]["train-images-idx3-ubyte"]["sha256"] == "x"  # hashed again
    assert read_manifest(manifest_path(tmp_path / "data")) == changed
    # The same file rewritten within 2 s of its hashing is hashed again at the next call.
    hashed.clear()
    make_dataset(tmp_path / "data", download=False)
    assert hashed


def test_features_are_cached_reused_and_rebuilt_when_inputs_or_config_change(tmp_path: Path):
    write_mnist_fixture(tmp_path / "data", n_train=100, n_test=30)
    dataset_config = {"data_dir": str(tmp_path / "data"), "download": False}
    feature_config = {"output_dir": str(tmp_path / "feature01"), "binarize_threshold": None}

    features, built = ensure_features(dataset_config, feature_config)
    assert built
    assert features.train_images.dtype == torch.uint8 and features.train_images.shape == (
        100,
        28,
        28,
    )
    assert 0.0 < features.mean < 1.0 and 0.0 < features.std < 1.0
    manifest = read_manifest(tmp_path / "feature01" / "manifest.json")
    assert manifest["inputs"]["dataset"]["files"] == make_dataset(tmp_path / "data", False)["files"]

    again, built = ensure_features(dataset_config, feature_config)
    assert not built and again.digest == features.digest
    # A sweep's later trials share the tensors this process loaded, not a new copy each.
    assert ensure_features(dataset_config, feature_config)[0].train_images is again.train_images

    binarized, built = ensure_features(dataset_config, dict(feature_config, binarize_threshold=128))
    assert built and set(binarized.train_images.unique().tolist()) <= {0, 255}
    assert binarized.digest != features.digest

    write_mnist_fixture(tmp_path / "data", n_train=120, n_test=30, seed=5)
    changed, built = ensure_features(dataset_config, dict(feature_config, binarize_threshold=128))
    assert built and changed.train_images.shape[0] == 120


def test_gzipped_files_as_downloaded_are_unpacked(tmp_path: Path):
    write_mnist_fixture(tmp_path, n_train=50, n_test=20, gz=True)
    raw = ensure_mnist_files(tmp_path, download=False)
    assert sorted(p.name for p in raw.glob("*-ubyte")) == sorted(RAW_FILES)


def test_missing_files_offline_name_the_folder_and_the_four_files(tmp_path: Path):
    with pytest.raises(MNISTFilesError) as error:
        ensure_mnist_files(tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in RAW_FILES:
        assert name in message


def test_truncated_file_is_reported_by_name(tmp_path: Path, mnist_dir: Path):
    shutil.copytree(mnist_dir / "MNIST" / "raw", tmp_path / "MNIST" / "raw")
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
