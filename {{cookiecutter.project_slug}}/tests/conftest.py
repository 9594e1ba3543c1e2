"""Shared fixtures: a tiny MNIST in the real IDX format, and the composed training config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).parent))

from mnist_idx_fixture import write_mnist_fixture  # noqa: E402

from src.utils.hydra_resolvers import register_resolvers  # noqa: E402
from src.utils.paths import CONFIG_DIR  # noqa: E402
from src.utils.sweep.sweeper import register_sweeper  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir holding MNIST/raw/ with 600 training and 200 test digits."""
    data_dir = tmp_path_factory.mktemp("data")
    write_mnist_fixture(data_dir, n_train=600, n_test=200)
    return data_dir


def run_python(
    code: str, *args: str, extra_path: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -c code *args` in a new process at the project root (the project, then
    `extra_path`, importable); fail with its stderr unless it exits 0."""
    project = Path(__file__).resolve().parents[1]
    paths = [str(p) for p in (extra_path, project) if p] + [os.environ.get("PYTHONPATH", "")]
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, paths))},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def compose_train_config(overrides: list[str] | None = None) -> DictConfig:
    """model01's config as Hydra composes it for `train.py`, with `overrides` applied."""
    register_resolvers()
    register_sweeper()
    with initialize_config_dir(config_dir=str(CONFIG_DIR / "model" / "model01")):
        return compose(config_name="config", overrides=overrides or [], return_hydra_config=True)


@pytest.fixture(scope="session")
def stage_configs(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """dataset01 and feature01 configs pointing at the tiny MNIST and a throwaway cache."""
    dataset_config = {"data_dir": str(mnist_dir), "download": False}
    feature_config = {
        "output_dir": str(tmp_path_factory.mktemp("feature01")),
        "binarize_threshold": None,
    }
    return dataset_config, feature_config


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway MLflow store (artifacts too), so tests never write into logs/mlruns."""
    import src.utils.tracking.store.mlflow_store

    monkeypatch.setattr(src.utils.tracking.store.mlflow_store, "MLRUNS_DIR", tmp_path / "mlruns")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
