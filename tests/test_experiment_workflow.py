"""Seed 001's workflow on a real project: stage commands, new experiments, the diary."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from conftest import SMALL_RUN, run

pytestmark = pytest.mark.slow


def manifest(project: Path, relative: str) -> dict:
    return json.loads((project / relative).read_text())


def test_dataset_stage_verifies_the_placed_files_and_writes_a_manifest(installed_project):
    result = run(
        ["poetry", "run", "python", "src/dataset/dataset01/make_dataset.py", "download=false"],
        cwd=installed_project,
    )
    assert "Manifest written to" in result.stdout + result.stderr
    written = manifest(installed_project, "_data/data/MNIST/dataset01_manifest.json")
    assert written["stage"] == "dataset01"
    assert set(written["files"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    assert all(
        len(info["sha256"]) == 64 and info["bytes"] > 0 for info in written["files"].values()
    )
    logs = list((installed_project / "logs/logging_/dataset/dataset01").glob("*.log"))
    assert logs and "Manifest written to" in logs[0].read_text()


def test_feature_stage_builds_skips_and_rebuilds(installed_project):
    command = ["poetry", "run", "python", "src/feature/feature01/make_features.py"]
    out = installed_project / "_data/feature/feature01"
    run(command, cwd=installed_project)
    assert {"train.pt", "test.pt", "stats.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    first = manifest(installed_project, "_data/feature/feature01/manifest.json")

    again = run(command, cwd=installed_project)
    assert "up to date, skipping the build" in again.stdout + again.stderr
    assert manifest(installed_project, "_data/feature/feature01/manifest.json") == first

    changed = run(command + ["binarize_threshold=128"], cwd=installed_project)
    assert "stale (inputs or config changed)" in changed.stdout + changed.stderr
    rebuilt = manifest(installed_project, "_data/feature/feature01/manifest.json")
    assert rebuilt["inputs"]["config"] == {"binarize_threshold": 128}
    assert rebuilt["outputs"]["train.pt"]["sha256"] != first["outputs"]["train.pt"]["sha256"]
    # Back to the default config: rebuilt again, identical to the first build.
    run(command, cwd=installed_project)
    restored = manifest(installed_project, "_data/feature/feature01/manifest.json")
    assert restored["outputs"] == first["outputs"]
    logs = list((installed_project / "logs/logging_/feature/feature01").glob("*.log"))
    assert logs and "skipping the build" in logs[0].read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model", "model01"], "'model01' already exists (src/model/model01)"),
        (["model", "Model02"], "Bad name 'Model02'"),
        (["model", "model-02"], "Bad name 'model-02'"),
        (["model", "feature02"], "Bad name 'feature02'"),
        (["preprocess", "preprocess01"], "Unknown stage 'preprocess'"),
        (["model", "model05", "--from", "model09"], "Unknown source model experiment 'model09'"),
    ],
)
def test_new_experiment_refuses_with_a_message_and_writes_nothing(
    installed_project, args, expected
):
    before = sorted(p.relative_to(installed_project) for p in installed_project.rglob("*"))
    result = run(["bash", "scripts/new_experiment.sh", *args], cwd=installed_project, check=False)
    assert result.returncode == 2
    assert expected in result.stderr and "Nothing was written" in result.stderr
    after = sorted(p.relative_to(installed_project) for p in installed_project.rglob("*"))
    assert after == before


def test_new_model_experiment_copies_renames_and_trains_into_its_own_experiment(installed_project):
    project = installed_project
    result = run(["bash", "scripts/new_experiment.sh", "model", "model02"], cwd=project)
    assert "created src/model/model02" in result.stdout
    train = (project / "src/model/model02/train.py").read_text()
    assert "from src.model.model02.image_classifier_models import ImageClassifier" in train
    assert 'config_path="../../../config/model/model02"' in train
    assert "model01" not in train
    config = (project / "config/model/model02/config.yaml").read_text()
    assert "experiment_name: model02" in config
    diary = (project / "diary/model02.md").read_text()
    assert diary.startswith("# model02\n")
    assert f"Date: {date.today().isoformat()}" in diary
    assert "Derived from: model01 (src/model/model01)" in diary
    assert "## Hypothesis" in diary

    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src/model/model02"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout

    run(["poetry", "run", "python", "src/model/model02/train.py", *SMALL_RUN], cwd=project)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name("model02")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["mlflow.source.name"] == "src/model/model02/train.py"
    assert runs[0].data.tags["data.feature"] == "feature01"
    assert len(runs[0].data.tags["data.feature_sha256"]) == 64


def test_new_feature_experiment_copies_from_the_latest_by_default(installed_project):
    result = run(
        ["bash", "scripts/new_experiment.sh", "feature", "feature02"], cwd=installed_project
    )
    assert "created config/feature/feature02" in result.stdout
    features = (installed_project / "src/feature/feature02/mnist_features.py").read_text()
    assert 'STAGE = "feature02"' in features
    config = (installed_project / "config/feature/feature02/config.yaml").read_text()
    assert "stage_name: feature02" in config
    run(
        ["poetry", "run", "python", "src/feature/feature02/make_features.py"], cwd=installed_project
    )
    assert (installed_project / "_data/feature/feature02/manifest.json").exists()
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src/feature/feature02"],
        cwd=installed_project,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout


def test_diary_table_of_top_runs_from_real_runs(installed_project):
    project = installed_project
    run(
        [
            "poetry",
            "run",
            "python",
            "src/model/model01/train.py",
            *SMALL_RUN,
            "learning_rate=0.0011",
        ],
        cwd=project,
    )
    result = run(
        ["poetry", "run", "python", "-m", "src.utils.commands.diary", "model01", "--top", "3"],
        cwd=project,
    )
    assert "Appended the top runs of model01" in result.stdout
    text = (project / "diary/model01.md").read_text()
    assert "### Top runs from MLflow" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| run | run id | best val/acc | learning_rate")
    rows = table[2:]  # after the header and the --- line
    assert 1 <= len(rows) <= 3
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'logs/mlruns/mlflow.db'}")
    values = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        logged = client.get_run(cells[1].strip("`"))
        assert logged.info.run_name == cells[0] and logged.data.tags.get("run_kind") != "sweep"
        history = client.get_metric_history(logged.info.run_id, "val/acc")
        assert float(cells[2]) == pytest.approx(max(m.value for m in history), abs=5e-5)
        assert cells[-1] == f"#/experiments/{logged.info.experiment_id}/runs/{logged.info.run_id}"
        values.append(float(cells[2]))
    assert values == sorted(values, reverse=True)

    missing = run(
        ["poetry", "run", "python", "-m", "src.utils.commands.diary", "nope"],
        cwd=project,
        check=False,
    )
    assert missing.returncode == 2 and "No MLflow experiment named 'nope'" in missing.stderr
